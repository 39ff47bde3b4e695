"""The answer confirmed and handed over: the chosen depth and the full model on test over every seed (at the rates
dev picked), then the chosen depth trained again on its best-dev seed, saved and trimmed to the task."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from layercut.adapt.metrics import Metrics
from layercut.atomic import temporary_directory
from layercut.run.record import Parameters, Timing
from layercut.settings.run_config import RunConfig
from layercut.search.probe import Probe, Runs
from layercut.search.settings import SearchSettings

MODEL_FOLDER = "model"


def confirm(runs: Runs, base: RunConfig, probe: Probe, settings: SearchSettings) -> dict:
    """Per seed: test accuracy, dev accuracy, parameters and evaluation speed of `probe`'s depth at its rate."""
    configs = [
        dataclasses.replace(base, layers=probe.layers, learning_rate=probe.picked, seed=seed) for seed in settings.seeds
    ]
    records = runs.get(configs, f"confirming depth {probe.depth} on test over {len(configs)} seeds")
    done = [
        (config, record) for config, record in zip(configs, records) if record["status"] in ("complete", "diverged")
    ]
    return {
        "depth": probe.depth,
        "layers": probe.layers,
        "learning_rate": probe.picked,
        "test_by_seed": {c.seed: Metrics.read(r).accuracy for c, r in done},
        "dev_by_seed": {c.seed: r["dev"]["best_dev_accuracy"] for c, r in done},
        "keys": {c.seed: c.key() for c, _ in done},
        "parameters": Parameters.read(done[0][1]).total if done else None,
        "examples_per_second": [
            speed for speed in (Timing.read(r).eval_examples_per_second for _, r in done) if speed is not None
        ],
        "majority": Metrics.read(done[0][1]).majority_baseline if done else None,
    }


def save_answer(base: RunConfig, confirmed: dict, out: Path, stored_record: dict, summary: list[str]) -> dict:
    """Train the chosen depth again on its best-dev seed with the model saved (same seed, same result: checked
    against the stored run's test predictions), trim its vocabulary to the task, and write it to out/model with
    `summary` (how it was found) in its model card."""
    from layercut.model.checkpoint import read_record
    from layercut.run.pipeline import run
    from layercut.slim.saved import trim_saved_model

    seed = best_dev_seed(confirmed)
    config = dataclasses.replace(base, layers=confirmed["layers"], learning_rate=confirmed["learning_rate"], seed=seed)
    with temporary_directory("layercut-answer") as scratch:
        record = run(config, scratch, save_model=True, show_progress=False).record
        saved = {**read_record(scratch / MODEL_FOLDER), "search": {"summary": summary}}
        trimmed = trim_saved_model(scratch / MODEL_FOLDER, saved, None, out / MODEL_FOLDER, overwrite=True)
    same = record["predictions"]["predicted"] == stored_record["predictions"]["predicted"]
    return {
        "seed": seed,
        "key": config.key(),
        "folder": MODEL_FOLDER,
        "test_accuracy": Metrics.read(record).accuracy,
        "same_predictions_as_stored_run": same,
        "parameters": trimmed["parameters_after"],
        "parameters_untrimmed": saved["parameters_after"],
        "bytes": (out / MODEL_FOLDER / "model.safetensors").stat().st_size,
        "vocabulary": {k: trimmed["vocabulary"][k] for k in ("vocab_size", "source_vocab_size")},
    }


def best_dev_seed(confirmed: dict) -> int:
    """The seed whose run of the chosen depth did best on dev (ties: the smaller seed)."""
    return max(confirmed["dev_by_seed"], key=lambda s: (confirmed["dev_by_seed"][s], -s))
