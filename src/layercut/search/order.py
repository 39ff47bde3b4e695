"""Which depths a search probes: doubling (1, 2, 4, ...) until one passes, then bisection between the last depth
that failed and the first that passed. Depth 0 is the embedding alone: the floor nothing fails below."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class DepthOrder:
    """The state of a search over first-k depths of a `depth`-block model; `passes(k)` probes depth k."""

    depth: int
    visited: list[int] = field(default_factory=list)
    last_fail: int = 0  # the deepest depth known to fail (0: none probed yet)
    first_pass: int | None = None  # the shallowest depth known to pass

    def run(self, passes: Callable[[int], bool]) -> int | None:
        """The smallest passing depth below full, or None when none passes. `passes` may raise (a budget spent):
        the state then says what is known and `untried` what is left."""
        k = 1
        while self.first_pass is None and k < self.depth:
            self._probe(k, passes)
            if self.first_pass is None:
                k = min(2 * k, self.depth - 1) if k < self.depth - 1 else self.depth
        while self.first_pass is not None and self.first_pass - self.last_fail > 1:
            self._probe((self.last_fail + self.first_pass) // 2, passes)
        return self.first_pass

    def untried(self) -> range:
        """The depths between what failed and what passed (or full depth) that were not decided."""
        return range(self.last_fail + 1, self.first_pass if self.first_pass is not None else self.depth)

    def _probe(self, k: int, passes: Callable[[int], bool]) -> None:
        self.visited.append(k)
        if passes(k):
            self.first_pass = k
        else:
            self.last_fail = k

    def planned(self) -> list[int]:
        """Every depth the search may probe (the doubling, then at most log2 bisection steps): for --dry-run."""
        doubling, k = [], 1
        while k < self.depth:
            doubling.append(k)
            k = min(2 * k, self.depth - 1) if k < self.depth - 1 else self.depth
        return doubling
