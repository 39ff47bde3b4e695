"""The files a run folder holds, named once, and the declared shape of their parts: every stage that reads a run
folder (a teacher, a store, a report) finds them here."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import ClassVar

RESULT_NAME = "result.json"  # a finished run's record (run/record.py writes and reads it)
FAILURE_NAME = "failure.json"  # a failed run's record


@dataclass(frozen=True, kw_only=True)
class Section:
    """A declared part of result.json (`NAME` is its key), owned by the stage that produces it: written as
    `asdict`, read back by `read`. Fields without a default are what every finished record holds
    (RunRecord.damage checks them); those with one were added later, and older records lack them."""

    NAME: ClassVar[str]

    @classmethod
    def read(cls, record: dict):
        written = record.get(cls.NAME) or {}
        return cls(**{f.name: written[f.name] for f in fields(cls) if f.name in written})

    @classmethod
    def required(cls) -> list[tuple[str, bool]]:
        """(dotted path, whether it must be a number) of every field a finished record must hold."""
        return [
            (f"{cls.NAME}.{f.name}", f.type.removesuffix(" | None") in ("int", "float"))
            for f in fields(cls)
            if f.default is MISSING and f.default_factory is MISSING
        ]
