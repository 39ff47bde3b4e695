"""Everything a run adapts and scores: task splits, the cut model, its scorer, prompts, trainables."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from layercut.adapt.prefix_sharing import (
    SHARING_TOLERANCE,
    active_dropout,
    common_prefix_length,
    group_by_prefix,
    make_batch,
    pack_prompts,
    packing_disagrees,
    prefix_overlap,
    sharing_tolerance,
)
from layercut.adapt.evaluation import CONTENT_FREE_TEXTS
from layercut.adapt.scorers import build_scorer
from layercut.adapt.training import Batch, Budget
from layercut.errors import LayercutError
from layercut.errors import setting as named
from layercut.healing.bridge import apply_bridge
from layercut.healing.distill import TeacherTargets, compute_teacher_targets, distillation_loss
from layercut.healing.partial import set_trainable
from layercut.importance.choose import load_cut_model
from layercut.importance.strategies import LayerChoice, StrategyChoice
from layercut.importance.task import TaskCalibration
from layercut.model.blocks import find_blocks
from layercut.model.checkpoint import save_cut_model
from layercut.model.layers import LayerSelection
from layercut.model.load import LoadedModel, head_labels
from layercut.model.sources import Trust
from layercut.prompting import DemoSelector, LabelWords, PromptBuilder
from layercut.prompting.build import build_prompting
from layercut.settings.run_config import RunConfig
from layercut.run.record import Parameters
from layercut.settings.precision import Precision, autocast_region, bf16_misbehaves
from layercut.settings.task import make_run_splits, resolve_task
from layercut.tasks import Example, FewShotSplits, TaskSpec
from layercut.tasks.splits import ALL


@dataclass
class PreparedRun:
    config: RunConfig
    spec: TaskSpec
    splits: FewShotSplits
    loaded: LoadedModel
    tokenizer: object
    label_words: LabelWords
    prompts: PromptBuilder
    demos: DemoSelector
    scorer: nn.Module
    device: torch.device
    peft_model: nn.Module | None = None
    sharing: "PrefixSharing | None" = None  # decided by `decide_sharing` once prompts exist
    trained_parts: dict | None = None  # what full fine-tuning trains (layercut.healing.partial)
    teacher: TeacherTargets | None = None  # set by `distill_from_teacher`

    def budget(self) -> Budget:
        return Budget.for_run(self.config, len(self.splits.train))

    def content_free_prompts(self) -> list[list[int]]:
        """Queries without content, prompted as every query is (for contextual calibration)."""
        queries = [Example(text=text, label=0, uid=f"content-free-{i}") for i, text in enumerate(CONTENT_FREE_TEXTS)]
        return self.encode_all(queries)

    def split_rule(self) -> dict:
        """How dev and test were drawn, in words: class-balanced or the natural distribution."""
        config = self.config
        dev = (
            f"natural: {config.dev_size} random training examples outside the training set"
            if config.dev_size
            else f"balanced: {config.dev_shots or config.shots} per class, outside the training set"
        )
        test = (
            f"natural: a fixed random {config.test_size} of the test pool"
            if config.test_size
            else "natural: the whole test pool"
        )
        train = (
            "natural: the whole training set outside dev"
            if config.shots == ALL
            else f"balanced: {config.shots} per class"
        )
        return {"train": train, "dev": dev, "test": test}

    def encode_all(self, examples: list[Example]) -> list[list[int]]:
        self.demos.prepare(examples)
        return [self.prompts.encode(e, self.demos.for_query(e)) for e in examples]

    def training_batches(self, epoch: int) -> Iterator[Batch]:
        """The epoch's shuffled batches; `resample` demonstrations are drawn anew for every example.
        With training sharing on, a batch's prompts are packed into one sequence that holds the run's prefix
        once (PackedPrompts) where the model allows; otherwise the prompts that start with the prefix are one
        group, the others (examples whose own demonstration was swapped) another that shares the prefix up
        to the swap, and the step computes the prefix once for both (Scorer.score_together)."""
        order = list(self.splits.train)
        random.Random(f"{self.config.seed}|epoch|{epoch}").shuffle(order)
        prefix = self.sharing.prefix if self.sharing is not None and self.sharing.training else None
        for start in range(0, len(order), self.config.batch_size):
            chunk = order[start : start + self.config.batch_size]
            prompts = [
                self.prompts.encode(e, self.demos.for_query(e, epoch=epoch, index=start + i))
                for i, e in enumerate(chunk)
            ]
            packed = self.sharing is not None and self.sharing.packed
            groups = group_by_prefix(prompts, prefix) if prefix and not packed else [list(range(len(chunk)))]
            batch = []
            for group in groups:
                members, examples = [prompts[i] for i in group], [chunk[i] for i in group]
                inputs = (
                    pack_prompts(members, prefix, self.device)
                    if packed
                    else make_batch(
                        members,
                        self.tokenizer.pad_token_id,
                        prefix_overlap(members, prefix) if prefix else 0,
                        self.device,
                    )
                )
                labels = torch.tensor([e.label for e in examples], device=self.device)
                teacher = self.teacher.for_examples(examples, self.device) if self.teacher else None
                batch.append((inputs, labels, teacher))
            yield batch

    def decide_sharing(self, prompts: list[list[int]], autocast_dtype: torch.dtype | None = None) -> "PrefixSharing":
        """Whether evaluation and training compute shared prefixes once, and if not, why not. The run's
        prefix is what `prompts` (the test prompts) all start with; sharing must give the whole-prompt
        scores on a few of them (checked here, both in the run's precision) or it is not used."""
        self.sharing = decide_sharing(
            self.config, self.scorer, prompts, self.tokenizer.pad_token_id, self.device, autocast_dtype
        )
        return self.sharing

    def check_precision(self, precision: Precision, prompts: list[list[int]]) -> Precision:
        """`precision`, or float32 where this model misbehaves in bfloat16 on a few of `prompts` (see
        `check_precision`)."""
        return check_precision(
            precision, self.scorer, prompts, self.tokenizer.pad_token_id, self.device, self.config.trains
        )

    def distill_from_teacher(self, autocast_dtype: torch.dtype | None):
        """Score the training examples with the run's teacher, once; returns the training loss to use."""

        examples = self.splits.train
        self.teacher = compute_teacher_targets(
            self.config.teacher,
            self,
            self.encode_all(examples),
            examples,
            self.config.eval_batch_size,
            self.device,
            autocast_dtype,
        )
        return distillation_loss(self.config.distill_weight, self.config.distill_temperature)

    def teacher_record(self) -> dict | None:
        if self.teacher is None:
            return None
        return {
            **self.teacher.record,
            "weight": self.config.distill_weight,
            "temperature": self.config.distill_temperature,
        }

    def task_record(self) -> dict:
        return {**dataclasses.asdict(self.spec), "test_rule": self.spec.test_rule()}

    def label_word_record(self) -> dict:
        return {
            "words": list(self.label_words.words),
            "token_ids": self.label_words.token_ids,
            "policy": self.label_words.policy,
            "multi_token": self.label_words.multi_token,
        }

    def demo_record(self) -> dict:
        """The policy and the pool it draws from: enough for `predict` to rebuild the same prompts."""
        pool = [dataclasses.asdict(e) for e in self.splits.train] if self.config.demos != "none" else []
        record = {"policy": self.config.demos, "seed": self.config.seed, "pool": pool}
        if self.config.demos == "fixed" and self.splits.test:
            record["fixed_for_test"] = [e.uid for e in self.demos.for_query(self.splits.test[0])]
        return record

    def parameter_record(self) -> dict:
        model = self.loaded.model
        # The scorer holds what trains: the model's weights, and prefix tuning's virtual tokens.
        trainable = {p.data_ptr(): p.numel() for p in self.scorer.parameters() if p.requires_grad}
        total = model.num_parameters()
        return dataclasses.asdict(
            Parameters(
                total=total,
                non_embedding=model.num_parameters(exclude_embeddings=True),
                trainable=sum(trainable.values()) if self.config.trains else 0,
                source_total=self.loaded.source_parameters,
                percent_of_source=round(100.0 * total / self.loaded.source_parameters, 2),
            )
        )

    def save_model(self, folder: Path, run_record: dict) -> None:
        """A plain Hugging Face checkpoint (LoRA merged in) plus what `predict` needs to prompt it."""
        model = self.peft_model.merge_and_unload() if self.peft_model is not None else self.loaded.model
        extra = {
            "head": self.config.head,
            "task": run_record["task"],
            "label_words": run_record["label_words"],
            "demonstrations": run_record["demonstrations"],
            "max_length": self.prompts.max_length,
            "run_key": run_record["key"],
        }
        save_cut_model(dataclasses.replace(self.loaded, model=model), folder, overwrite=True, extra_record=extra)


@dataclass
class PrefixSharing:
    evaluation: bool
    training: bool
    reasons: list[str]  # why a part does not share
    prefix: list[int] = dataclasses.field(default_factory=list)  # the tokens every test prompt starts with
    packed: bool = False  # training packs each batch into one sequence (else: a prefix cache per batch)

    tolerance: float | None = None  # the largest gap to whole-prompt scores allowed (bf16: relative to the scores)

    def record(self) -> dict:
        record = {
            "evaluation": self.evaluation,
            "training": self.training,
            "training_packed": self.packed,
            "reasons": self.reasons,
            "prefix_tokens": len(self.prefix),
        }
        if self.tolerance is not None and self.tolerance != SHARING_TOLERANCE:  # fp32 runs' records stay as they were
            record["tolerance"] = self.tolerance
        return record


def decide_sharing(
    config: RunConfig,
    scorer: nn.Module,
    prompts: list[list[int]],
    pad_id: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> PrefixSharing:
    """Shared and whole-prompt scores are both computed in `autocast_dtype` (None: float32) and compared within
    `sharing_tolerance` for that precision."""
    if not config.share_prefix:
        return PrefixSharing(False, False, ["share_prefix is off"])
    if config.demos in ("resample", "similar"):
        return PrefixSharing(False, False, [f"demonstrations differ per example (demos={config.demos})"])
    prefix = prompts[0][: common_prefix_length(prompts)] if prompts else []
    if not prefix:
        return PrefixSharing(False, False, ["the prompts share no prefix"])
    sample = prompts[:4]
    with torch.no_grad(), autocast_region(device, autocast_dtype):
        scorer.eval()
        whole = scorer(make_batch(sample, pad_id, 0, device)).float()
        shared = scorer(make_batch(sample, pad_id, len(prefix), device)).float()
    gap = (whole - shared).abs().max().item()
    tolerance = sharing_tolerance(whole, autocast_dtype)
    if not gap <= tolerance:
        return PrefixSharing(
            False,
            False,
            [
                f"shared-prefix scores differ from whole-prompt scores by {gap:.2g} "
                f"in {type(scorer.model).__name__}"
                + (f" (bf16; allowed {tolerance:.2g})" if autocast_dtype is not None else "")
            ],
            tolerance=tolerance,
        )
    dropout = active_dropout(scorer.model) if config.trains else []
    if dropout:
        return PrefixSharing(
            True,
            False,
            [f"training: dropout ({', '.join(dropout)}) would share one mask across a batch's prefix"],
            prefix,
            tolerance=tolerance,
        )
    if not config.trains:
        return PrefixSharing(True, False, [], prefix, tolerance=tolerance)
    why_not_packed = packing_problem(scorer, sample, prefix, pad_id, device, autocast_dtype)
    return PrefixSharing(
        True, True, [why_not_packed] if why_not_packed else [], prefix, packed=not why_not_packed, tolerance=tolerance
    )


def packing_problem(
    scorer: nn.Module,
    sample: list[list[int]],
    prefix: list[int],
    pad_id: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> str | None:
    """Why training cannot pack a batch's prompts into one sequence, or None. Checked as sharing is: packed
    scores must equal whole-prompt ones (both in `autocast_dtype`), here also for a prompt that shares only the
    prefix's first half (as an example whose own demonstration was swapped does)."""
    if not scorer.reads_last_token or scorer.virtual is not None:
        return "training: packing needs a head that reads the last token, without prefix tuning's virtual tokens"
    half = len(prefix) // 2
    prompts = sample + [prefix[:half] + sample[0][len(prefix) :]]
    with torch.no_grad(), autocast_region(device, autocast_dtype):
        why = packing_disagrees(
            scorer(make_batch(prompts, pad_id, 0, device)),
            lambda: scorer(pack_prompts(prompts, prefix, device)),
            type(scorer.model).__name__,
            autocast_dtype,
        )
    return f"training: {why}; a prefix cache per batch" if why else None


def check_precision(
    precision: Precision, scorer: nn.Module, prompts: list[list[int]], pad_id: int, device: torch.device, trains: bool
) -> Precision:
    """`precision`, or float32 with the reason where the model misbehaves in bfloat16 on a few of `prompts`:
    an error or non-finite scores in the forward (and, for a run that trains, the backward), or scores far
    from float32's (`bf16_misbehaves`). The check runs whole prompts, without dropout, and leaves no gradients
    behind."""
    if precision.used != "bfloat16" or not prompts:
        return precision
    name = type(scorer.model).__name__
    batch = make_batch(prompts[:4], pad_id, 0, device)
    scorer.eval()
    with torch.no_grad():
        reference = scorer(batch).float()
    try:
        with torch.enable_grad(), autocast_region(device, torch.bfloat16):
            scores = scorer(batch).float()
        if trains and scores.requires_grad:
            scores.logsumexp(-1).sum().backward()
        grads_finite = all(bool(torch.isfinite(p.grad).all()) for p in scorer.parameters() if p.grad is not None)
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as error:
        return precision.falling_back(f"{name} fails in bfloat16 ({type(error).__name__}: {str(error)[:120]})")
    finally:
        for p in scorer.parameters():
            p.grad = None
    scores = scores.detach()
    why = bf16_misbehaves(name, reference, scores) or (
        None if grads_finite else f"{name} gives non-finite gradients in bfloat16"
    )
    if why:
        return precision.falling_back(why)
    return precision.checked((scores - reference).abs().max().item())


def prepare_run(config: RunConfig, device: torch.device) -> PreparedRun:
    spec = resolve_task(config)
    splits = make_run_splits(config, spec)
    trust = Trust(pickle=config.allow_pickle, remote_code=config.trust_remote_code)
    loaded = load_cut_model(
        config.model,
        _layer_choice(config, spec, splits),
        head=config.head,
        num_labels=head_labels(config.head, spec.num_classes),
        trust=trust,
    )
    if config.bridge:
        apply_bridge(
            loaded,
            [e.text for e in splits.train],
            f"{spec.name} training texts",
            config.calibration_samples,
            device=device,
        )
    model, tokenizer = loaded.model.to(device), loaded.tokenizer
    label_words, prompts, demos = build_prompting(config, spec, splits, model, tokenizer)
    peft_model = _apply_method(config, model)
    trains = set_trainable(model, config.train_layers, config.freeze_embeddings) if config.method == "full" else None
    scorer = build_scorer(config.head, model, label_words, tokenizer.pad_token_id).to(device)
    if config.method == "prefix":  # every prompt follows the learned virtual tokens
        scorer.use_virtual_tokens(peft_model.prompt_encoder, lambda: peft_model.get_prompt(batch_size=1))
    return PreparedRun(
        config,
        spec,
        splits,
        loaded,
        tokenizer,
        label_words,
        prompts,
        demos,
        scorer,
        device,
        peft_model,
        trained_parts=trains,
    )


def _layer_choice(config: RunConfig, spec: TaskSpec, splits: FewShotSplits) -> LayerChoice:
    if config.keep_strategy is None:
        return LayerSelection.parse(config.layers)
    # Measures rank the layers on the run's own training texts; `task` on its own dev examples.
    texts = [e.text for e in splits.train][: config.calibration_samples]
    task = TaskCalibration(config, spec, splits) if config.keep_strategy == "task" else None
    return StrategyChoice(
        config.keep_strategy,
        config.keep_count,
        calibration_texts=texts,
        texts_source=f"{spec.name} training texts",
        samples=config.calibration_samples,
        task=task,
    )


def _apply_method(config: RunConfig, model: nn.Module) -> nn.Module | None:
    """Set what trains. LoRA and prefix tuning wrap the cut model with peft (cut first, then wrap) and return
    the wrapper."""
    if config.method == "icl":
        model.requires_grad_(False)
        return None
    if config.method == "full":
        return None
    from peft import LoraConfig, PrefixTuningConfig, TaskType, get_peft_model

    task_type = TaskType.SEQ_CLS if config.head == "cls" else TaskType.CAUSAL_LM
    if config.method == "prefix":
        return get_peft_model(model, PrefixTuningConfig(task_type=task_type, num_virtual_tokens=config.prefix_tokens))
    lora = LoraConfig(
        task_type=task_type,
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules=_lora_targets(model),
    )
    # peft injects adapters into `model`'s own modules, so the scorer keeps using `model` itself.
    return get_peft_model(model, lora)


def _lora_targets(model: nn.Module) -> list[str] | None:
    """peft knows the attention projections of most families; for the rest, every Linear in the blocks."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as KNOWN

    if model.config.model_type in KNOWN:
        return None

    names = {name.split(".")[-1] for name, m in find_blocks(model).blocks.named_modules() if isinstance(m, nn.Linear)}
    if not names:
        raise LayercutError(
            f"no linear layers to adapt with LoRA in {type(model).__name__}: use {named('method', 'full')}"
        )
    return sorted(names)
