"""Score prompts in batches and turn scores into predictions, probabilities and throughput."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from layercut.batching import common_prefix_length, make_batch


@dataclass
class Scores:
    predictions: list[int]
    probabilities: list[list[float]]
    seconds: float
    shared_prefix_tokens: int = 0  # tokens every prompt shared, computed once

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
    share_prefix: bool = False,
) -> Scores:
    """Class probabilities for token-id prompts, batched by similar length to waste little on padding.
    With `share_prefix`, the tokens all prompts start with are computed once for the whole set."""
    scorer.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    probabilities: list[list[float]] = [[] for _ in prompts]
    start = time.perf_counter()
    prefix_length = common_prefix_length(prompts) if share_prefix else 0
    with _autocast(device, autocast_dtype):
        cache = None
        if prefix_length:
            cache = scorer.prefix_cache(torch.tensor([prompts[0][:prefix_length]], device=device))
        for begin in range(0, len(order), batch_size):
            chunk = order[begin:begin + batch_size]
            batch = make_batch([prompts[i] for i in chunk], pad_id, prefix_length, device).with_cache(cache)
            logits = scorer(batch)
            for i, row in zip(chunk, torch.softmax(logits.float(), dim=-1).cpu().tolist()):
                probabilities[i] = row
    seconds = time.perf_counter() - start
    predictions = [max(range(len(p)), key=p.__getitem__) for p in probabilities]
    return Scores(predictions, probabilities, seconds, prefix_length)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
