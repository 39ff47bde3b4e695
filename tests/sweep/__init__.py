"""Helpers of the sweep tests, shared with other folders' tests: a tiny experiment file and a stored record."""

import yaml

TINY_SETTINGS = {
    "epochs": 2,
    "batch_size": 4,
    "learning_rate": 1.0e-3,
    "patience": 0,
    "max_length": 64,
    "eval_batch_size": 8,
}


def review_task(data) -> dict:
    """The tiny tests' review task as an experiment file lists it: its data file, template and label words."""
    return {
        "name": "reviews",
        "data": str(data),
        "template": "Review: {text} Sentiment:",
        "label_words": "Negative,Positive",
    }


def write_experiment(path, model, data, **grid):
    """A tiny experiment file: the review task, 4 shots, two epochs; `grid` adds or replaces keys."""
    settings = {**TINY_SETTINGS, **grid.pop("settings", {})}
    experiment = {
        "models": [str(model)],
        "layers": [1],
        "heads": ["lm"],
        "methods": ["full"],
        "shots": [4],
        "seeds": [0],
        "tasks": [review_task(data)],
        "settings": settings,
        **grid,
    }
    path.write_text(yaml.safe_dump(experiment))
    return path


def fake_record(key, layers, task, seed, accuracy, dev, learning_rate=1e-3, head="lm", method="full"):
    """A stored result as run() writes it, with only what the report reads."""
    config = {
        "model": "m",
        "layers": f"first:{layers}",
        "task": task,
        "task_options": {},
        "shots": 4,
        "seed": seed,
        "head": head,
        "method": method,
        "demos": "fixed",
        "keep_strategy": None,
        "keep_count": None,
        "learning_rate": learning_rate,
    }
    return {
        "status": "complete",
        "key": key,
        "config": config,
        "layers": {"kept": list(range(layers)), "spec": f"0-{layers - 1}", "source_depth": 4},
        "metrics": {"accuracy": accuracy, "macro_f1": accuracy, "num_examples": 10},
        "dev": {"best_dev_accuracy": dev, "best_epoch": 1} if dev is not None else None,
        "parameters": {
            "total": 1_500_000 * layers,
            "non_embedding": 500_000 * layers,
            "percent_of_source": 25.0 * layers,
        },
        "timing": {"train_seconds": 1.0, "eval_examples_per_second": 100.0 / layers},
        "memory": {"peak_bytes": 1},
    }
