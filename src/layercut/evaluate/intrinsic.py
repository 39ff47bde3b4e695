"""What cutting does to the language model itself: perplexity, and against the uncut model top-1
next-token agreement and mean KL divergence.

The text is one token stream, scored as in transformers' perplexity guide: windows of `window`
tokens, each `stride` tokens after the last, every token predicted exactly once, with the rest of
its window as context (so up to `window - stride` tokens of history even at a window's start).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from layercut.errors import LayercutError
from layercut.importance.calibration import read_calibration_texts


@dataclass(frozen=True)
class IntrinsicResult:
    source: str
    tokens: int  # tokens predicted (the stream's length minus its first token)
    window: int
    stride: int
    perplexity: float
    seconds: float
    full_perplexity: float | None = None  # the uncut model's, on the same windows
    top1_agreement: float | None = None  # share of positions where both models' most likely next token agree
    kl_divergence: float | None = None  # mean KL(uncut || cut) of the next-token distributions, nats per token

    def to_dict(self) -> dict:
        return asdict(self)


def read_text(source: str) -> str:
    """A text file's non-empty lines (a .jsonl file's "text" fields), or a task's training texts, joined
    by blank lines: the texts calibration reads, as one stream."""
    return "\n\n".join(read_calibration_texts(source, "perplexity"))


@torch.no_grad()
def intrinsic_measures(
    model,
    tokenizer,
    text: str,
    *,
    reference=None,
    window: int = 1024,
    stride: int = 512,
    max_tokens: int | None = None,
    source: str = "",
) -> IntrinsicResult:
    """Perplexity of `model` on `text`; with `reference` (the uncut model) also agreement and KL to it."""
    if not 1 <= stride < window:  # a stride below the window gives every window's first new token some context
        raise LayercutError(f"sliding window {window} with stride {stride}: give a stride from 1 to window - 1")
    if max_tokens is not None and max_tokens < 2:
        raise LayercutError(f"--max-tokens {max_tokens} leaves nothing to predict: give at least 2")
    ids = tokenizer(text)["input_ids"][:max_tokens]
    if len(ids) < 2:
        raise LayercutError(f"the text of '{source}' has fewer than 2 tokens: give more text")
    ids = torch.tensor(ids, device=_device(model))
    start = time.perf_counter()
    nll = full_nll = agree = kl = 0.0
    scored_until = 1  # the first token has no context and is never predicted
    for begin in range(0, len(ids) - 1, stride):
        end = min(begin + window, len(ids))
        count = end - scored_until  # the tokens first predicted in this window
        inputs, targets = ids[begin : end - 1].unsqueeze(0), ids[end - count : end]
        log_probs = _next_token_log_probs(model, inputs, count)
        nll -= log_probs.gather(-1, targets[:, None]).sum().item()
        if reference is not None:
            same = reference is model  # the uncut model compared with itself: nothing to compute twice
            full = (
                log_probs
                if same
                else _next_token_log_probs(reference, inputs.to(_device(reference)), count).to(log_probs.device)
            )
            full_nll -= full.gather(-1, targets[:, None]).sum().item()
            agree += (log_probs.argmax(-1) == full.argmax(-1)).sum().item()
            kl += F.kl_div(log_probs, full, reduction="sum", log_target=True).item()
        scored_until = end
        if end == len(ids):
            break
    tokens = len(ids) - 1
    compared = (
        {}
        if reference is None
        else {
            "full_perplexity": math.exp(full_nll / tokens),
            "top1_agreement": agree / tokens,
            "kl_divergence": kl / tokens,
        }
    )
    return IntrinsicResult(
        source, tokens, window, stride, math.exp(nll / tokens), time.perf_counter() - start, **compared
    )


def _next_token_log_probs(model, inputs: torch.Tensor, count: int) -> torch.Tensor:
    """Log-probabilities over the vocabulary at the last `count` positions (the LM head runs only there)."""
    logits = model(input_ids=inputs, logits_to_keep=count, use_cache=False).logits[0]
    return torch.log_softmax(logits.float(), dim=-1)


def _device(model) -> torch.device:
    return next(model.parameters()).device
