"""The dimensions of an experiment's grid, the settings shared by its runs, and how a run chose its layers."""

from __future__ import annotations

import dataclasses

from layercut.settings.run_config import RunConfig

DIMENSIONS = {  # experiment key -> RunConfig field
    "models": "model",
    "layers": "layers",
    "strategies": "keep_strategy",
    "keep_counts": "keep_count",
    "tasks": "task",
    "heads": "head",
    "methods": "method",
    "demos": "demos",
    "shots": "shots",
    "seeds": "seed",
}
SETTINGS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name not in {*DIMENSIONS.values(), "task_options"})


def layer_choice(config: dict) -> str:
    """How a run chose its layers, as written in the file: `first:2`, `all`, or `bi:4` for a strategy."""
    return f"{config['keep_strategy']}:{config['keep_count']}" if config["keep_strategy"] else config["layers"]
