"""The search's compute: estimates from the dry run's cost model (FLOPs at an assumed rate), calibrated by the
runs this search has finished, against the budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from layercut.errors import LayercutError
from layercut.run.config import RunConfig
from layercut.sweep.plan import THROUGHPUTS, duration, run_flops

CPU_RATE, GPU_RATE = (rate for _, rate in THROUGHPUTS)


class BudgetSpent(Exception):
    """The next probe's estimate would pass the budget: the search stops with what it knows."""


@dataclass
class Clock:
    budget_seconds: float | None
    flops_per_second: float  # assumed until runs finish
    started: float = field(default_factory=time.perf_counter)
    measured_flops: float = 0.0  # of the runs this search trained, and the seconds they took
    measured_seconds: float = 0.0

    @classmethod
    def for_device(cls, budget_seconds: float | None) -> "Clock":
        import torch

        return cls(budget_seconds, GPU_RATE if torch.cuda.is_available() else CPU_RATE)

    @property
    def rate(self) -> float:
        """FLOPs per second: measured once runs have finished, else assumed."""
        return self.measured_flops / self.measured_seconds if self.measured_seconds > 0 else self.flops_per_second

    @property
    def spent(self) -> float:
        return time.perf_counter() - self.started

    def estimate(self, configs: list[RunConfig]) -> float:
        """Seconds the runs would take (a model whose config is not readable here counts as free)."""
        return sum(run_flops(config) or 0.0 for config in configs) / self.rate

    def check(self, configs: list[RunConfig], what: str) -> None:
        if self.budget_seconds is not None and self.spent + self.estimate(configs) > self.budget_seconds:
            raise BudgetSpent(f"{what} needs ~{duration(self.estimate(configs))} and {duration(self.budget_seconds - self.spent)} "
                              "of the budget is left")

    def check_reference(self, configs: list[RunConfig]) -> None:
        """Before anything trains: the full-depth reference alone must fit the budget."""
        if self.budget_seconds is not None and self.estimate(configs) > self.budget_seconds:
            raise LayercutError(f"--budget {duration(self.budget_seconds)} is too small for the full-depth reference "
                                f"(~{duration(self.estimate(configs))} estimated for {len(configs)} runs): raise --budget, "
                                "or pass fewer --rates")

    def record(self, configs: list[RunConfig], seconds: float) -> None:
        """Runs this search trained took `seconds`: calibrate the rate."""
        flops = sum(run_flops(config) or 0.0 for config in configs)
        if flops and seconds > 0:
            self.measured_flops += flops
            self.measured_seconds += seconds

