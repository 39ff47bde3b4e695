"""Trim the vocabulary of a model folder that layercut saved (`cut`, or `run --save-model`)."""

from __future__ import annotations

from pathlib import Path

from layercut.errors import LayercutError
from layercut.model.checkpoint import save_cut_model
from layercut.model.load import LoadedModel, head_labels, load_model
from layercut.slim.corpus import resolve_corpus, task_corpus
from layercut.slim.trim import TrimmedVocabulary, trim_vocabulary
from layercut.tasks import TaskSpec

# Fields `save_cut_model` computes afresh for the trimmed model; the rest of the record carries over.
_RECOMPUTED = ("parameters_after", "non_embedding_parameters_after", "model_class", "versions")


def trim_saved_model(
    model_dir: str | Path, record: dict, corpus_name: str | None, out: str | Path, overwrite: bool = False
) -> dict:
    """Save `model_dir` trimmed to `corpus_name` (default: the task it was adapted to) into `out`."""
    if "vocabulary" in record:
        raise LayercutError(f"'{model_dir}' is already trimmed: trim the untrimmed model it came from")
    task = record.get("task")
    if corpus_name is None and task is None:
        raise LayercutError(
            f"'{model_dir}' was not adapted to a task: give the texts to keep with --corpus TASK_OR_FILE"
        )
    head = record.get("head", "lm")  # a `cut` folder records no head and no task: it is a causal LM
    num_labels = head_labels(head, len(task["label_names"])) if task else None
    model_only = load_model(str(model_dir), "all", head=head, num_labels=num_labels)
    tokenizer = model_only.tokenizer
    if corpus_name is None:
        corpus = task_corpus(TaskSpec(**{k: v for k, v in task.items() if k != "test_rule"}), tokenizer)
    else:
        corpus = resolve_corpus(corpus_name, tokenizer)
    words = list(corpus.label_words) + (list(task["label_words"]) if task else [])
    model, tokenizer, vocabulary = trim_vocabulary(model_only.model, tokenizer, corpus.texts, words, corpus.description)
    extra = {key: value for key, value in record.items() if key not in _RECOMPUTED}
    extra["vocabulary"] = vocabulary
    if "label_words" in record:  # `predict` scores the recorded token ids: renumber them
        new_id = TrimmedVocabulary(vocabulary["kept_source_ids"], {}).new_id()
        extra["label_words"] = {
            **record["label_words"],
            "token_ids": [[new_id[i] for i in ids] for ids in record["label_words"]["token_ids"]],
        }
    loaded = LoadedModel(
        model, tokenizer, record["source"], record["source_depth"], record["kept_layers"], record["parameters_before"]
    )
    return save_cut_model(loaded, out, overwrite=overwrite, extra_record=extra)
