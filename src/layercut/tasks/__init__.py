"""Tasks: data sources and few-shot splits (no torch here: the command line imports this package;
prompts, label words and demonstrations live in `layercut.prompting`).

A task is data (`builtin/*.yaml`, or a user's YAML file or data file), found by `get_task`.
"""

from layercut.tasks.loaders import load_examples
from layercut.tasks.options import TaskOptions, task_spec
from layercut.tasks.registry import get_task, list_tasks, load_task_yaml, task_from_file
from layercut.tasks.spec import Example, TaskData, TaskSpec
from layercut.tasks.splits import FewShotSplits, make_splits

__all__ = [
    "Example",
    "FewShotSplits",
    "TaskData",
    "TaskOptions",
    "TaskSpec",
    "get_task",
    "list_tasks",
    "load_examples",
    "load_task_yaml",
    "make_splits",
    "task_from_file",
    "task_spec",
]
