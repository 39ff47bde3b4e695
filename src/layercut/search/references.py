"""What the answer is read against, on the same splits as every probe: the majority class, the bag-of-words
classifier (per seed) and in-context learning at every depth (one pass of the full model, the first seed)."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

from layercut.adapt.metrics import Metrics
from layercut.baselines.bag_of_words import bag_of_words_for
from layercut.settings.run_config import RunConfig
from layercut.search.probe import Runs, layers_for


def bag_of_words(base: RunConfig, seeds: tuple[int, ...], cache: Path) -> dict:
    """Test and dev accuracy of the reference per seed (fitted once per seed and cached with the store)."""
    fits = {seed: bag_of_words_for(dataclasses.replace(base, seed=seed), None, cache) for seed in seeds}
    return {
        "method": next(iter(fits.values()))["method"],
        "test_by_seed": {seed: Metrics.read(fit).accuracy for seed, fit in fits.items()},
        "dev_by_seed": {seed: fit["dev_accuracy_by_C"][str(fit["C"])] for seed, fit in fits.items()},
        "majority": Metrics.read(next(iter(fits.values()))).majority_baseline,
    }


def in_context_curve(runs: Runs, base: RunConfig, source_depth: int, seed: int, rate: float) -> dict[int, float]:
    """Test accuracy of the untrained model at every first-k depth. The rate is the grid's first, as a sweep
    records it for untrained runs (which ignore it), so their stored runs are found."""
    configs = [
        dataclasses.replace(base, method="icl", layers=layers_for(k, source_depth), seed=seed, learning_rate=rate)
        for k in range(1, source_depth + 1)
    ]
    records = runs.get(configs, "in-context learning at every depth")
    return {
        k: Metrics.read(r).accuracy for k, r in zip(range(1, source_depth + 1), records) if r["status"] == "complete"
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
