"""A run's record: the JSON object `run()` writes to result.json, or a failed run's failure.json.

`RunRecord` is the one owner of these files: it writes them whole (atomically), reads them back,
and checks that what reports read is there. Everything else reads runs through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from layercut.atomic import write_json_atomic
from layercut.adapt.metrics import Metrics
from layercut.run_files import FAILURE_NAME, RESULT_NAME, Section
from layercut.settings.run_config import RunConfig

# `diverged` is final too: run() stops on a non-finite loss and evaluates the last good weights;
# the same configuration would diverge again.
FINISHED = ("complete", "diverged")


@dataclass(frozen=True, kw_only=True)
class KeptLayers(Section):
    """Which blocks of the source model the run kept."""

    NAME: ClassVar[str] = "layers"
    kept: list[int]
    spec: str
    source_depth: int
    strategy: str | None = None  # the measure that chose them (--keep-strategy), if one did
    ranking: dict | None = None  # its calibration and seconds


@dataclass(frozen=True, kw_only=True)
class Parameters(Section):
    """The cut model's size."""

    NAME: ClassVar[str] = "parameters"
    total: int
    non_embedding: int
    trainable: int = 0
    source_total: int | None = None
    percent_of_source: float


@dataclass(frozen=True, kw_only=True)
class Timing(Section):
    """Seconds of training and evaluation; reports, the search and the sweep's time-left estimate read them."""

    NAME: ClassVar[str] = "timing"
    train_seconds: float
    train_step_seconds: float | None = None
    eval_seconds: float = 0.0  # records from before evaluation was timed lack it
    eval_examples_per_second: float | None  # None where the run measured no speed of its own (one-pass profile)

    @classmethod
    def read(cls, record: dict) -> "Timing":
        """Also of a partial record (the sweep's time-left estimate reads whatever finished): a figure missing or
        null counts 0 s, a speed missing counts as not measured."""
        written = {name: value for name, value in (record.get(cls.NAME) or {}).items() if value is not None}
        return super().read({cls.NAME: {"train_seconds": 0.0, "eval_examples_per_second": None, **written}})

    @property
    def seconds(self) -> float:
        """Training and evaluation together."""
        return self.train_seconds + self.eval_seconds


# What reports read from a record besides the declared sections; a record without them is damaged.
_CONFIG_FIELDS = (
    "model",
    "layers",
    "keep_strategy",
    "keep_count",
    "task",
    "task_options",
    "head",
    "method",
    "demos",
    "shots",
    "seed",
)
_FINISHED_FIELDS = [
    *Metrics.required(),
    *KeptLayers.required(),
    *Parameters.required(),
    *Timing.required(),
    ("memory.peak_bytes", False),
    ("dev", False),
]


@dataclass
class RunRecord:
    """One run's record; `accuracy` and friends are shortcuts into the JSON object `record`."""

    record: dict

    @classmethod
    def failed(cls, config: RunConfig, error: Exception) -> RunRecord:
        """The record of a run that raised: its configuration and the error, to try it again later."""
        return cls(
            {
                "status": "failed",
                "key": config.key(),
                "config": config.to_dict(),
                "error": f"{type(error).__name__}: {error}",
            }
        )

    @classmethod
    def load(cls, folder: str | Path) -> RunRecord:
        """The finished run in `folder` (its result.json)."""
        return cls(json.loads((Path(folder) / RESULT_NAME).read_text()))

    @classmethod
    def read(cls, path: Path) -> RunRecord | None:
        """The record in `path`; None when it is missing, unreadable or not a JSON object."""
        data = read_json(path)
        return cls(data) if data is not None else None

    @property
    def key(self) -> str:
        return self.record["key"]

    @property
    def status(self) -> str | None:
        return self.record.get("status")

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def config(self) -> dict:
        return self.record["config"]

    @property
    def accuracy(self) -> float:
        return Metrics.read(self.record).accuracy

    @property
    def error(self) -> str:
        return self.record.get("error", "")

    @property
    def file_name(self) -> str:
        return RESULT_NAME if self.finished else FAILURE_NAME

    def write(self, folder: str | Path) -> Path:
        """Write the record into `folder` (result.json when finished, else failure.json), whole or not at all."""
        path = Path(folder) / self.file_name
        write_json_atomic(path, self.record)
        return path

    def missing_field(self) -> str | None:
        """The first field a report reads that the record lacks (dotted, e.g. `metrics.accuracy`), or None."""
        paths = ["key", "status", *(f"config.{name}" for name in _CONFIG_FIELDS)]
        if self.finished:
            paths += [path for path, _ in _FINISHED_FIELDS]
        return next((path for path in paths if _lookup(self.record, path) is _MISSING), None)

    def damage(self) -> str | None:
        """What keeps a report from reading this record (a field it lacks, a figure that is not a number), or None."""
        missing = self.missing_field()
        if missing is not None:
            return f"lacks the field '{missing}'"
        for path, number in _FINISHED_FIELDS if self.finished else ():
            value = _lookup(self.record, path)
            if not number or (value is None and not path.startswith("metrics.")):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"holds {value!r} as '{path}', which must be a number"
        return None


_MISSING = object()


def _lookup(record: dict, path: str):
    """The value at a dotted path (`metrics.accuracy`) of a record, or _MISSING where a part of it is absent."""
    value = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


RunResult = RunRecord  # the name `layercut.run()`'s outcome has always been exported under


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
