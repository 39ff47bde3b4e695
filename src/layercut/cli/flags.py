"""Flags several commands share: loading trust, and the task (a name, or a data file and its columns)."""

from __future__ import annotations

import argparse
import dataclasses

from layercut.model.sources import Trust
from layercut.settings.declare import kind, parse_flag
from layercut.settings.run_config import RunConfig
from layercut.sweep.backends import BACKENDS
from layercut.tasks.options import TaskOptions, task_spec
from layercut.tasks.spec import TaskSpec


_METAVARS = {"int": "N", "float": "X", "str": "TEXT"}


def add_trust_arguments(parser: argparse.ArgumentParser, names=("allow_pickle", "trust_remote_code")) -> None:
    """--allow-pickle and --trust-remote-code, for every command that loads a model (declared with the run settings)."""
    for name in names:
        declared = RunConfig.__dataclass_fields__[name]
        parser.add_argument(*setting_flag(declared)[0], action="store_true", help=declared.metadata["help"])


def setting_flag(declared: dataclasses.Field) -> tuple[list[str], dict]:
    """The names and `add_argument` options of a run setting's flag: `--name-with-dashes` (and its aliases), its type,
    choices and help with its default; a boolean setting is a switch (`--no-name` where it is on by default)."""
    default = declared.default
    flag = "--" + declared.name.replace("_", "-")
    help_text = declared.metadata["help"].replace("%", "%%")
    options = {"dest": declared.name, "default": None}
    if isinstance(default, bool):
        if default:
            flag = "--no-" + declared.name.replace("_", "-")
        options |= {"action": "store_false" if default else "store_true", "help": help_text}
        return [flag, *declared.metadata["aliases"]], options
    if default is not None and "default" not in help_text:
        help_text = f"{help_text} (default: {default})" if help_text else f"default: {default}"
    options |= {"type": parse_flag(declared), "help": help_text or None}
    if declared.metadata["choices"]:
        options["choices"] = declared.metadata["choices"]
    else:
        options["metavar"] = declared.metadata["metavar"] or _METAVARS.get(kind(declared)[0])
    return [flag, *declared.metadata["aliases"]], options


def trust_from_args(args: argparse.Namespace) -> Trust:
    return Trust(pickle=args.allow_pickle, remote_code=args.trust_remote_code)


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", nargs="?", help="a built-in task (`layercut tasks`) or a task YAML file")
    add_task_file_arguments(parser)


def add_task_file_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `TaskOptions`: a task described by its data file, and overrides of any task's template and words."""
    defaults = TaskOptions()
    group = parser.add_argument_group("task from a data file (instead of a task name)")
    group.add_argument("--data", metavar="FILE", help="a CSV, TSV, JSONL or Parquet file of labelled texts")
    group.add_argument("--test-data", metavar="FILE", help="its test set (default: a fixed stratified hold-out)")
    group.add_argument(
        "--text-column",
        default=defaults.text_column,
        metavar="C",
        help=f"column with the text (default: {defaults.text_column})",
    )
    group.add_argument("--text-b-column", metavar="C", help="column with a second text, for pair tasks")
    group.add_argument(
        "--label-column",
        default=defaults.label_column,
        metavar="C",
        help=f"column with the label (default: {defaults.label_column})",
    )
    group.add_argument("--label-names", metavar="N1,N2,...", help="class names in order (default: from the data)")
    parser.add_argument(
        "--template",
        metavar="T",
        help=r"prompt template with {text}, ending before the label word, e.g. 'Review: {text}\nSentiment:'",
    )
    parser.add_argument("--label-words", metavar="W1,W2,...", help="one label word per class, in class order")


def task_options_from_args(args: argparse.Namespace) -> TaskOptions:
    return TaskOptions(
        data=args.data,
        test_data=args.test_data,
        text_column=args.text_column,
        text_b_column=args.text_b_column,
        label_column=args.label_column,
        label_names=args.label_names,
        template=args.template,
        label_words=args.label_words,
    )


def task_from_args(args: argparse.Namespace) -> TaskSpec:
    """The task named by TASK or described by --data and the column flags, with any overrides applied."""
    return task_spec(args.task, task_options_from_args(args))


def add_backend_flags(parser: argparse.ArgumentParser, ray_does: str) -> None:
    """--backend local|ray and --address, for the commands that train many runs (`ray_does`: what ray changes)."""
    parser.add_argument("--backend", choices=BACKENDS, default="local", help=ray_does)
    parser.add_argument("--address", help="the Ray cluster to use (default: start a local Ray instance)")
