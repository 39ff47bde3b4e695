"""`rank_layers`: the importance measures of a model's layers on calibration text, as one record.

A `LayerRanking` is what `layercut rank` prints, plots and saves as JSON, and what
`layercut cut --ranking` reads back to choose layers without recomputing anything.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from layercut.atomic import write_json_atomic
from layercut.errors import LayercutError
from layercut.importance.calibration import calibration_batches
from layercut.importance.similarity import hidden_state_measures
from layercut.importance.removal import removal_scan
from layercut.importance.strategies import (
    MEASURES,
    RANKED,
    REFERENCE_STRATEGIES,
    check_block_size,
    drop_order,
    is_nested,
    kept_layers,
)
from layercut.model.blocks import find_blocks
from layercut.model.layers import format_index_spec

FORMAT = 1


@dataclass
class LayerRanking:
    """Per-layer measures (None where not computed) and how they were obtained."""

    model: str
    depth: int
    calibration: dict  # source, texts, sequences, max_length, tokens, packed
    block_influence: list[float] | None = None
    angular_distance: dict[int, list[float]] | None = None  # n -> distance of the run l..l+n-1, per start l
    full_loss: float | None = None
    removal_loss: list[float] | None = None  # per layer: calibration loss with that layer alone removed
    greedy_order: list[int] | None = None  # all layers, first removed first (the last one survives)
    greedy_loss: list[float] | None = None  # calibration loss after each greedy removal
    task_order: list[int] | None = None  # greedy removal order scored on a task's dev examples
    task_loss: list[float] | None = None  # the dev label-word loss after each of those removals
    seconds: dict[str, float] = field(default_factory=dict)

    def measure(self, name: str):
        return {
            "bi": self.block_influence,
            "angular": self.angular_distance,
            "loss": self.removal_loss,
            "greedy": self.greedy_order,
            "task": self.task_order,
        }[name]

    @property
    def strategies(self) -> tuple[str, ...]:
        """The strategies this ranking can answer for."""
        return REFERENCE_STRATEGIES + tuple(m for m in RANKED if self.measure(m) is not None)

    def keep(self, strategy: str, count: int) -> list[int]:
        return kept_layers(strategy, count, self.depth, self)

    def counts(self, strategy: str) -> list[int]:
        """The layer counts `strategy` can be asked for (angular: only run lengths that were measured)."""
        if strategy == "angular":
            return [k for k in range(1, self.depth + 1) if k == self.depth or self.depth - k in self.angular_distance]
        return list(range(1, self.depth + 1))

    def to_dict(self) -> dict:
        data = {
            "format": FORMAT,
            "model": self.model,
            "depth": self.depth,
            "calibration": self.calibration,
            "block_influence": self.block_influence,
            "angular_distance": None
            if self.angular_distance is None
            else {str(n): d for n, d in self.angular_distance.items()},
            "full_loss": self.full_loss,
            "full_perplexity": None if self.full_loss is None else math.exp(self.full_loss),
            "removal_loss": self.removal_loss,
            "greedy_order": self.greedy_order,
            "greedy_loss": self.greedy_loss,
            "task_order": self.task_order,
            "task_loss": self.task_loss,
            "seconds": self.seconds,
        }
        # Derived, for readers of the file; `from_dict` recomputes them from the measures above.
        data["drop_order"] = {s: drop_order(s, self.depth, self) for s in self.strategies if is_nested(s)}
        data["kept"] = {
            s: {str(k): format_index_spec(self.keep(s, k)) for k in self.counts(s)} for s in self.strategies
        }
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "LayerRanking":
        if data.get("format") != FORMAT:
            raise LayercutError(f"this ranking has format {data.get('format')!r}, not {FORMAT}: rerun `layercut rank`")
        angular = data.get("angular_distance")
        return cls(
            model=data["model"],
            depth=data["depth"],
            calibration=data["calibration"],
            block_influence=data.get("block_influence"),
            angular_distance=None if angular is None else {int(n): d for n, d in angular.items()},
            full_loss=data.get("full_loss"),
            removal_loss=data.get("removal_loss"),
            greedy_order=data.get("greedy_order"),
            greedy_loss=data.get("greedy_loss"),
            task_order=data.get("task_order"),
            task_loss=data.get("task_loss"),
            seconds=data.get("seconds", {}),
        )

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "LayerRanking":
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
            raise LayercutError(
                f"cannot read the ranking '{path}' ({type(error).__name__}): give a JSON file written by `layercut rank -o`"
            ) from None


def rank_layers(
    model,
    tokenizer,
    texts: list[str],
    *,
    samples: int = 64,
    max_length: int = 128,
    block_sizes: list[int] | None = None,
    measures: tuple[str, ...] = MEASURES,
    batch_size: int = 8,
    packed: bool = True,
    model_id: str = "",
    source: str = "",
    progress: bool = True,
) -> LayerRanking:
    """Compute `measures` (any of bi, angular, loss, greedy) for every layer of `model`.

    `block_sizes` are the run lengths n for angular distance (default: all, 1..depth-1).
    bi and angular come from one hooked forward pass, loss and greedy from one removal scan; each
    pass records everything it yields (the greedy scan's first step is the removal loss).
    """
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not measures:
        raise LayercutError(f"unknown measure(s) {unknown or 'none given'}: choose from {', '.join(MEASURES)}")
    depth = len(find_blocks(model).blocks)
    sizes = range(1, depth) if block_sizes is None else sorted({check_block_size(n, depth) for n in block_sizes})
    wants_loss = "loss" in measures or "greedy" in measures
    if wants_loss and model.get_output_embeddings() is None:
        raise LayercutError("removal loss needs the language-model head: load the model with head 'lm'")
    batches = calibration_batches(
        tokenizer, texts, samples=samples, max_length=max_length, batch_size=batch_size, packed=packed
    )
    ranking = LayerRanking(
        model=model_id or model.config.name_or_path,
        depth=depth,
        calibration={
            "source": source,
            "texts": len(texts),
            "sequences": sum(len(b.input_ids) for b in batches),
            "max_length": max_length,
            "tokens": sum(int(b.attention_mask.sum()) for b in batches),
            "packed": packed,
        },
    )
    was_training = model.training
    model.eval()
    try:
        if "bi" in measures or "angular" in measures:
            start = time.perf_counter()
            hidden = hidden_state_measures(model, batches, list(sizes), progress=progress)
            ranking.seconds["bi_angular"] = round(time.perf_counter() - start, 2)
            ranking.block_influence, ranking.angular_distance = hidden.block_influence, hidden.angular_distance
        if wants_loss:
            scan = removal_scan(model, batches, greedy="greedy" in measures, progress=progress)
            ranking.seconds["loss"] = round(scan.step_seconds[0], 2)
            if "greedy" in measures:
                ranking.seconds["greedy"] = round(sum(scan.step_seconds), 2)
                ranking.greedy_order, ranking.greedy_loss = scan.greedy_order, scan.greedy_loss
            ranking.full_loss, ranking.removal_loss = scan.full_loss, scan.removal_loss
    finally:
        model.train(was_training)
    return ranking
