"""Classification metrics computed locally (evaluate.load would download metric code)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from layercut.run_files import Section


@dataclass(frozen=True, kw_only=True)
class Metrics(Section):
    """A classifier's test metrics (a run's, a bag-of-words fit's): result.json's `metrics`."""

    NAME: ClassVar[str] = "metrics"
    accuracy: float
    macro_f1: float
    per_class_accuracy: dict = field(default_factory=dict)  # class name -> recall
    confusion_matrix: list = field(default_factory=list)  # [true][predicted]
    num_examples: int
    majority_baseline: float | None = None  # always predicting the most frequent true class; older records lack it


def classification_metrics(labels: list[int], predictions: list[int], label_names: list[str]) -> dict:
    """Accuracy, macro-F1, per-class accuracy (recall) and the confusion matrix [true][predicted]."""
    n = len(label_names)
    confusion = [[0] * n for _ in range(n)]
    for truth, guess in zip(labels, predictions):
        confusion[truth][guess] += 1
    per_class, f1s = {}, []
    for c, name in enumerate(label_names):
        true_positive = confusion[c][c]
        support = sum(confusion[c])
        predicted = sum(row[c] for row in confusion)
        recall = true_positive / support if support else 0.0
        precision = true_positive / predicted if predicted else 0.0
        per_class[name] = recall
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    total = len(labels)
    metrics = Metrics(
        accuracy=sum(confusion[c][c] for c in range(n)) / total if total else 0.0,
        macro_f1=sum(f1s) / n,
        per_class_accuracy=per_class,
        confusion_matrix=confusion,
        num_examples=total,
        # Always predicting the most frequent true class: the floor any classifier must clear.
        majority_baseline=max((sum(row) for row in confusion), default=0) / total if total else 0.0,
    )
    return dataclasses.asdict(metrics)
