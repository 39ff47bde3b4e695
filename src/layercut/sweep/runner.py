"""`run_sweep`: run every unfinished run of an experiment into a result folder, then report."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from layercut.evaluate.per_depth import run_evaluations
from layercut.run.record import RunRecord
from layercut.report.markdown import write_report
from layercut.slim.one_pass_runs import one_pass_records, split_one_pass_runs
from layercut.sweep.backends import make_backend
from layercut.sweep.eta import sweep_progress
from layercut.sweep.experiment import Experiment
from layercut.sweep.grid import layer_choice
from layercut.sweep.store import ResultStore


@dataclass
class SweepSummary:
    runs: int
    already_done: int
    finished: int = 0
    failed: list[str] = field(default_factory=list)  # keys
    report: Path | None = None


def execute_pending(pending: list, executor) -> Iterator[RunRecord]:
    """Each run's record as it finishes: untrained first-k depths share one pass, the rest go to the backend."""
    one_pass, one_by_one = split_one_pass_runs(pending)
    return itertools.chain(one_pass_records(one_pass), executor.execute(one_by_one))


def run_sweep(
    experiment: Experiment,
    out: str | Path,
    *,
    backend: str = "local",
    address: str | None = None,
    allow_different: bool = False,
    echo: Callable[[str], None] = print,
) -> SweepSummary:
    executor = make_backend(backend, address)  # a missing Ray fails here, before DIR is touched
    store = ResultStore(out)
    with store.claim(experiment, allow_different):
        pending = [config for config in experiment.runs if not store.is_done(config.key())]
        summary = SweepSummary(len(experiment.runs), len(experiment.runs) - len(pending))
        echo(
            f"{summary.runs} runs: {summary.already_done} already complete in {out}, "
            f"{len(pending)} to run on the {executor.name} backend"
        )
        records = [stored.record for stored in store.records()]
        for index, record in enumerate(execute_pending(pending, executor), 1):
            store.save(record)
            records.append(record.record)
            config = record.config
            what = (
                f"{record.key} {config['model']} {layer_choice(config)} {config['task']} {config['head']} "
                f"{config['method']} seed {config['seed']}"
            )
            if record.finished:
                summary.finished += 1
                note = "" if record.status == "complete" else f" ({record.status})"
                outcome = f"accuracy {record.accuracy:.4f}{note}"
            else:
                summary.failed.append(record.key)
                outcome = f"FAILED: {record.error}"
            echo(f"[{index}/{len(pending)}] {what}: {outcome} | {sweep_progress(experiment.runs, records).line()}")
        if summary.finished or summary.already_done:
            if experiment.evaluations:
                run_evaluations(
                    experiment.evaluations, store.root, [r.record for r in store.records() if r.finished], echo
                )
            summary.report = write_report(out).report
    return summary
