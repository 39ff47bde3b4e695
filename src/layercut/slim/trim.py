"""Vocabulary trimming: keep only the tokens a classifier's texts use, in the model and its tokenizer.

After a deep cut the embedding is most of the model (SmolLM2 at 1 layer: 89%). A classifier that
only sees its task's texts needs few of the 49k rows. Kept are: every token the corpus tokenizes to,
the special and added tokens, the label words' tokens, the base tokens that let any text still
tokenize (the byte-level alphabet, or the <0xNN> byte-fallback tokens), and every token on the merge
path of a kept token. A BPE merge is kept when its two parts and its result are all kept, in its
original rank order. Then every merge that fires on a corpus text is kept and no kept merge can
pre-empt it, so corpus texts tokenize to exactly the same pieces (checked after every trim); other
texts fall back to smaller pieces. The result is a plain tokenizer.json: no custom code to load it.

The trimming libraries do not fit these tokenizers: `vocabtrimmer` 0.0.2 supports only mT5/mBART
and masked LMs and keeps every BPE merge (merges naming removed tokens), and `hf-trim` 3.0.1 trims
sentencepiece models only (it refuses fast tokenizers); `trimbed` is not on PyPI.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from layercut.atomic import temporary_directory
from layercut.errors import LayercutError, reported_if_disk_full
from layercut.slim.corpus import resolve_corpus

_BYTE_FALLBACK_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
_CONFIG_TOKEN_FIELDS = (
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "unk_token_id",
    "decoder_start_token_id",
    "sep_token_id",
)


@dataclass
class TrimmedVocabulary:
    """The tokenizer's tokens to keep, by old id, and why each group was kept."""

    kept_ids: list[int]  # sorted old ids; the new id of kept_ids[i] is i
    reasons: dict[str, int]  # group -> how many tokens it added

    def new_id(self) -> dict[int, int]:
        return {old: new for new, old in enumerate(self.kept_ids)}


def choose_tokens(
    tokenizer, texts: list[str], keep_words: list[str] = (), keep_ids: list[int] = (), vocab_size: int | None = None
) -> TrimmedVocabulary:
    """Which tokens a trimmed tokenizer needs so that `texts` tokenize as before and any text still does;
    ids from `vocab_size` on have no embedding row and are left out."""
    state = _tokenizer_state(tokenizer)
    model = state["model"]
    vocab = _model_vocab(model)
    added = {entry["content"]: entry["id"] for entry in state["added_tokens"]}
    id_to_token = {i: t for t, i in {**vocab, **added}.items()}
    kept: set[str] = set()
    reasons: dict[str, int] = {}

    def keep(group: str, tokens) -> None:
        before = len(kept)
        kept.update(t for t in tokens if t in vocab or t in added)
        reasons[group] = reasons.get(group, 0) + len(kept) - before

    encoded = tokenizer(list(texts), add_special_tokens=True)["input_ids"] if texts else []
    keep("special and added tokens", added)
    keep("base tokens (any text still tokenizes)", _base_tokens(state))
    keep("corpus", (id_to_token[i] for ids in encoded for i in ids))
    words = (
        tokenizer([" " + w.strip() for w in keep_words], add_special_tokens=False)["input_ids"] if keep_words else []
    )
    keep("label words", (id_to_token[i] for ids in words for i in ids))
    keep("model config ids", (id_to_token[i] for i in keep_ids if i in id_to_token))
    if model["type"] == "BPE":
        ranks = {pair: rank for rank, pair in enumerate(_merge_pairs(model))}
        keep("merge paths", [part for token in list(kept) if token in vocab for part in _merge_path(token, ranks)])
    ids = sorted(vocab.get(t, added.get(t)) for t in kept)
    return TrimmedVocabulary([i for i in ids if vocab_size is None or i < vocab_size], reasons)


def trim_tokenizer(tokenizer, chosen: TrimmedVocabulary):
    """A transformers tokenizer over the kept tokens only, renumbered 0..n-1 in the old order."""
    from transformers import AutoTokenizer

    state = _tokenizer_state(tokenizer)
    new_id = chosen.new_id()
    model = state["model"]
    vocab = _model_vocab(model)
    kept_vocab = {token: new_id[i] for token, i in vocab.items() if i in new_id}
    if model["type"] == "BPE":
        model["merges"] = [pair for pair in model["merges"] if _is_kept_merge(pair, kept_vocab)]
    model["vocab"] = kept_vocab
    state["added_tokens"] = [{**entry, "id": new_id[entry["id"]]} for entry in state["added_tokens"]]
    _renumber_post_processor(state.get("post_processor"), new_id)
    # The scratch copy goes to the system's temporary folder: a full disk there is one line naming it.
    with reported_if_disk_full(tempfile.gettempdir()), temporary_directory("layercut-trim") as folder:
        tokenizer.save_pretrained(folder)
        for stale in (
            "vocab.json",
            "merges.txt",
            "vocab.txt",
            "tokenizer.model",
        ):  # slow-tokenizer files would disagree
            Path(folder, stale).unlink(missing_ok=True)
        Path(folder, "tokenizer.json").write_text(json.dumps(state, ensure_ascii=False))
        _renumber_tokenizer_config(Path(folder, "tokenizer_config.json"), new_id)
        trimmed = AutoTokenizer.from_pretrained(folder)
    if trimmed.pad_token_id is None and tokenizer.pad_token is not None:
        trimmed.pad_token = tokenizer.pad_token
    return trimmed


def trim_model(model: nn.Module, chosen: TrimmedVocabulary) -> nn.Module:
    """Keep the kept tokens' rows of the input embedding and LM head (tied stays tied), in place."""
    index = torch.tensor(chosen.kept_ids, dtype=torch.long)
    embedding = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embedding.weight
    new_id = chosen.new_id()
    with torch.no_grad():
        embedding.weight = nn.Parameter(embedding.weight[index].clone(), requires_grad=embedding.weight.requires_grad)
        embedding.num_embeddings = len(index)
        if embedding.padding_idx is not None:
            embedding.padding_idx = new_id.get(embedding.padding_idx)
        if head is not None:
            head.weight = embedding.weight if tied else nn.Parameter(head.weight[index].clone())
            if getattr(head, "bias", None) is not None:
                head.bias = nn.Parameter(head.bias[index].clone())
            head.out_features = len(index)
    for config in {
        id(c): c for c in (model.config, model.config.get_text_config(), model.generation_config) if c
    }.values():
        if hasattr(config, "vocab_size"):
            config.vocab_size = len(index)
        for field in _CONFIG_TOKEN_FIELDS:
            value = getattr(config, field, None)
            if isinstance(value, list):
                setattr(config, field, [new_id[v] for v in value if v in new_id])
            elif isinstance(value, int):
                setattr(config, field, new_id.get(value))
    return model


def config_token_ids(*configs) -> list[int]:
    """Token ids the model's configs name (pad, bos, eos, ...): the trimmed model keeps them."""
    ids = []
    for config in configs:
        for field in _CONFIG_TOKEN_FIELDS:
            value = getattr(config, field, None) if config is not None else None
            ids += value if isinstance(value, list) else [value] if isinstance(value, int) else []
    return ids


def trim_vocabulary(
    model: nn.Module, tokenizer, texts: list[str], keep_words: list[str] = (), corpus: str = ""
) -> tuple:
    """Trim model and tokenizer to `texts` (+ label words); returns (model, tokenizer, record).

    Raises if any corpus text tokenizes differently afterwards: the guarantee is checked, not assumed.
    """
    source_size = model.get_input_embeddings().weight.shape[0]
    chosen = choose_tokens(
        tokenizer, texts, keep_words, config_token_ids(model.config, model.generation_config), vocab_size=source_size
    )
    trimmed_tokenizer = trim_tokenizer(tokenizer, chosen)
    check_same_pieces(tokenizer, trimmed_tokenizer, chosen, texts)
    trim_model(model, chosen)
    record = {
        "corpus": corpus,
        "corpus_texts": len(texts),
        "source_vocab_size": source_size,
        "vocab_size": len(chosen.kept_ids),
        "kept_by_reason": chosen.reasons,
        "kept_source_ids": chosen.kept_ids,
    }
    return model, trimmed_tokenizer, record


def trim_loaded(loaded, corpus_name: str) -> tuple:
    """A cut model (LoadedModel) trimmed to a task's or text file's vocabulary, and the trim's record."""
    corpus = resolve_corpus(corpus_name, loaded.tokenizer)
    model, tokenizer, record = trim_vocabulary(
        loaded.model, loaded.tokenizer, corpus.texts, corpus.label_words, corpus.description
    )
    return dataclasses.replace(loaded, model=model, tokenizer=tokenizer), record


def check_same_pieces(tokenizer, trimmed, chosen: TrimmedVocabulary, texts: list[str]) -> None:
    if not texts:
        return
    new_id = chosen.new_id()
    before = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    after = trimmed(list(texts), add_special_tokens=True)["input_ids"]
    for text, old, new in zip(texts, before, after):
        if [new_id.get(i) for i in old] != new:
            raise LayercutError(
                f"vocabulary trimming changed how {text[:60]!r} tokenizes; this is a layercut bug: "
                "please report it, and cut without --trim-vocab meanwhile"
            )


def _tokenizer_state(tokenizer) -> dict:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise LayercutError(
            f"{type(tokenizer).__name__} is a slow (Python) tokenizer: vocabulary trimming needs a fast "
            "(tokenizers-JSON) tokenizer; save the model with a tokenizer.json, or cut without --trim-vocab"
        )
    state = json.loads(backend.to_str())
    model = state["model"]
    if model["type"] not in ("BPE", "WordLevel"):
        raise LayercutError(
            f"vocabulary trimming supports BPE and word-level tokenizers, not {model['type']}: cut without --trim-vocab"
        )
    if model["type"] == "BPE" and (model.get("continuing_subword_prefix") or model.get("end_of_word_suffix")):
        raise LayercutError(
            "vocabulary trimming supports BPE without subword prefixes or word suffixes: cut without --trim-vocab"
        )
    return state


def _model_vocab(model: dict) -> dict[str, int]:
    return dict(model["vocab"])


def _base_tokens(state: dict) -> list[str]:
    """Tokens that let any text tokenize: the byte-level alphabet, the byte-fallback tokens, the unknown token."""
    from tokenizers.pre_tokenizers import ByteLevel

    tokens = [state["model"].get("unk_token")] if state["model"].get("unk_token") else []
    if _uses_byte_level(state.get("pre_tokenizer")):
        tokens += ByteLevel.alphabet()
    if state["model"].get("byte_fallback"):
        tokens += _BYTE_FALLBACK_TOKENS
    return tokens


def _uses_byte_level(component: dict | None) -> bool:
    if not component:
        return False
    if component.get("type") == "ByteLevel":
        return True
    return any(_uses_byte_level(part) for part in component.get("pretokenizers", []))


def _merge_pairs(model: dict) -> list[tuple[str, str]]:
    # tokenizers writes merges as ["a", "b"] (new) or "a b" (old)
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]


def _is_kept_merge(merge, kept_vocab: dict) -> bool:
    a, b = merge if isinstance(merge, list) else merge.split(" ", 1)
    return a in kept_vocab and b in kept_vocab and a + b in kept_vocab


def _merge_path(token: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """Every symbol BPE builds on its way from `token`'s characters to `token` (merges by rank)."""
    symbols, built = list(token), []
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        pairs = [(rank, i) for rank, i in pairs if rank is not None]
        if not pairs:
            break
        _, i = min(pairs)
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
        built.append(symbols[i])
    return built + list(token)


def _renumber_post_processor(processor: dict | None, new_id: dict[int, int]) -> None:
    """Special-token ids baked into the post-processor (BOS/EOS templates) follow the renumbering."""
    if not processor:
        return
    for part in processor.get("processors", []):
        _renumber_post_processor(part, new_id)
    for entry in processor.get("special_tokens", {}).values():
        entry["ids"] = [new_id[i] for i in entry["ids"]]
    for name in ("sep", "cls"):  # Roberta/Bert processing: [token, id]
        if name in processor:
            processor[name][1] = new_id[processor[name][1]]


def _renumber_tokenizer_config(path: Path, new_id: dict[int, int]) -> None:
    if not path.is_file():
        return
    config = json.loads(path.read_text())
    if "added_tokens_decoder" in config:
        config["added_tokens_decoder"] = {
            str(new_id[int(i)]): entry for i, entry in config["added_tokens_decoder"].items()
        }
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False))


def folder_size(folder: str | Path) -> int:
    """Bytes of the files in a saved model folder."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
