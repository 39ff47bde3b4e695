"""The wheel carries every file the package reads at run time (built-in tasks, lm-eval tasks, known configs)."""

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "layercut"


def test_every_data_file_is_listed_as_package_data():
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["layercut"]
    # Outside setuptools' discovered packages: anything but Python, and Python files in a folder with no __init__.py.
    data = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and (path.suffix != ".py" or not (path.parent / "__init__.py").exists())
    )
    assert [name for name in data if not any(fnmatch.fnmatch(name, pattern) for pattern in listed)] == []
    assert [pattern for pattern in listed if not fnmatch.filter(data, pattern)] == []  # no stale entries
