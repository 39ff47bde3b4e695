"""A run's task and few-shot splits, from its configuration alone (no model, no torch)."""

from __future__ import annotations

from layercut.errors import LayercutError
from layercut.settings.run_config import RunConfig
from layercut.tasks.loaders import TooFewExamples
from layercut.tasks import FewShotSplits, TaskOptions, TaskSpec, load_examples, make_splits, task_spec


def resolve_task(config: RunConfig) -> TaskSpec:
    """The run's task: a registered name or task YAML, or a data file (which `config.task` only names), with any
    overrides of its template and label words."""
    options = TaskOptions.from_dict(config.task_options)
    return task_spec(None if options.data else config.task, options)


def make_run_splits(config: RunConfig, spec: TaskSpec) -> FewShotSplits:
    try:
        data = load_examples(spec)
    except TooFewExamples as error:  # say what the run needs, not only what the hold-out does
        raise LayercutError(
            f"{error.problem}, let alone to draw K={config.shots} training examples per class: "
            "add examples, or give a separate test file (--test-data)"
        ) from None
    return make_splits(
        data,
        config.shots,
        config.seed,
        dev_shots=config.dev_shots,
        dev_size=config.dev_size,
        test_size=config.test_size,
    )
