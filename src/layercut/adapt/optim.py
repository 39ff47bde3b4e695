"""AdamW at the cost of the embedding rows a batch touches, with the dense optimizer's exact result.

At 1-2 kept layers the tied embedding (49,152 x 576 for SmolLM2) is nine tenths of the trainable
weights: a dense AdamW step over it, and its dense gradient, cost more than the blocks' forward and
backward. A batch touches only its own tokens' rows (and the label words' rows of a tied LM head).
Under AdamW without weight decay, a row whose gradient has been zero at every step so far has zero
moments, so its update is exactly zero: stepping only the rows ever touched gives the dense
optimizer's weights. Embedding gradients are made sparse for this (`sparse_embedding_gradients`);
weight decay, which moves every row at every step, keeps the dense path. Dense gradients go through
torch's fused AdamW kernel, the same kernel the touched rows use.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch
from torch import nn
from torch.optim.adamw import adamw


class RowSparseAdamW:
    """AdamW (torch's fused kernel) whose sparse-gradient parameters step only their rows ever touched."""

    def __init__(self, parameters: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.parameters = [p for p in parameters if p.requires_grad]
        self.hyper = dict(lr=lr, beta1=betas[0], beta2=betas[1], weight_decay=weight_decay, eps=eps,
                          amsgrad=False, maximize=False)
        self.state: dict[nn.Parameter, dict] = {}

    def step(self) -> None:
        dense = [p for p in self.parameters if p.grad is not None and not p.grad.is_sparse]
        if dense:
            states = [self._state(p) for p in dense]
            for state in states:
                state["touched"].fill_(True)
            self._adamw(dense, [p.grad for p in dense], states)
        for p in self.parameters:
            if p.grad is not None and p.grad.is_sparse:
                self._sparse_step(p)

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.grad = None

    @torch.no_grad()
    def _sparse_step(self, p: nn.Parameter) -> None:
        if self.hyper["weight_decay"]:
            raise ValueError("row-sparse AdamW is exact only without weight decay: keep embedding gradients dense")
        grad = p.grad.coalesce()
        state = self._state(p)
        state["touched"][grad.indices()[0]] = True
        rows = state["touched"].nonzero().squeeze(1)
        position = torch.empty(p.shape[0], dtype=torch.long, device=p.device)
        position[rows] = torch.arange(len(rows), device=p.device)
        row_grads = torch.zeros((len(rows), *p.shape[1:]), dtype=p.dtype, device=p.device)
        row_grads.index_add_(0, position[grad.indices()[0]], grad.values())
        weights, exp_avg, exp_avg_sq = p.data[rows], state["exp_avg"][rows], state["exp_avg_sq"][rows]
        self._adamw([weights], [row_grads], [{**state, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}])
        p.data[rows], state["exp_avg"][rows], state["exp_avg_sq"][rows] = weights, exp_avg, exp_avg_sq

    def _adamw(self, weights: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict]) -> None:
        with torch.no_grad():
            adamw(weights, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
                  [s["step"] for s in states], fused=_fused_supported(weights[0]), **self.hyper)

    def _state(self, p: nn.Parameter) -> dict:
        if p not in self.state:
            self.state[p] = {
                "step": torch.tensor(0.0, dtype=torch.float32, device=p.device if _fused_supported(p) else "cpu"),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                "touched": torch.zeros(p.shape[0], dtype=torch.bool, device=p.device),
            }
        return self.state[p]


def _fused_supported(tensor: torch.Tensor) -> bool:
    return tensor.device.type in ("cpu", "cuda") and tensor.dtype in (torch.float32, torch.float16, torch.bfloat16)


@contextlib.contextmanager
def sparse_embedding_gradients(model: nn.Module, enabled: bool = True) -> Iterator[bool]:
    """Make the input embedding (and so a tied LM head, see `heads.restricted_lm_logits`) produce sparse
    gradients while training; yields whether it did."""
    embedding = model.get_input_embeddings()
    usable = enabled and isinstance(embedding, nn.Embedding) and embedding.weight.requires_grad
    if not usable:
        yield False
        return
    embedding.sparse = True
    try:
        yield True
    finally:
        embedding.sparse = False
