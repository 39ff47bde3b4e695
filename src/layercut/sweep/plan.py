"""What a sweep will cost, from configurations alone: `layercut sweep --dry-run`.

No weights are loaded. Depths and parameter counts come from the model's config: the stored copy
for the paper's models (so the paper grid plans offline), else `load_config`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from layercut.adapt.training import Budget
from layercut.errors import LayercutError
from layercut.importance.strategies import RANKED, TASK_STRATEGY, check_count
from layercut.model.layers import LayerSelection
from layercut.model.size import config_size_reports, known_config
from layercut.model.sources import Trust, load_config, resolve_source
from layercut.report.text import text_table
from layercut.settings.run_config import RunConfig
from layercut.settings.task import resolve_task
from layercut.sweep.grid import SETTINGS, layer_choice
from layercut.tasks.splits import ALL

# A rendered example (template + text). Real tasks range from ~15 tokens (TREC) to ~60 (AGNews).
TOKENS_PER_EXAMPLE = 40
CALIBRATION_TOKENS = 128  # a calibration sequence of the measures (importance/ranking.py)
# Sustained throughputs to turn FLOPs into hours: a few CPU cores, and one large GPU.
THROUGHPUTS = (("a few CPU cores", 1e11), ("one large GPU", 1e14))


@dataclass(frozen=True, eq=False)  # hashed by identity: model_facts makes one per model
class ModelFacts:
    spec: str
    config: object  # a transformers PretrainedConfig

    @property
    def depth(self) -> int:
        return self.config.num_hidden_layers

    def kept_count(self, config: RunConfig) -> int:
        """How many blocks the run keeps; a LayercutError if this model cannot hold its choice."""
        if config.keep_strategy is None:
            return len(LayerSelection.parse(config.layers).indices(self.depth))
        return check_count(config.keep_count, self.depth)

    def non_embedding_parameters(self, kept: int) -> int:
        return _non_embedding(self, kept)


@functools.lru_cache(maxsize=None)
def model_facts(spec: str, trust: Trust = Trust()) -> ModelFacts | None:
    """None when a Hub model's config cannot be read here (offline): the plan then says so. A local
    path that does not exist, an alias typo or a damaged config is an error."""
    config = known_config(spec)  # first: an offline Hub lookup takes half a minute to fail
    if config is None:
        source = resolve_source(spec)
        try:
            config = load_config(spec, trust)
        except LayercutError:
            if source.kind != "hub":
                raise
            return None
    return ModelFacts(spec, config)


@functools.lru_cache(maxsize=None)
def _non_embedding(facts: ModelFacts, kept: int) -> int:
    return config_size_reports(facts.config, [kept])[0].non_embedding_parameters


def run_flops(config: RunConfig) -> float | None:
    """Forward-backward FLOPs of training plus forward FLOPs of evaluation, as an upper bound: 6·N per trained
    token and 2·N per evaluated one (N: non-embedding parameters kept; the heads read one position), the whole
    step budget run (early stopping only shortens it), dev scored at every evaluation. With shared prefixes
    (fixed demonstrations) the demonstrations cost once per training batch and once per evaluation pass."""
    facts = model_facts(config.model, Trust(remote_code=config.trust_remote_code))
    if facts is None:
        return None
    spec = _task_spec(config.task, json.dumps(config.task_options, sort_keys=True))
    classes = spec.num_classes
    query = min(config.max_length, TOKENS_PER_EXAMPLE)
    demos = 0 if config.demos == "none" else min(config.max_length - query, TOKENS_PER_EXAMPLE * classes)
    shared = config.share_prefix and config.demos in ("fixed", "none")
    dev = config.dev_size or (config.dev_shots or config.shots) * classes
    if config.shots == ALL and spec.train_pool_size is None:  # a data-file task: its size is not declared
        return None
    train = spec.train_pool_size - dev if config.shots == ALL else config.shots * classes
    test = config.test_size or spec.test_pool_size or 0
    n = facts.non_embedding_parameters(facts.kept_count(config))

    def evaluated(examples: int) -> int:
        return examples * query + (demos if shared else examples * demos)

    trained_tokens, evaluated_tokens = 0, evaluated(test)
    if config.trains:
        budget = Budget.for_run(config, train)
        batch_tokens = config.batch_size * query + (demos if shared else config.batch_size * demos)
        trained_tokens = budget.steps * batch_tokens
        evaluated_tokens += budget.evaluations * evaluated(dev)
    return n * (6 * trained_tokens + 2 * evaluated_tokens)


def ranking_flops(config: RunConfig) -> tuple[tuple, float] | None:
    """What ranking the run's layer strategy needs, as (its identity, its forward FLOPs), or None. A ranking is
    computed once per identity and cached, so a sweep pays for it once. Removal scans replay the blocks from
    the removed one on: one round over D layers is about D²/2 block passes, SLEB's greedy order about D³/6.
    `task` scores the run's dev prompts packed (the demonstrations once), the measures calibration
    sequences of the run's training texts."""
    if config.keep_strategy not in RANKED:
        return None
    facts = model_facts(config.model, Trust(remote_code=config.trust_remote_code))
    if facts is None:
        return None
    depth = facts.depth
    per_block = facts.non_embedding_parameters(depth) / depth
    one_round = lambda n: n * (n + 1) // 2 + n  # noqa: E731 (every candidate's replay, and the recording pass)
    passes = {"bi": depth, "angular": depth, "loss": one_round(depth)}.get(
        config.keep_strategy, sum(one_round(n) for n in range(2, depth + 1))
    )
    if config.keep_strategy == TASK_STRATEGY:
        spec = _task_spec(config.task, json.dumps(config.task_options, sort_keys=True))
        dev = config.dev_size or (config.dev_shots or config.shots) * spec.num_classes
        demos = 0 if config.demos == "none" else TOKENS_PER_EXAMPLE * spec.num_classes
        tokens = demos + min(dev, config.calibration_samples) * TOKENS_PER_EXAMPLE
    else:
        tokens = config.calibration_samples * CALIBRATION_TOKENS
    identity = (
        config.model,
        config.keep_strategy,
        config.task,
        json.dumps(config.task_options, sort_keys=True),
        config.seed,
        config.shots,
        config.dev_size,
        config.dev_shots,
        config.demos,
        config.calibration_samples,
    )
    return identity, 2 * per_block * tokens * passes


@functools.lru_cache(maxsize=None)
def _task_spec(task: str, options: str):
    return resolve_task(RunConfig(task=task, task_options=json.loads(options)))


def describe_plan(runs: list[RunConfig], done: set[str] = frozenset()) -> str:
    """One line per run (the swept settings shown when they vary), then the count and cost; `done`: the
    keys of runs already complete."""

    varying = [name for name in SETTINGS if len({getattr(r, name) for r in runs}) > 1]
    header = ["#", "key", "model", "layers", "task", "head", "method", "demos", "shots", "seed", *varying, "FLOP", ""]
    rows, total, unknown = [], 0.0, 0
    for index, run in enumerate(runs, 1):
        flops = run_flops(run)
        total += flops or 0.0
        unknown += flops is None
        rows.append(
            [
                str(index),
                run.key(),
                run.model,
                layer_choice(run.to_dict()),
                run.task,
                run.head,
                run.method,
                run.demos,
                str(run.shots),
                str(run.seed),
                *(str(getattr(run, name)) for name in varying),
                "?" if flops is None else f"{flops:.1e}",
                "done" if run.key() in done else "",
            ]
        )
    rankings = dict(filter(None, (ranking_flops(run) for run in runs)))
    total += sum(rankings.values())
    lines = [text_table([header, *rows])]
    lines.append(f"{len(runs)} runs" + (f", {len(done)} already complete" if done else ""))
    if rankings:
        lines.append(
            f"+ {len(rankings)} layer ranking(s) for the layer strategies, each computed once and cached: "
            f"{sum(rankings.values()):.1e} FLOP"
        )
    lines.append(
        f"estimated compute: {total:.2e} FLOP"
        + (f" (+ {unknown} run(s) of models whose config is not readable here)" if unknown else "")
        + "; "
        + ", ".join(f"~{duration(total / speed)} on {where} ({speed / 1e12:g} TFLOP/s)" for where, speed in THROUGHPUTS)
    )
    lines.append(
        f"assumes 6·N FLOPs per trained token and 2·N per evaluated one (N = non-embedding parameters kept), "
        f"~{TOKENS_PER_EXAMPLE} tokens per example and demonstration, fixed demonstrations computed once per "
        "batch or evaluation pass (shared prefixes), and the whole step budget run: early stopping only shortens it"
    )
    return "\n".join(lines)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
