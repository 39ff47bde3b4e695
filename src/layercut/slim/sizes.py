"""How small a classifier can be: parameters and fp32 weight bytes per depth, with and without trimming."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

from layercut.model.size import count_config_parameters
from layercut.slim.trim import choose_tokens, config_token_ids


@dataclass(frozen=True)
class DepthSize:
    depth: int
    parameters: int
    trimmed_parameters: int | None  # with the vocabulary trimmed to the task's tokens

    @property
    def fp32_bytes(self) -> int:  # what model.safetensors holds, less its few-KB header
        return 4 * self.parameters

    @property
    def trimmed_fp32_bytes(self) -> int | None:
        return None if self.trimmed_parameters is None else 4 * self.trimmed_parameters

    def to_dict(self) -> dict:
        return {**asdict(self), "fp32_bytes": self.fp32_bytes, "trimmed_fp32_bytes": self.trimmed_fp32_bytes}


def depth_sizes(config, depths: list[int], trimmed_vocab_size: int | None = None) -> list[DepthSize]:
    """Counted on the meta device (no weights), so full-size models cost no memory."""
    trimmed = None
    if trimmed_vocab_size is not None:
        trimmed = copy.deepcopy(config)
        trimmed.vocab_size = trimmed_vocab_size
    return [
        DepthSize(
            k, count_config_parameters(config, k), None if trimmed is None else count_config_parameters(trimmed, k)
        )
        for k in depths
    ]


def trimmed_vocab_size(tokenizer, corpus, config) -> int:
    """How many tokens `layercut cut --trim-vocab` keeps for this corpus (no model needed)."""
    return len(
        choose_tokens(
            tokenizer, corpus.texts, corpus.label_words, config_token_ids(config), vocab_size=config.vocab_size
        ).kept_ids
    )
