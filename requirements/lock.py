#!/usr/bin/env python3
"""Write the CPU lock (requirements/cpu.lock): exact versions of everything `make setup` installs.

A fresh resolve by pip itself, in a throwaway venv made with this Python, of the torch pin, pip, and the project with
all its extras (pyproject.toml's [project.optional-dependencies]), with `pip install --dry-run --report`: the same
resolver, indexes, find-links and pip configuration as `make setup`, and nothing is installed. The packaged assets that
the Makefile installs with --no-deps are added as they are pinned there. Run through `make lock`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    sys.exit("make lock needs Python >= 3.11 (tomllib): run it as make lock PYTHON=python3.11")

ROOT = Path(__file__).resolve().parents[1]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pin(text: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,]+)\s*", text)
    if not match:
        sys.exit(f"lock: {text!r} is not an exact pin (name==version)")
    return canonical(match[1]), match[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", required=True, help="the torch pin, e.g. torch==2.13.0")
    parser.add_argument("--assets", default="", help="space-separated name==version installed with --no-deps")
    parser.add_argument("--out", default=str(ROOT / "requirements" / "cpu.lock"))
    args = parser.parse_args()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = sorted(project.get("optional-dependencies", {}))
    torch_name, torch_version = pin(args.torch)
    assets = [pin(item) for item in args.assets.split()]

    with tempfile.TemporaryDirectory(prefix="layercut-lock-") as tmp:
        env_dir, report_path = Path(tmp) / "venv", Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
        python = str(env_dir / "bin" / "python")
        subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        target = f"{ROOT}[{','.join(extras)}]" if extras else str(ROOT)
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "install",
                "-q",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report_path),
                args.torch,
                "pip",
                target,
            ],
            check=True,
        )
        report = json.loads(report_path.read_text())
        pip_version = subprocess.run(
            [python, "-m", "pip", "--version"], check=True, capture_output=True, text=True
        ).stdout.split()[1]

    pins: dict[str, str] = {}
    for item in report["install"]:
        name, version = canonical(item["metadata"]["name"]), item["metadata"]["version"]
        if name == canonical(project["name"]):
            continue
        # A local label (torch's +cpu from a wheel folder) is left off: `torch==2.13.0` installs the +cpu wheel where
        # pip finds it and the plain release elsewhere.
        pins[name] = version.split("+", 1)[0]
    if pins.get(torch_name) != torch_version:
        sys.exit(f"lock: pip resolved {torch_name}=={pins.get(torch_name)}, not {args.torch}")
    for name, version in assets:
        if pins.setdefault(name, version) != version:
            sys.exit(f"lock: the asset {name}=={version} is also a dependency, resolved at {pins[name]}")

    header = [
        "# The CPU lock: exact versions of every package of layercut's environment. `make setup` installs with",
        "# `pip install -c requirements/cpu.lock` (every step) when TORCH is the default.",
        f"# Written by `make lock` (requirements/lock.py) on {datetime.date.today()}: a fresh resolve by pip "
        f"{pip_version} of {args.torch},",
        f"# pip, and pyproject.toml's dependencies with all its extras ({', '.join(extras) or 'none'}), for CPython "
        f"{platform.python_version()} on {sys.platform} {platform.machine()};",
        "# plus the packaged assets the Makefile installs with --no-deps"
        + (f":\n#   {' '.join(f'{n}=={v}' for n, v in assets)}" if assets else "."),
        "# Do not edit by hand: change pyproject.toml (or the Makefile's LOCKED_TORCH), then run `make lock`.",
    ]
    out = Path(args.out)
    partial = out.with_name(out.name + ".partial")
    partial.write_text("\n".join(header + [f"{name}=={pins[name]}" for name in sorted(pins)]) + "\n")
    os.replace(partial, out)
    print(f"lock: wrote {len(pins)} pins to {out}")


if __name__ == "__main__":
    main()
