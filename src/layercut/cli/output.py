"""Printing a command's result to a reader that may stop reading (`layercut tasks | head`)."""

from __future__ import annotations

import os
import sys


def print_out(text: str) -> None:
    """Print `text` to stdout; a closed pipe ends the output silently, as it does for `ls | head`."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python's advice: point stdout at /dev/null, or the flush at exit fails again and prints a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
