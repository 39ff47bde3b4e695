"""The task arguments shared by every command that takes a task (run, sweep, rank, show-prompt)."""

from __future__ import annotations

import argparse
import dataclasses

from layercut.errors import LayercutError
from layercut.tasks.registry import get_task, task_from_file
from layercut.tasks.spec import TaskSpec


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", nargs="?", help="a built-in task (`layercut tasks`) or a task YAML file")
    add_task_file_arguments(parser)


def add_task_file_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that describe a task by its data file, and override any task's template and words."""
    group = parser.add_argument_group("task from a data file (instead of a task name)")
    group.add_argument("--data", metavar="FILE", help="a CSV, TSV, JSONL or Parquet file of labelled texts")
    group.add_argument("--test-data", metavar="FILE", help="its test set (default: a fixed stratified hold-out)")
    group.add_argument("--text-column", default="text", metavar="C", help="column with the text (default: text)")
    group.add_argument("--text-b-column", metavar="C", help="column with a second text, for pair tasks")
    group.add_argument("--label-column", default="label", metavar="C", help="column with the label (default: label)")
    group.add_argument("--label-names", metavar="N1,N2,...", help="class names in order (default: from the data)")
    parser.add_argument("--template", metavar="T",
                        help=r"prompt template with {text}, ending before the label word, e.g. 'Review: {text}\nSentiment:'")
    parser.add_argument("--label-words", metavar="W1,W2,...", help="one label word per class, in class order")


def task_file_option_defaults() -> dict:
    """Each flag of `add_task_file_arguments` and its default, read from the parser itself."""
    parser = argparse.ArgumentParser(add_help=False)
    add_task_file_arguments(parser)
    return vars(parser.parse_args([]))


def task_from_args(args: argparse.Namespace) -> TaskSpec:
    """The task named by TASK or described by --data and the column flags, with any overrides applied."""
    template = _unescape(args.template) if args.template else None
    words = _split(args.label_words)
    if args.data:
        if args.task:
            raise LayercutError(f"give either a task ('{args.task}') or --data FILE, not both")
        return task_from_file(args.data, args.text_column, args.label_column, template, words,
                              text_b_column=args.text_b_column, label_names=_split(args.label_names),
                              test_path=args.test_data)
    if not args.task:
        raise LayercutError("name a task (`layercut tasks` lists them) or pass --data FILE with its column names")
    spec = get_task(args.task)
    overrides = {key: value for key, value in (("template", template), ("label_words", words)) if value is not None}
    return dataclasses.replace(spec, **overrides) if overrides else spec


def check_task_with_data(task: str | None, options: dict) -> None:
    """With --data, the task is the data file's and `task` only names it: it must not name another task."""
    if not options.get("data") or not task:
        return
    from layercut.tasks.registry import list_tasks

    if task.endswith((".yaml", ".yml")) or task in {spec.name for spec in list_tasks()}:
        raise LayercutError(f"give either the task '{task}' or --data FILE, not both: the run would use the file "
                            "but record the task's name")


def _split(value: str | None) -> tuple[str, ...] | None:
    return tuple(part.strip() for part in value.split(",")) if value else None


def _unescape(template: str) -> str:
    """A shell cannot easily pass a newline: accept a literal backslash-n in --template."""
    return template.replace("\\n", "\n")
