"""Score prompts in batches and turn scores into predictions, probabilities and throughput."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from layercut.tasks import collate_left_padded


@dataclass
class Scores:
    predictions: list[int]
    probabilities: list[list[float]]
    seconds: float

    @property
    def examples_per_second(self) -> float:
        return len(self.predictions) / self.seconds if self.seconds > 0 else float("inf")


@torch.no_grad()
def score_prompts(
    scorer: nn.Module,
    prompts: list[list[int]],
    pad_id: int,
    batch_size: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> Scores:
    """Class probabilities for token-id prompts, batched by similar length to waste little on padding."""
    scorer.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    probabilities: list[list[float]] = [[] for _ in prompts]
    start = time.perf_counter()
    for begin in range(0, len(order), batch_size):
        chunk = order[begin:begin + batch_size]
        input_ids, attention_mask = collate_left_padded([prompts[i] for i in chunk], pad_id)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = scorer(input_ids.to(device), attention_mask.to(device))
        for i, row in zip(chunk, torch.softmax(logits.float(), dim=-1).cpu().tolist()):
            probabilities[i] = row
    seconds = time.perf_counter() - start
    predictions = [max(range(len(p)), key=p.__getitem__) for p in probabilities]
    return Scores(predictions, probabilities, seconds)
