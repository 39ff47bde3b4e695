"""Write files and folders so that a reader never sees half of them, and a kill leaves no debris.

Everything is first written next to its destination under a hidden temporary name and then
moved into place with one rename, which the file system performs atomically. Temporary names
carry the host and process id (`.NAME.lc-HOST-PID-RANDOM.tmp`): whoever next writes into the
same folder removes those whose process is gone (killed mid-write), and never another live
process's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator

from layercut.errors import LayercutError, disk_full_error, first_line, is_disk_full, os_error_message

_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"
_TEMPORARY = re.compile(r"^\..*\.lc-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[A-Za-z0-9_]+\.(?:tmp|old)$")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path` to write; on success it replaces `path` in one rename."""
    path = Path(path)
    created = make_folders(path.parent)
    remove_stale_temporaries(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path.name), suffix=".tmp")
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes it private; the result should not be
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        remove_empty_folders(created)
        _raise_write_error(error, path, tmp)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `dest` in one rename.

    If the body raises, `dest` is untouched and the temporary folder is removed; after a kill it
    is left under a temporary name that the next write into the same parent folder removes.
    """
    dest = Path(dest)
    created = make_folders(dest.parent)
    remove_stale_temporaries(dest.parent)
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=_temporary_prefix(dest.name), suffix=".tmp"))
        tmp.chmod(0o777 & ~_current_umask())  # mkdtemp makes it private; the result should not be
        yield tmp
        if dest.exists():
            if not overwrite:
                raise FileExistsError(dest)
            # Move the old folder aside first so that `dest` is never missing for long
            # and never half old, half new.
            trash = Path(tempfile.mkdtemp(dir=dest.parent, prefix=_temporary_prefix(dest.name), suffix=".old"))
            os.replace(dest, trash / "old")
            os.replace(tmp, dest)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException as error:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        remove_empty_folders(created)
        _raise_write_error(error, dest, tmp)
        raise


@contextlib.contextmanager
def temporary_directory(name: str) -> Iterator[Path]:
    """A scratch folder in the system's temporary directory, removed afterwards (or, after a kill, by the next one)."""
    parent = Path(tempfile.gettempdir())
    remove_stale_temporaries(parent)
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=_temporary_prefix(name), suffix=".tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_writable(path: str | os.PathLike, what: str, folder: bool = False) -> None:
    """Fail before any work when `path` (a file, or a `folder`) cannot be created: probe the nearest
    folder that exists, leaving nothing behind (a permission check alone would not see a read-only
    file system, nor work for root)."""
    path = Path(path)
    if path.is_dir() and not folder:
        raise LayercutError(f"{what} '{path}' is a folder: give a file name")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise LayercutError(f"cannot write {what} '{path}' ('{existing}' is a file, not a folder): choose another path")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=_temporary_prefix("probe"), suffix=".tmp")
    except OSError as error:
        raise LayercutError(
            f"cannot write {what} '{path}' ({error.strerror} in '{existing}'): "
            "choose another path or fix its permissions"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _raise_write_error(error: BaseException, dest: Path, tmp) -> None:
    """A full disk (whichever library wrote), or a failed file-system call on layercut's temporary copy, as one
    line that names the user's `dest`, never the temporary name."""
    inside_tmp = isinstance(error, OSError) and (
        error.filename is None or tmp is None or os.fsdecode(error.filename).startswith(os.fsdecode(tmp))
    )
    if is_disk_full(error):
        raise disk_full_error(dest) from None
    if inside_tmp:
        raise LayercutError(
            os_error_message(OSError(error.errno, error.strerror or first_line(error), str(dest)))
        ) from None


def lock_exclusively(handle, holder: str, where: str | os.PathLike) -> None:
    """Lock `handle` (an open file or descriptor) for this process alone, or refuse: another `holder` (a run, a
    sweep) is writing to `where`. The kernel releases the lock when the process ends, even after SIGKILL."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LayercutError(
            f"another {holder} is writing to '{where}': wait for it to finish, or choose another --out"
        ) from None


def make_folders(folder: str | os.PathLike) -> list[Path]:
    """Create `folder` and its missing parents; return those created, deepest first (for remove_empty_folders)."""
    folder = Path(folder)
    missing, parent = [], folder
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove the folders a failed write created (deepest first), if nothing else was put in them."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def remove_stale_temporaries(folder: str | os.PathLike) -> None:
    """Remove the temporary files and folders in `folder` that a process of this host left when it died."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or match["host"] != _HOST or _process_alive(int(match["pid"])):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def is_temporary(name: str) -> bool:
    return _TEMPORARY.match(name) is not None


def _temporary_prefix(name: str) -> str:
    return f".{name}.lc-{_HOST}-{os.getpid()}-"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
