"""The bag-of-words reference: fitted on exactly a run's splits, the same for the same seed, fitted once."""

import pytest

from layercut.baselines import bag_of_words
from layercut.baselines.bag_of_words import bag_of_words_for, fit_bag_of_words
from layercut.errors import LayercutError
from layercut.settings.run_config import RunConfig
from layercut.settings.task import make_run_splits, resolve_task


def _config(review_file, seed: int = 0) -> RunConfig:
    return RunConfig(
        model="unused",
        task="reviews",
        shots=4,
        seed=seed,
        dev_size=6,
        task_options={
            "data": str(review_file),
            "template": "Review: {text} Sentiment:",
            "label_words": "Negative,Positive",
        },
    )


def test_same_seed_same_result_and_exactly_the_runs_splits(review_file):
    config = _config(review_file)
    splits = make_run_splits(config, resolve_task(config))
    first = bag_of_words_for(config, splits.hashes, None)
    again = bag_of_words_for(config, splits.hashes, None)
    assert first["predictions"] == again["predictions"] and first["C"] == again["C"]
    assert first["splits"] == splits.hashes  # it saw the run's train, dev and test splits, nothing else
    assert len(first["predictions"]) == len(splits.test)
    assert first["metrics"]["num_examples"] == len(splits.test)
    other = bag_of_words_for(_config(review_file, seed=1), None, None)
    assert other["splits"]["train"] != first["splits"]["train"]  # another seed, another training split


def test_a_run_whose_splits_differ_is_refused(review_file):
    config = _config(review_file)
    hashes = {**make_run_splits(config, resolve_task(config)).hashes, "train": "0" * 16}
    with pytest.raises(LayercutError, match="splits drawn now differ"):
        bag_of_words_for(config, hashes, None)


def test_the_fit_is_cached_by_the_splits(review_file, tmp_path, monkeypatch):
    config = _config(review_file)
    hashes = make_run_splits(config, resolve_task(config)).hashes
    first = bag_of_words_for(config, hashes, tmp_path)
    monkeypatch.setattr(bag_of_words, "fit_bag_of_words", lambda *a: pytest.fail("fitted twice"))
    assert bag_of_words_for(config, hashes, tmp_path) == first


def test_dev_picks_c_and_a_learnable_task_is_learned(review_file):
    config = _config(review_file)
    splits = make_run_splits(config, resolve_task(config))
    result = fit_bag_of_words(splits, ["Negative", "Positive"])
    best = max(result["dev_accuracy_by_C"].values())
    assert result["dev_accuracy_by_C"][str(result["C"])] == best
    assert result["metrics"]["accuracy"] > result["metrics"]["majority_baseline"]
