"""Tasks: data sources, few-shot splits, prompt templates, label words and demonstrations (no torch here:
the command line imports this package; embeddings for `--demos similar` live in `tasks.embed`).

A task is data (`builtin/*.yaml`, or a user's YAML file or data file), found by `get_task`.
"""

from layercut.tasks.args import add_task_arguments, task_file_option_defaults, task_from_args
from layercut.tasks.demos import DemoSelector
from layercut.tasks.label_words import LabelWords, resolve_label_words
from layercut.tasks.loaders import load_examples
from layercut.tasks.prompts import PromptBuilder
from layercut.tasks.registry import get_task, list_tasks, load_task_yaml, task_from_file
from layercut.tasks.spec import Example, TaskData, TaskSpec
from layercut.tasks.splits import FewShotSplits, make_splits

__all__ = [
    "DemoSelector", "Example", "FewShotSplits", "LabelWords", "PromptBuilder", "TaskData", "TaskSpec",
    "add_task_arguments", "get_task", "list_tasks", "load_examples", "load_task_yaml",
    "make_splits", "resolve_label_words", "task_file_option_defaults", "task_from_args", "task_from_file",
]
