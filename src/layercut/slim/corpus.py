"""The texts a trimmed vocabulary must keep: a task's prompts, or the lines of a text file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from layercut.errors import LayercutError
from layercut.prompting import PromptBuilder
from layercut.text_files import read_utf8
from layercut.tasks import TaskSpec, get_task, load_examples

# Long enough that no prompt is cut: the corpus is every text whole.
_NO_TRUNCATION = 10**9


@dataclass
class TrimCorpus:
    texts: list[str]
    label_words: list[str]
    description: str


def resolve_corpus(name: str, tokenizer) -> TrimCorpus:
    """A task name or task YAML file (its prompts), or a .txt file (one text per line)."""
    path = Path(name).expanduser()
    if path.suffix == ".txt":
        if not path.is_file():
            raise LayercutError(f"corpus file '{name}' does not exist: check the path")
        lines = [line for line in read_utf8(path, "corpus file").splitlines() if line.strip()]
        if not lines:
            raise LayercutError(f"corpus file '{name}' has no text: give one text per line")
        return TrimCorpus(lines, [], f"text file {path.name} ({len(lines)} lines)")
    return task_corpus(get_task(name), tokenizer)


def task_corpus(spec: TaskSpec, tokenizer) -> TrimCorpus:
    """Every example of the task (train and test pools) as it appears in prompts: once as the query,
    once as a demonstration with its label word, joined by the task's separator."""
    data = load_examples(spec)
    examples = list(data.train) + list(data.test)
    builder = PromptBuilder(spec, tokenizer, _NO_TRUNCATION)
    texts = [builder.render(query, [demo]) for demo, query in zip(examples[-1:] + examples[:-1], examples)]
    return TrimCorpus(texts, list(spec.label_words), f"task {spec.name} ({len(examples)} examples as prompts)")
