"""Few-shot splits as the paper and LM-BFF draw them: K per class for training, a disjoint dev set, a test subset.

Every draw uses its own `random.Random` seeded with a string naming the task, the draw and the
seed, so splits are a deterministic function of (task, K, seed, sizes) and changing one size
never reshuffles another split.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass

from layercut.errors import LayercutError
from layercut.errors import setting as named
from layercut.tasks.spec import Example, TaskData


@dataclass(frozen=True)
class FewShotSplits:
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    hashes: dict[str, str]  # split name -> content hash (uids, labels and texts)


ALL = "all"  # --shots all: the whole training set less dev (the natural distribution), the learning curve's end


def check_shots(shots: int | str, dev_shots: int | None = None, dev_size: int | None = None) -> None:
    if shots == ALL:
        if dev_shots is None and dev_size is None:
            raise LayercutError(
                f"{named('shots', 'all')} trains on every training example: set the dev set apart with "
                f"{named('dev_size', 'N')} (or {named('dev_shots', 'N')})"
            )
    elif isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise LayercutError(
            f"{named('shots')} must be a whole number of examples per class (at least 1) or 'all', got {shots!r}"
        )
    if dev_shots is not None and dev_size is not None:
        raise LayercutError("give the dev set either per class (dev_shots) or as a total (dev_size), not both")


def make_splits(
    data: TaskData,
    shots: int | str,
    seed: int,
    dev_shots: int | None = None,
    dev_size: int | None = None,
    test_size: int | None = None,
) -> FewShotSplits:
    """K=`shots` training examples per class; dev = `dev_shots` per class (default K) or `dev_size`
    random examples, disjoint from training; test = the whole test pool, or a fixed random subset
    of `test_size`. The test subset does not depend on the seed, so all seeds score the same examples.
    `shots="all"`: dev is drawn first, and training is every other training example."""
    spec = data.spec
    check_shots(shots, dev_shots, dev_size)
    if shots == ALL:
        return _whole_training_set(data, seed, dev_shots, dev_size, test_size)
    per_class_dev = 0 if dev_size is not None else (shots if dev_shots is None else dev_shots)
    by_class = _by_class(data.train, spec.num_classes)
    smallest = min(range(spec.num_classes), key=lambda c: len(by_class[c]))
    if shots + per_class_dev > len(by_class[smallest]):
        need = f"K={shots}" + (f" plus {per_class_dev} dev examples" if per_class_dev else "")
        raise LayercutError(
            f"task '{spec.name}': {need} per class exceeds the smallest class "
            f"({spec.label_names[smallest]}: {len(by_class[smallest])} training examples); use a smaller "
            f"{named('shots')}"
        )
    rng = random.Random(f"{spec.name}|train|{seed}")
    train, dev = [], []
    for members in by_class:
        # A full shuffle, not rng.sample: the first K stay the same whatever the dev size, and K=8 ⊂ K=16.
        drawn = list(members)
        rng.shuffle(drawn)
        train += drawn[:shots]
        dev += drawn[shots : shots + per_class_dev]
    if dev_size is not None:
        taken = {e.uid for e in train}
        rest = [e for e in data.train if e.uid not in taken]
        if not 0 <= dev_size <= len(rest):
            raise LayercutError(
                f"task '{spec.name}': dev_size {dev_size} exceeds the {len(rest)} examples left after training; lower it"
            )
        dev = random.Random(f"{spec.name}|dev|{seed}").sample(rest, dev_size)
    return _splits(data, train, dev, test_size)


def _whole_training_set(
    data: TaskData, seed: int, dev_shots: int | None, dev_size: int | None, test_size: int | None
) -> FewShotSplits:
    spec = data.spec
    if dev_size is not None:
        if not 1 <= dev_size < len(data.train):
            raise LayercutError(
                f"task '{spec.name}': dev_size {dev_size} leaves no training examples "
                f"(the pool has {len(data.train)}); lower it"
            )
        dev = random.Random(f"{spec.name}|dev|{seed}").sample(data.train, dev_size)
    else:
        by_class = _by_class(data.train, spec.num_classes)
        rng = random.Random(f"{spec.name}|train|{seed}")
        dev = []
        for label, members in enumerate(by_class):
            if dev_shots >= len(members):
                raise LayercutError(
                    f"task '{spec.name}': {dev_shots} dev examples per class leave none of "
                    f"{spec.label_names[label]} to train on; lower {named('dev_shots')}"
                )
            dev += rng.sample(members, dev_shots)
    taken = {e.uid for e in dev}
    return _splits(data, [e for e in data.train if e.uid not in taken], dev, test_size)


def _splits(data: TaskData, train: list[Example], dev: list[Example], test_size: int | None) -> FewShotSplits:
    test = data.test
    if test_size is not None:
        if not 1 <= test_size <= len(test):
            raise LayercutError(
                f"task '{data.spec.name}': test_size {test_size} is outside 1..{len(test)} (the test pool); lower it"
            )
        test = random.Random(f"{data.spec.name}|test").sample(test, test_size)
    train, dev, test = (
        _in_pool_order(s, pool) for s, pool in ((train, data.train), (dev, data.train), (test, data.test))
    )
    return FewShotSplits(
        train, dev, test, {"train": content_hash(train), "dev": content_hash(dev), "test": content_hash(test)}
    )


def stratified_sample(examples: list[Example], size: int, rng: random.Random) -> tuple[list[Example], list[Example]]:
    """(`size` examples with the class proportions of `examples`, the rest), both in input order."""
    if not 0 < size < len(examples):
        raise LayercutError(
            f"cannot hold out {size} of {len(examples)} examples; choose a size between 1 and {len(examples) - 1}"
        )
    groups: dict[int, list[Example]] = {}
    for example in examples:
        groups.setdefault(example.label, []).append(example)
    labels = sorted(groups)
    quotas = {c: size * len(groups[c]) // len(examples) for c in labels}
    # Largest remainder first, then label order: the allocation is deterministic and sums to `size`.
    by_remainder = sorted(labels, key=lambda c: (-(size * len(groups[c]) % len(examples)), c))
    for c in by_remainder[: size - sum(quotas.values())]:
        quotas[c] += 1
    chosen = {e.uid for c in labels for e in rng.sample(groups[c], quotas[c])}
    return [e for e in examples if e.uid in chosen], [e for e in examples if e.uid not in chosen]


def content_hash(examples: list[Example]) -> str:
    """A short hash of the examples' uids, labels and texts, in order: records exactly what a run saw."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps([e.uid, e.label, e.text, e.text_b]).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def _by_class(examples: list[Example], num_classes: int) -> list[list[Example]]:
    groups: list[list[Example]] = [[] for _ in range(num_classes)]
    for example in examples:
        groups[example.label].append(example)
    return groups


def _in_pool_order(subset: list[Example], pool: list[Example]) -> list[Example]:
    position = {e.uid: i for i, e in enumerate(pool)}
    return sorted(subset, key=lambda e: position[e.uid])
