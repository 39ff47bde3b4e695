"""What a depth search is asked: the share of full-depth dev accuracy to keep, the seeds, the learning rates to try
first, and the compute budget. Torch-free: `layercut search --help` and `--dry-run` read it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from layercut.errors import LayercutError

DEFAULT_RATES = (1e-4, 3e-4, 1e-3)
DEFAULT_SEEDS = (0, 42, 421)
MAX_EXTENSIONS = 3  # rates added beyond each edge of the grid before the pick is left at an edge


@dataclass(frozen=True)
class SearchSettings:
    keep: float  # the share (0, 1] of the full model's dev accuracy a depth must keep
    seeds: tuple[int, ...] = DEFAULT_SEEDS  # the answer is confirmed on test over all of them
    probe_seeds: int = 1  # the first N seeds decide the depth and the learning rate on dev
    rates: tuple[float, ...] = DEFAULT_RATES
    budget_seconds: float | None = None
    save_model: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.keep <= 1:
            raise LayercutError(f"--keep must lie in (0, 100]%, got {100 * self.keep:g}%: e.g. --keep 95%")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise LayercutError(f"--seeds must be distinct, e.g. 0,42,421; got {','.join(map(str, self.seeds))}")
        if not 1 <= self.probe_seeds <= len(self.seeds):
            raise LayercutError(
                f"--probe-seeds must lie in 1..{len(self.seeds)} (the number of --seeds), got {self.probe_seeds}"
            )
        if not self.rates or any(not 0 < r < math.inf for r in self.rates) or len(set(self.rates)) != len(self.rates):
            raise LayercutError("--rates must be distinct positive learning rates, e.g. 1e-4,3e-4,1e-3")
        if self.budget_seconds is not None and not self.budget_seconds > 0:
            raise LayercutError("--budget must be positive, e.g. 2h, 90m or 600s")

    @property
    def probing(self) -> tuple[int, ...]:
        return self.seeds[: self.probe_seeds]

    @property
    def step(self) -> float:
        """The factor between neighbouring rates of the grid, used to extend it past an edge (x3 for one rate)."""
        rates = sorted(self.rates)
        return (rates[-1] / rates[0]) ** (1 / (len(rates) - 1)) if len(rates) > 1 else 3.0

    def to_dict(self) -> dict:
        return {
            "keep": self.keep,
            "seeds": list(self.seeds),
            "probe_seeds": self.probe_seeds,
            "rates": list(self.rates),
            "budget_seconds": self.budget_seconds,
            "save_model": self.save_model,
        }


def parse_keep(text: str) -> float:
    """95%, 95 or 0.95 -> 0.95."""
    value = _number(text.strip().removesuffix("%"), "--keep", "95%")
    share = value / 100 if text.strip().endswith("%") or value > 1 else value
    if not 0 < share <= 1:
        raise LayercutError(f"--keep must lie in (0, 100]%, got {text}: e.g. --keep 95%")
    return share


def parse_budget(text: str) -> float:
    """2h, 90m, 600s, 1.5h or a number of seconds -> seconds."""
    match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([hms]?)\s*", text)
    if not match:
        raise LayercutError(f"--budget '{text}' is not a duration: write e.g. 2h, 90m or 600s")
    seconds = _number(match.group(1), "--budget", "2h") * {"h": 3600, "m": 60, "s": 1, "": 1}[match.group(2)]
    if not 0 < seconds < math.inf:
        raise LayercutError(f"--budget must be positive, got {text}: e.g. 2h")
    return seconds


def parse_list(text: str, kind, flag: str, example: str) -> tuple:
    try:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise LayercutError(f"{flag} '{text}' is not a comma-separated list: e.g. {flag} {example}") from None


def _number(text: str, flag: str, example: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LayercutError(f"{flag} '{text}' is not a number: e.g. {flag} {example}") from None
    if not math.isfinite(value):
        raise LayercutError(f"{flag} must be finite, got {text}: e.g. {flag} {example}")
    return value
