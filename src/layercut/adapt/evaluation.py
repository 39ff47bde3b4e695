"""Score prompts in batches and turn scores into predictions, probabilities and throughput."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from layercut.adapt.prefix_sharing import common_prefix_length, make_batch
from layercut.adapt.metrics import classification_metrics
from layercut.settings.precision import autocast_region


@dataclass
class Scores:
    predictions: list[int]
    probabilities: list[list[float]]
    seconds: float
    shared_prefix_tokens: int = 0  # tokens every prompt shared, computed once

    @property
    def examples_per_second(self) -> float:
        return len(self.predictions) / self.seconds if self.seconds > 0 else float("inf")

    def accuracy(self, labels: list[int]) -> float:
        return sum(p == y for p, y in zip(self.predictions, labels)) / max(1, len(labels))

    def loss(self, labels: list[int]) -> float:
        """Mean cross-entropy of the true classes."""
        return -sum(math.log(max(row[y], 1e-12)) for row, y in zip(self.probabilities, labels)) / max(1, len(labels))


# Contextual calibration (Zhao et al. 2021): the label-word prior a prompt carries, read from queries
# without content, divided out of every query's probabilities.
CONTENT_FREE_TEXTS = ("N/A", "", "[MASK]")


def calibrated_record(scores: Scores, content_free: Scores, labels: list[int], label_names: list[str]) -> dict:
    """Test metrics after contextual calibration, next to the prior that was divided out."""
    prior = [sum(column) / len(content_free.probabilities) for column in zip(*content_free.probabilities)]
    predictions = [max(range(len(row)), key=lambda c: row[c] / max(prior[c], 1e-12)) for row in scores.probabilities]
    return {
        "method": "contextual calibration (Zhao et al. 2021): probabilities divided by the mean of "
        f"content-free queries {list(CONTENT_FREE_TEXTS)}",
        "content_free_probabilities": [round(p, 5) for p in prior],
        "metrics": classification_metrics(labels, predictions, label_names),
    }


@torch.no_grad()
def score_prompts(
    scorer: nn.Module,
    prompts: list[list[int]],
    pad_id: int,
    batch_size: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    share_prefix: bool = False,
) -> Scores:
    """Class probabilities for token-id prompts, batched by similar length to waste little on padding.
    With `share_prefix`, the tokens all prompts start with are computed once for the whole set."""
    scorer.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    probabilities: list[list[float]] = [[] for _ in prompts]
    start = time.perf_counter()
    prefix_length = common_prefix_length(prompts) if share_prefix else 0
    with autocast_region(device, autocast_dtype):
        cache = None
        if prefix_length:
            cache = scorer.prefix_cache(torch.tensor([prompts[0][:prefix_length]], device=device))
        for begin in range(0, len(order), batch_size):
            chunk = order[begin : begin + batch_size]
            batch = make_batch([prompts[i] for i in chunk], pad_id, prefix_length, device).with_cache(cache)
            logits = scorer(batch)
            for i, row in zip(chunk, torch.softmax(logits.float(), dim=-1).cpu().tolist()):
                probabilities[i] = row
    seconds = time.perf_counter() - start
    predictions = [max(range(len(p)), key=p.__getitem__) for p in probabilities]
    return Scores(predictions, probabilities, seconds, prefix_length)
