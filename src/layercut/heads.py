"""Class scores from a (cut) decoder: label words through the LM head, or a classification head.

Both read the hidden state of the last real token, found from the attention mask, so they are
correct under left or right padding. The LM head is applied only to the label words' rows at
that one position: a 1-2 layer model otherwise spends most of its time on full-vocabulary logits
at every position (hf-layer-cutting.md).
"""

from __future__ import annotations

import functools
import inspect

import torch
from torch import nn

from layercut.errors import LayercutError
from layercut.tasks.prompts import collate_left_padded


def last_token_hidden(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Final-norm hidden state [batch, hidden] at each row's last real token."""
    base = model.base_model
    hidden = base(**padded_inputs(base, input_ids, attention_mask)).last_hidden_state
    last = attention_mask.shape[1] - 1 - attention_mask.flip(1).long().argmax(1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def padded_inputs(module: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
    """Forward arguments under which padding (left or right) does not change a prompt's states."""
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    if _takes_position_ids(type(module)):  # BLOOM does not (ALiBi)
        # Positions count real tokens only, so a padded prompt sees the same positions as unpadded.
        inputs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return inputs


@functools.lru_cache(maxsize=None)
def _takes_position_ids(module_class: type) -> bool:
    return "position_ids" in inspect.signature(module_class.forward).parameters


class LabelWordHead(nn.Module):
    """Logits of the label words' first tokens (the paper), computed from their LM-head rows only."""

    def __init__(self, model: nn.Module, first_token_ids: list[int]):
        super().__init__()
        self.model = model
        self.register_buffer("token_ids", torch.tensor(first_token_ids, dtype=torch.long), persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = last_token_hidden(self.model, input_ids, attention_mask)
        return restricted_lm_logits(self.model, hidden, self.token_ids)


def restricted_lm_logits(model: nn.Module, hidden: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """`model.lm_head(hidden)[:, token_ids]` without computing the other rows."""
    head = model.get_output_embeddings()
    logits = hidden @ head.weight[token_ids].T
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias[token_ids]
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:  # Gemma 2/3 squash their logits; keep that so scores equal the full head's
        logits = torch.tanh(logits / cap) * cap
    return logits


class WholeWordHead(nn.Module):
    """Log-probability of each whole label word, for words that split into several tokens.

    Every prompt is extended with every word (all but its last token) in one batch; the word's
    tokens are scored under full-vocabulary softmax at their positions only.
    """

    def __init__(self, model: nn.Module, word_token_ids: list[list[int]], pad_id: int):
        super().__init__()
        self.model = model
        self.words = word_token_ids
        self.pad_id = pad_id

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        rows = []
        for prompt, mask in zip(input_ids, attention_mask):
            real = prompt[mask.bool()].tolist()
            for word in self.words:
                rows.append(real + word[:-1])
        batch, batch_mask = (t.to(input_ids.device) for t in collate_left_padded(rows, self.pad_id))
        width = batch.shape[1]
        logits = self.model(**padded_inputs(self.model, batch, batch_mask)).logits
        scores = []
        for i in range(len(rows)):
            word = torch.tensor(self.words[i % len(self.words)], device=input_ids.device)
            # Rows are right-aligned: the last len(word) positions (the prompt's last token, then
            # the word's own tokens but the last) predict the word's tokens.
            log_probs = torch.log_softmax(logits[i, width - len(word):], dim=-1)
            scores.append(log_probs[torch.arange(len(word)), word].sum())
        return torch.stack(scores).view(input_ids.shape[0], len(self.words))


class ClassificationHead(nn.Module):
    """A `*ForSequenceClassification` model's linear head, applied at the last real token."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if not hasattr(model, "score"):
            raise LayercutError(f"{type(model).__name__} has no `score` classification head: use --head lm")
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.score(last_token_hidden(self.model, input_ids, attention_mask))
