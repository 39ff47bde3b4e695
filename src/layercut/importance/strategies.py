"""Rules that turn a strategy and a layer count into the layers to keep.

`first`, `last` and `spaced` need only the depth. The others read a ranking's measures:
`task` keeps the layers that greedy removal scored on the task's own dev examples reaches last;
`bi` keeps the layers of highest Block Influence (ShortGPT); `loss` those whose removal alone
raises calibration loss most (Shortened LLaMA); `greedy` those that SLEB's greedy removal reaches
last; `angular` drops the run of depth - K consecutive layers whose input and output are closest
in angle (Gromov et al.). All but `spaced` and `angular` are nested: keeping fewer layers drops
more from one fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

from layercut.errors import LayercutError
from layercut.model.layers import LayerSelection, check_keep_count

REFERENCE_STRATEGIES = ("first", "last", "spaced")  # need no calibration text
MEASURES = ("bi", "angular", "loss", "greedy")  # each also names the strategy that reads it
TASK_STRATEGY = "task"  # ranked on a task's dev examples rather than on calibration text
STRATEGIES = REFERENCE_STRATEGIES + MEASURES + (TASK_STRATEGY,)
RANKED = MEASURES + (TASK_STRATEGY,)  # the strategies that read a ranking
_NESTED = ("first", "last", "bi", "loss", "greedy", TASK_STRATEGY)


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise LayercutError(f"unknown layer strategy '{strategy}': use one of {', '.join(STRATEGIES)}")
    return strategy


def check_count(count: int, depth: int) -> int:
    """A strategy's --keep-count, checked against the model's depth."""
    return check_keep_count(count, depth, choose="a count")


def check_block_size(n: int, depth: int) -> int:
    if not 1 <= n <= depth - 1:
        raise LayercutError(
            f"block size {n} is outside 1..{depth - 1} for a {depth}-layer model: choose n from 1 to {depth - 1}"
        )
    return n


def is_nested(strategy: str) -> bool:
    return strategy in _NESTED


def drop_order(strategy: str, depth: int, ranking=None) -> list[int]:
    """Every layer, least important first, for a nested strategy."""
    check_strategy(strategy)
    if not is_nested(strategy):
        raise LayercutError(
            f"strategy '{strategy}' keeps different sets for different counts: it has no single drop order"
        )
    if strategy == "first":
        return list(reversed(range(depth)))
    if strategy == "last":
        return list(range(depth))
    if strategy in ("greedy", TASK_STRATEGY):
        return list(_measure(ranking, strategy))
    scores = _measure(ranking, strategy)
    return sorted(range(depth), key=lambda layer: (scores[layer], layer))


def kept_layers(strategy: str, count: int, depth: int, ranking=None) -> list[int]:
    """The sorted layer indices that `strategy` keeps at `count` layers."""
    check_strategy(strategy)
    check_count(count, depth)
    if strategy == "spaced":
        return spaced(count, depth)
    if strategy == "angular":
        return _angular_keep(count, depth, ranking)
    return sorted(drop_order(strategy, depth, ranking)[depth - count :])


def spaced(count: int, depth: int) -> list[int]:
    """`count` layers evenly spread from the first to the last (the first alone for count 1)."""
    if count == 1:
        return [0]
    step = (depth - 1) / (count - 1)  # >= 1, so rounding never merges two picks
    return [int(i * step + 0.5) for i in range(count)]


def _angular_keep(count: int, depth: int, ranking) -> list[int]:
    n = depth - count
    if n == 0:
        return list(range(depth))
    distances = _measure(ranking, "angular").get(n)
    if distances is None:
        raise LayercutError(
            f"the ranking has no angular distances for blocks of {n} layers: rerun `layercut rank` with --block-size all"
        )
    start = min(range(len(distances)), key=lambda first: (distances[first], first))
    return [layer for layer in range(depth) if not start <= layer < start + n]


def _measure(ranking, strategy: str):
    """The measure a strategy reads, from a `LayerRanking`."""
    if ranking is None:
        raise LayercutError(
            f"strategy '{strategy}' ranks layers on calibration text: give a calibration source or a saved ranking"
        )
    value = ranking.measure(strategy)
    if value is None and strategy == TASK_STRATEGY:
        raise LayercutError(
            "this ranking has no task order (it was ranked on calibration text): choose by 'task' in "
            "`layercut run`, or `layercut cut --calibration TASK`"
        )
    if value is None:
        raise LayercutError(
            f"this ranking lacks the '{strategy}' measure: rerun `layercut rank` with --measures including {strategy}"
        )
    return value


@dataclass(frozen=True)
class StrategyChoice:
    """Keep the `count` layers `strategy` chooses, ranked on `calibration` (a task, or a text or .jsonl file),
    on `calibration_texts` (labelled `texts_source`), on a run's dev examples (`task`), or by a saved `ranking`."""

    strategy: str
    count: int
    calibration: str | None = None
    calibration_texts: list[str] | None = None
    texts_source: str = ""
    ranking: str | Path | None = None
    samples: int = 64
    task: object = None  # a TaskCalibration, for strategy `task`


LayerChoice = Union[LayerSelection, StrategyChoice]
