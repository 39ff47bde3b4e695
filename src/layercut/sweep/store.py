"""Where a sweep's results live: one folder per run, named by the run's key.

    DIR/experiment.yaml           the experiment file as given
    DIR/sweep.json                its identity (the hash of its runs' keys), to refuse another experiment's DIR
    DIR/runs/<key>/result.json    a finished run, written atomically: it exists whole or not at all
    DIR/runs/<key>/failure.json   a run that raised; it is tried again by the next sweep

A run is done iff its result.json exists, so a sweep killed at any moment (SIGKILL included) and
started again redoes only the unfinished runs, and no run is ever stored twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from pathlib import Path
from typing import Iterator

from layercut.atomic import (
    is_temporary,
    lock_exclusively,
    make_folders,
    remove_empty_folders,
    remove_stale_temporaries,
    write_json_atomic,
    write_text_atomic,
)
from layercut.errors import LayercutError
from layercut.run.record import RunRecord, read_json
from layercut.run_files import FAILURE_NAME, RESULT_NAME

LOCK_NAME = ".lock"


class ResultStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, key: str) -> Path:
        return self.root / "runs" / key

    def is_done(self, key: str) -> bool:
        """A run is done when its result is whole; one that lacks fields (or holds a damaged one) is run again."""
        record = RunRecord.read(self.folder(key) / RESULT_NAME)
        return record is not None and record.finished and record.damage() is None

    def save(self, record: RunRecord) -> None:
        folder = self.folder(record.key)
        record.write(folder)
        if record.finished:
            (folder / FAILURE_NAME).unlink(missing_ok=True)

    def records(self) -> list[RunRecord]:
        """Each run once: its result if it finished, else its last failure."""
        runs = self.root / "runs"
        records = []
        for folder in sorted(runs.iterdir() if runs.is_dir() else []):
            path = folder / RESULT_NAME if (folder / RESULT_NAME).exists() else folder / FAILURE_NAME
            record = RunRecord.read(path)
            if record is None:
                if path.exists():
                    raise LayercutError(
                        f"'{path}' is damaged (not a JSON object): delete '{folder}' and run the sweep again"
                    )
                continue
            damage = record.damage()
            if damage:
                raise LayercutError(f"'{path}' {damage}: delete '{folder}' and run the sweep again to redo that run")
            records.append(record)
        return records

    def is_running(self) -> bool:
        """Whether a sweep holds DIR's lock now (asked without taking it for more than an instant, nor creating it)."""
        try:
            with open(self.root / LOCK_NAME) as lock:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except FileNotFoundError:
            return False
        except BlockingIOError:
            return True
        return False

    @contextlib.contextmanager
    def claim(self, experiment, allow_different: bool = False) -> Iterator[None]:
        """Hold DIR for one sweep: refuse a DIR of another experiment (unless allowed) and a DIR
        another sweep is writing to; record this experiment as DIR's own; clear what killed runs left."""
        if self.root.is_dir():
            self._check_owner(experiment, allow_different)  # before creating anything: a refused sweep leaves nothing
        elif self.root.exists():
            raise LayercutError(f"--out '{self.root}' is a file: give a folder path")
        before = set(self.root.iterdir()) if self.root.is_dir() else set()
        created = []
        try:
            created = make_folders(self.root)
            lock = open(self.root / LOCK_NAME, "w")
        except OSError as error:
            remove_empty_folders(created)
            raise LayercutError(
                f"cannot write to '{self.root}' ({error.strerror}): choose another --out or fix its permissions"
            ) from None
        with lock:
            lock_exclusively(lock, "sweep", self.root)
            try:
                self._check_owner(experiment, allow_different)  # again, now that no other sweep can write
                self._remove_debris()
                write_text_atomic(self.root / "experiment.yaml", experiment.text)
                write_json_atomic(
                    self.root / "sweep.json",
                    {"experiment": experiment.key, "source": experiment.source, "runs": len(experiment.runs)},
                )
            except BaseException:
                self._undo_claim(before, created)
                raise
            yield

    def _undo_claim(self, before: set[Path], created: list[Path]) -> None:
        """Remove what a claim that failed (e.g. on a full disk) wrote into DIR (`before`: DIR's entries then) and
        the folders it created: the next try would refuse a half-claimed DIR as holding no sweep."""
        for name in (LOCK_NAME, "experiment.yaml", "sweep.json"):
            if self.root / name not in before:
                (self.root / name).unlink(missing_ok=True)
        remove_empty_folders(created)

    def _remove_debris(self) -> None:
        """Temporary files of killed writes (and killed runs' scratch folders), and run folders a kill left empty."""
        remove_stale_temporaries(tempfile.gettempdir())
        remove_stale_temporaries(self.root)
        runs = self.root / "runs"
        for folder in sorted(runs.iterdir()) if runs.is_dir() else []:
            if folder.is_dir():
                remove_stale_temporaries(folder)
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only succeeds when empty

    def _check_owner(self, experiment, allow_different: bool) -> None:
        if allow_different:
            return
        owner = read_json(self.root / "sweep.json")
        if owner is None:
            others = [p.name for p in self.root.iterdir() if p.name != LOCK_NAME and not is_temporary(p.name)]
            if others:
                raise LayercutError(
                    f"'{self.root}' is not empty and holds no sweep ({others[0]}, ...): "
                    "choose another --out, or pass --allow-different to write into it"
                )
        elif owner.get("experiment") != experiment.key:
            raise LayercutError(
                f"'{self.root}' holds the results of another experiment ({owner.get('source')}, {owner.get('runs')} runs): "
                "choose another --out, or pass --allow-different to add this experiment's runs to it"
            )
