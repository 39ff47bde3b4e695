"""Text embeddings for choosing similar demonstrations: the model's own, or sentence-transformers'."""

from __future__ import annotations

import torch

from layercut.errors import LayercutError
from layercut.errors import setting as named
from layercut.padding import collate_padded

SENTENCE_TRANSFORMER = "sentence-transformers/all-MiniLM-L6-v2"


def mean_pooled_embedder(model, tokenizer, batch_size: int = 16, max_length: int = 512):
    """texts -> [n, hidden] tensor: the mean of a Hugging Face model's last hidden states over real tokens.

    Works for any causal LM (and its classification variant): `base_model` is the decoder body,
    which returns hidden states without computing vocabulary logits.
    """
    body = getattr(model, "base_model", model)

    @torch.no_grad()
    def embed(texts: list[str]) -> torch.Tensor:
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()  # no dropout in the embedding
        vectors = []
        try:
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(
                    texts[start : start + batch_size], add_special_tokens=False, truncation=True, max_length=max_length
                )["input_ids"]
                # Right padding: with causal attention the real tokens never see the pads after them,
                # and absolute position embeddings (GPT-2) start at 0 for every text.
                input_ids, mask = (tensor.to(device) for tensor in collate_padded(batch, 0, left=False))
                output = body(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
                hidden = getattr(output, "last_hidden_state", None)
                hidden = output.hidden_states[-1] if hidden is None else hidden
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                vectors.append(((hidden * weights).sum(1) / weights.sum(1).clamp(min=1)).float().cpu())
        finally:
            model.train(was_training)
        return torch.cat(vectors)

    return embed


def sentence_transformer_embedder(name: str = SENTENCE_TRANSFORMER):
    """texts -> embeddings from a sentence-transformers model (LM-BFF chose demonstrations with SBERT)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise LayercutError(
            f"{named('demos', 'similar')} needs embeddings: pass the model's own (mean_pooled_embedder) "
            "or run `pip install sentence-transformers`"
        ) from None
    try:
        encoder = SentenceTransformer(name)
    except OSError as error:
        raise LayercutError(
            f"cannot load sentence-transformers model '{name}' ({error}); use the model's own embeddings"
        ) from None
    return lambda texts: encoder.encode(texts, convert_to_tensor=True)
