"""A lean training loop: AdamW, gradient accumulation, early stopping on dev accuracy.

The scorer (label-word or classification head) stays restricted to its classes in training and
evaluation, which `Trainer` would not do for the LM head. The best-dev weights are restored
before testing; a non-finite loss stops training with the last good weights in place.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from layercut.progress import progress_bar

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # input_ids, attention_mask, labels


@dataclass
class TrainingOutcome:
    best_dev_accuracy: float | None = None
    best_epoch: int | None = None
    curve: list[dict] = field(default_factory=list)  # per epoch: train_loss, dev_accuracy
    steps: int = 0
    seconds: float = 0.0
    stopped_because: str = "completed all epochs"
    diverged: str | None = None  # set when the loss became NaN or infinite


def train(
    scorer: nn.Module,
    batches_for_epoch: Callable[[int], Iterable[Batch]],
    steps_per_epoch: int,
    dev_accuracy: Callable[[], float],
    *,
    epochs: int,
    learning_rate: float,
    weight_decay: float,
    gradient_accumulation: int,
    patience: int,
    autocast_dtype: torch.dtype | None = None,
    show_progress: bool = True,
) -> TrainingOutcome:
    parameters = [p for p in scorer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    outcome = TrainingOutcome()
    best = _snapshot(scorer)  # the untrained weights are the last good ones until an epoch improves
    epochs_without_gain = 0
    start = time.perf_counter()
    bar = progress_bar(total=epochs * steps_per_epoch, desc="training", unit="step", enabled=show_progress)
    try:
        for epoch in range(1, epochs + 1):
            scorer.train()
            losses = []
            for step, (input_ids, attention_mask, labels) in enumerate(_counted(batches_for_epoch(epoch), bar), 1):
                with _autocast(input_ids.device, autocast_dtype):
                    logits = scorer(input_ids, attention_mask)
                loss = nn.functional.cross_entropy(logits.float(), labels)
                if not torch.isfinite(loss):
                    outcome.diverged = f"loss became {loss.item()} at epoch {epoch}, step {step}"
                    break
                (loss / gradient_accumulation).backward()
                if step % gradient_accumulation == 0 or step == steps_per_epoch:
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                outcome.steps += 1
                losses.append(loss.item())
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}", best_dev=_fmt(outcome.best_dev_accuracy))
            if outcome.diverged:
                outcome.stopped_because = outcome.diverged
                break
            accuracy = dev_accuracy()
            outcome.curve.append({"epoch": epoch, "train_loss": sum(losses) / max(1, len(losses)), "dev_accuracy": accuracy})
            if outcome.best_dev_accuracy is None or accuracy > outcome.best_dev_accuracy:
                outcome.best_dev_accuracy, outcome.best_epoch = accuracy, epoch
                best = _snapshot(scorer)
                epochs_without_gain = 0
            else:
                epochs_without_gain += 1
                if patience and epochs_without_gain >= patience:
                    outcome.stopped_because = f"early stop: no dev gain for {patience} epochs"
                    break
            bar.set_postfix(epoch=epoch, dev=f"{accuracy:.3f}", best_dev=_fmt(outcome.best_dev_accuracy))
    finally:
        bar.close()
        optimizer.zero_grad(set_to_none=True)
    _restore(scorer, best)
    scorer.eval()
    outcome.seconds = time.perf_counter() - start
    return outcome


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the trainable weights only (the frozen ones never change)."""
    return {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}


def _restore(module: nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name in snapshot:
                p.copy_(snapshot[name])


def _counted(batches: Iterable[Batch], bar) -> Iterator[Batch]:
    for batch in batches:
        yield batch
        bar.update(1)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
