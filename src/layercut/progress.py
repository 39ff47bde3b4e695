"""Progress bars that read well both on a terminal and in a log file.

On a terminal, tqdm's live bar. Elsewhere (a sweep's log on a cluster, a pipe) the bar's carriage-
return updates would pile up by the thousand, so the same bar prints a plain line now and then.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

LOG_INTERVAL_SECONDS = 30.0  # at most one progress line this often in a log file


def progress_bar(iterable=None, *, total: int | None = None, desc: str, unit: str, enabled: bool = True) -> tqdm:
    """A tqdm bar over `iterable` (or counting to `total`), in the form that suits where stderr goes."""
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled, leave=False)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled,
        leave=True,
        ascii=True,
        file=_PlainLines(sys.stderr),
        mininterval=LOG_INTERVAL_SECONDS,
        maxinterval=LOG_INTERVAL_SECONDS,
    )


class _PlainLines:
    """A stream for tqdm that turns each redraw into one ordinary line and drops the cursor movements."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").replace("\x1b[A", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()
