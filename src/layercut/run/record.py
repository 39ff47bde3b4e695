"""A run's record: the JSON object `run()` writes to result.json, or a failed run's failure.json.

`RunRecord` is the one owner of these files: it writes them whole (atomically), reads them back,
and checks that what reports read is there. Everything else reads runs through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from layercut.atomic import write_json_atomic
from layercut.run_files import FAILURE_NAME, RESULT_NAME
from layercut.settings.run_config import RunConfig

# `diverged` is final too: run() stops on a non-finite loss and evaluates the last good weights;
# the same configuration would diverge again.
FINISHED = ("complete", "diverged")
# What reports read from a record; a record without them is damaged.
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
_FINISHED_FIELDS = (
    "metrics.accuracy",
    "metrics.macro_f1",
    "metrics.num_examples",
    "layers.kept",
    "layers.spec",
    "layers.source_depth",
    "parameters.total",
    "parameters.non_embedding",
    "parameters.percent_of_source",
    "timing.train_seconds",
    "timing.eval_examples_per_second",
    "memory.peak_bytes",
    "dev",
)
# Of those, the figures reports compute with: a string there would end a report in a traceback (null only
# stands for a figure not measured, e.g. a one-pass profile's throughput; never for a metric).
_NUMBER_FIELDS = (
    "metrics.accuracy",
    "metrics.macro_f1",
    "metrics.num_examples",
    "layers.source_depth",
    "parameters.total",
    "parameters.non_embedding",
    "parameters.percent_of_source",
    "timing.train_seconds",
    "timing.eval_examples_per_second",
)


@dataclass(frozen=True)
class Timing:
    """A run's `timing` in result.json: written by layercut.run.pipeline, read by reports, searches and the sweep's
    time-left estimate through `read`."""

    train_seconds: float
    train_step_seconds: float | None
    eval_seconds: float
    eval_examples_per_second: float | None  # None where the run measured no speed of its own (a one-pass profile's)

    @classmethod
    def read(cls, record: dict) -> "Timing":
        """The timing of a result.json object; a record written before evaluation was timed counts 0 s for it."""
        timing = record.get("timing") or {}
        return cls(
            timing.get("train_seconds") or 0.0,
            timing.get("train_step_seconds"),
            timing.get("eval_seconds") or 0.0,
            timing.get("eval_examples_per_second"),
        )

    @property
    def seconds(self) -> float:
        """Training and evaluation together."""
        return self.train_seconds + self.eval_seconds


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
        return self.record["metrics"]["accuracy"]

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
            paths += _FINISHED_FIELDS
        for path in paths:
            value = self.record
            for part in path.split("."):
                if not isinstance(value, dict) or part not in value:
                    return path
                value = value[part]
        return None

    def damage(self) -> str | None:
        """What keeps a report from reading this record (a field it lacks, a figure that is not a number), or None."""
        missing = self.missing_field()
        if missing is not None:
            return f"lacks the field '{missing}'"
        for path in _NUMBER_FIELDS if self.finished else ():
            value = self.record
            for part in path.split("."):
                value = value[part]
            if value is None and not path.startswith("metrics."):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"holds {value!r} as '{path}', which must be a number"
        return None


RunResult = RunRecord  # the name `layercut.run()`'s outcome has always been exported under


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
