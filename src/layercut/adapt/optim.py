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
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import nn
from torch.optim.adamw import adamw


class RowSparseAdamW:
    """AdamW (torch's fused kernel) whose sparse-gradient parameters step only their rows ever touched.

    A row-sparse parameter keeps AdamW's moments for its touched rows only, in the order they were first
    touched (`RowState`): no moments the size of the vocabulary, and each step gathers and scatters the weights
    of the touched rows once. The rows' weights as they were before their first step are kept too, so that a
    snapshot of such a parameter (`snapshot`, for the best-dev weights) holds its touched rows only."""

    def __init__(
        self,
        parameters: Iterable[nn.Parameter],
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.parameters = [p for p in parameters if p.requires_grad]
        self.hyper = dict(
            lr=lr, beta1=betas[0], beta2=betas[1], weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False
        )
        self.state: dict[nn.Parameter, dict] = {}  # dense parameters' AdamW state
        self.rows: dict[nn.Parameter, RowState] = {}  # row-sparse parameters' state
        self.tracked: set[nn.Parameter] = set()  # parameters snapshotted by rows (`track_rows`)
        self.originals: dict[nn.Parameter, torch.Tensor] = {}  # a tracked parameter gone dense: its weights before

    def track_rows(self, p: nn.Parameter) -> None:
        """Keep what `snapshot` needs to copy only `p`'s touched rows (its gradients are expected sparse)."""
        self.tracked.add(p)

    def step(self) -> None:
        dense = [p for p in self.parameters if p.grad is not None and not p.grad.is_sparse]
        if dense:
            for p in dense:
                if p in self.rows:  # a dense gradient after sparse ones (e.g. a tied head scored in full)
                    self._to_dense(p)
                elif p in self.tracked and p not in self.state:
                    self.originals[p] = p.detach().clone()
            self._adamw(dense, [p.grad for p in dense], [self._state(p) for p in dense])
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
        if p in self.state:
            raise ValueError("a sparse gradient for a parameter already stepped densely")
        grad = p.grad.coalesce()
        if p not in self.rows:
            self.rows[p] = RowState.empty(p)
        state = self.rows[p]
        slots = state.add(p, grad.indices()[0])
        count = state.count
        rows = state.rows[:count]
        weights = p.data[rows]
        row_grads = torch.zeros_like(weights)
        row_grads.index_copy_(0, slots, grad.values().to(weights.dtype))
        self._adamw(
            [weights],
            [row_grads],
            [{"step": state.step, "exp_avg": state.exp_avg[:count], "exp_avg_sq": state.exp_avg_sq[:count]}],
        )
        p.data.index_copy_(0, rows, weights)

    @torch.no_grad()
    def _to_dense(self, p: nn.Parameter) -> None:
        """Full-size moments (zero for rows never touched) and the weights before any step, from the rows'."""
        state = self.rows.pop(p)
        rows = state.rows[: state.count]
        exp_avg, exp_avg_sq = torch.zeros_like(p), torch.zeros_like(p)
        exp_avg[rows], exp_avg_sq[rows] = state.exp_avg[: state.count], state.exp_avg_sq[: state.count]
        self.state[p] = {"step": state.step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        if p in self.tracked:
            original = p.detach().clone()
            original[rows] = state.original[: state.count]
            self.originals[p] = original

    def _adamw(self, weights: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict]) -> None:
        with torch.no_grad():
            adamw(
                weights,
                grads,
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [],
                [s["step"] for s in states],
                fused=_fused_supported(weights[0]),
                **self.hyper,
            )

    def _state(self, p: nn.Parameter) -> dict:
        if p not in self.state:
            self.state[p] = {
                "step": _step_counter(p),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        return self.state[p]

    @torch.no_grad()
    def snapshot(self, p: nn.Parameter):
        """`p`'s weights now, for `restore`: a tracked parameter's touched rows only (the others are as loaded)."""
        if p in self.tracked and p not in self.originals:
            state = self.rows.get(p)
            rows = state.rows[: state.count].clone() if state else torch.zeros(0, dtype=torch.long, device=p.device)
            return RowSnapshot(rows, p.data[rows])
        return p.detach().clone()

    @torch.no_grad()
    def restore(self, p: nn.Parameter, snapshot) -> None:
        if not isinstance(snapshot, RowSnapshot):
            p.copy_(snapshot)
            return
        if p in self.originals:  # stepped densely since: every row as before, then the snapshot's rows
            p.copy_(self.originals[p])
        elif p in self.rows:
            state = self.rows[p]
            later = slice(len(snapshot.rows), state.count)  # rows first touched after the snapshot: as before
            p.data.index_copy_(0, state.rows[later], state.original[later])
        if len(snapshot.rows):
            p.data.index_copy_(0, snapshot.rows, snapshot.weights)


@dataclass
class RowSnapshot:
    rows: torch.Tensor  # the rows touched when it was taken; every other row had its weights as loaded
    weights: torch.Tensor


@dataclass
class RowState:
    """AdamW's state of a row-sparse parameter: its rows ever touched (slot i holds row `rows[i]`, in the order
    first touched), their moments, their weights before their first step; `slot_of` maps a row to its slot (-1:
    never touched). Storage grows by doubling."""

    step: torch.Tensor
    slot_of: torch.Tensor
    rows: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    original: torch.Tensor
    count: int = 0

    @classmethod
    def empty(cls, p: nn.Parameter, capacity: int = 1024) -> "RowState":
        shape = (min(capacity, p.shape[0]), *p.shape[1:])
        return cls(
            _step_counter(p),
            torch.full((p.shape[0],), -1, dtype=torch.long, device=p.device),
            torch.zeros(shape[0], dtype=torch.long, device=p.device),
            *(torch.zeros(shape, dtype=p.dtype, device=p.device) for _ in range(3)),
        )

    def add(self, p: nn.Parameter, rows: torch.Tensor) -> torch.Tensor:
        """Slots of `rows` (distinct), new rows given slots after the others (their weights kept as `original`)."""
        new = rows[self.slot_of[rows] < 0]
        if len(new):
            end = self.count + len(new)
            if end > len(self.rows):
                self._grow(end)
            self.slot_of[new] = torch.arange(self.count, end, device=rows.device)
            self.rows[self.count : end] = new
            self.original[self.count : end] = p.data[new]
            self.count = end
        return self.slot_of[rows]

    def _grow(self, needed: int) -> None:
        capacity = min(max(needed, 2 * len(self.rows)), len(self.slot_of))
        extra = capacity - len(self.rows)
        self.rows = torch.cat([self.rows, self.rows.new_zeros(extra)])
        for name in ("exp_avg", "exp_avg_sq", "original"):
            tensor = getattr(self, name)
            setattr(self, name, torch.cat([tensor, tensor.new_zeros((extra, *tensor.shape[1:]))]))


def _step_counter(p: nn.Parameter) -> torch.Tensor:
    return torch.tensor(0.0, dtype=torch.float32, device=p.device if _fused_supported(p) else "cpu")


def _fused_supported(tensor: torch.Tensor) -> bool:
    return tensor.device.type in ("cpu", "cuda") and tensor.dtype in (torch.float32, torch.float16, torch.bfloat16)


@contextlib.contextmanager
def sparse_embedding_gradients(
    model: nn.Module, enabled: bool = True, optimizer: RowSparseAdamW | None = None
) -> Iterator[bool]:
    """Make the input embedding (and so a tied LM head, see `scorers.restricted_lm_logits`) produce sparse
    gradients while training; yields whether it did. With `optimizer`, its snapshots of the embedding hold the
    touched rows only."""
    embedding = model.get_input_embeddings()
    usable = enabled and isinstance(embedding, nn.Embedding) and embedding.weight.requires_grad
    if not usable:
        yield False
        return
    if optimizer is not None:
        optimizer.track_rows(embedding.weight)
    embedding.sparse = True
    try:
        yield True
    finally:
        embedding.sparse = False
