"""Cut blocks out of a model in memory, or load only the blocks you keep."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch
from safetensors import SafetensorError
from torch import nn

from layercut.errors import LayercutError, reported_as
from layercut.model.blocks import (
    find_blocks,
    layer_index_changes_arithmetic,
    renumber_layer_indices,
    set_config_depth,
)
from layercut.model.layers import LayerSelection
from layercut.model.size import count_config_parameters
from layercut.model.sources import (
    Trust,
    check_model_source,
    has_tokenizer,
    files_unreadable,
    load_config,
    load_tokenizer,
)


def cut_layers(model: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep only the blocks at `keep` (0-based, any order given, model order kept), in place.

    The four steps a cut needs (model/blocks.py): new block list, renumbered `layer_idx`, config depth,
    sliced per-layer config lists. Returns the same model for chaining.
    """
    block_list = find_blocks(model)
    old_depth = len(block_list.blocks)
    kept = LayerSelection.keeping(keep).indices(old_depth) if len(keep) else []  # [] is depth 0 (first:0)
    if kept and (kept != list(range(kept[0], kept[0] + len(kept))) or kept[0] != 0):
        if layer_index_changes_arithmetic(model.config):
            warnings.warn(
                "this GPT-2 config scales attention by the inverse layer index: after renumbering, the kept "
                "blocks compute with their new indices, so the cut model differs from the same blocks in place",
                stacklevel=2,
            )
    blocks = [block_list.blocks[i] for i in kept]
    for new_index, block in enumerate(blocks):
        renumber_layer_indices(block, new_index)
    block_list.replace(blocks)
    set_config_depth(model.config, kept, old_depth)
    return model


@dataclass
class LoadedModel:
    """A (possibly cut) model with the facts every later step records."""

    model: nn.Module
    tokenizer: object
    model_id: str
    source_depth: int
    kept: list[int]
    source_parameters: int
    extras: dict = field(default_factory=dict)
    trust: Trust = field(default_factory=Trust)  # what loading was allowed to do, recorded with any output


def load_model(
    model_id: str,
    layers: str | LayerSelection = "all",
    *,
    head: str = "lm",
    num_labels: int | None = None,
    dtype: torch.dtype = torch.float32,
    trust: Trust = Trust(),
    need_tokenizer: bool = True,
) -> LoadedModel:
    """Load `model_id` keeping only the selected blocks.

    Keep-first-k (and `all`) builds only the kept blocks at load time, so the dropped blocks are
    never allocated; any other selection loads the whole model and cuts it.
    `head` is "lm" (causal LM) or "cls" (sequence classification, `num_labels` classes).
    `trust` allows pickle weights or the model's own code; a folder without tokenizer files loads
    with `tokenizer=None` unless `need_tokenizer`.
    """
    selection = layers if isinstance(layers, LayerSelection) else LayerSelection.parse(layers)
    source = check_model_source(model_id, trust)
    config = load_config(model_id, trust)
    source_depth = config.num_hidden_layers
    kept = selection.indices(source_depth)
    source_parameters = count_config_parameters(config)
    tokenizer = load_tokenizer(model_id, trust) if need_tokenizer or has_tokenizer(source) else None

    load_time_cut = kept == list(range(len(kept)))
    if load_time_cut:
        set_config_depth(config, kept, source_depth)
    if head == "cls":
        if not num_labels or num_labels < 2:
            raise LayercutError("a classification head needs num_labels >= 2: give the task's number of classes")
        config.num_labels = num_labels
        if tokenizer is not None:
            config.pad_token_id = tokenizer.pad_token_id
    model_class = auto_class(head)
    # Dropped blocks are reported as unexpected weights (and a new head as missing): that is the point.
    with warnings.catch_warnings(), _transformers_quiet():
        warnings.simplefilter("ignore")
        with files_unreadable(model_id, source, "load the weights", "copy or save the model again"):
            with reported_as(
                f"cannot load the weights of '{model_id}'",
                "they are damaged or incomplete: copy or save the model again",
                SafetensorError,
                ValueError,
                RuntimeError,
                EOFError,
            ):
                model = model_class.from_pretrained(
                    source.location, config=config, dtype=dtype, **trust.weight_options()
                )
    if not load_time_cut:
        cut_layers(model, kept)
    model.eval()
    return LoadedModel(model, tokenizer, model_id, source_depth, kept, source_parameters, trust=trust)


@contextlib.contextmanager
def _transformers_quiet():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def head_labels(head: str, classes: int) -> int | None:
    """The `num_labels` a model is loaded with: the task's classes for a classification head, none for the LM."""
    return classes if head == "cls" else None


def auto_class(head: str):
    """The transformers Auto class a head loads: the causal LM (label words) or a sequence classifier."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if head == "lm":
        return AutoModelForCausalLM
    if head == "cls":
        return AutoModelForSequenceClassification
    raise LayercutError(f"unknown head '{head}': use 'lm' (label words through the LM head) or 'cls'")
