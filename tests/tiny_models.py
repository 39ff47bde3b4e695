"""Tiny random models, one per supported family, and a tiny word-level tokenizer.

Built from configs in the test, as transformers' own tests do: hidden 32, 4 layers.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>"]
WORDS = (
    "Question Answer Type Review Sentiment Article Topic Text Label : ? . , ! ' "
    "Negative Positive Abbreviation Entity Description Person Location Number World Sports Business Technology "
    "good bad great awful fine boring fun movie film plot actor story what who where when how why many is the a "
    "of in on city river name country year people team game market price company phone computer software win"
).split()
VOCAB_SIZE = 128

_COMMON = dict(vocab_size=VOCAB_SIZE, pad_token_id=0, bos_token_id=2, eos_token_id=3)
_LLAMA_LIKE = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    **_COMMON,
)

# family -> (config class name, kwargs)
FAMILIES: dict[str, tuple[str, dict]] = {
    "gpt2": ("GPT2Config", dict(n_embd=32, n_layer=4, n_head=4, n_positions=256, **_COMMON)),
    "opt": (
        "OPTConfig",
        dict(
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            ffn_dim=64,
            max_position_embeddings=256,
            word_embed_proj_dim=32,
            **_COMMON,
        ),
    ),
    "llama": ("LlamaConfig", dict(tie_word_embeddings=True, **_LLAMA_LIKE)),
    "mistral": ("MistralConfig", dict(sliding_window=None, **_LLAMA_LIKE)),
    "qwen2": ("Qwen2Config", dict(tie_word_embeddings=True, **_LLAMA_LIKE)),
    "gpt_neox": (
        "GPTNeoXConfig",
        dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=4,
            num_attention_heads=4,
            max_position_embeddings=256,
            **_COMMON,
        ),
    ),
    "phi": (
        "PhiConfig",
        dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=4,
            num_attention_heads=4,
            max_position_embeddings=256,
            **_COMMON,
        ),
    ),
    "falcon": ("FalconConfig", dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, **_COMMON)),
    "bloom": ("BloomConfig", dict(hidden_size=32, n_layer=4, n_head=4, **_COMMON)),
    "gptj": ("GPTJConfig", dict(n_embd=32, n_layer=4, n_head=4, rotary_dim=4, n_positions=256, **_COMMON)),
    "gemma": ("GemmaConfig", dict(head_dim=8, **_LLAMA_LIKE)),
    "gemma2": ("Gemma2Config", dict(head_dim=8, **_LLAMA_LIKE)),
    "gemma3": ("Gemma3TextConfig", dict(head_dim=8, sliding_window=16, **_LLAMA_LIKE)),
}


POSITIVE = ["good movie", "great film", "fun story", "fine actor", "great plot", "good fun", "fun film", "great story"]
NEGATIVE = [
    "bad movie",
    "awful film",
    "boring story",
    "bad actor",
    "awful plot",
    "boring film",
    "bad plot",
    "awful story",
]
CALIBRATION_TEXTS = [
    "what is the name of the city on the river ?",
    "good movie , great plot !",
    "the company market price is fine .",
    "who won the game in the year ?",
    "how many people in the country ?",
    "boring film , awful actor .",
]


def write_review_file(path: Path) -> Path:
    """A small two-class JSONL data file in the tiny tokenizer's vocabulary."""
    rows = [
        {"text": f"{t} {extra}", "label": label}
        for label, texts in (("negative", NEGATIVE), ("positive", POSITIVE))
        for t in texts
        for extra in ("!", ".", "the a", "is", "of the")
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def tiny_config(family: str):
    class_name, kwargs = FAMILIES[family]
    return getattr(transformers, class_name)(**kwargs)


def tiny_model(family: str, head: str = "lm", num_labels: int = 2, seed: int = 0):
    config = tiny_config(family)
    torch.manual_seed(seed)
    if head == "cls":
        config.num_labels = num_labels
        return transformers.AutoModelForSequenceClassification.from_config(config).eval()
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + WORDS)}
    assert len(vocab) <= VOCAB_SIZE
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def tiny_model_folder(family: str, folder: Path, seed: int = 0) -> Path:
    """Save a tiny causal LM and the tiny tokenizer as a local Hugging Face model folder."""
    tiny_model(family, seed=seed).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def tiny_bpe_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (SmolLM2's and GPT-2's kind) trained on the tiny words, with merges."""
    from tokenizers import decoders, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    sentences = [" ".join(WORDS[i : i + 7]) for i in range(len(WORDS))] + POSITIVE + NEGATIVE + CALIBRATION_TEXTS
    backend.train_from_iterator(sentences, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
