"""The one exception type the CLI turns into a one-line message, and the helpers that raise it."""

from __future__ import annotations

import contextlib
import errno
import os
import re
from typing import Callable, Iterator

# A setting named in a message: `\x1fname\x1evalue\x1f` (the value may be empty), spelled when the message is shown.
_SETTING = re.compile("\x1f([a-z0-9_]+)\x1e([^\x1f]*)\x1f")


def setting(name: str, value: object = "") -> str:
    """A setting (with a value, optionally) named in a LayercutError's message: shown as it is written in Python and
    in experiment files (`learning_rate`, `learning_rate: 5e-5`) or, by commands that take it as a flag, as the flag
    (`--learning-rate`, `--learning-rate 5e-5`)."""
    return f"\x1f{name}\x1e{value}\x1f"


def as_name(name: str, value: str) -> str:
    return f"{name}: {value}" if value else name


def as_flag(name: str, value: str) -> str:
    flag = "--" + name.replace("_", "-")
    return f"{flag} {value}" if value and value != "true" else flag  # a switch is on by being given


class LayercutError(Exception):
    """A problem with the user's input: the message names it and says how to fix it. Settings named with
    `setting()` read as in Python and experiment files; `spelled(as_flag)` gives the command line's spelling."""

    def __str__(self) -> str:
        return self.spelled(as_name)

    def spelled(self, spell: Callable[[str, str], str]) -> str:
        return _SETTING.sub(lambda match: spell(match.group(1), match.group(2)), super().__str__())


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0].strip() if text else type(error).__name__


@contextlib.contextmanager
def reported_as(what: str, fix: str, *kinds: type[BaseException]) -> Iterator[None]:
    """Turn the library errors `kinds` that a damaged or unsupported input raises into one LayercutError.

    Used only around calls whose failure can come from the user's files; other errors keep their traceback.
    """
    try:
        yield
    except LayercutError:
        raise
    except kinds as error:
        raise LayercutError(f"{what} ({first_line(error)}): {fix}") from None


# What to do about a failed file-system call, by errno.
_OS_FIXES = {
    errno.EACCES: "fix its permissions or choose another path",
    errno.EPERM: "fix its permissions or choose another path",
    errno.EROFS: "choose a path on a writable file system",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "it is a folder where a file is expected: give a file name",
    errno.EEXIST: "it already exists: remove it or choose another path",
    errno.ENOTEMPTY: "the folder is not empty: remove it or choose another path",
    errno.ENOENT: "check the path",
    errno.ENOSPC: "free some disk space or choose another location",
    errno.EDQUOT: "free some disk space or choose another location",
    errno.EBUSY: "it is in use: close what holds it or choose another path",
    errno.ETXTBSY: "it is in use: close what holds it or choose another path",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def is_disk_full(error: BaseException) -> bool:
    """A write that failed for want of space: an OSError, or the error of a library that writes in Rust
    (safetensors' SafetensorError, tokenizers' bare Exception), which says '... (os error 28)'."""
    full = (errno.ENOSPC, errno.EDQUOT)
    if isinstance(error, OSError):
        return error.errno in full
    return any(f"(os error {number})" in str(error) for number in full)


def disk_full_error(path: str | os.PathLike) -> LayercutError:
    return LayercutError(os_error_message(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(path))))


@contextlib.contextmanager
def reported_if_disk_full(path: str | os.PathLike) -> Iterator[None]:
    """A full disk while writing under `path`, however the writing library reports it, as one LayercutError."""
    try:
        yield
    except Exception as error:
        if is_disk_full(error):
            raise disk_full_error(path) from None
        raise


def os_error_message(error: OSError) -> str:
    """`WHAT (WHY): HOW TO FIX` for a failed read or write of a file or folder."""
    path = error.filename if error.filename is not None else None
    why = error.strerror or first_line(error)
    fix = _OS_FIXES.get(error.errno, "check the path, its permissions and the free disk space")
    what = f"cannot use '{os.fsdecode(path)}'" if path is not None else "a file-system operation failed"
    return f"{what} ({why}): {fix}"
