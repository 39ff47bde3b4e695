"""Class scores from a (cut) decoder: label words through the LM head, or a classification head.

Both read the hidden state of the last real token, found from the attention mask, so they are
correct under left or right padding. The LM head is applied only to the label words' rows at
that one position: a 1-2 layer model otherwise spends most of its time on full-vocabulary logits
at every position.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from layercut.adapt.prefix_sharing import (
    PackedPrompts,
    PromptBatch,
    compute_prefix_cache,
    forward_packed,
    forward_prompts,
    reuse_prefix_cache,
)
from layercut.errors import LayercutError
from layercut.errors import setting as named
from layercut.padding import collate_padded, last_real_index
from layercut.prompting.label_words import LabelWords


def last_token_hidden(model: nn.Module, batch: PromptBatch | PackedPrompts, virtual=None) -> torch.Tensor:
    """Final-norm hidden state [batch, hidden] at each prompt's last real token (after prefix tuning's
    virtual tokens when `virtual` gives their cache)."""
    if isinstance(batch, PackedPrompts):
        return forward_packed(model.base_model, batch)
    output, mask = forward_prompts(model.base_model, batch, virtual)
    return at_last_real_token(output.last_hidden_state, mask)


def at_last_real_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[batch, positions, hidden] -> [batch, hidden] at each prompt's last real token, where every label-word and
    classification score is read (runs, the task ranking and the one-pass profile alike)."""
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last_real_index(attention_mask)]


class Scorer(nn.Module):
    """Class scores [batch, classes] for a PromptBatch; `model` is the (cut) Hugging Face model. With prefix
    tuning (`use_virtual_tokens`), every prompt follows the learned virtual tokens."""

    model: nn.Module
    virtual = None  # () -> the virtual tokens' batch-1 cache
    reads_last_token = True  # scores from the last token's hidden state alone: prompts can be packed

    def use_virtual_tokens(self, prompt_encoder: nn.Module, virtual) -> None:
        self.prompt_encoder = prompt_encoder  # a registered submodule, so that its weights train
        self.virtual = virtual

    def prefix_cache(self, prefix_ids: torch.Tensor):
        """A shared prefix's keys/values, computed once ahead of many batches (evaluation)."""
        return compute_prefix_cache(self.model, prefix_ids, self.virtual() if self.virtual else None)

    def score_together(self, batches: list[PromptBatch]) -> torch.Tensor:
        """Scores of several batches, one after the other, whose shared prefixes are computed once for all."""
        if len(batches) == 1:
            return self(batches[0])
        return torch.cat([self(batch) for batch in reuse_prefix_cache(batches, self.prefix_cache)])


class LabelWordHead(Scorer):
    """Logits of the label words' first tokens (the paper), computed from their LM-head rows only."""

    def __init__(self, model: nn.Module, first_token_ids: list[int]):
        super().__init__()
        self.model = model
        self.register_buffer("token_ids", torch.tensor(first_token_ids, dtype=torch.long), persistent=False)

    def forward(self, batch: PromptBatch) -> torch.Tensor:
        return restricted_lm_logits(self.model, last_token_hidden(self.model, batch, self.virtual), self.token_ids)


def restricted_lm_logits(model: nn.Module, hidden: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """`model.lm_head(hidden)[:, token_ids]` without computing the other rows; in float32 under bf16 autocast
    (logits of magnitude 20 would be rounded to steps of 0.125 in bf16)."""
    head = model.get_output_embeddings()
    # A lookup rather than indexing, so that under sparse embedding gradients (layercut.adapt.optim) the head's
    # rows get a sparse gradient too, and a tied embedding's gradient stays sparse.
    sparse = getattr(model.get_input_embeddings(), "sparse", False)
    with float32_region(hidden):
        logits = hidden.float() @ nn.functional.embedding(token_ids, head.weight, sparse=sparse).float().T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[token_ids].float()
        cap = getattr(model.config, "final_logit_softcapping", None)
        if cap:  # Gemma 2/3 squash their logits; keep that so scores equal the full head's
            logits = torch.tanh(logits / cap) * cap
    return logits


def float32_region(tensor: torch.Tensor):
    """Autocast off (on `tensor`'s device) for what must compute in float32: heads, logits, losses."""
    return torch.autocast(tensor.device.type, enabled=False)


@contextlib.contextmanager
def float32_output_head(model: nn.Module) -> Iterator[None]:
    """The model's own LM head (full-vocabulary logits) computed in float32 while inside, under autocast too."""
    head = model.get_output_embeddings()
    if head is None:
        yield
        return
    original = head.forward

    def forward(hidden, *args, **kwargs):
        with float32_region(hidden):
            return original(hidden.float(), *args, **kwargs)

    head.forward = forward
    try:
        yield
    finally:
        del head.forward  # the class's forward again


class WholeWordHead(Scorer):
    """Log-probability of each whole label word, for words that split into several tokens.

    Every prompt is extended with every word (all but its last token) in one batch; the word's
    tokens are scored under full-vocabulary softmax at their positions only: the LM head (vocabulary x
    hidden) runs at those few positions, not at every position of every extended prompt.
    """

    reads_last_token = False

    def __init__(self, model: nn.Module, word_token_ids: list[list[int]], pad_id: int):
        super().__init__()
        self.model = model
        self.words = word_token_ids
        self.pad_id = pad_id

    def forward(self, batch: PromptBatch) -> torch.Tensor:
        rows = []
        for prompt, mask in zip(batch.input_ids, batch.attention_mask):
            real = prompt[mask.bool()].tolist()
            rows.extend(real + word[:-1] for word in self.words)
        ids, mask = collate_padded(rows, self.pad_id, left=batch.prefix_ids is None)
        extended = PromptBatch(
            ids.to(batch.input_ids.device), mask.to(batch.input_ids.device), batch.prefix_ids, batch.prefix_cache
        )
        output, mask = forward_prompts(self.model.base_model, extended, self.virtual)
        # The last len(word) positions of each row (the prompt's last token, then the word's own tokens but the
        # last) predict the word's tokens.
        owners, positions, targets = [], [], []
        for i, end in enumerate((last_real_index(mask) + 1).tolist()):
            word = self.words[i % len(self.words)]
            owners += [i] * len(word)
            positions += range(end - len(word), end)
            targets += word
        device = output.last_hidden_state.device
        owners, positions, targets = (torch.tensor(values, device=device) for values in (owners, positions, targets))
        log_probs = torch.log_softmax(lm_logits(self.model, output.last_hidden_state[owners, positions]), dim=-1)
        picked = log_probs[torch.arange(len(targets), device=device), targets]
        scores = torch.zeros(len(rows), dtype=picked.dtype, device=device).index_add(0, owners, picked)
        return scores.view(batch.size, len(self.words))


def lm_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The model's full-vocabulary logits for final hidden states `hidden` [..., hidden], as its causal-LM forward
    computes them after the base model (the LM head, Gemma 2/3's softcapping), in float32."""
    with float32_region(hidden):
        logits = model.get_output_embeddings()(hidden.float())
        cap = getattr(model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
    return logits


class ClassificationHead(Scorer):
    """A `*ForSequenceClassification` model's linear head, applied at the last real token."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if not hasattr(model, "score"):
            raise LayercutError(f"{type(model).__name__} has no `score` classification head: use {named('head', 'lm')}")
        self.model = model

    def forward(self, batch: PromptBatch) -> torch.Tensor:
        hidden = last_token_hidden(self.model, batch, self.virtual)
        with float32_region(hidden):
            return self.model.score(hidden.float())


def build_scorer(head: str, model: nn.Module, label_words: LabelWords, pad_id: int) -> Scorer:
    """The scorer of a head: `lm` (label words, by first token or whole word) or `cls`."""
    if head == "cls":
        return ClassificationHead(model)
    if label_words.policy == "full":
        return WholeWordHead(model, label_words.token_ids, pad_id)
    return LabelWordHead(model, label_words.first_ids)
