"""How a task is described by a data file, and overrides of any task's template and label words.

A run records the options that differ from the defaults as `RunConfig.task_options`; the command
line builds them from its task flags (`layercut.cli.flags`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from layercut.errors import LayercutError
from layercut.tasks.registry import get_task, list_tasks, task_from_file
from layercut.tasks.spec import TaskSpec


@dataclass(frozen=True)
class TaskOptions:
    data: str | None = None  # a CSV, TSV, JSONL or Parquet file of labelled texts
    test_data: str | None = None  # its test set (default: a fixed stratified hold-out)
    text_column: str = "text"
    text_b_column: str | None = None  # a second text, for pair tasks
    label_column: str = "label"
    label_names: str | None = None  # "N1,N2,..." class names in order (default: from the data)
    template: str | None = None  # a literal backslash-n stands for a newline (a shell cannot easily pass one)
    label_words: str | None = None  # "W1,W2,..." one per class, in class order

    @classmethod
    def from_dict(cls, options: dict) -> TaskOptions:
        unknown = sorted(set(options) - set(TASK_OPTION_NAMES))
        if unknown:
            raise LayercutError(f"unknown task option(s) {unknown}; allowed: {', '.join(TASK_OPTION_NAMES)}")
        return cls(**options)

    def changed(self) -> dict:
        """The options that differ from their defaults: what a run records."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}


TASK_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(TaskOptions))


def task_spec(task: str | None, options: TaskOptions) -> TaskSpec:
    """The task named `task` or described by the data file of `options`, with any overrides applied."""
    template = options.template.replace("\\n", "\n") if options.template else None
    words = _split(options.label_words)
    if options.data:
        if task:
            raise LayercutError(f"give either a task ('{task}') or --data FILE, not both")
        return task_from_file(
            options.data,
            options.text_column,
            options.label_column,
            template,
            words,
            text_b_column=options.text_b_column,
            label_names=_split(options.label_names),
            test_path=options.test_data,
        )
    if not task:
        raise LayercutError("name a task (`layercut tasks` lists them) or pass --data FILE with its column names")
    spec = get_task(task)
    overrides = {key: value for key, value in (("template", template), ("label_words", words)) if value is not None}
    return dataclasses.replace(spec, **overrides) if overrides else spec


def check_task_with_data(task: str | None, options: dict) -> None:
    """With --data, the task is the data file's and `task` only names it: it must not name another task."""
    if not options.get("data") or not task:
        return
    if task.endswith((".yaml", ".yml")) or task in {spec.name for spec in list_tasks()}:
        raise LayercutError(
            f"give either the task '{task}' or --data FILE, not both: the run would use the file "
            "but record the task's name"
        )


def _split(value: str | None) -> tuple[str, ...] | None:
    return tuple(part.strip() for part in value.split(",")) if value else None
