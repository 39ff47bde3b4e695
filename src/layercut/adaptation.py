"""Everything a run adapts and scores: task splits, the cut model, its scorer, prompts, trainables."""

from __future__ import annotations

import argparse
import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from layercut.cutting import LoadedModel, load_model
from layercut.errors import LayercutError
from layercut.heads import ClassificationHead, LabelWordHead, WholeWordHead
from layercut.runconfig import RunConfig
from layercut.sources import Trust
from layercut.tasks import (
    DemoSelector,
    Example,
    FewShotSplits,
    LabelWords,
    PromptBuilder,
    TaskSpec,
    collate_left_padded,
    load_examples,
    make_splits,
    mean_pooled_embedder,
    resolve_label_words,
    task_file_option_defaults,
    task_from_args,
)


# The task-file flags a run's task_options may override, with their defaults.
TASK_OPTION_DEFAULTS = task_file_option_defaults()


def resolve_task(config: RunConfig) -> TaskSpec:
    """The run's task: a registered name or task YAML, or a data file, with any flag overrides."""
    unknown = sorted(set(config.task_options) - set(TASK_OPTION_DEFAULTS))
    if unknown:
        raise LayercutError(f"unknown task option(s) {unknown}; allowed: {', '.join(TASK_OPTION_DEFAULTS)}")
    options = {**TASK_OPTION_DEFAULTS, **config.task_options}
    return task_from_args(argparse.Namespace(task=None if options["data"] else config.task, **options))


@dataclass
class Adaptation:
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

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.splits.train) // self.config.batch_size)

    def encode_all(self, examples: list[Example]) -> list[list[int]]:
        self.demos.prepare(examples)
        return [self.prompts.encode(e, self.demos.for_query(e)) for e in examples]

    def training_batches(self, epoch: int):
        """The epoch's shuffled batches; `resample` demonstrations are drawn anew for every example."""
        order = list(self.splits.train)
        random.Random(f"{self.config.seed}|epoch|{epoch}").shuffle(order)
        pad_id = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.config.batch_size):
            chunk = order[start:start + self.config.batch_size]
            prompts = [self.prompts.encode(e, self.demos.for_query(e, epoch=epoch, index=start + i)) for i, e in enumerate(chunk)]
            input_ids, attention_mask = collate_left_padded(prompts, pad_id)
            labels = torch.tensor([e.label for e in chunk])
            yield input_ids.to(self.device), attention_mask.to(self.device), labels.to(self.device)

    def task_record(self) -> dict:
        return {**dataclasses.asdict(self.spec), "test_rule": self.spec.test_rule()}

    def label_word_record(self) -> dict:
        return {"words": list(self.label_words.words), "token_ids": self.label_words.token_ids,
                "policy": self.label_words.policy, "multi_token": self.label_words.multi_token}

    def demo_record(self) -> dict:
        """The policy and the pool it draws from: enough for `predict` to rebuild the same prompts."""
        pool = [dataclasses.asdict(e) for e in self.splits.train] if self.config.demos != "none" else []
        record = {"policy": self.config.demos, "seed": self.config.seed, "pool": pool}
        if self.config.demos == "fixed" and self.splits.test:
            record["fixed_for_test"] = [e.uid for e in self.demos.for_query(self.splits.test[0])]
        return record

    def parameter_record(self) -> dict:
        model = self.loaded.model
        trainable = {p.data_ptr(): p.numel() for p in model.parameters() if p.requires_grad}
        total = model.num_parameters()
        return {
            "total": total,
            "non_embedding": model.num_parameters(exclude_embeddings=True),
            "trainable": sum(trainable.values()) if self.config.trains else 0,
            "source_total": self.loaded.source_parameters,
            "percent_of_source": round(100.0 * total / self.loaded.source_parameters, 2),
        }

    def save_model(self, folder: Path, run_record: dict) -> None:
        """A plain Hugging Face checkpoint (LoRA merged in) plus what `predict` needs to prompt it."""
        from layercut.checkpoint import save_cut_model

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


def prepare_adaptation(config: RunConfig, device: torch.device) -> Adaptation:
    spec = resolve_task(config)
    splits = make_splits(load_examples(spec), config.shots, config.seed, dev_shots=config.dev_shots,
                         dev_size=config.dev_size, test_size=config.test_size)
    loaded = _load_cut_model(config, spec, splits)
    model, tokenizer = loaded.model.to(device), loaded.tokenizer
    label_words = resolve_label_words(tokenizer, spec.label_words, config.label_word_policy)
    prompts = PromptBuilder(spec, tokenizer, min(config.max_length, _context_length(model.config)))
    embed = mean_pooled_embedder(model, tokenizer) if config.demos == "similar" else None
    demos = DemoSelector(config.demos, splits.train, spec.num_classes, config.seed, embed=embed)
    peft_model = _apply_method(config, model)
    scorer = build_scorer(config.head, model, label_words, tokenizer.pad_token_id).to(device)
    return Adaptation(config, spec, splits, loaded, tokenizer, label_words, prompts, demos, scorer, device, peft_model)


def build_scorer(head: str, model: nn.Module, label_words: LabelWords, pad_id: int) -> nn.Module:
    if head == "cls":
        return ClassificationHead(model)
    if label_words.policy == "full":
        return WholeWordHead(model, label_words.token_ids, pad_id)
    return LabelWordHead(model, label_words.first_ids)


def _load_cut_model(config: RunConfig, spec: TaskSpec, splits: FewShotSplits) -> LoadedModel:
    num_labels = spec.num_classes if config.head == "cls" else None
    trust = Trust(pickle=config.allow_pickle, remote_code=config.trust_remote_code)
    if config.keep_strategy is None:
        return load_model(config.model, config.layers, head=config.head, num_labels=num_labels, trust=trust)
    from layercut.importance import load_model_by_strategy

    # Measures rank the layers on the run's own training texts.
    texts = [e.text for e in splits.train][: config.calibration_samples]
    return load_model_by_strategy(config.model, config.keep_strategy, config.keep_count, calibration_texts=texts,
                                  texts_source=f"{spec.name} training texts", samples=config.calibration_samples,
                                  head=config.head, num_labels=num_labels, trust=trust)


def _apply_method(config: RunConfig, model: nn.Module) -> nn.Module | None:
    """Set what trains. LoRA wraps the cut model with peft (cut first, then wrap) and returns the wrapper."""
    if config.method == "icl":
        model.requires_grad_(False)
        return None
    if config.method == "full":
        model.requires_grad_(True)
        return None
    from peft import LoraConfig, TaskType, get_peft_model

    task_type = TaskType.SEQ_CLS if config.head == "cls" else TaskType.CAUSAL_LM
    lora = LoraConfig(task_type=task_type, r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                      target_modules=_lora_targets(model))
    # peft injects adapters into `model`'s own modules, so the scorer keeps using `model` itself.
    return get_peft_model(model, lora)


def _lora_targets(model: nn.Module) -> list[str] | None:
    """peft knows the attention projections of most families; for the rest, every Linear in the blocks."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as KNOWN

    if model.config.model_type in KNOWN:
        return None
    from layercut.blocks import find_blocks

    names = {name.split(".")[-1] for name, m in find_blocks(model).blocks.named_modules() if isinstance(m, nn.Linear)}
    if not names:
        raise LayercutError(f"no linear layers to adapt with LoRA in {type(model).__name__}: use --method full")
    return sorted(names)


def _context_length(model_config) -> int:
    for name in ("max_position_embeddings", "n_positions", "seq_length"):
        value = getattr(model_config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048
