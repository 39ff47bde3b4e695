"""How a run setting is declared, and how a value given as text (a flag) or as YAML becomes its type.

One spelling per setting: the field's name is the Python keyword and the experiment file's key, and with dashes the
flag (`learning_rate`, `--learning-rate`); `aliases` keeps older flag spellings working (`--lr`). The flags, their
help and the YAML conversion are all made from these declarations (cli/run.py, sweep/experiment.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import field

from layercut.errors import LayercutError
from layercut.tasks.splits import ALL

# The concerns a run's settings fall into, in the order `layercut run --help` lists them.
GROUPS = {
    "loading": "the model: which one, which blocks, where and in what precision",
    "task": "the task and its splits",
    "prompting": "prompts and demonstrations",
    "adaptation": "the head that scores the classes, and how the model adapts",
    "training": "how long and how fast it trains",
    "lora": "--method lora",
    "prefix": "--method prefix",
    "healing": "repairs of what the cut removed",
    "evaluation": "evaluation",
}
_KINDS = {
    "float": ("a number", "5.0e-5"),
    "int": ("a whole number", "3"),
    "str": ("text", "'text'"),
    "bool": ("true or false", "true"),
}


def setting(
    default,
    group: str,
    help: str = "",
    *,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    aliases: tuple[str, ...] = (),
    flag: bool = True,
    factory=None,
):
    """A RunConfig field. `flag=False`: no flag of its own (the task's data-file flags fill `task_options`)."""
    if group not in GROUPS:
        raise ValueError(f"unknown settings group {group!r}")
    metadata = {"group": group, "help": help, "choices": choices, "metavar": metavar, "aliases": aliases, "flag": flag}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def kind(declared: dataclasses.Field) -> tuple[str, bool]:
    """The field's base type name and whether None is allowed: "int | None" -> ("int", True); "int | str" -> ("int | str", False)."""
    text = str(declared.type)
    optional = text.endswith(" | None")
    return text.removesuffix(" | None"), optional


def parse_flag(declared: dataclasses.Field):
    """The argparse `type` of the field's flag."""
    base, _ = kind(declared)
    return _count_or_text if base == "int | str" else {"int": int, "float": float, "str": str}[base]


def _count_or_text(text: str) -> int | str:
    """--shots K or all; anything else is left to the field's own check."""
    try:
        return int(text)
    except ValueError:
        return text


def coerce(declared: dataclasses.Field, value, where: str):
    """A YAML value as the field's type (YAML 1.1 reads 5e-5, without a dot, as a string)."""
    base, optional = kind(declared)
    if value is None and optional:
        return None
    if base == "bool" and isinstance(value, bool):
        return value
    if base == "int | str" and value == ALL:
        return value
    if not isinstance(value, bool):
        if base == "float" and isinstance(value, (int, float, str)):
            try:
                return float(value)
            except ValueError:
                pass
        elif base.startswith("int") and isinstance(value, int):
            return value
        elif base == "str" and isinstance(value, (str, int, float)):
            return str(value)
    what, example = _KINDS[base.split(" ")[0]]
    raise LayercutError(f"{where}: {declared.name} {value!r} is not {what}: write e.g. {example}")
