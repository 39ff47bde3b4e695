"""Fine-tune only the last N kept blocks plus the head (Lu et al. 2024, "Reassessing Layer Pruning in LLMs").

What trains under `last:N`: the last N blocks, every weight outside the blocks that is not an embedding
table (the final norm, an untied LM head, a classification head), and the LM head's weight itself, which
a tied model shares with the input embedding. `freeze_embeddings` keeps every embedding table (input and
position) as loaded; a tied LM head is then frozen with it, and the record says so.
"""

from __future__ import annotations

from torch import nn

from layercut.errors import LayercutError
from layercut.errors import setting as named
from layercut.model.blocks import find_blocks
from layercut.settings.run_config import train_layers_count


def set_trainable(model: nn.Module, train_layers: str, freeze_embeddings: bool) -> dict:
    """Set `requires_grad` on every weight of `model` and return what trains, for result.json."""
    blocks = find_blocks(model).blocks
    count = train_layers_count(train_layers)
    if count is not None and count > len(blocks):
        raise LayercutError(
            f"{named('train_layers', train_layers)} asks for more blocks than the {len(blocks)} kept: "
            f"choose N from 1 to {len(blocks)}, or all"
        )
    trained_blocks = list(range(len(blocks))) if count is None else list(range(len(blocks) - count, len(blocks)))
    in_blocks = {id(p) for p in blocks.parameters()}
    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    model.requires_grad_(False)
    for p in model.parameters():  # outside the blocks: the final norm and the heads
        if id(p) not in in_blocks and id(p) not in tables:
            p.requires_grad_(True)
    for index in trained_blocks:
        blocks[index].requires_grad_(True)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not freeze_embeddings:
        if count is None:  # full fine-tuning: every embedding table too
            for m in model.modules():
                if isinstance(m, nn.Embedding):
                    m.weight.requires_grad_(True)
        elif head is not None:
            head.weight.requires_grad_(True)  # a tied input embedding trains with it
    return {
        "train_layers": train_layers,
        "trained_blocks": trained_blocks,
        "input_embedding": "trained" if model.get_input_embeddings().weight.requires_grad else "frozen",
        "lm_head": None if head is None else ("trained" if head.weight.requires_grad else "frozen"),
        "lm_head_tied": head is not None and id(head.weight) in tables,
    }
