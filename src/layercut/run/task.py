"""A run's task and few-shot splits, from its configuration alone (no model, no torch)."""

from __future__ import annotations

from layercut.run.config import RunConfig
from layercut.tasks import FewShotSplits, TaskOptions, TaskSpec, load_examples, make_splits, task_spec


def resolve_task(config: RunConfig) -> TaskSpec:
    """The run's task: a registered name or task YAML, or a data file (which `config.task` only names), with any
    overrides of its template and label words."""
    options = TaskOptions.from_dict(config.task_options)
    return task_spec(None if options.data else config.task, options)


def make_run_splits(config: RunConfig, spec: TaskSpec) -> FewShotSplits:
    return make_splits(load_examples(spec), config.shots, config.seed, dev_shots=config.dev_shots,
                       dev_size=config.dev_size, test_size=config.test_size)
