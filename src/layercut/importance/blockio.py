"""A block's hidden states as hooks see them, across families' calling conventions.

Blocks take the hidden state first (positionally, or as `hidden_states=`) and return it alone or
first in a tuple (the rest: attention weights, cache). Hooks on the blocks themselves see the
residual stream exactly; `output_hidden_states` would hand back the last one after the final norm.
"""

from __future__ import annotations

import torch
from torch import nn


def block_input(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def block_output(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def with_hidden(output, hidden: torch.Tensor):
    """`output` with its hidden state replaced, in the same shape of return value."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def body(model: nn.Module) -> nn.Module:
    """The model without its head: hidden-state measures need no logits (the head is a large share of the work)."""
    return getattr(model, "base_model", model)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
