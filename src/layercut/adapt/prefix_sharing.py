"""Pay for the query, not the demonstrations: prompts that start with the same tokens share them.

With fixed demonstrations every prompt of a run starts with the same block of tokens. That prefix's
keys and values are computed once (batch 1) and broadcast to the batch; each prompt's own tokens (its
suffix) then run against them, right-padded so that no padding sits between prefix and suffix, with
positions continuing after the prefix. The split is made on the token ids each prompt already has, so
the model sees exactly the tokens of the unshared path. In training a batch is packed into one sequence
that holds the prefix once (PackedPrompts) where the model allows it, else the prefix is computed with
gradients once per batch and broadcast; either way its gradient is summed over the batch, which is the
loss and the gradient of computing every prompt whole.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from transformers.cache_utils import DynamicLayer

from layercut.padding import collate_padded

# Shared (or packed) and whole-prompt scores may differ by float reordering only (fp32).
SHARING_TOLERANCE = 1e-4
# Under bf16 autocast both sides are computed in bf16 (like with like) and compared to a tolerance relative to the
# scores: bf16 keeps 8 significant bits, so two computations of the same scores that differ only in order or in
# batching differ by up to ~1.4% of the largest |score| (SmolLM2-135M on trec, 1, 2 and 30 layers: shared or
# packed vs whole 0.02-0.15, and a prompt alone vs in its padded batch 0.03-0.10, on scores of 11-14; tiny random
# models of all 13 families: up to 0.0018 on scores of 0.13). Allowed: 2^-5 (3.1%) of the largest |score| (taken
# as at least 2^-5); a wrong mask or position moves scores by more (the tiny Gemma 3's sliding window cut by
# packing: 17-40%).
BF16_SHARING_TOLERANCE = 2**-5


def sharing_tolerance(whole: torch.Tensor, autocast_dtype: torch.dtype | None = None) -> float:
    """How far shared or packed scores may lie from the whole-prompt scores `whole`, computed in `autocast_dtype`."""
    if autocast_dtype is None:
        return SHARING_TOLERANCE
    return BF16_SHARING_TOLERANCE * max(2**-5, whole.float().abs().max().item())


@dataclass
class PromptBatch:
    """A batch of token-id prompts ready for a model.

    Unshared: `input_ids` holds whole prompts, left-padded. Shared: every prompt is `prefix_ids`
    followed by its row of `input_ids`, right-padded; `prefix_cache` holds the prefix's keys/values
    when they were computed ahead (evaluation), else they are computed in the forward (training).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prefix_ids: torch.Tensor | None = None  # [1, P]
    prefix_cache: object | None = None

    @property
    def size(self) -> int:
        return self.input_ids.shape[0]

    def with_cache(self, cache) -> "PromptBatch":
        return PromptBatch(self.input_ids, self.attention_mask, self.prefix_ids, cache)


@dataclass
class PackedPrompts:
    """Prompts packed into one sequence (batch 1): the shared prefix once, then each prompt's own tokens. The
    mask lets each prompt's tokens see the prefix up to where the prompt agrees with it, and themselves
    (causally); positions continue from there. Training then multiplies each weight once per step, with no
    padding and no broadcast prefix whose gradients must be summed."""

    input_ids: torch.Tensor  # [1, T]
    attention_mask: torch.Tensor  # [1, 1, T, T], True where a token may attend
    position_ids: torch.Tensor  # [1, T]
    ends: torch.Tensor  # each prompt's last token in the packed sequence

    @property
    def size(self) -> int:
        return self.ends.shape[0]

    def to(self, device) -> "PackedPrompts":
        return PackedPrompts(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


def pack_prompts(prompts: list[list[int]], prefix: list[int], device: torch.device | str = "cpu") -> PackedPrompts:
    """`prompts` after one copy of `prefix`; a prompt that leaves the prefix early (its own demonstration was
    swapped) sees only the part it shares."""
    ids, positions, owners, seen, ends = list(prefix), list(range(len(prefix))), [-1] * len(prefix), [], []
    for index, prompt in enumerate(prompts):
        shared = prefix_overlap([prompt], prefix)
        ids += prompt[shared:]
        positions += range(shared, len(prompt))
        owners += [index] * (len(prompt) - shared)
        seen += [shared] * (len(prompt) - shared)
        ends.append(len(ids) - 1)
    owner, position = torch.tensor(owners), torch.tensor(positions)
    in_prefix = owner == -1
    causal = torch.ones(len(ids), len(ids), dtype=torch.bool).tril()
    within = (owner[:, None] == owner[None, :]) & causal  # the prefix causally, and each prompt's own tokens
    limit = torch.tensor([0] * len(prefix) + seen)  # how many prefix tokens each prompt token sees
    prefix_seen = ~in_prefix[:, None] & in_prefix[None, :] & (position[None, :] < limit[:, None])
    mask = within | prefix_seen
    return PackedPrompts(
        torch.tensor([ids], device=device),
        mask[None, None].to(device),
        position[None].to(device),
        torch.tensor(ends, device=device),
    )


def packing_disagrees(
    whole: torch.Tensor,
    score_packed: Callable[[], torch.Tensor],
    model_name: str,
    autocast_dtype: torch.dtype | None = None,
) -> str | None:
    """Why packed scores cannot stand in for the whole-prompt scores `whole`, or None: the model refuses the
    packed mask, or the scores differ by more than `sharing_tolerance` (both computed in `autocast_dtype`)."""
    try:
        gap = (score_packed().float() - whole.float()).abs().max().item()
    except (ValueError, RuntimeError, TypeError) as error:  # e.g. BLOOM builds ALiBi from a 2-D mask
        return f"{model_name} does not take packed prompts ({type(error).__name__})"
    tolerance = sharing_tolerance(whole, autocast_dtype)
    if not gap <= tolerance:
        return f"packed scores differ from whole-prompt scores by {gap:.2g} in {model_name}" + (
            f" (bf16; allowed {tolerance:.2g})" if autocast_dtype is not None else ""
        )
    return None


def forward_packed(module: nn.Module, packed: PackedPrompts) -> torch.Tensor:
    """`module`'s (a base model's) final hidden state at each packed prompt's last token [prompts, hidden]."""
    mask = packed.attention_mask
    if module.config._attn_implementation != "sdpa":  # eager attention adds the mask to its scores
        dtype = next(module.parameters()).dtype
        mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    inputs = {"input_ids": packed.input_ids, "attention_mask": mask, "use_cache": False}
    if _accepts(type(module), "position_ids"):
        inputs["position_ids"] = packed.position_ids
    return module(**inputs).last_hidden_state[0, packed.ends]


def common_prefix_length(prompts: list[list[int]]) -> int:
    """How many leading tokens all prompts share, leaving every prompt at least its last token."""
    if not prompts:
        return 0
    shortest = min(len(p) for p in prompts)
    first = prompts[0]
    length = 0
    while length < shortest - 1 and all(p[length] == first[length] for p in prompts):
        length += 1
    return length


def make_batch(
    prompts: list[list[int]], pad_id: int, prefix_length: int = 0, device: torch.device | str = "cpu"
) -> PromptBatch:
    """Collate prompts; with `prefix_length` > 0 their first `prefix_length` tokens (equal in all) are shared."""
    if prefix_length <= 0:
        ids, mask = collate_padded(prompts, pad_id, left=True)
        return PromptBatch(ids.to(device), mask.to(device))
    prefix = torch.tensor([prompts[0][:prefix_length]], dtype=torch.long, device=device)
    ids, mask = collate_padded([p[prefix_length:] for p in prompts], pad_id, left=False)
    return PromptBatch(ids.to(device), mask.to(device), prefix)


def group_by_prefix(prompts: list[list[int]], prefix: list[int]) -> list[list[int]]:
    """Indices of the prompts that start with `prefix` (and go on after it), then of the others: the
    first group shares the whole prefix. (A training example that is itself a fixed demonstration gets
    another demonstration, so its prompt starts with the run's prefix only up to that demonstration.)"""
    starts = [i for i, p in enumerate(prompts) if len(p) > len(prefix) and p[: len(prefix)] == prefix]
    taken = set(starts)
    others = [i for i in range(len(prompts)) if i not in taken]
    return [group for group in (starts, others) if group]


def prefix_overlap(prompts: list[list[int]], prefix: list[int]) -> int:
    """How many of `prefix`'s leading tokens every prompt starts with, leaving each prompt a token of its own."""
    limit = min([len(prefix)] + [len(p) - 1 for p in prompts])
    length = 0
    while length < limit and all(p[length] == prefix[length] for p in prompts):
        length += 1
    return length


def compute_prefix_cache(module: nn.Module, prefix_ids: torch.Tensor, start=None):
    """The prefix's keys/values (batch 1), through `module`'s base model (no LM head on the prefix); after
    the learned virtual tokens of prefix tuning when `start` (their batch-1 cache) is given."""
    module = module.base_model
    inputs = {"input_ids": prefix_ids, "use_cache": True}
    if start is not None:
        inputs[_cache_name(type(module))] = start
    inputs["attention_mask"] = torch.ones(
        1, _cached(start) + prefix_ids.shape[1], dtype=torch.long, device=prefix_ids.device
    )
    if _accepts(type(module), "position_ids"):
        inputs["position_ids"] = torch.arange(prefix_ids.shape[1], device=prefix_ids.device)[None]
    output = module(**inputs)
    return getattr(output, _cache_name(type(module)))


def forward_prompts(
    module: nn.Module, batch: PromptBatch, virtual: Callable[[], object] | None = None
) -> tuple[object, torch.Tensor]:
    """`module`'s output for every prompt of `batch`, and the attention mask over `module`'s output positions
    (which are the suffix positions when the prefix is shared). `virtual` returns the batch-1 cache of prefix
    tuning's learned tokens, which every prompt then follows (positions of real tokens still start at 0)."""
    start = virtual() if virtual is not None else None
    if batch.prefix_ids is None:
        if start is None:
            return module(**_unshared_inputs(module, batch.input_ids, batch.attention_mask)), batch.attention_mask
        return _after_cache(module, batch, start, _real_positions(batch.attention_mask)), batch.attention_mask
    cache = (
        batch.prefix_cache if batch.prefix_cache is not None else compute_prefix_cache(module, batch.prefix_ids, start)
    )
    positions = batch.prefix_ids.shape[1] + torch.arange(batch.input_ids.shape[1], device=batch.input_ids.device)
    return _after_cache(module, batch, cache, positions[None].expand(batch.size, -1)), batch.attention_mask


def _after_cache(module: nn.Module, batch: PromptBatch, cache, positions: torch.Tensor):
    """`module` on the batch's rows, each after the batch-1 `cache` (broadcast to the batch)."""
    ones = torch.ones(batch.size, _cached(cache), dtype=batch.attention_mask.dtype, device=batch.input_ids.device)
    inputs = {
        "input_ids": batch.input_ids,
        "attention_mask": torch.cat([ones, batch.attention_mask], 1),
        "use_cache": True,
        _cache_name(type(module)): broadcast_cache(cache, batch.size),
    }
    if _accepts(type(module), "position_ids"):
        inputs["position_ids"] = positions
    return module(**inputs)


def reuse_prefix_cache(
    batches: list[PromptBatch], compute_cache: Callable[[torch.Tensor], object]
) -> list[PromptBatch]:
    """`batches` with one prefix cache computed for all: the longest prefix's, of which every shorter prefix that
    begins it reads the first positions (causal attention: they do not depend on what follows). Training uses
    this for a step's batch of prompts with the run's whole prefix and the few whose own demonstration was
    swapped, which share the prefix up to the swap."""
    shared = [b for b in batches if b.prefix_ids is not None and b.prefix_cache is None]
    if len(shared) < 2:
        return batches
    longest = max(shared, key=lambda b: b.prefix_ids.shape[1]).prefix_ids
    cache = compute_cache(longest)
    virtual = _cached(cache) - longest.shape[1]  # prefix tuning's learned tokens come first
    reused = []
    for batch in batches:
        length = None if batch.prefix_ids is None else batch.prefix_ids.shape[1]
        part = None
        if batch.prefix_cache is None and length is not None and torch.equal(batch.prefix_ids, longest[:, :length]):
            part = truncated_cache(cache, virtual + length)
        reused.append(batch if part is None else batch.with_cache(part))
    return reused


def truncated_cache(cache, length: int):
    """The first `length` positions of `cache`, or None unless every layer is a full-attention one (a sliding
    window's cache may have dropped positions)."""
    if length == _cached(cache):
        return cache
    if not all(type(layer) is DynamicLayer for layer in cache.layers):
        return None
    return _copy_with(cache, lambda tensor: tensor[..., :length, :])


def _cached(cache) -> int:
    return 0 if cache is None else cache.get_seq_length()


def broadcast_cache(cache, batch_size: int):
    """A batch-1 cache's keys/values as views broadcast to `batch_size`."""
    return _copy_with(cache, lambda tensor: tensor.expand(batch_size, *tensor.shape[1:]))


def _copy_with(cache, view: Callable[[torch.Tensor], torch.Tensor]):
    """A fresh copy of `cache` whose layers hold `view` of their keys and values: the forward appends to the
    copy, never to the prefix's own tensors."""
    fresh = copy.copy(cache)
    fresh.layers = [copy.copy(layer) for layer in cache.layers]
    for layer in fresh.layers:
        if layer.is_initialized:
            layer.keys, layer.values = view(layer.keys), view(layer.values)
    return fresh


def active_dropout(model: nn.Module) -> list[str]:
    """The model's positive dropout settings. A prefix computed once per batch in training would share one
    dropout mask across the batch, which the whole-prompt path does not: training then does not share."""
    found = sorted(
        {
            f"{name}={value}"
            for name, value in vars(model.config).items()
            if ("dropout" in name or "pdrop" in name) and isinstance(value, float) and value > 0
        }
    )
    found += sorted({f"{type(m).__name__}(p={m.p})" for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0})
    return found


def _unshared_inputs(module: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
    """Forward arguments under which left padding does not change a prompt's states."""
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    if _accepts(type(module), "position_ids"):  # BLOOM does not (ALiBi reads the mask)
        inputs["position_ids"] = _real_positions(attention_mask)
    return inputs


def _real_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count real tokens only, so a left-padded prompt sees the positions it has unpadded."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@functools.lru_cache(maxsize=None)
def _accepts(module_class: type, name: str) -> bool:
    return name in inspect.signature(module_class.forward).parameters


def _cache_name(module_class: type) -> str:
    """transformers 5 calls the KV cache `cache`; 4.x called it `past_key_values`."""
    return "cache" if _accepts(module_class, "cache") else "past_key_values"
