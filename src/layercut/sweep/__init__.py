"""Sweeps: an experiment file expands into runs, executed resumably (locally or on Ray) and reported.

    from layercut.sweep import load_experiment, run_sweep, write_report
    experiment = load_experiment("configs/demo.yaml")
    run_sweep(experiment, "results/demo")          # skips runs already complete there
    write_report("results/demo")                   # report.md, runs.csv, plots/
"""

from layercut.sweep.experiment import Experiment, load_experiment
from layercut.sweep.report import write_report
from layercut.sweep.runner import SweepSummary, run_sweep
from layercut.sweep.store import ResultStore

__all__ = ["Experiment", "ResultStore", "SweepSummary", "load_experiment", "run_sweep", "write_report"]
