"""The `task` strategy: SLEB's greedy removal, scored by the task itself rather than by perplexity.

Each round removes the layer whose absence raises the label-word loss on the run's own dev examples
least (the first-token label words through the LM head, at each prompt's last real token), prompted
exactly as the run prompts them. The order is computed once per model, prompts and labels and stored
with the other rankings (`importance/cache.py`), so a sweep over layer counts ranks once.

The greedy scan runs the dev set about depth³/6 block-passes deep, so the prompts are packed as training
packs them (adapt/prefix_sharing.py): the demonstrations once, then each prompt's own tokens, in one sequence.
Where packed scores differ from whole-prompt ones (a family that cannot take the packed mask), the scan
keeps padded batches, and the ranking's calibration record says which it used.

The scan runs in the run's precision (`--dtype`, layercut.settings.precision): under bf16 autocast, with the
label-word logits and losses in float32, packed and padded scores compared in bf16 both, and float32 where
the model's bf16 scores are not finite or lie far from its float32 ones (the record says why).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from layercut.adapt.prefix_sharing import (
    PackedPrompts,
    common_prefix_length,
    forward_packed,
    pack_prompts,
    packing_disagrees,
)
from layercut.adapt.scorers import at_last_real_token, restricted_lm_logits
from layercut.importance.blockio import body, model_device
from layercut.importance.cache import cached_ranking, ranking_key
from layercut.importance.ranking import LayerRanking
from layercut.importance.removal import removal_scan
from layercut.padding import collate_padded
from layercut.prompting.build import build_prompting
from layercut.settings.run_config import RunConfig
from layercut.settings.precision import (
    BFLOAT16,
    autocast_region,
    FLOAT32,
    Precision,
    bf16_misbehaves,
    resolve_precision,
)
from layercut.settings.task import make_run_splits, resolve_task
from layercut.tasks import FewShotSplits, TaskSpec

BATCH_SIZE = 8


@dataclass
class TaskCalibration:
    """A run's settings, task and splits: what `task` scores layers on (the dev split, prompted as the run)."""

    config: RunConfig
    spec: TaskSpec
    splits: FewShotSplits

    @classmethod
    def for_task(cls, model: str, task: str, dtype: str = "auto") -> "TaskCalibration":
        """A task's dev examples under the default run settings (`layercut cut --keep-strategy task`)."""
        config = RunConfig(model=model, task=task, dtype=dtype)
        spec = resolve_task(config)
        return cls(config, spec, make_run_splits(config, spec))


@dataclass(frozen=True)
class DevBatch:
    """Right-padded prompts (positions start at 0 for every prompt) and their classes."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def to(self, device) -> "DevBatch":
        return DevBatch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))

    def last_hidden(self, model) -> torch.Tensor:
        """The final hidden state at each prompt's last real token."""
        hidden = body(model)(
            input_ids=self.input_ids, attention_mask=self.attention_mask, use_cache=False
        ).last_hidden_state
        return at_last_real_token(hidden, self.attention_mask)


@dataclass(frozen=True)
class PackedDevBatch:
    """The dev prompts packed into one sequence (the shared demonstrations once) and their classes."""

    packed: PackedPrompts
    labels: torch.Tensor

    def to(self, device) -> "PackedDevBatch":
        return PackedDevBatch(self.packed.to(device), self.labels.to(device))

    def last_hidden(self, model) -> torch.Tensor:
        return forward_packed(body(model), self.packed)


@dataclass(frozen=True)
class LabelWordLoss:
    """The removal scan's objective: summed cross-entropy of the classes' label-word logits, per example."""

    token_ids: torch.Tensor

    def logits(self, model, batch: DevBatch | PackedDevBatch) -> torch.Tensor:
        last = batch.last_hidden(model)
        return restricted_lm_logits(model, last, self.token_ids.to(last.device)).float()

    def summed(self, model, batch: DevBatch | PackedDevBatch) -> float:
        return float(F.cross_entropy(self.logits(model, batch), batch.labels, reduction="sum"))

    def forward(self, model, batch: DevBatch | PackedDevBatch) -> None:
        batch.last_hidden(model)

    def count(self, batch: DevBatch | PackedDevBatch) -> int:
        return len(batch.labels)


def rank_by_task(loaded, task: TaskCalibration, progress: bool = True) -> LayerRanking:
    """The greedy removal order of `loaded` (the whole causal LM) scored on the task's dev examples; cached."""
    config = task.config
    label_words, prompts, demos = build_prompting(config, task.spec, task.splits, loaded.model, loaded.tokenizer)
    dev = task.splits.dev[: config.calibration_samples]
    demos.prepare(dev)
    encoded = [prompts.encode(e, demos.for_query(e)) for e in dev]
    labels = [e.label for e in dev]
    # Scored by the label words' first tokens (a whole-word policy's words are ranked by their first token too).
    identity = json.dumps({"prompts": encoded, "labels": labels, "label_tokens": label_words.first_ids})
    precision = resolve_precision(getattr(config, "dtype", "auto"), model_device(loaded.model).type)
    settings = {"objective": "label-word loss on dev", "measures": ["task"]}
    if precision.resolved != FLOAT32:  # float32 rankings keep the keys they were cached under
        settings["precision"] = precision.resolved
    key = ranking_key(loaded.model_id, [identity], settings)

    def compute() -> LayerRanking:
        began = time.perf_counter()
        loaded.model.eval()
        objective = LabelWordLoss(torch.tensor(label_words.first_ids))
        used = check_bf16(loaded.model, encoded, labels, loaded.tokenizer.pad_token_id, objective, precision)
        with autocast_region(model_device(loaded.model), used.autocast):
            batches, packing = dev_batches(
                loaded.model, encoded, labels, loaded.tokenizer.pad_token_id, objective, used.autocast
            )
            scan = removal_scan(loaded.model, batches, greedy=True, progress=progress, objective=objective)
        calibration = {
            "source": f"{task.spec.name} dev examples",
            "examples": len(dev),
            "tokens": sum(map(len, encoded)),
            "objective": "label-word loss",
            "full_loss": scan.full_loss,
            "packing": packing,
            "prompts_sha256": hashlib.sha256(identity.encode()).hexdigest()[:16],
        }
        if precision.resolved != FLOAT32:
            calibration["precision"] = used.record()
        return LayerRanking(
            model=loaded.model_id,
            depth=len(scan.removal_loss),
            task_order=scan.greedy_order,
            task_loss=scan.greedy_loss,
            calibration=calibration,
            seconds={"task": round(time.perf_counter() - began, 2)},
        )

    return cached_ranking(key, compute)


def padded_batches(encoded: list[list[int]], labels: list[int], pad_id: int) -> list[DevBatch]:
    padded = []
    for start in range(0, len(encoded), BATCH_SIZE):
        ids, mask = collate_padded(encoded[start : start + BATCH_SIZE], pad_id, left=False)
        padded.append(DevBatch(ids, mask, torch.tensor(labels[start : start + BATCH_SIZE])))
    return padded


def dev_batches(
    model,
    encoded: list[list[int]],
    labels: list[int],
    pad_id: int,
    objective: LabelWordLoss,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[list, str]:
    """The dev prompts packed into one sequence where that scores them as whole prompts do (within
    `sharing_tolerance`, both in `autocast_dtype`, checked on the whole model), else padded batches; and which,
    in words."""
    padded = padded_batches(encoded, labels, pad_id)
    device = model_device(model)
    prefix = encoded[0][: common_prefix_length(encoded)]
    packed = PackedDevBatch(pack_prompts(encoded, prefix, device), torch.tensor(labels, device=device))
    with torch.no_grad(), autocast_region(model_device(model), autocast_dtype):
        why = packing_disagrees(
            torch.cat([objective.logits(model, batch.to(device)) for batch in padded]),
            lambda: objective.logits(model, packed),
            type(model).__name__,
            autocast_dtype,
        )
    if why:
        return padded, f"padded batches: {why}"
    return [packed], f"packed: {len(prefix)} shared tokens once, then {len(encoded)} prompts' own tokens"


def check_bf16(
    model, encoded: list[list[int]], labels: list[int], pad_id: int, objective: LabelWordLoss, precision: Precision
) -> Precision:
    """`precision`, or float32 with the reason where the model misbehaves in bf16 on the first dev batch."""
    if precision.used != BFLOAT16 or not encoded:
        return precision
    batch = padded_batches(encoded[:BATCH_SIZE], labels[:BATCH_SIZE], pad_id)[0].to(model_device(model))
    try:
        with torch.no_grad():
            reference = objective.logits(model, batch)
            with autocast_region(model_device(model), torch.bfloat16):
                logits = objective.logits(model, batch)
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as error:
        return precision.falling_back(f"{type(model).__name__} fails in bfloat16 ({type(error).__name__})")
    why = bf16_misbehaves(type(model).__name__, reference, logits)
    if why:
        return precision.falling_back(why)
    return precision.checked((logits - reference).abs().max().item())
