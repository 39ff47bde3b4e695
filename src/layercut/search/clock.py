"""The search's compute against its budget: estimates from the sweep's cost model (`sweep.eta`), calibrated by
the runs this search has stored."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from layercut.errors import LayercutError
from layercut.settings.run_config import RunConfig
from layercut.sweep.eta import CostModel
from layercut.sweep.plan import THROUGHPUTS, duration

CPU_RATE, GPU_RATE = (rate for _, rate in THROUGHPUTS)


class BudgetSpent(Exception):
    """The next probe's estimate would pass the budget: the search stops with what it knows."""


@dataclass
class Clock:
    budget_seconds: float | None
    costs: CostModel
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def for_device(cls, budget_seconds: float | None) -> "Clock":
        import torch

        return cls(budget_seconds, CostModel(GPU_RATE if torch.cuda.is_available() else CPU_RATE))

    @property
    def spent(self) -> float:
        return time.perf_counter() - self.started

    def estimate(self, configs: list[RunConfig]) -> float:
        return self.costs.seconds(configs)

    def check(self, configs: list[RunConfig], what: str) -> None:
        if self.budget_seconds is not None and self.spent + self.estimate(configs) > self.budget_seconds:
            raise BudgetSpent(
                f"{what} needs ~{duration(self.estimate(configs))} and "
                f"{duration(max(0.0, self.budget_seconds - self.spent))} of the budget is left"
            )

    def check_reference(self, configs: list[RunConfig]) -> None:
        """Before anything trains: the full-depth reference alone must fit the budget."""
        if self.budget_seconds is not None and self.estimate(configs) > self.budget_seconds:
            raise LayercutError(
                f"--budget {duration(self.budget_seconds)} is too small for the full-depth reference "
                f"(~{duration(self.estimate(configs))} estimated for {len(configs)} runs): raise --budget, "
                "or pass fewer --rates"
            )
