"""Find a decoder-only model's list of transformer blocks, and keep its bookkeeping consistent.

Every step a cut needs lives here: locating the block list, renumbering `layer_idx` so the KV cache
indexes the right slot, and slicing per-layer config lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from torch import nn

from layercut.errors import LayercutError

# Paths to the block list below `model.base_model`, in the order they are tried:
# Llama/Mistral/Qwen2/Phi/Gemma/GPT-NeoX use `layers`, GPT-2/Falcon/BLOOM/GPT-J use `h`, OPT nests them.
_BLOCK_PATHS = ("layers", "h", "decoder.layers", "blocks")


@dataclass
class BlockList:
    """Where a model keeps its blocks: `getattr(parent, attribute)` is the `nn.ModuleList`."""

    parent: nn.Module
    attribute: str

    @property
    def blocks(self) -> nn.ModuleList:
        return getattr(self.parent, self.attribute)

    def replace(self, kept: Sequence[nn.Module]) -> None:
        setattr(self.parent, self.attribute, nn.ModuleList(kept))


def find_blocks(model: nn.Module) -> BlockList:
    """Locate the block list of any supported decoder-only model (LM or classification head)."""
    base = getattr(model, "base_model", model)
    # A model cut to depth 0 (first:0) has an empty block list; elsewhere an empty list is not the blocks.
    empty_ok = getattr(getattr(model, "config", None), "num_hidden_layers", None) == 0
    for path in _BLOCK_PATHS:
        *parents, last = path.split(".")
        parent = base
        for name in parents:
            parent = getattr(parent, name, None)
        node = getattr(parent, last, None) if parent is not None else None
        if isinstance(node, nn.ModuleList) and (len(node) > 0 or empty_ok):
            return BlockList(parent, last)
    # Fall back on the class names transformers itself treats as indivisible blocks.
    block_classes = set(getattr(model, "_no_split_modules", None) or [])
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, nn.ModuleList) and len(child) and type(child[0]).__name__ in block_classes:
                return BlockList(module, name)
    raise LayercutError(
        f"cannot locate the transformer blocks of {type(model).__name__}: layercut supports models whose "
        "blocks are an nn.ModuleList at base_model.layers, .h or .decoder.layers; open an issue with the model id"
    )


def depth(model: nn.Module) -> int:
    return len(find_blocks(model).blocks)


def renumber_layer_indices(block: nn.Module, new_index: int) -> None:
    """Give every submodule that knows its position the block's new position.

    The KV cache is indexed by `layer_idx`; a stale value makes cached generation fail or,
    worse, read another layer's cache.
    """
    for module in block.modules():
        for attribute in ("layer_idx", "layer_id", "layer_number"):
            value = getattr(module, attribute, None)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(module, attribute, new_index)


def per_layer_config_fields(config, old_depth: int) -> list[str]:
    """Config fields holding one entry per layer (e.g. `layer_types`), found by their length."""
    fields = []
    for name, value in config.to_dict().items():
        if name == "architectures":
            continue
        if isinstance(value, (list, tuple)) and len(value) == old_depth and old_depth > 1:
            fields.append(name)
    return fields


def set_config_depth(config, kept: Sequence[int], old_depth: int) -> None:
    """Make the config describe only the kept blocks (depth and every per-layer list)."""
    for name in per_layer_config_fields(config, old_depth):
        values = getattr(config, name)
        setattr(config, name, type(values)(values[i] for i in kept))
    config.num_hidden_layers = len(kept)


def layer_index_changes_arithmetic(config) -> bool:
    """True when a block's output depends on its index (GPT-2's inverse-layer-index scaling)."""
    return bool(getattr(config, "scale_attn_by_inverse_layer_idx", False))
