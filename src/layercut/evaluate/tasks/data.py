"""Datasets for the shipped lm-eval tasks, built offline from layercut's built-in task data.

Each `layercut_*.yaml` names one of these functions as its `custom_dataset`. The task's training
pool becomes lm-eval's train split (few-shot examples are drawn from it) and its fixed held-out
pool the test split, shuffled once with a fixed seed so that `--limit N` scores a random N rather
than the first classes of a pool read class by class (BBC). Each document holds the prompt
(layercut's template, filled), the label words to choose from, and the label.
"""

from __future__ import annotations

import functools
import random


def trec(**_metadata):
    return task_dataset("trec")


def mr(**_metadata):
    return task_dataset("mr")


def bbc(**_metadata):
    return task_dataset("bbc")


@functools.cache
def task_dataset(name: str):
    """A `datasets.DatasetDict` (train, test) of a layercut task, in lm-eval's document format."""
    import datasets

    from layercut.prompting.templates import fill_template
    from layercut.tasks import get_task, load_examples

    spec = get_task(name)
    data = load_examples(spec)
    test = list(data.test)
    random.Random(f"{name}|lm-eval").shuffle(test)

    def documents(examples):
        return datasets.Dataset.from_list(
            [
                {"prompt": fill_template(spec.template, e), "choices": list(spec.label_words), "label": e.label}
                for e in examples
            ]
        )

    return datasets.DatasetDict({"train": documents(data.train), "test": documents(test)})
