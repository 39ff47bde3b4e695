"""Run the real `layercut` command in a subprocess: what a user sees, traceback or not."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import layercut

# The subprocess imports the same layercut as the tests, whatever its working directory.
SOURCE_ROOT = str(Path(layercut.__file__).resolve().parents[1])


def cli_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SOURCE_ROOT, os.environ.get("PYTHONPATH")]))}


def run_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "layercut", *map(str, args)], capture_output=True, text=True, env=cli_env(), **kwargs
    )


def start_cli(*args, **kwargs) -> subprocess.Popen:
    """The command started, not waited for (to interrupt or kill it). Ctrl-C reaches it as in a terminal even
    when these tests run in the background, where the shell starts them with SIGINT ignored."""
    return subprocess.Popen(
        [sys.executable, "-m", "layercut", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kwargs,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    """Exit code 2 and a single stderr line that names the problem, with no traceback."""
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
