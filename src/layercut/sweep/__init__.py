"""Sweeps: an experiment file expands into runs, executed resumably (locally or on Ray) and reported.

from layercut.sweep import load_experiment, run_sweep, write_report
experiment = load_experiment("configs/demo.yaml")
run_sweep(experiment, "results/demo")          # skips runs already complete there
write_report("results/demo")                   # report.md, runs.csv, plots/
"""

import importlib

# Imported on first use: the command line imports `layercut.cli.sweep`, which must not load torch.
_EXPORTS = {
    "Experiment": "layercut.sweep.experiment",
    "load_experiment": "layercut.sweep.experiment",
    "write_report": "layercut.report.markdown",
    "SweepSummary": "layercut.sweep.runner",
    "run_sweep": "layercut.sweep.runner",
    "ResultStore": "layercut.sweep.store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'layercut.sweep' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
