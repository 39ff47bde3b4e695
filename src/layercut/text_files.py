"""One rule for every text file a user gives (experiment and task YAML, corpora, calibration and perplexity
texts, texts to classify, CSV/JSON data): it is UTF-8, or it is refused in one line that names it. Text is
never decoded with replacement characters, which would silently change what is trimmed, ranked or scored."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

from layercut.errors import LayercutError


def read_utf8(path: str | os.PathLike, what: str) -> str:
    """The text of `path` (`what` names it in the error, e.g. "experiment file"); OSError is the caller's."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _not_utf8(path, what, data[: error.start].count(b"\n") + 1) from None


def check_utf8(path: str | os.PathLike, what: str) -> None:
    """Refuse a non-UTF-8 file that another library will parse (datasets reads such a file's bytes into
    strings that fail only when a row is used); read in chunks, as data files can be large."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as handle:
        for chunk in [*iter(lambda: handle.read(1 << 20), b""), b""]:
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                raise _not_utf8(path, what, line + chunk[: max(error.start, 0)].count(b"\n")) from None
            line += chunk.count(b"\n")


def _not_utf8(path, what: str, line: int) -> LayercutError:
    return LayercutError(f"{what} '{os.fsdecode(path)}' is not UTF-8 text (line {line}): save it as UTF-8")
