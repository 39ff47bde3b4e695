"""layercut: cut layers off decoder-only language models, adapt them to classification, measure.

The public API; the `layercut` command is a thin layer over these functions. Names are imported
on first use, so that the command starts (and answers Ctrl-C) without loading torch first.
"""

import importlib
import sys
import types

_EXPORTS = {
    "SizeReport": "layercut.accounting", "config_size_reports": "layercut.accounting", "size_report": "layercut.accounting",
    "save_cut_model": "layercut.checkpoint",
    "LoadedModel": "layercut.cutting", "cut_layers": "layercut.cutting", "load_model": "layercut.cutting",
    "LayercutError": "layercut.errors",
    "RunResult": "layercut.run", "run": "layercut.run",
    "RunConfig": "layercut.runconfig",
    "LayerSelection": "layercut.selection",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'layercut' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


class _Package(types.ModuleType):
    """Importing the submodule `layercut.run` must not replace the function `layercut.run`."""

    def __setattr__(self, name: str, value) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
