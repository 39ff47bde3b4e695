"""layercut: cut layers off decoder-only language models, adapt them to classification, measure.

The public API; the `layercut` command is a thin layer over these functions.
"""

from layercut.accounting import SizeReport, config_size_reports, size_report
from layercut.checkpoint import save_cut_model
from layercut.cutting import LoadedModel, cut_layers, load_model
from layercut.errors import LayercutError
from layercut.run import RunResult, run
from layercut.runconfig import RunConfig
from layercut.selection import LayerSelection

__all__ = [
    "LayerSelection", "LayercutError", "LoadedModel", "RunConfig", "RunResult", "SizeReport",
    "config_size_reports", "cut_layers", "load_model", "run", "save_cut_model", "size_report",
]
