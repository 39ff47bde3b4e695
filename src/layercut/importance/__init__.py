"""Which layers matter: importance measures on calibration text, and strategies that choose layers.

from layercut.importance import choose_layers, rank_layers, read_calibration_texts
ranking = rank_layers(model, tokenizer, read_calibration_texts("trec"))   # every measure
ranking.keep("bi", 4)                                                    # layers to keep
choose_layers(model, tokenizer, "greedy", 4, texts)                      # just what one strategy needs
"""

from __future__ import annotations

import importlib

from layercut.importance.strategies import MEASURES, STRATEGIES

# Loaded on first use, so that `layercut --help` (which imports the commands) does not import torch.
_LAZY = {
    "LayerRanking": "ranking",
    "rank_layers": "ranking",
    "rank_layers_cached": "cache",
    "choose_layers": "choose",
    "load_model_by_strategy": "choose",
    "read_calibration_texts": "calibration",
    "calibration_batches": "calibration",
    "plot_ranking": "plot",
}

__all__ = ["MEASURES", "STRATEGIES", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
