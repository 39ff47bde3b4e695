"""Which blocks to keep: the first k (the paper), the last k, an explicit set, or all but a set."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from layercut.errors import LayercutError

_RANGE = re.compile(r"^(\d+)-(\d+)$")


def parse_index_spec(spec: str) -> list[int]:
    """Parse `0-3,28,29` into [0, 1, 2, 3, 28, 29]; 0-based, inclusive ranges, no duplicates."""
    indices: list[int] = []
    for part in str(spec).replace(" ", "").split(","):
        if not part:
            raise LayercutError(f"layer spec '{spec}' has an empty item: write indices and ranges like 0-3,28,29")
        if part.startswith("-") or re.match(r"^-?\d+--", part):
            raise LayercutError(f"layer spec '{spec}' has a negative index '{part}': indices are 0-based and >= 0")
        match = _RANGE.match(part)
        if match:
            start, end = int(match[1]), int(match[2])
            if end < start:
                raise LayercutError(f"layer range '{part}' runs backwards: write it as {end}-{start}")
            indices.extend(range(start, end + 1))
        elif part.isdigit():
            indices.append(int(part))
        else:
            raise LayercutError(
                f"layer spec '{spec}' has a malformed item '{part}': write indices and ranges like 0-3,28,29"
            )
    _check_listed_once(indices, f"layer spec '{spec}'")
    return indices


def _check_listed_once(indices: list[int], what: str) -> None:
    duplicates = sorted({i for i in indices if indices.count(i) > 1})
    if duplicates:
        raise LayercutError(f"{what} names layer(s) {duplicates} more than once: list each layer once")


def format_index_spec(indices: list[int]) -> str:
    """The shortest SPEC for a sorted index list: [0, 1, 2, 5] -> '0-2,5'."""
    parts, start = [], None
    for position, index in enumerate(indices):
        if start is None:
            start = index
        if position + 1 == len(indices) or indices[position + 1] != index + 1:
            parts.append(str(start) if start == index else f"{start}-{index}")
            start = None
    return ",".join(parts)


def check_keep_count(count: int | None, depth: int, rule: str = "", choose: str = "k", least: int = 1) -> int:
    """`count`, when a `depth`-layer model can keep that many layers (by `rule`, e.g. `first`); else an error
    that says what to `choose`. `least` is 0 where keeping no block (embedding, final norm, head) is meant."""
    if count is None or not least <= count <= depth:
        kept = f"{rule} {count}" if rule else f"{count}"
        raise LayercutError(
            f"cannot keep {kept} layers of a {depth}-layer model: choose {choose} from {least} to {depth}"
        )
    return count


@dataclass(frozen=True)
class LayerSelection:
    """A rule for choosing blocks, resolved against a model's depth by `indices()`."""

    mode: str  # "first", "last", "keep", "drop" or "all"
    count: int | None = None
    spec: str | None = None  # keep/drop: indices and ranges as written, e.g. 0-3,28
    layers: tuple[int, ...] | None = None  # keep: the indices themselves (a strategy's choice, `cut_layers`)

    @classmethod
    def keeping(cls, indices: Sequence[int]) -> "LayerSelection":
        """Keep exactly the blocks at `indices` (any order; the model's order is kept)."""
        return cls("keep", layers=tuple(int(i) for i in indices))

    @classmethod
    def parse(cls, text: str) -> "LayerSelection":
        """Parse `first:K`, `last:K`, `all`, `drop:SPEC` or an index SPEC (the `--layers` syntax)."""
        text = str(text).strip()
        if text == "all":
            return cls("all")
        for mode in ("first", "last"):
            if text.startswith(f"{mode}:"):
                value = text.split(":", 1)[1]
                if not value.lstrip("-").isdigit():
                    raise LayercutError(f"'{text}' needs a whole number after '{mode}:', e.g. {mode}:2")
                return cls(mode, count=int(value))
        if text.startswith("drop:"):
            return cls("drop", spec=text.split(":", 1)[1])
        return cls("keep", spec=text)

    def indices(self, depth: int) -> list[int]:
        if self.mode == "all":
            return list(range(depth))
        if self.mode in ("first", "last"):
            # first:0 is the floor of the depth curve: embedding, final norm and head, no block
            check_keep_count(self.count, depth, rule=self.mode, least=0 if self.mode == "first" else 1)
            return list(range(self.count)) if self.mode == "first" else list(range(depth - self.count, depth))
        named = self._listed() if self.layers is not None else parse_index_spec(self.spec or "")
        beyond = [i for i in named if i >= depth]
        if beyond:
            raise LayercutError(
                f"layer index {beyond[0]} is beyond the model's depth ({depth} layers, indices 0-{depth - 1}): fix the spec"
            )
        kept = sorted(named) if self.mode == "keep" else [i for i in range(depth) if i not in set(named)]
        if not kept:
            raise LayercutError(
                f"this selection keeps no layer of the {depth}: keep at least one, or write first:0 to keep none"
            )
        return kept

    def _listed(self) -> list[int]:
        named = list(self.layers)
        negative = [i for i in named if i < 0]
        if negative:
            raise LayercutError(f"layer index {negative[0]} is negative: indices are 0-based and >= 0")
        _check_listed_once(named, f"layers {named}")
        return named

    def describe(self) -> str:
        if self.mode in ("first", "last"):
            return f"{self.mode}:{self.count}"
        if self.layers is not None:
            return format_index_spec(sorted(self.layers))
        return self.mode if self.mode == "all" else f"{'drop:' if self.mode == 'drop' else ''}{self.spec}"
