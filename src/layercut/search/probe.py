"""One depth probed: its runs at every learning rate of the grid on the probing seeds, the rate picked on dev, and
the grid extended past an edge while the pick sits there. Runs are ordinary runs of the search's store: a run
finished before (here, or in a store given to reuse) is read, not trained again.

A probe that already reaches the search's target needs no wider grid to pass (widening can only raise its best dev),
so it stops widening there; the depth the search chooses is probed again without that stop (its finished runs
read back), so the answer's rate is bracketed as every failing probe's is."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from typing import Callable

from layercut.errors import LayercutError
from layercut.settings.run_config import RunConfig
from layercut.run.record import RunRecord
from layercut.run_files import RESULT_NAME
from layercut.search.clock import Clock
from layercut.search.settings import MAX_EXTENSIONS, SearchSettings
from layercut.sweep.grid import layer_choice
from layercut.sweep.plan import duration
from layercut.sweep.runner import execute_pending
from layercut.sweep.store import ResultStore


@dataclass
class Runs:
    """Finished runs by configuration: from the store, else copied from a reused store, else run (and stored)."""

    store: ResultStore
    reuse: list[ResultStore]
    executor: object  # a sweep backend
    clock: Clock
    echo: Callable[[str], None]
    reused: int = 0
    trained: int = 0

    def get(self, configs: list[RunConfig], what: str) -> list[dict]:
        """The records of `configs`, in order (a failed run's record says why)."""
        pending = []
        for config in configs:
            if not self.store.is_done(config.key()) and not self._copy_from_reuse(config.key()):
                pending.append(config)
        pending = list({config.key(): config for config in pending}.values())
        if pending:
            self.clock.check(pending, what)
            self.echo(f"{what}: {len(pending)} run(s) to train, ~{duration(self.clock.estimate(pending))}")
            for record in execute_pending(pending, self.executor):
                self.store.save(record)
                self.trained += 1
                if record.finished:
                    self.clock.costs.add(record.record)
                self.echo(f"  {run_line(record)} ({duration(self.clock.spent)} into the search)")
        return [self.read(config) for config in configs]

    def read(self, config: RunConfig) -> dict:
        for name in (RESULT_NAME, "failure.json"):
            record = RunRecord.read(self.store.folder(config.key()) / name)
            if record is not None:
                return record.record
        raise LayercutError(f"run {config.key()} left no record in '{self.store.root}': run the search again")

    def _copy_from_reuse(self, key: str) -> bool:
        for other in self.reuse:
            if other.is_done(key):
                record = RunRecord.read(other.folder(key) / RESULT_NAME)
                self.store.save(record)
                self.clock.costs.add(record.record)  # its timing calibrates the estimates too
                self.reused += 1
                return True
        return False


def run_line(record: RunRecord) -> str:
    config = record.config
    what = f"{layer_choice(config)} lr {config['learning_rate']:g} seed {config['seed']}"
    if not record.finished:
        return f"{what}: FAILED: {record.error}"
    dev = (record.record.get("dev") or {}).get("best_dev_accuracy")
    return (
        f"{what}: "
        + ("untrained" if dev is None else f"dev {100 * dev:.1f}")
        + ("" if record.status == "complete" else f" ({record.status})")
    )


@dataclass
class Probe:
    """A depth's runs: mean dev accuracy over the probing seeds per learning rate, and the rate picked."""

    depth: int
    layers: str
    dev_by_rate: dict[float, float | None]
    picked: float
    extended: list[float] = field(default_factory=list)  # rates added past the grid's edges
    diverged: list[float] = field(default_factory=list)
    at_edge: str | None = None  # why the pick is still at an edge of the rates tried, if it is
    test_by_seed: dict[int, float] = field(default_factory=dict)  # the picked rate's runs, read after the decision

    @property
    def dev(self) -> float:
        return self.dev_by_rate[self.picked]

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["dev_by_rate"] = {repr(rate): dev for rate, dev in self.dev_by_rate.items()}
        return data


def layers_for(depth: int, source_depth: int) -> str:
    """`all` for full depth (as sweeps write it, so their stored runs are found), else first:K."""
    return "all" if depth == source_depth else f"first:{depth}"


def probe_depth(
    runs: Runs, base: RunConfig, depth: int, source_depth: int, settings: SearchSettings, enough: float | None = None
) -> Probe:
    """The depth's probe; with `enough`, the grid stops widening once a rate's mean dev reaches it."""
    layers = layers_for(depth, source_depth)
    dev: dict[float, float | None] = {}
    diverged: list[float] = []
    errors: list[str] = []

    def try_rates(rates: list[float]) -> None:
        configs = [
            dataclasses.replace(base, layers=layers, learning_rate=rate, seed=seed)
            for rate in rates
            for seed in settings.probing
        ]
        records = runs.get(configs, f"depth {depth} of {source_depth}")
        for rate in rates:
            mine = [r for r, c in zip(records, configs) if c.learning_rate == rate]
            failed = [r for r in mine if r["status"] not in ("complete", "diverged")]
            errors.extend(r.get("error", "") for r in failed)
            values = [(r.get("dev") or {}).get("best_dev_accuracy") for r in mine]
            dev[rate] = None if failed or None in values else statistics.fmean(values)
            if any(r["status"] == "diverged" for r in mine):
                diverged.append(rate)

    try_rates(sorted(settings.rates))
    extended = []
    for direction in (1, -1):  # past the top edge, then past the bottom one
        for _ in range(MAX_EXTENSIONS):
            edge = max(dev) if direction == 1 else min(dev)
            if _best(dev) != edge or edge in diverged or _reaches(dev, enough):
                break
            rate = float(f"{edge * settings.step**direction:.3g}")
            try_rates([rate])
            extended.append(rate)
    if all(value is None for value in dev.values()):
        raise LayercutError(f"every run at depth {depth} failed: {errors[0] if errors else 'no dev accuracy'}")
    picked = _best(dev)
    note = _edge_note(picked, dev, diverged, stopped_early=_reaches(dev, enough))
    return Probe(depth, layers, dict(sorted(dev.items())), picked, extended, sorted(diverged), note)


def _reaches(dev: dict[float, float | None], enough: float | None) -> bool:
    return enough is not None and any(value is not None and value >= enough for value in dev.values())


def _best(dev: dict[float, float | None]) -> float:
    """The rate with the best dev accuracy; ties go to the smaller rate."""
    return max(sorted(dev), key=lambda rate: (dev[rate] is not None, dev[rate] or 0.0, -rate))


def _edge_note(picked: float, dev: dict, diverged: list[float], stopped_early: bool) -> str | None:
    if len(dev) == 1:
        return "one rate tried"
    for edge, side in ((max(dev), "top"), (min(dev), "bottom")):
        if picked == edge:
            if edge in diverged:
                return f"at the {side} edge, a rate that diverged"
            if stopped_early:
                return f"at the {side} edge: it passes there, so not widened further"
            return f"at the {side} edge after {MAX_EXTENSIONS} extensions"
    return None
