"""Run the real `layercut` command in a subprocess: what a user sees, traceback or not."""

import subprocess
import sys


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layercut", *map(str, args)], capture_output=True, text=True)


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    """Exit code 2 and a single stderr line that names the problem, with no traceback."""
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
