"""One run = one pure function: `run(config) -> RunRecord`; artefacts go to the run's folder.

`prepare` loads the (cut) model, builds few-shot splits and prompts and decides precision and prefix sharing;
`execute` adapts the prepared run (full fine-tuning, LoRA, or nothing), evaluates it on the test split, and
records everything needed to trust and repeat it. `run` is the two in a row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from layercut.adapt.evaluation import Scores, calibrated_record, score_prompts
from layercut.adapt.metrics import classification_metrics
from layercut.adapt.training import TrainingOutcome, cross_entropy_loss, train
from layercut.atomic import lock_exclusively, make_folders, remove_empty_folders
from layercut.errors import LayercutError
from layercut.errors import setting as named
from layercut.model.layers import format_index_spec
from layercut.provenance import package_versions
from layercut.settings.run_config import RunConfig
from layercut.run.memory import PeakMemory
from layercut.settings.precision import BFLOAT16, Precision, resolve_precision
from layercut.run.prepare import PreparedRun, PrefixSharing, prepare_run
from layercut.run.record import KeptLayers, RunRecord, Timing
from layercut.run_files import RESULT_NAME


def check_run_folder(out: Path, overwrite: bool) -> None:
    existing = out / RESULT_NAME
    if existing.exists() and not overwrite:
        raise LayercutError(
            f"'{out}' already holds a run's result ({RESULT_NAME}): choose another --out or pass --overwrite"
        )


def run(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    save_model: bool = False,
    show_progress: bool = True,
) -> RunRecord:
    """Prepare the run and execute it; with `out`, its folder is held while the run writes there."""
    if out is None:
        return execute(prepare(config), save_model=save_model, show_progress=show_progress)
    out = Path(out)
    check_run_folder(out, overwrite)
    with hold_run_folder(out):
        check_run_folder(out, overwrite)  # again, now that no other run can write: one may have finished meanwhile
        return execute(prepare(config), out, save_model=save_model, show_progress=show_progress)


@contextlib.contextmanager
def hold_run_folder(out: Path) -> Iterator[None]:
    """Hold `out` while a run writes to it, as a sweep holds its DIR: a second run into the same folder at the
    same moment is refused instead of both writing. The lock is on the folder itself (no lock file stays
    behind); a folder created for it is removed again if the run fails before writing anything into it."""
    created = make_folders(out)
    try:
        fd = os.open(out, os.O_RDONLY)
        try:
            lock_exclusively(fd, "run", out)
            yield
        finally:
            os.close(fd)
    except BaseException:
        remove_empty_folders(created)
        raise


@dataclass
class ReadyRun:
    """A run prepared to execute: its model and splits (`setup`), the dev and test prompts encoded, the precision
    it computes in (checked on the model), whether prompts share their demonstrations' prefix, and the peak memory
    measured from the start of the preparation to the end of the run."""

    config: RunConfig
    device: torch.device
    setup: PreparedRun
    dev_prompts: list[list[int]]
    test_prompts: list[list[int]]
    precision: Precision
    sharing: PrefixSharing
    memory: PeakMemory


@dataclass(frozen=True)
class ScoredElsewhere:
    """An untrained run's test scores made by another pass (layercut.slim's one-pass depth profile): the run
    records them instead of scoring the test split itself, with `eval_seconds` its share of that pass's time (no
    speed of its own was measured) and `scored_by` saying how they were made."""

    scores: Scores
    eval_seconds: float
    scored_by: dict


def prepare(config: RunConfig, precision: Precision | None = None) -> ReadyRun:
    """Everything before training: the device, the seeds, the (cut) model with its method applied, the splits and
    prompts, the precision (`precision` when given, as a one-pass profile decided it for all its depths; else the
    configuration's, checked on the model) and the prefix-sharing decision."""
    device = resolve_device(config.device)
    asked = run_precision(config, device)
    _seed_everything(config.seed)
    memory = PeakMemory(device).start()
    try:
        setup = prepare_run(config, device)
        dev_prompts = setup.encode_all(setup.splits.dev)
        test_prompts = setup.encode_all(setup.splits.test)
        precision = precision or setup.check_precision(asked, test_prompts)
        sharing = setup.decide_sharing(test_prompts, precision.autocast)
        return ReadyRun(config, device, setup, dev_prompts, test_prompts, precision, sharing, memory)
    except BaseException:
        memory.stop()
        raise


def execute(
    ready: ReadyRun,
    out: Path | None = None,
    *,
    save_model: bool = False,
    show_progress: bool = True,
    scored_elsewhere: ScoredElsewhere | None = None,
) -> RunRecord:
    """Train a prepared run (if its method trains), score its test split (or record `scored_elsewhere`), and
    write its record (and model, with `save_model`) into `out`."""
    config, setup = ready.config, ready.setup
    try:
        if save_model and config.method == "prefix":
            raise LayercutError(
                "a prefix-tuned model is the cut model plus learned virtual tokens, which a plain "
                f"checkpoint cannot hold: drop --save-model, or use {named('method', 'full')} or lora"
            )
        if scored_elsewhere is not None and (
            config.trains or len(scored_elsewhere.scores.predictions) != len(ready.test_prompts)
        ):
            raise LayercutError(
                f"precomputed test scores fit only an untrained run ({named('method', 'icl')}) on the same test split"
            )
        outcome, scores, content_free = _train_and_score(ready, show_progress, scored_elsewhere)
    finally:
        ready.memory.stop()
    record = _record(ready, outcome, scores, content_free, scored_elsewhere)
    result = RunRecord(record)
    if out is not None:
        _write_run(out, result, (lambda: setup.save_model(out / "model", record)) if save_model else None)
    if outcome and outcome.diverged:
        where = f"; partial result in {out / RESULT_NAME}" if out is not None else ""
        raise LayercutError(
            f"training stopped: {outcome.diverged}; the last good weights were kept and evaluated{where}; "
            f"lower {named('learning_rate')}"
        )
    return result


def _train_and_score(
    ready: ReadyRun, show_progress: bool, scored_elsewhere: ScoredElsewhere | None
) -> tuple[TrainingOutcome | None, Scores, Scores]:
    config, setup, device = ready.config, ready.setup, ready.device
    pad_id = setup.tokenizer.pad_token_id
    autocast_dtype = ready.precision.autocast

    def score(prompts: list[list[int]], share_prefix: bool = ready.sharing.evaluation) -> Scores:
        return score_prompts(
            setup.scorer, prompts, pad_id, config.eval_batch_size, device, autocast_dtype, share_prefix=share_prefix
        )

    def dev_scores() -> tuple[float, float]:
        labels = [e.label for e in setup.splits.dev]
        scores = score(ready.dev_prompts)
        return scores.accuracy(labels), scores.loss(labels)

    outcome = None
    if config.trains:
        outcome = train(
            setup.scorer,
            setup.training_batches,
            dev_scores,
            setup.budget(),
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            gradient_accumulation=config.gradient_accumulation,
            autocast_dtype=autocast_dtype,
            show_progress=show_progress,
            loss_fn=setup.distill_from_teacher(autocast_dtype) if config.teacher else cross_entropy_loss,
        )
    scores = scored_elsewhere.scores if scored_elsewhere is not None else score(ready.test_prompts)
    return outcome, scores, score(setup.content_free_prompts(), share_prefix=False)


def _record(
    ready: ReadyRun,
    outcome: TrainingOutcome | None,
    scores: Scores,
    content_free: Scores,
    scored_elsewhere: ScoredElsewhere | None,
) -> dict:
    """The run's result.json."""
    config, setup = ready.config, ready.setup
    labels = [e.label for e in setup.splits.test]
    record = {
        "status": "diverged" if outcome and outcome.diverged else "complete",
        "key": config.key(),
        "config": config.to_dict(),
        "seed": config.seed,
        "task": setup.task_record(),
        "layers": dataclasses.asdict(
            KeptLayers(
                kept=setup.loaded.kept,
                spec=format_index_spec(setup.loaded.kept),
                source_depth=setup.loaded.source_depth,
                strategy=config.keep_strategy,
                ranking=_ranking_record(setup.loaded.extras.get("layer_strategy")),
            )
        ),
        "metrics": classification_metrics(labels, scores.predictions, list(setup.spec.label_names)),
        "calibrated": calibrated_record(scores, content_free, labels, list(setup.spec.label_names)),
        "predictions": {
            "uids": [e.uid for e in setup.splits.test],
            "predicted": scores.predictions,
            "probabilities": [[round(p, 5) for p in row] for row in scores.probabilities],
        },
        "dev": dataclasses.asdict(outcome) if outcome else None,
        "parameters": setup.parameter_record(),
        "healing": {
            "trains": setup.trained_parts,
            "bridge": setup.loaded.extras.get("bridge"),
            "teacher": setup.teacher_record(),
        },
        "timing": dataclasses.asdict(
            Timing(
                train_seconds=outcome.seconds if outcome else 0.0,
                train_step_seconds=outcome.seconds / outcome.steps if outcome and outcome.steps else None,
                eval_seconds=scored_elsewhere.eval_seconds if scored_elsewhere else scores.seconds,
                eval_examples_per_second=None if scored_elsewhere else scores.examples_per_second,
            )
        ),
        "prefix_sharing": {**ready.sharing.record(), "test_prefix_tokens": scores.shared_prefix_tokens},
        "precision": ready.precision.record(),
        "memory": {"peak_bytes": ready.memory.peak_bytes, "kind": ready.memory.kind},
        "device": str(ready.device),
        "splits": {
            "hashes": setup.splits.hashes,
            "drawn": setup.split_rule(),
            "sizes": {name: len(getattr(setup.splits, name)) for name in ("train", "dev", "test")},
        },
        "label_words": setup.label_word_record(),
        "demonstrations": setup.demo_record(),
        "versions": package_versions(),
    }
    if scored_elsewhere is not None:
        record["scored_by"] = scored_elsewhere.scored_by
    return record


def _write_run(out: Path, result: RunRecord, save_model) -> None:
    """The model (`save_model`, if given), then result.json. If result.json fails (a full disk), remove the model
    just saved: a model without its result would be debris (and a folder left empty, `hold_run_folder` removes)."""
    saved = False
    try:
        if save_model:
            save_model()
            saved = True
        result.write(out)
    except BaseException:
        if saved:
            shutil.rmtree(out / "model", ignore_errors=True)
        raise


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LayercutError(
            f"{named('device', 'cuda')} but no CUDA GPU is available here: use {named('device', 'cpu')} (or auto)"
        )
    return torch.device(name)


def run_precision(config: RunConfig, device: torch.device) -> Precision:
    """The precision `config.dtype` resolves to on `device` (what the run's key hashes); bfloat16 asked of a GPU
    without it is refused."""
    precision = resolve_precision(config.dtype, device.type)
    if device.type == "cuda" and precision.used == BFLOAT16 and not torch.cuda.is_bf16_supported():
        raise LayercutError(f"this GPU does not support bfloat16: use {named('dtype', 'float32')}")
    return precision


def _ranking_record(layer_strategy: dict | None) -> dict | None:
    """How a measure ranked the layers (calibration and seconds); None when nothing was ranked."""
    if not layer_strategy or "seconds" not in layer_strategy:
        return None
    return {"calibration": layer_strategy["calibration"], "seconds": layer_strategy["seconds"]}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
