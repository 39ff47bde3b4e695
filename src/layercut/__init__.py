"""layercut: cut layers off decoder-only language models, adapt them to classification, measure.

The public API; the `layercut` command is a thin layer over these functions. Names are imported
on first use, so that the command starts (and answers Ctrl-C) without loading torch first.
"""

import importlib
import sys
import types

_EXPORTS = {
    "SizeReport": "layercut.model.size",
    "config_size_reports": "layercut.model.size",
    "size_report": "layercut.model.size",
    "save_cut_model": "layercut.model.checkpoint",
    "LoadedModel": "layercut.model.load",
    "cut_layers": "layercut.model.load",
    "load_model": "layercut.model.load",
    "LayerSelection": "layercut.model.layers",
    "rank_layers": "layercut.importance.ranking",
    "StrategyChoice": "layercut.importance.strategies",
    "choose_layers": "layercut.importance.choose",
    "load_cut_model": "layercut.importance.choose",
    "TaskOptions": "layercut.tasks.options",
    "LayercutError": "layercut.errors",
    "RunConfig": "layercut.settings.run_config",
    "RunRecord": "layercut.run.record",
    "RunResult": "layercut.run.record",
    "run": "layercut.run.pipeline",
    "load_experiment": "layercut.sweep.experiment",
    "run_sweep": "layercut.sweep.runner",
    "write_report": "layercut.report.markdown",
    "SearchSettings": "layercut.search.settings",
    "search_depth": "layercut.search.search",
    "fit_bag_of_words": "layercut.baselines.bag_of_words",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'layercut' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


class _Package(types.ModuleType):
    """Importing the subpackage `layercut.run` must not replace the function `layercut.run`."""

    def __setattr__(self, name: str, value) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
