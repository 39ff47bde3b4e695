"""The untrained (ICL) label-word scores of every first-k depth from one forward pass.

The first k blocks of a keep-first-k model are exactly the first k blocks of the full model, so a
k-layer run's scores are the hidden state after block k, through the final norm and the label
words' rows of the LM head. One pass of the deepest model, with a hook after each profiled block,
gives them all. Prompts, batching and scoring follow a separate `--method icl --layers first:k`
run (same prompt builder, same batches by length, `restricted_lm_logits`), so the predictions are
the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from layercut.adapt.prefix_sharing import common_prefix_length, compute_prefix_cache, forward_prompts, make_batch
from layercut.adapt.evaluation import Scores
from layercut.adapt.metrics import classification_metrics
from layercut.adapt.scorers import at_last_real_token, restricted_lm_logits
from layercut.errors import LayercutError
from layercut.errors import setting as named
from layercut.model.blocks import find_blocks
from layercut.model.layers import LayerSelection
from layercut.model.sources import load_config
from layercut.settings.run_config import RunConfig
from layercut.run.pipeline import resolve_device, run_precision
from layercut.settings.precision import Precision, autocast_region
from layercut.run.prepare import prepare_run

# Where a family keeps what follows its blocks, below `model.base_model` (OPT nests it in `decoder`).
_FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm")


@dataclass
class DepthProfile:
    config: RunConfig  # the profiled run's settings, at the deepest depth
    depths: list[int]
    source_depth: int
    labels: list[int]
    label_names: list[str]
    scores: dict[int, Scores]  # per depth, in test-split order
    seconds: float  # the one pass, all depths together
    precision: Precision | None = None  # what the pass computed in (as a run would: checked on the deepest model)

    def metrics(self, depth: int) -> dict:
        return classification_metrics(self.labels, self.scores[depth].predictions, self.label_names)


def one_pass_problem(config: RunConfig) -> str | None:
    """Why the one-pass profile cannot give this run's scores; None when it can."""
    if config.method != "icl" or config.head != "lm":
        icl, lm = named("method", "icl"), named("head", "lm")
        return f"only untrained runs scored through the LM head ({icl}, {lm}) share one pass"
    if config.label_word_policy != "first":
        return (
            f"whole-word scoring ({named('label_word_policy', 'full')}) extends every prompt per word: profile with "
            "'first'"
        )
    if config.demos == "similar":
        return "'similar' demonstrations are chosen with the cut model's own embeddings, so prompts differ by depth"
    if config.keep_strategy is not None:
        return "layers chosen by a measure are not the first k"
    return None


def first_k_depth(config: RunConfig) -> int | None:
    """k when the run keeps exactly the first k blocks (first:k, all, 0-(k-1)); else None."""
    kept = LayerSelection.parse(config.layers).indices(load_config(config.model).num_hidden_layers)
    return len(kept) if kept == list(range(len(kept))) else None


def profile_depths(config: RunConfig, depths: list[int] | None = None) -> DepthProfile:
    """Score the test split at every depth in `depths` (default 1..all) in one forward pass."""
    problem = one_pass_problem(config)
    if problem:
        raise LayercutError(f"cannot profile depths in one pass: {problem}")
    source_depth = load_config(config.model).num_hidden_layers
    depths = sorted(set(depths or range(1, source_depth + 1)))
    if depths[0] < 1 or depths[-1] > source_depth:
        raise LayercutError(f"depths must lie in 1..{source_depth} for '{config.model}': got {depths[0]}..{depths[-1]}")
    config = dataclasses.replace(config, layers=f"first:{depths[-1]}")
    device = resolve_device(config.device)
    setup = prepare_run(config, device)
    prompts = setup.encode_all(setup.splits.test)
    # As a separate run decides: the precision (bf16 unless the model misbehaves in it), and sharing the
    # demonstrations' prefix when that gives the whole-prompt scores in that precision.
    precision = setup.check_precision(run_precision(config, device), prompts)
    prefix_length = common_prefix_length(prompts) if setup.decide_sharing(prompts, precision.autocast).evaluation else 0
    start = time.perf_counter()
    probabilities = score_depths(
        setup.loaded.model,
        prompts,
        setup.label_words.first_ids,
        depths,
        setup.tokenizer.pad_token_id,
        config.eval_batch_size,
        device,
        precision.autocast,
        prefix_length,
    )
    seconds = time.perf_counter() - start
    scores = {
        k: Scores([max(range(len(p)), key=p.__getitem__) for p in rows], rows, seconds, prefix_length)
        for k, rows in probabilities.items()
    }
    return DepthProfile(
        config,
        depths,
        source_depth,
        [e.label for e in setup.splits.test],
        list(setup.spec.label_names),
        scores,
        seconds,
        precision,
    )


@torch.no_grad()
def score_depths(
    model: nn.Module,
    prompts: list[list[int]],
    token_ids: list[int],
    depths: list[int],
    pad_id: int,
    batch_size: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    prefix_length: int = 0,
) -> dict[int, list[list[float]]]:
    """Class probabilities per depth, batched as `score_prompts` batches (by length, the shared prefix
    computed once) so the numbers match. The first k blocks' part of the prefix cache is the k-layer model's."""
    model.eval()
    token_ids = torch.tensor(token_ids, device=device)
    final = final_transform(model)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    probabilities: dict[int, list[list[float]]] = {k: [[] for _ in prompts] for k in depths}
    with autocast_region(device, autocast_dtype):
        cache = None
        if prefix_length:
            cache = compute_prefix_cache(model, torch.tensor([prompts[0][:prefix_length]], device=device))
        with _block_outputs(model, depths) as outputs:
            for begin in range(0, len(order), batch_size):
                chunk = order[begin : begin + batch_size]
                batch = make_batch([prompts[i] for i in chunk], pad_id, prefix_length, device).with_cache(cache)
                _, mask = forward_prompts(model.base_model, batch)
                for k in depths:
                    hidden = at_last_real_token(final(outputs[k]), mask)
                    logits = restricted_lm_logits(model, hidden, token_ids)
                    for i, row in zip(chunk, torch.softmax(logits.float(), dim=-1).cpu().tolist()):
                        probabilities[k][i] = row
    return probabilities


def final_transform(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """What the base model applies after its last block: the final norm (and OPT's output projection)."""
    base = model.base_model
    owner = getattr(base, "decoder", base)
    names = [name for name in _FINAL_NORM_NAMES if hasattr(owner, name)]
    if not names:
        raise LayercutError(
            f"cannot find the final norm of {type(model).__name__} for a one-pass profile: "
            "run the depths separately (layercut run --method icl --layers first:K)"
        )
    steps = [m for m in (getattr(owner, names[0]), getattr(owner, "project_out", None)) if m is not None]

    def apply(hidden: torch.Tensor) -> torch.Tensor:
        for step in steps:
            hidden = step(hidden)
        return hidden

    return apply


@contextlib.contextmanager
def _block_outputs(model: nn.Module, depths: list[int]):
    """A dict filled at every forward with the hidden state after block k, for each k in `depths`."""
    blocks = find_blocks(model).blocks
    outputs: dict[int, torch.Tensor] = {}

    def hook(depth: int):
        def store(module, inputs, output):
            outputs[depth] = output[0] if isinstance(output, tuple) else output

        return store

    handles = [blocks[k - 1].register_forward_hook(hook(k)) for k in depths]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()
