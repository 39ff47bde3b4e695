"""Token sequences as one padded batch for a decoder, and where each row's last real token is."""

from __future__ import annotations

import torch


def collate_padded(sequences: list[list[int]], pad_id: int, left: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask). Left padding puts every prompt's last token at position -1; right
    padding keeps a suffix right after a shared prefix."""
    width = max(1, max(len(ids) for ids in sequences))  # an all-empty batch still has one (padded) position
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        if ids:
            span = slice(width - len(ids), width) if left else slice(0, len(ids))
            input_ids[row, span] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, span] = 1
    return input_ids, attention_mask


def last_real_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Each row's last real token, under left or right padding."""
    return attention_mask.shape[1] - 1 - attention_mask.flip(1).long().argmax(1)
