"""A lean training loop: AdamW, gradient accumulation, a step budget, early stopping on dev.

The scorer (label-word or classification head) stays restricted to its classes in training and
evaluation, which `Trainer` would not do for the LM head. The best-dev weights are restored
before testing; a non-finite loss stops training with the last good weights in place.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn

from layercut.progress import progress_bar

from layercut.adapt.optim import RowSparseAdamW, sparse_embedding_gradients

from layercut.adapt.prefix_sharing import PackedPrompts, PromptBatch
from layercut.settings.precision import autocast_region
from layercut.settings.run_config import RunConfig

# One optimizer step's examples, in groups that are computed apart (prompts that share a prefix, and the
# rest), each with its labels and, when distilling, the teacher's class probabilities (else None).
Batch = list[tuple[PromptBatch | PackedPrompts, torch.Tensor, "torch.Tensor | None"]]
# (logits, labels, teacher probabilities or None) -> loss
Loss = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, labels)


@dataclass
class TrainingOutcome:
    best_dev_accuracy: float | None = None
    best_dev_loss: float | None = None
    best_epoch: int | None = None
    best_step: int | None = None
    curve: list[dict] = field(
        default_factory=list
    )  # per dev evaluation: step, epoch, train_loss, dev_accuracy, dev_loss
    steps: int = 0
    seconds: float = 0.0
    stopped_because: str = "spent the step budget"
    diverged: str | None = None  # set when the loss became NaN or infinite
    optimizer: str = ""


@dataclass(frozen=True)
class Budget:
    """How long to train: `steps` batches at most, dev evaluated every `eval_every` batches, stop after
    `patience` evaluations without a better dev score (0: never)."""

    steps: int
    eval_every: int
    patience: int

    @property
    def evaluations(self) -> int:
        return -(-self.steps // self.eval_every)

    @classmethod
    def for_run(cls, config: RunConfig, training_examples: int) -> "Budget":
        """A run's budget from its settings: the one rule that training and the dry run's cost estimate share."""
        steps_per_epoch = -(-training_examples // config.batch_size)
        return cls(
            steps=config.max_steps or config.epochs * steps_per_epoch,
            eval_every=config.eval_every or steps_per_epoch,
            patience=config.patience,
        )


def train(
    scorer: nn.Module,
    batches_for_epoch: Callable[[int], Iterable[Batch]],
    dev_scores: Callable[[], tuple[float, float]],
    budget: Budget,
    *,
    learning_rate: float,
    weight_decay: float,
    gradient_accumulation: int,
    autocast_dtype: torch.dtype | None = None,
    show_progress: bool = True,
    loss_fn: Loss = cross_entropy_loss,
) -> TrainingOutcome:
    """Train until the budget is spent or dev stops improving; the best-dev weights are kept. Dev is scored
    by (accuracy, then lower loss): on a small dev set accuracy often ties while the model still learns."""
    parameters = [p for p in scorer.parameters() if p.requires_grad]
    optimizer = RowSparseAdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    outcome = TrainingOutcome(optimizer="AdamW, fused")
    evaluations_without_gain, losses, epoch = 0, [], 0
    start = time.perf_counter()
    bar = progress_bar(total=budget.steps, desc="training", unit="step", enabled=show_progress)
    stack = contextlib.ExitStack()
    try:
        # Without weight decay, stepping only the embedding rows a batch touched is exact (layercut.adapt.optim).
        if stack.enter_context(
            sparse_embedding_gradients(scorer.model, enabled=weight_decay == 0, optimizer=optimizer)
        ):
            outcome.optimizer += "; embedding rows stepped once touched (exact without weight decay)"
        best = _snapshot(scorer, optimizer)  # the untrained weights are the last good ones until an evaluation improves
        while outcome.steps < budget.steps and not outcome.diverged:
            epoch += 1
            scorer.train()
            for step_in_epoch, groups in enumerate(batches_for_epoch(epoch), 1):
                labels = torch.cat([group[1] for group in groups])
                teacher = None if groups[0][2] is None else torch.cat([group[2] for group in groups])
                with autocast_region(labels.device, autocast_dtype):
                    logits = scorer.score_together([group[0] for group in groups])
                loss = loss_fn(logits.float(), labels, teacher)
                if not torch.isfinite(loss):
                    outcome.diverged = f"loss became {loss.item()} at epoch {epoch}, step {step_in_epoch}"
                    outcome.stopped_because = outcome.diverged
                    break
                (loss / gradient_accumulation).backward()
                outcome.steps += 1
                losses.append(loss.item())
                bar.update(1)
                last = outcome.steps == budget.steps
                if outcome.steps % gradient_accumulation == 0 or last or outcome.steps % budget.eval_every == 0:
                    optimizer.step()
                    optimizer.zero_grad()
                if outcome.steps % budget.eval_every and not last:
                    continue
                accuracy, dev_loss = dev_scores()
                scorer.train()
                outcome.curve.append(
                    {
                        "step": outcome.steps,
                        "epoch": epoch,
                        "train_loss": sum(losses) / len(losses),
                        "dev_accuracy": accuracy,
                        "dev_loss": dev_loss,
                    }
                )
                losses = []
                if outcome.best_dev_accuracy is None or (accuracy, -dev_loss) > (
                    outcome.best_dev_accuracy,
                    -outcome.best_dev_loss,
                ):
                    outcome.best_dev_accuracy, outcome.best_dev_loss = accuracy, dev_loss
                    outcome.best_epoch, outcome.best_step = epoch, outcome.steps
                    best = _snapshot(scorer, optimizer)
                    evaluations_without_gain = 0
                else:
                    evaluations_without_gain += 1
                bar.set_postfix(epoch=epoch, dev=f"{accuracy:.3f}", best_dev=_fmt(outcome.best_dev_accuracy))
                if budget.patience and evaluations_without_gain >= budget.patience:
                    outcome.stopped_because = f"early stop: no dev gain in {budget.patience} evaluations"
                    break
                if last:
                    break
            if outcome.stopped_because.startswith("early stop"):
                break
    finally:
        stack.close()
        bar.close()
        optimizer.zero_grad()
    _restore(scorer, best, optimizer)
    scorer.eval()
    outcome.seconds = time.perf_counter() - start
    return outcome


def _snapshot(module: nn.Module, optimizer: RowSparseAdamW) -> dict:
    """A copy of the trainable weights only (the frozen ones never change); of a row-sparse embedding, the rows
    stepped so far only (the others are as loaded: a vocabulary-sized copy per improvement is spared)."""
    return {name: optimizer.snapshot(p) for name, p in module.named_parameters() if p.requires_grad}


def _restore(module: nn.Module, snapshot: dict, optimizer: RowSparseAdamW) -> None:
    for name, p in module.named_parameters():
        if name in snapshot:
            optimizer.restore(p, snapshot[name])


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
