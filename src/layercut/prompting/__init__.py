"""Prompting a task: templates that turn examples into prompts, label words, and demonstrations
(no torch here: the command line imports this package; embeddings for `--demos similar` live in `embed`)."""

from layercut.prompting.demos import DemoSelector
from layercut.prompting.label_words import LabelWords, resolve_label_words
from layercut.prompting.templates import PromptBuilder

__all__ = ["DemoSelector", "LabelWords", "PromptBuilder", "resolve_label_words"]
