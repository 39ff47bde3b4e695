"""A run's prompting, built from its settings: label words, prompt builder and demonstrations. Here, not in the run
setup, so that the task-aware layer choice (importance/task.py) builds the same prompts as the run."""

from __future__ import annotations

from torch import nn

from layercut.model.sources import context_length
from layercut.prompting.demos import DemoSelector
from layercut.prompting.embed import mean_pooled_embedder
from layercut.prompting.label_words import LabelWords, resolve_label_words
from layercut.prompting.templates import PromptBuilder
from layercut.settings.run_config import RunConfig
from layercut.tasks import FewShotSplits, TaskSpec


def build_prompting(
    config: RunConfig, spec: TaskSpec, splits: FewShotSplits, model: nn.Module, tokenizer
) -> tuple[LabelWords, PromptBuilder, DemoSelector]:
    """The run's label words, prompt builder and demonstrations (`similar` embeds with `model`)."""
    label_words = resolve_label_words(tokenizer, spec.label_words, config.label_word_policy)
    prompts = PromptBuilder(spec, tokenizer, min(config.max_length, context_length(model.config)))
    embed = mean_pooled_embedder(model, tokenizer) if config.demos == "similar" else None
    demos = DemoSelector(config.demos, splits.train, spec.num_classes, config.seed, embed=embed)
    return label_words, prompts, demos
