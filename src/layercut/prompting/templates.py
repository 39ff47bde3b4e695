"""Render demonstrations and a query into one prompt that fits the model's context, and batch prompts.

A demonstration is the template filled with its text followed by " " + its label word; the query
is the filled template, ending right before its label word; they are joined by the task's
separator. When the prompt is too long only texts are cut, each keeping its beginning: first the
demonstrations' texts, all down to one common token cap (so the longest lose tokens first), then
the query's text. The template, the demonstrations' label words and the query's ending are never
cut, and room is left for the longest label word: len(encode(...)) + that word's length <= max_length.
"""

from __future__ import annotations

import dataclasses
import re

from layercut.errors import LayercutError
from layercut.errors import setting as named
from layercut.tasks.spec import Example, TaskSpec

_FIELD = re.compile(r"\{(text|text_a|text_b)\}")


class PromptBuilder:
    def __init__(self, spec: TaskSpec, tokenizer, max_length: int):
        self.spec = spec
        self.tokenizer = tokenizer
        self.max_length = max_length
        # Some tokenizers (Llama's, SmolLM2's under transformers 4.x) add a BOS themselves: keep it.
        self.bos = [tokenizer.bos_token_id] if adds_bos(tokenizer) else []
        longest_word = max(len(self._ids(" " + word)) for word in spec.label_words)
        self.budget = max_length - len(self.bos) - longest_word

    def render(self, query: Example, demos: list[Example]) -> str:
        """The prompt text (after any truncation), ending right before the query's label word."""
        return self._fit(query, demos)[0]

    def encode(self, query: Example, demos: list[Example]) -> list[int]:
        """Token ids of the prompt, BOS included when the tokenizer adds one by default."""
        return self.bos + self._fit(query, demos)[1]

    def _fit(self, query: Example, demos: list[Example]) -> tuple[str, list[int]]:
        demos = list(demos)
        while True:  # each round removes at least one character, so this ends
            text = self._join(query, demos)
            ids = self._ids(text)
            excess = len(ids) - self.budget
            if excess <= 0:
                return text, ids
            if any(d.text or d.text_b for d in demos):
                demos = self._cut(demos, excess)
            elif query.text or query.text_b:
                query = self._cut([query], excess)[0]
            else:
                raise LayercutError(
                    f"task '{self.spec.name}': the template and demonstrations' label words alone need "
                    f"{len(ids) + self.max_length - self.budget} tokens, more than max_length {self.max_length}; "
                    f"raise {named('max_length')} or use fewer demonstrations ({named('demos', 'none')})"
                )

    def _join(self, query: Example, demos: list[Example]) -> str:
        words = self.spec.label_words
        parts = [f"{self._fill(d)} {words[d.label]}" for d in demos] + [self._fill(query)]
        return self.spec.separator.join(parts)

    def _fill(self, example: Example) -> str:
        return fill_template(self.spec.template, example)

    def _cut(self, examples: list[Example], excess: int) -> list[Example]:
        """Cut the examples' texts to one common token cap that removes about `excess` tokens in all."""
        fields = [
            (i, name, getattr(e, name))
            for i, e in enumerate(examples)
            for name in ("text", "text_b")
            if getattr(e, name)
        ]
        ids = [self._ids(value) for _, _, value in fields]
        cap = _water_level([len(x) for x in ids], sum(len(x) for x in ids) - excess)
        cut = [dataclasses.asdict(e) for e in examples]
        for (i, name, value), field_ids in zip(fields, ids):
            if len(field_ids) > cap:
                kept = len(self.tokenizer.decode(field_ids[:cap]).rstrip("\ufffd"))
                # A strict prefix of the text: a decode that is not shorter still loses one character.
                cut[i][name] = value[: min(kept, len(value) - 1)]
        return [Example(**values) for values in cut]

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def fill_template(template: str, example: Example) -> str:
    """The template with the example's text(s) put in, ending right before the label word."""
    values = {"text": example.text, "text_a": example.text, "text_b": example.text_b or ""}
    return _FIELD.sub(lambda match: values[match.group(1)], template)


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts a BOS token in front by default."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("x")["input_ids"][:1] == [bos]


def _water_level(lengths: list[int], target: int) -> int:
    """The largest cap L with sum(min(length, L)) <= target (0 when even that is too much)."""
    low, high = 0, max(lengths)
    while low < high:
        mid = (low + high + 1) // 2
        if sum(min(length, mid) for length in lengths) <= target:
            low = mid
        else:
            high = mid - 1
    return low
