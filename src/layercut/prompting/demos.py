"""Which training examples serve as a query's demonstrations: one per class, in label order.

Policies:
- `fixed` (the paper): drawn once per seed, the same for every query, in training and at test.
- `resample` (LM-BFF): drawn anew for every query, every epoch.
- `similar` (LM-BFF's filtered demonstrations): per class the training example whose embedding
  is closest (cosine) to the query's.
- `none`: no demonstrations.
A query never serves as its own demonstration (compared by uid); under `fixed` the query then
gets its class's second draw instead.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Callable

from layercut.errors import LayercutError
from layercut.errors import setting as named
from layercut.settings.run_config import DEMO_POLICIES
from layercut.tasks.spec import Example

if TYPE_CHECKING:
    import torch

Embedder = Callable[[list[str]], "torch.Tensor"]  # torch is imported where used: the CLI imports this module


class DemoSelector:
    def __init__(self, policy: str, pool: list[Example], num_classes: int, seed: int, embed: Embedder | None = None):
        if policy not in DEMO_POLICIES:
            raise LayercutError(f"unknown demonstration policy '{policy}'; use one of {', '.join(DEMO_POLICIES)}")
        self.policy = policy
        self.seed = seed
        self.pool = list(pool)
        self.by_class = [[e for e in self.pool if e.label == c] for c in range(num_classes)]
        if policy != "none" and not all(self.by_class):
            missing = [c for c, members in enumerate(self.by_class) if not members]
            raise LayercutError(
                f"demonstrations need a training example of every class; classes {missing} have none: "
                f"use {named('demos', 'none')}"
            )
        if policy == "fixed":
            rng = random.Random(f"demos|{seed}")
            self._fixed = [rng.sample(members, min(2, len(members))) for members in self.by_class]
        if policy == "similar":
            if embed is None:
                from layercut.prompting.embed import sentence_transformer_embedder  # torch: only for `similar`

                embed = sentence_transformer_embedder()
            self._embed = embed
            self._pool_vectors: torch.Tensor | None = None
            self._query_vectors: dict[str, torch.Tensor] = {}
            self._position = {e.uid: i for i, e in enumerate(self.pool)}
            import torch

            self._members = [
                torch.tensor([i for i, e in enumerate(self.pool) if e.label == c]) for c in range(num_classes)
            ]

    def for_query(self, query: Example, epoch: int = 0, index: int = 0) -> list[Example]:
        """The demonstrations for `query`; `epoch` and `index` (its position in the epoch) key `resample`'s draw."""
        if self.policy == "none":
            return []
        if self.policy == "fixed":
            return [self._others(query, drawn, c)[0] for c, drawn in enumerate(self._fixed)]
        if self.policy == "resample":
            rng = random.Random(f"demos|{self.seed}|{epoch}|{index}|{query.uid}")
            return [rng.choice(self._others(query, members, c)) for c, members in enumerate(self.by_class)]
        return self._most_similar(query)

    def prepare(self, queries: list[Example]) -> None:
        """Embed many queries in batches ahead of `for_query` (`similar` only; a no-op otherwise)."""
        if self.policy == "similar":
            todo = [q for q in queries if q.uid not in self._query_vectors]
            if todo:
                self._query_vectors.update(zip((q.uid for q in todo), self._vectors(todo)))

    def _most_similar(self, query: Example) -> list[Example]:
        if self._pool_vectors is None:
            self._pool_vectors = self._vectors(self.pool)
        self.prepare([query])
        scores = self._pool_vectors @ self._query_vectors[query.uid]
        if query.uid in self._position:
            scores[self._position[query.uid]] = float("-inf")
        chosen = []
        for c, members in enumerate(self._members):
            best = members[scores[members].argmax()]
            if scores[best] == float("-inf"):
                raise _only_the_query(c)
            chosen.append(self.pool[best])
        return chosen

    def _vectors(self, examples: list[Example]) -> torch.Tensor:
        import torch

        texts = [e.text if e.text_b is None else f"{e.text} {e.text_b}" for e in examples]
        return torch.nn.functional.normalize(self._embed(texts).float().cpu(), dim=-1)

    def _others(self, query: Example, members: list[Example], label: int) -> list[Example]:
        others = [e for e in members if e.uid != query.uid]
        if not others:
            raise _only_the_query(label)
        return others


def _only_the_query(label: int) -> LayercutError:
    return LayercutError(
        f"class {label} has no training example other than the query itself: use {named('shots', 2)} or more, "
        f"or {named('demos', 'none')}"
    )
