"""Distillation from a teacher's class distribution (Minitron's recipe, on the run's label-word scores).

The teacher is the uncut model prompted exactly as the student (a model spec: alias, folder, Hub id), or a
model saved by an earlier `layercut run --save-model` (its run folder or its model/ folder), scored with the
head it was trained with. Its class probabilities for every training example are computed once, before
training, and looked up by example: training for many epochs never runs the teacher again. An example's
teacher prompt is its first-epoch prompt (demonstrations resampled later do not change its target).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from layercut.adapt.evaluation import score_prompts
from layercut.adapt.scorers import build_scorer
from layercut.errors import LayercutError
from layercut.model.checkpoint import RECORD_NAME, read_record
from layercut.model.load import head_labels, load_model
from layercut.model.sources import check_model_source
from layercut.run_files import RESULT_NAME
from layercut.tasks import Example


@dataclass
class TeacherTargets:
    """The teacher's class probabilities per training example (by uid), and how they were obtained."""

    probabilities: dict[str, torch.Tensor]
    record: dict

    def for_examples(self, examples: list[Example], device: torch.device) -> torch.Tensor:
        return torch.stack([self.probabilities[e.uid] for e in examples]).to(device)


def teacher_folder(source: str) -> tuple[str, dict | None]:
    """Where the teacher's weights are, and the layercut record of a model saved by a run (None otherwise)."""
    path = Path(source).expanduser()
    if (path / RESULT_NAME).is_file():  # a run folder: its saved model
        if not (path / "model" / RECORD_NAME).is_file():
            raise LayercutError(f"the run '{source}' saved no model: rerun it with --save-model, or give a model")
        path = path / "model"
    if (path / RECORD_NAME).is_file():
        record = read_record(path)
        return str(path), record if "head" in record else None
    return source, None


def check_teacher(source: str) -> None:
    """The teacher's files, checked before any model loads (a run loads its student first, a sweep runs others)."""
    location, _ = teacher_folder(source)
    check_model_source(location)


def compute_teacher_targets(
    source: str,
    student,
    prompts: list[list[int]],
    examples: list[Example],
    batch_size: int,
    device: torch.device,
    autocast_dtype,
) -> TeacherTargets:
    """Score `prompts` (the training examples' prompts) with the teacher once. `student` is the run's
    PreparedRun: its tokenizer, label words and task must be the teacher's too."""
    start = time.perf_counter()
    location, saved = teacher_folder(source)
    head = saved["head"] if saved else "lm"
    classes = student.spec.num_classes
    if saved and saved["label_words"]["token_ids"] != student.label_words.token_ids and head == "lm":
        raise LayercutError(
            f"the teacher '{source}' scores other label words than this run: give a teacher "
            "trained on the same task and label words, or the uncut model"
        )
    teacher = load_model(location, "all", head=head, num_labels=head_labels(head, classes))
    if teacher.tokenizer.get_vocab() != student.tokenizer.get_vocab():
        raise LayercutError(
            f"the teacher '{source}' has another tokenizer than the student '{student.config.model}': "
            "distill from a model of the same family and vocabulary"
        )
    scorer = build_scorer(head, teacher.model.to(device), student.label_words, student.tokenizer.pad_token_id).to(
        device
    )
    calls = []
    handle = scorer.register_forward_hook(lambda module, args, output: calls.append(len(output)))
    try:
        scores = score_prompts(scorer, prompts, student.tokenizer.pad_token_id, batch_size, device, autocast_dtype)
    finally:
        handle.remove()
    probabilities = {e.uid: torch.tensor(row) for e, row in zip(examples, scores.probabilities)}
    record = {
        "source": source,
        "head": head,
        "depth": len(teacher.kept),
        "examples_scored": sum(calls),
        "forward_batches": len(calls),
        "train_accuracy": scores.accuracy([e.label for e in examples]),
        "seconds": round(time.perf_counter() - start, 3),
    }
    return TeacherTargets(probabilities, record)


def distillation_loss(weight: float, temperature: float):
    """(1 - weight) * cross-entropy on the labels + weight * T^2 * KL(teacher || student at temperature T)."""

    def loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None) -> torch.Tensor:
        hard = nn.functional.cross_entropy(logits, labels)
        if teacher is None:
            return hard
        # The teacher's probabilities were softmaxed at T = 1; sharpen or soften them to T in log space.
        target = torch.log_softmax(torch.log(teacher.clamp(min=1e-12)) / temperature, dim=-1)
        student = torch.log_softmax(logits / temperature, dim=-1)
        soft = nn.functional.kl_div(student, target, log_target=True, reduction="batchmean") * temperature**2
        return (1 - weight) * hard + weight * soft

    return loss
