"""Time left: the dry run's cost model (FLOPs, `plan.run_flops`) turned into seconds by the runs already finished.

Seconds per FLOP are measured per (layers kept, method) from finished runs' own timings (training and evaluation);
a kind of run not seen yet uses the mean over every finished run, and with none finished the assumed rate of
the machine (`plan.THROUGHPUTS`). Early stopping makes a run cheaper than its whole step budget, and the
measured rate absorbs that too."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from layercut.run.record import Timing
from layercut.settings.run_config import RunConfig
from layercut.sweep.plan import THROUGHPUTS, duration, model_facts, run_flops


@dataclass
class CostModel:
    assumed_flops_per_second: float = THROUGHPUTS[0][1]
    _flops: dict = field(default_factory=lambda: defaultdict(float))  # kind -> FLOPs of finished runs
    _seconds: dict = field(default_factory=lambda: defaultdict(float))  # kind -> their seconds

    def add(self, record: dict) -> None:
        """A finished run's record (result.json) calibrates its kind."""
        config = RunConfig.from_stored(record["config"])
        flops = run_flops(config)
        seconds = Timing.read(record).seconds
        if flops and seconds > 0:
            self._flops[_kind(config)] += flops
            self._seconds[_kind(config)] += seconds

    def seconds(self, configs: list[RunConfig]) -> float:
        """Estimated seconds of `configs` (a model whose config is not readable here counts as free)."""
        total_flops, total_seconds = sum(self._flops.values()), sum(self._seconds.values())
        overall = total_seconds / total_flops if total_flops else 1 / self.assumed_flops_per_second
        estimate = 0.0
        for config in configs:
            kind = _kind(config)
            per_flop = self._seconds[kind] / self._flops[kind] if self._flops.get(kind) else overall
            estimate += (run_flops(config) or 0.0) * per_flop
        return estimate


@dataclass(frozen=True)
class SweepProgress:
    total: int
    done: int
    failed: int
    elapsed_seconds: float  # the finished runs' own timings
    left_seconds: float

    def line(self) -> str:
        return (
            f"{self.done} of {self.total} done"
            + (f", {self.failed} failed" if self.failed else "")
            + f", {duration(self.elapsed_seconds)} of runs so far, about {duration(self.left_seconds)} left"
        )


def sweep_progress(runs: list[RunConfig], records: list[dict]) -> SweepProgress:
    """Where a sweep of `runs` stands, from the records in its store (finished and failed)."""
    model = CostModel()
    keys = {config.key() for config in runs}
    mine = [r for r in records if r.get("key") in keys]
    finished = [r for r in mine if r.get("status") in ("complete", "diverged")]
    for record in finished:
        model.add(record)
    done = {r["key"] for r in finished}
    elapsed = sum(Timing.read(r).seconds for r in finished)
    left = model.seconds([config for config in runs if config.key() not in done])
    return SweepProgress(len(runs), len(done), sum(r.get("status") == "failed" for r in mine), elapsed, left)


def _kind(config: RunConfig) -> tuple:
    facts = model_facts(config.model)
    kept = facts.kept_count(config) if facts is not None else config.layers
    return (config.model, kept, config.method)
