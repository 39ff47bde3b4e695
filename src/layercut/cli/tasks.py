"""`layercut tasks` and `layercut show-prompt`: thin commands over the tasks API."""

from __future__ import annotations

import argparse
import dataclasses
import json

from layercut.cli.flags import add_task_arguments, add_trust_arguments, task_from_args, trust_from_args
from layercut.errors import LayercutError
from layercut.settings.run_config import DEMO_POLICIES, LABEL_WORD_POLICIES
from layercut.prompting.demos import DemoSelector
from layercut.prompting.label_words import resolve_label_words
from layercut.prompting.templates import PromptBuilder
from layercut.report.text import text_table
from layercut.tasks.loaders import load_examples
from layercut.tasks.registry import list_tasks
from layercut.tasks.spec import TaskSpec
from layercut.tasks.splits import make_splits


def add_commands(subparsers) -> None:
    tasks = subparsers.add_parser("tasks", help="list the built-in tasks", description=list_tasks_command.__doc__)
    tasks.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tasks.set_defaults(func=list_tasks_command)

    show = subparsers.add_parser(
        "show-prompt", help="print one rendered training prompt", description=show_prompt_command.__doc__
    )
    add_task_arguments(show)
    show.add_argument("--model", required=True, help="Hub id, local folder, .gguf file or alias (smollm2-135m)")
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--shots", type=int, default=16, help="training examples per class (default: 16)")
    show.add_argument("--demos", choices=DEMO_POLICIES, default="fixed", help="demonstration policy (default: fixed)")
    show.add_argument(
        "--label-word-policy",
        choices=LABEL_WORD_POLICIES,
        default="first",
        help="how a label word of several tokens is scored (default: first token, as the paper)",
    )
    show.add_argument("--max-length", type=int, help="prompt token limit (default: the model's context length)")
    add_trust_arguments(show)
    show.set_defaults(func=show_prompt_command)


def list_tasks_command(args: argparse.Namespace) -> int:
    """List the built-in tasks with their source, pool sizes, classes and template."""
    specs = list_tasks()
    if args.json:
        print(json.dumps([{**dataclasses.asdict(s), "test_rule": s.test_rule()} for s in specs], indent=2))
        return 0
    rows = [("task", "source", "train", "test", "classes", "template")]
    rows += [
        (
            s.name,
            _source(s),
            str(s.train_pool_size or "?"),
            str(s.test_pool_size or "?"),
            ", ".join(s.label_names),
            json.dumps(s.template),
        )
        for s in specs
    ]
    print(text_table(rows))
    return 0


def show_prompt_command(args: argparse.Namespace) -> int:
    """Print one rendered training prompt (demonstrations and query), its token count and the label-word token ids."""
    from layercut.model.sources import context_length, load_config, load_tokenizer

    if args.max_length is not None and args.max_length < 1:
        raise LayercutError(
            f"--max-length must be at least 1 token, got {args.max_length}: or leave it out for the model's context length"
        )
    spec = task_from_args(args)
    trust = trust_from_args(args)
    tokenizer = load_tokenizer(args.model, trust)
    words = resolve_label_words(tokenizer, spec.label_words, args.label_word_policy)
    splits = make_splits(load_examples(spec), args.shots, args.seed, dev_shots=0)
    embed = _model_embedder(args.model, trust) if args.demos == "similar" else None
    selector = DemoSelector(args.demos, splits.train, spec.num_classes, args.seed, embed=embed)
    query = splits.train[0]
    demos = selector.for_query(query)
    max_length = args.max_length or context_length(load_config(args.model, trust))
    builder = PromptBuilder(spec, tokenizer, max_length)
    ids = builder.encode(query, demos)
    print(
        f"task {spec.name}: seed {args.seed}, K={args.shots} per class, demos '{args.demos}', "
        f"train split {splits.hashes['train']}"
    )
    print(f"--- prompt: {len(ids)} tokens (max_length {max_length}) ---")
    print(builder.render(query, demos))
    print(f"--- answer: {spec.label_words[query.label]!r} (class {spec.label_names[query.label]}) ---")
    print(words.describe(tokenizer))
    return 0


def _source(spec: TaskSpec) -> str:
    if spec.source == "hub":
        return f"hub {spec.path}" + (f" ({spec.config})" if spec.config else "")
    if spec.source == "file":
        return f"file {spec.path}"
    return spec.source


def _model_embedder(model_id: str, trust):
    from layercut.model.load import load_model
    from layercut.prompting.embed import mean_pooled_embedder

    loaded = load_model(model_id, trust=trust)
    return mean_pooled_embedder(loaded.model, loaded.tokenizer)
