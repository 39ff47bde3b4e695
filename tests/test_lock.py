"""The CPU lock (requirements/cpu.lock, written by `make lock`) agrees with pyproject.toml and the Makefile.

`make setup` installs with `pip install -c requirements/cpu.lock`: a dependency missing from the lock would install
unpinned, and a pin outside pyproject's range would make the install fail. After changing a dependency, run `make lock`.
"""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "cpu.lock"
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;,#]+)")


def lock_lines():
    lines = [line.strip() for line in LOCK.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def lock_pins():
    return {canonicalize_name(match[1]): match[2] for match in map(PIN.fullmatch, lock_lines())}


def makefile_value(name):
    match = re.search(rf"^{name}\s*[?:]?=\s*(.+?)\s*$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"no {name} in the Makefile"
    return match[1]


def project_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [(None, text) for text in project["dependencies"]]
    requirements += [
        (extra, text) for extra, texts in project.get("optional-dependencies", {}).items() for text in texts
    ]
    return [(extra, Requirement(text)) for extra, text in requirements]


def test_every_line_is_an_exact_pin_and_none_is_repeated():
    lines = lock_lines()
    assert [line for line in lines if not PIN.fullmatch(line)] == []
    names = [canonicalize_name(PIN.fullmatch(line)[1]) for line in lines]
    assert sorted({name for name in names if names.count(name) > 1}) == []
    assert len(names) > 50  # the whole environment, not just the direct dependencies


def test_every_dependency_and_extra_is_pinned_inside_its_range():
    pins = lock_pins()
    problems = []
    for extra, requirement in project_requirements():
        where = f"[{extra}] " if extra else ""
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{where}{requirement} is not in the lock")
        elif not requirement.specifier.contains(Version(version), prereleases=True):
            problems.append(f"{where}{requirement} but the lock has {version}")
    assert problems == [], "run `make lock`: " + "; ".join(problems)


def test_torch_is_pinned_as_the_makefile_installs_it():
    locked_torch = Requirement(makefile_value("LOCKED_TORCH"))
    assert locked_torch.name == "torch" and str(locked_torch.specifier).startswith("==")
    assert lock_pins().get("torch") == str(locked_torch.specifier)[2:]
    assert makefile_value("TORCH") == "$(LOCKED_TORCH)"
    assert "requirements/cpu.lock" in makefile_value("LOCK")


def test_packaged_assets_are_pinned_as_the_makefile_installs_them():
    pins = lock_pins()
    assets = [PIN.fullmatch(item) for item in makefile_value("PACKAGED_ASSETS").split()]
    assert assets and all(assets)
    assert {canonicalize_name(match[1]): pins.get(canonicalize_name(match[1])) for match in assets} == {
        canonicalize_name(match[1]): match[2] for match in assets
    }
