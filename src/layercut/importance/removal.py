"""Calibration loss with blocks removed: one layer at a time (Shortened LLaMA) and greedily (SLEB).

Nothing is rebuilt or copied. Per batch, one pass records the input of every block; the model
without block l then needs only the blocks from l on: the block list is swapped for
[l, l+1, ...] and a hook makes block l pass its recorded input straight on, so block l+1 sees
exactly what it would if l were cut out. The blocks before l are not run again.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from layercut.errors import LayercutError
from layercut.importance.blockio import block_input, body, model_device, with_hidden
from layercut.importance.calibration import CalibrationBatch
from layercut.model.blocks import find_blocks, per_layer_config_fields, set_config_depth
from layercut.progress import progress_bar


@dataclass
class RemovalScan:
    full_loss: float  # mean next-token loss of the whole model
    removal_loss: list[float]  # per layer: the loss with that layer alone removed
    greedy_order: list[int] | None  # every layer, in the order SLEB removes them (the last one survives)
    greedy_loss: list[float] | None  # the loss after each greedy removal (depth - 1 values)
    step_seconds: list[float]  # time of each scoring round (the first gives removal_loss)


@contextmanager
def running_only(model, indices: list[int]):
    """Run `model` with only the blocks at `indices` of its block list; everything is restored on exit.

    `layer_idx` is left alone: with use_cache=False nothing reads it, and each block computes as in
    place. Per-layer config lists are sliced, as some families pick a position's mask from them.
    """
    block_list = find_blocks(model)
    original = block_list.blocks
    config = model.config
    depth = len(original)
    saved = {name: getattr(config, name) for name in per_layer_config_fields(config, depth)}
    saved["num_hidden_layers"] = config.num_hidden_layers
    block_list.replace([original[i] for i in indices])
    set_config_depth(config, indices, depth)
    try:
        yield
    finally:
        setattr(block_list.parent, block_list.attribute, original)
        for name, value in saved.items():
            setattr(config, name, value)


class NextTokenLoss:
    """The objective of the calibration measures: summed next-token loss, averaged over real next tokens.
    An objective sums a batch's loss (`summed`) over `count` units; `forward` is the pass without the loss
    (the one whose block inputs the scan records)."""

    def summed(self, model, batch: CalibrationBatch) -> float:
        return _nll(_logits(model, batch), batch)

    def forward(self, model, batch: CalibrationBatch) -> None:
        body(model)(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)

    def count(self, batch: CalibrationBatch) -> int:
        return batch.loss_tokens


def removal_scan(model, batches: list, greedy: bool, progress: bool = True, objective=NextTokenLoss()) -> RemovalScan:
    """Loss without each layer; with `greedy`, repeatedly remove the least harmful layer and rescore.
    `objective`: by default the next-token loss (see NextTokenLoss)."""
    blocks = list(find_blocks(model).blocks)
    depth = len(blocks)
    if depth < 2:
        raise LayercutError("removal scores need a model with at least 2 layers: rank the uncut model")
    device = model_device(model)
    batches = [batch.to(device) for batch in batches]
    replays = sum(range(2, depth + 1)) if greedy else depth
    current, order, after = list(range(depth)), [], []
    full_loss = removal = None
    seconds = []
    with (
        torch.no_grad(),
        progress_bar(total=replays * len(batches), desc="removal loss", unit="pass", enabled=progress) as bar,
    ):
        while len(current) > 1:
            start = time.perf_counter()
            losses, loss_now = _losses_without_each(
                model, blocks, current, batches, bar, objective, with_full=full_loss is None
            )
            if full_loss is None:
                full_loss, removal = loss_now, losses
            seconds.append(time.perf_counter() - start)
            if not greedy:
                break
            position = min(range(len(current)), key=lambda p: (losses[p], current[p]))  # ties: lower layer first
            after.append(losses[position])
            order.append(current.pop(position))
    return RemovalScan(full_loss, removal, order + current if greedy else None, after if greedy else None, seconds)


def _losses_without_each(
    model, blocks, current, batches, bar, objective, with_full: bool
) -> tuple[list[float], float | None]:
    nll = torch.zeros(len(current), dtype=torch.float64)
    full = 0.0
    tokens = 0
    for batch in batches:
        inputs, batch_full = _record_inputs(model, blocks, current, batch, objective, with_full)
        for position, hidden in enumerate(inputs):
            nll[position] += _loss_without(model, blocks, current[position:], hidden, batch, objective)
            bar.update()
        full += batch_full
        tokens += objective.count(batch)
    return (nll / tokens).tolist(), (full / tokens if with_full else None)


def _record_inputs(model, blocks, current, batch, objective, with_loss: bool) -> tuple[list[torch.Tensor], float]:
    """The input of each current block; and the current model's summed loss when asked (else 0)."""
    inputs: list[torch.Tensor] = []
    handles = [
        blocks[i].register_forward_pre_hook(
            lambda m, args, kwargs: inputs.append(block_input(args, kwargs)), with_kwargs=True
        )
        for i in current
    ]
    try:
        with running_only(model, current):
            if with_loss:
                return inputs, objective.summed(model, batch)
            objective.forward(model, batch)
            return inputs, 0.0
    finally:
        for handle in handles:
            handle.remove()


def _loss_without(model, blocks, tail: list[int], hidden: torch.Tensor, batch, objective) -> float:
    """Summed loss of the model without block tail[0], given that block's recorded input."""
    handle = blocks[tail[0]].register_forward_hook(lambda module, args, output: with_hidden(output, hidden))
    try:
        with running_only(model, tail):
            return objective.summed(model, batch)
    finally:
        handle.remove()


def _logits(model, batch: CalibrationBatch) -> torch.Tensor:
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits


def _nll(logits: torch.Tensor, batch: CalibrationBatch) -> float:
    valid = batch.loss_mask
    return float(F.cross_entropy(logits[:, :-1][valid].float(), batch.input_ids[:, 1:][valid], reduction="sum"))
