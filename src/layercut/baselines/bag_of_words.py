"""The reference a practitioner checks first: TF-IDF word and character n-grams + logistic regression
(scikit-learn), fitted on exactly a run's training split, C picked on its dev split, scored on its test split.

`bag_of_words_for(config, cache)` recomputes the run's splits from its configuration, checks their hashes against
the ones the run recorded (so the reference saw the same examples), and caches the result by those hashes: one
fit per task, K and seed, whatever the depth, head or method of the runs that share them."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from layercut.adapt.metrics import classification_metrics
from layercut.atomic import write_text_atomic
from layercut.errors import LayercutError
from layercut.settings.run_config import RunConfig
from layercut.settings.task import make_run_splits, resolve_task
from layercut.tasks import FewShotSplits, Example

C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
DESCRIPTION = "TF-IDF word 1-2-grams + character 2-5-grams, logistic regression, C picked on dev"


def fit_bag_of_words(splits: FewShotSplits, label_names: list[str]) -> dict:
    """Fit on `splits.train` once per C in C_GRID, keep the C with the best dev accuracy (ties: the smaller C,
    the stronger regularisation), and score the test split. Deterministic: lbfgs has no random state to draw."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_union

    started = time.perf_counter()
    texts = {name: [_text(e) for e in getattr(splits, name)] for name in ("train", "dev", "test")}
    labels = {name: [e.label for e in getattr(splits, name)] for name in ("train", "dev", "test")}
    if len(set(labels["train"])) < 2:
        raise LayercutError("the bag-of-words reference needs training examples of at least 2 classes")
    features = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )
    train_features = features.fit_transform(texts["train"])
    dev_features, test_features = features.transform(texts["dev"]), features.transform(texts["test"])
    dev_accuracy, fitted = {}, {}
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=5000).fit(train_features, labels["train"])
        fitted[c] = model
        dev_accuracy[c] = _accuracy(model.predict(dev_features), labels["dev"]) if labels["dev"] else None
    best = max(C_GRID, key=lambda c: (dev_accuracy[c] or 0.0, -c))
    predictions = [int(p) for p in fitted[best].predict(test_features)]
    return {
        "method": DESCRIPTION,
        "C": best,
        "dev_accuracy_by_C": {str(c): dev_accuracy[c] for c in C_GRID},
        "C_at_grid_edge": best in (C_GRID[0], C_GRID[-1]),
        "metrics": classification_metrics(labels["test"], predictions, label_names),
        "predictions": predictions,
        "splits": splits.hashes,
        "seconds": round(time.perf_counter() - started, 3),
        "versions": {"scikit-learn": _sklearn_version()},
    }


def bag_of_words_for(config: RunConfig, recorded_hashes: dict | None, cache: Path | None) -> dict:
    """The reference on the splits of the run `config` describes, from `cache` when it was fitted before.
    `recorded_hashes`: the split hashes the run recorded; a mismatch (the data changed since) is an error."""
    path = (
        cache / f"{config.task.replace('/', '_')}-{split_key(recorded_hashes)}.json"
        if cache and recorded_hashes
        else None
    )
    if path is not None and path.exists():
        return json.loads(path.read_text())
    spec = resolve_task(config)
    splits = make_run_splits(config, spec)
    if recorded_hashes is not None and splits.hashes != recorded_hashes:
        raise LayercutError(
            f"task '{config.task}': the splits drawn now differ from the ones the run recorded "
            "(the data changed): the bag-of-words reference would not see the run's examples"
        )
    result = {
        "task": config.task,
        "shots": config.shots,
        "seed": config.seed,
        **fit_bag_of_words(splits, list(spec.label_names)),
    }
    if path is not None:
        write_text_atomic(path, json.dumps(result, indent=1) + "\n")
    return result


def split_key(hashes: dict) -> str:
    """One name for a run's train, dev and test splits."""
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]


def _text(example: Example) -> str:
    return example.text if example.text_b is None else f"{example.text} {example.text_b}"


def _accuracy(predictions, labels: list[int]) -> float:
    return sum(int(p) == y for p, y in zip(predictions, labels)) / len(labels)


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__
