"""Label words checked against a tokenizer, and the policy for words that split into several tokens.

Policies:
- `first`: score a class by its word's first token at the query's last position (the paper).
- `full`: score a class by the log-probability of the whole word, token by token.
Either way the first tokens must differ across classes, or two classes would share a logit.
"""

from __future__ import annotations

from dataclasses import dataclass

from layercut.errors import LayercutError
from layercut.settings.run_config import LABEL_WORD_POLICIES


@dataclass(frozen=True)
class LabelWords:
    words: tuple[str, ...]
    token_ids: list[list[int]]  # each word tokenized with its leading space
    policy: str
    multi_token: list[str]  # words that split into several tokens

    @property
    def first_ids(self) -> list[int]:
        return [ids[0] for ids in self.token_ids]

    @property
    def max_length(self) -> int:
        return max(len(ids) for ids in self.token_ids)

    def describe(self, tokenizer) -> str:
        """One line per word: its tokens, and what the policy scores."""
        lines = [f"label words (policy '{self.policy}'):"]
        for word, ids in zip(self.words, self.token_ids):
            pieces = " + ".join(repr(tokenizer.decode([i])) for i in ids)
            scored = "first token" if self.policy == "first" else "whole word"
            note = f"  [{len(ids)} tokens, scored by {scored}]" if len(ids) > 1 else ""
            lines.append(f"  {word:<16} {ids}  {pieces}{note}")
        return "\n".join(lines)


def resolve_label_words(tokenizer, words, policy: str = "first") -> LabelWords:
    """Tokenize each word with a leading space; reject duplicates and first-token clashes."""
    if policy not in LABEL_WORD_POLICIES:
        raise LayercutError(f"unknown label-word policy '{policy}'; use one of {', '.join(LABEL_WORD_POLICIES)}")
    words = tuple(words)
    repeated = sorted({w for w in words if words.count(w) > 1})
    if repeated:
        raise LayercutError(f"duplicate label words ({', '.join(repeated)}); give each class its own word")
    token_ids = [tokenizer(" " + word.strip(), add_special_tokens=False)["input_ids"] for word in words]
    for word, ids in zip(words, token_ids):
        if not ids:
            raise LayercutError(f"label word {word!r} tokenizes to nothing; choose a visible word")
    by_first: dict[int, list[str]] = {}
    for word, ids in zip(words, token_ids):
        by_first.setdefault(ids[0], []).append(word)
    clashes = {first: group for first, group in by_first.items() if len(group) > 1}
    if clashes:
        described = "; ".join(
            f"{', '.join(group)} all start with {tokenizer.decode([first])!r}" for first, group in clashes.items()
        )
        raise LayercutError(f"label words share a first token ({described}); choose words that start differently")
    multi = [word for word, ids in zip(words, token_ids) if len(ids) > 1]
    return LabelWords(words, token_ids, policy, multi)
