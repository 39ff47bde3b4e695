"""Choose the layers to keep by strategy, for a model in memory or for a model to be loaded and cut.

`load_cut_model` is the one loader for a layer choice: a rule (`LayerSelection`) or a strategy (`StrategyChoice`).
"""

from __future__ import annotations

from pathlib import Path

from layercut.errors import LayercutError
from layercut.importance.cache import rank_layers_cached
from layercut.importance.calibration import read_calibration_texts
from layercut.importance.ranking import LayerRanking, rank_layers
from layercut.importance.strategies import (
    MEASURES,
    RANKED,
    TASK_STRATEGY,
    LayerChoice,
    check_count,
    check_strategy,
    kept_layers,
)
from layercut.importance.task import TaskCalibration, rank_by_task
from layercut.model.blocks import find_blocks
from layercut.model.layers import LayerSelection
from layercut.model.load import LoadedModel, cut_layers, load_model
from layercut.model.sources import Trust, load_config


def choose_layers(
    model,
    tokenizer,
    strategy: str,
    count: int,
    calibration_texts: list[str] | None = None,
    *,
    ranking: LayerRanking | None = None,
    samples: int = 64,
    max_length: int = 128,
    packed: bool = True,
    progress: bool = True,
) -> list[int]:
    """The sorted indices of the `count` layers `strategy` keeps.

    first/last/spaced need neither text nor ranking; the others use `ranking` when given (e.g. one
    ranking shared by a whole sweep), else compute just the measure they need on `calibration_texts`.
    """
    check_strategy(strategy)
    depth = len(find_blocks(model).blocks)
    check_count(count, depth)
    if ranking is not None and ranking.depth != depth:
        raise LayercutError(f"the ranking is of a {ranking.depth}-layer model, this model has {depth}: rank this model")
    if ranking is None and strategy == TASK_STRATEGY:
        raise LayercutError(
            "strategy 'task' scores layers on a task's dev examples: use it in `layercut run` or "
            "`layercut cut --calibration TASK`"
        )
    if ranking is None and strategy in MEASURES:
        if not calibration_texts:
            raise LayercutError(
                f"strategy '{strategy}' needs calibration text: give a task, a text file or a saved ranking"
            )
        ranking = rank_layers(
            model,
            tokenizer,
            calibration_texts,
            samples=samples,
            max_length=max_length,
            measures=(strategy,),
            packed=packed,
            progress=progress,
        )
    return kept_layers(strategy, count, depth, ranking)


def load_cut_model(
    model_id: str,
    choice: LayerChoice,
    *,
    head: str = "lm",
    num_labels: int | None = None,
    trust: Trust = Trust(),
    need_tokenizer: bool = True,
) -> LoadedModel:
    """`model_id` with the layers `choice` keeps, under `head` (see `load_model` and `load_model_by_strategy`)."""
    if isinstance(choice, LayerSelection):
        return load_model(
            model_id, choice, head=head, num_labels=num_labels, trust=trust, need_tokenizer=need_tokenizer
        )
    return load_model_by_strategy(
        model_id,
        choice.strategy,
        choice.count,
        calibration=choice.calibration,
        calibration_texts=choice.calibration_texts,
        texts_source=choice.texts_source,
        ranking=choice.ranking,
        samples=choice.samples,
        head=head,
        num_labels=num_labels,
        task=choice.task,
        trust=trust,
        need_tokenizer=need_tokenizer,
    )


def load_model_by_strategy(
    model_id: str,
    strategy: str,
    count: int,
    *,
    calibration: str | None = None,
    calibration_texts: list[str] | None = None,
    texts_source: str = "",
    ranking: str | Path | None = None,
    samples: int = 64,
    max_length: int = 128,
    head: str = "lm",
    num_labels: int | None = None,
    progress: bool = True,
    task=None,
    trust: Trust = Trust(),
    need_tokenizer: bool = True,
):
    """`load_model` keeping the layers `strategy` chooses; `extras["layer_strategy"]` records the choice.

    Reference strategies and saved rankings load only the kept blocks. Ranking on `calibration`
    (a task, or a text or .jsonl file) or on `calibration_texts` (labelled `texts_source`) loads
    the whole causal LM once, reusing a cached ranking of the same model and texts, and cuts it in
    place (a `cls` head loads the kept blocks afresh). Strategy `task` ranks on `task` (a
    `TaskCalibration`: a run's dev examples), or on the dev examples of the task named by `calibration`.
    """
    check_strategy(strategy)
    if calibration is not None and ranking is not None:
        raise LayercutError("give either a calibration source or a saved ranking, not both")
    if strategy in MEASURES and calibration is None and calibration_texts is None and ranking is None:
        raise LayercutError(f"strategy '{strategy}' needs --calibration TASK_OR_FILE or --ranking FILE")
    depth = load_config(model_id, trust).num_hidden_layers
    check_count(count, depth)
    record = {"strategy": strategy, "count": count}
    if strategy == TASK_STRATEGY and task is None and ranking is None:
        if calibration is None:
            raise LayercutError(
                "strategy 'task' needs --calibration TASK (its dev examples score the layers) or --ranking FILE"
            )
        task = TaskCalibration.for_task(model_id, calibration)  # before the slow load, so a bad task fails at once
    if strategy in RANKED and ranking is None:
        # Texts before the slow load, so a bad source fails at once.
        texts = None if strategy == TASK_STRATEGY else calibration_texts or read_calibration_texts(calibration)
        loaded = load_model(model_id, "all", trust=trust)
        if strategy == TASK_STRATEGY:
            computed = rank_by_task(loaded, task, progress=progress)
        else:
            computed = rank_layers_cached(
                loaded.model,
                loaded.tokenizer,
                texts,
                model_id=model_id,
                source=calibration or texts_source,
                measures=(strategy,),
                samples=samples,
                max_length=max_length,
                progress=progress,
            )
        kept = computed.keep(strategy, count)
        if head == "lm":
            cut_layers(loaded.model, kept)
            loaded.kept = kept
        else:
            loaded = load_model(model_id, LayerSelection.keeping(kept), head=head, num_labels=num_labels, trust=trust)
        record.update(calibration=computed.calibration, seconds=computed.seconds)
    else:
        saved = LayerRanking.load(ranking) if ranking is not None and strategy in RANKED else None
        if saved is not None and saved.depth != depth:
            raise LayercutError(
                f"the ranking '{ranking}' is of a {saved.depth}-layer model, '{model_id}' has {depth}: rank this model"
            )
        kept = kept_layers(strategy, count, depth, saved)
        loaded = load_model(
            model_id,
            LayerSelection.keeping(kept),
            head=head,
            num_labels=num_labels,
            trust=trust,
            need_tokenizer=need_tokenizer,
        )
        if saved is not None:
            record.update(ranking=str(ranking), calibration=saved.calibration)
    record["kept_layers"] = kept
    loaded.extras["layer_strategy"] = record
    return loaded
