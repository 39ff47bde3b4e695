"""`load_examples`: a task's train and test pools, whatever its source."""

from __future__ import annotations

import random

from layercut.errors import LayercutError
from layercut.tasks.hub import read_hub
from layercut.tasks.packaged import read_packaged
from layercut.tasks.spec import Example, TaskData, TaskSpec
from layercut.tasks.splits import stratified_sample
from layercut.tasks.tables import read_data_file, to_examples


def load_examples(spec: TaskSpec) -> TaskData:
    """The pools before few-shot sampling. Sources without a test split get a fixed stratified
    hold-out (`spec.holdout_size`, default min(1000, 20%)) drawn with `spec.holdout_seed`."""
    test: list[Example] | None = None
    if spec.source == "hub":
        train, test = read_hub(spec)
    elif spec.source == "file":
        train = _file_examples(spec, spec.path, "train")
        if spec.test_path is not None:
            test = _file_examples(spec, spec.test_path, "test")
    else:
        train = _drop_repeats(read_packaged(spec))
    if test is None:
        size = spec.holdout_size if spec.holdout_size is not None else min(1000, len(train) // 5)
        if not 0 < size < len(train):
            share = "a fifth of them" if spec.holdout_size is None else str(size)
            raise TooFewExamples(
                f"task '{spec.name}' has {len(train)} examples, too few to hold out {share} "
                "for a test set and keep some to train on"
            )
        test, train = stratified_sample(train, size, random.Random(f"{spec.name}|holdout|{spec.holdout_seed}"))
    return TaskData(spec, train, test)


class TooFewExamples(LayercutError):
    """Too few examples to hold out a test set; `problem` is the message without its fix (a run adds its K)."""

    def __init__(self, problem: str):
        super().__init__(f"{problem}: add examples, or give a separate test file (--test-data)")
        self.problem = problem


def _file_examples(spec: TaskSpec, path: str, part: str) -> list[Example]:
    return to_examples(read_data_file(path), spec, uid_prefix=part, where=f"task '{spec.name}' ({path})")


def _drop_repeats(examples: list[Example]) -> list[Example]:
    """Keep the first of identical texts (TREC repeats 71 questions, BBC 120 articles), so that no
    text is both held out for testing and drawn for training."""
    seen: set[str] = set()
    kept = []
    for example in examples:
        if example.text not in seen:
            seen.add(example.text)
            kept.append(example)
    return kept
