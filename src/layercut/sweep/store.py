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
import json
import tempfile
from pathlib import Path
from typing import Iterator

from layercut.atomic import is_temporary, remove_stale_temporaries, write_json_atomic, write_text_atomic
from layercut.errors import LayercutError
from layercut.run.pipeline import RESULT_NAME

FAILURE_NAME = "failure.json"
LOCK_NAME = ".lock"
# What reports read from a record; a record without them is damaged.
_CONFIG_FIELDS = ("model", "layers", "keep_strategy", "keep_count", "task", "task_options", "head", "method", "demos",
                  "shots", "seed")
_FINISHED_FIELDS = ("metrics.accuracy", "metrics.macro_f1", "metrics.num_examples", "layers.kept", "layers.spec",
                    "layers.source_depth", "parameters.total", "parameters.non_embedding", "parameters.percent_of_source",
                    "timing.train_seconds", "timing.eval_examples_per_second", "memory.peak_bytes", "dev")
# `diverged` is final too: run() stops on a non-finite loss and evaluates the last good weights;
# the same configuration would diverge again.
FINISHED = ("complete", "diverged")


class ResultStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, key: str) -> Path:
        return self.root / "runs" / key

    def is_done(self, key: str) -> bool:
        """A run is done when its result is whole; one that lacks fields is run again."""
        record = read_json(self.folder(key) / RESULT_NAME)
        return record is not None and record.get("status") in FINISHED and missing_field(record) is None

    def save(self, record: dict) -> None:
        folder = self.folder(record["key"])
        if record["status"] in FINISHED:
            write_json_atomic(folder / RESULT_NAME, record)
            (folder / FAILURE_NAME).unlink(missing_ok=True)
        else:
            write_json_atomic(folder / FAILURE_NAME, record)

    def records(self) -> list[dict]:
        """Each run once: its result if it finished, else its last failure."""
        runs = self.root / "runs"
        records = []
        for folder in sorted(runs.iterdir() if runs.is_dir() else []):
            path = folder / RESULT_NAME if (folder / RESULT_NAME).exists() else folder / FAILURE_NAME
            record = read_json(path)
            if record is None:
                if path.exists():
                    raise LayercutError(f"'{path}' is damaged (not a JSON object): delete '{folder}' and run the sweep again")
                continue
            missing = missing_field(record)
            if missing:
                raise LayercutError(f"'{path}' lacks the field '{missing}': delete '{folder}' and run the sweep again to redo that run")
            records.append(record)
        return records

    @contextlib.contextmanager
    def claim(self, experiment, allow_different: bool = False) -> Iterator[None]:
        """Hold DIR for one sweep: refuse a DIR of another experiment (unless allowed) and a DIR
        another sweep is writing to; record this experiment as DIR's own; clear what killed runs left."""
        if self.root.is_dir():
            self._check_owner(experiment, allow_different)  # before creating anything: a refused sweep leaves nothing
        elif self.root.exists():
            raise LayercutError(f"--out '{self.root}' is a file: give a folder path")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = open(self.root / LOCK_NAME, "w")
        except OSError as error:
            raise LayercutError(
                f"cannot write to '{self.root}' ({error.strerror}): choose another --out or fix its permissions") from None
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel even after SIGKILL
            except BlockingIOError:
                raise LayercutError(
                    f"another sweep is writing to '{self.root}': wait for it to finish, or choose another --out") from None
            self._check_owner(experiment, allow_different)  # again, now that no other sweep can write
            self._remove_debris()
            write_text_atomic(self.root / "experiment.yaml", experiment.text)
            write_json_atomic(self.root / "sweep.json", {"experiment": experiment.key, "source": experiment.source,
                                                         "runs": len(experiment.runs)})
            yield

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
                raise LayercutError(f"'{self.root}' is not empty and holds no sweep ({others[0]}, ...): "
                                    "choose another --out, or pass --allow-different to write into it")
        elif owner.get("experiment") != experiment.key:
            raise LayercutError(
                f"'{self.root}' holds the results of another experiment ({owner.get('source')}, {owner.get('runs')} runs): "
                "choose another --out, or pass --allow-different to add this experiment's runs to it"
            )


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def missing_field(record: dict) -> str | None:
    """The first field a report reads that `record` lacks (dotted, e.g. `metrics.accuracy`), or None."""
    paths = ["key", "status", *(f"config.{name}" for name in _CONFIG_FIELDS)]
    if record.get("status") in FINISHED:
        paths += _FINISHED_FIELDS
    for path in paths:
        value = record
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return path
            value = value[part]
    return None
