"""Find tasks: the built-in YAML files shipped in the package, a user's YAML file, or a data file.

As in lm-evaluation-harness, a task is data: one YAML file whose keys are `TaskSpec`'s fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from pathlib import Path

import yaml

from layercut.errors import LayercutError
from layercut.tasks.spec import TaskSpec
from layercut.tasks.tables import label_names_from, read_data_file, require_columns
from layercut.text_files import read_utf8

BUILTIN_DIR = Path(__file__).parent / "builtin"
_FIELDS = {f.name for f in dataclasses.fields(TaskSpec)}
_REQUIRED = {"name", "source", "label_names", "label_words", "template"}
_FILE_DEFAULTED = {"label_names", "label_words", "template"}  # file tasks can take these from the data


def list_tasks() -> list[TaskSpec]:
    """The built-in tasks: offline ones first, then the Hub ones."""
    return sorted(_builtin().values(), key=lambda spec: (spec.source == "hub", spec.name))


def get_task(name: str) -> TaskSpec:
    """A built-in task by name, or a user task from a path to its YAML file."""
    if name in _builtin():
        return _builtin()[name]
    if name.endswith((".yaml", ".yml")):
        return load_task_yaml(name)
    close = difflib.get_close_matches(name, list(_builtin()), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise LayercutError(
        f"unknown task '{name}'; {hint}`layercut tasks` lists the built-in tasks (or give a task YAML file or --data FILE)"
    )


def load_task_yaml(path: str | Path) -> TaskSpec:
    """A task from a YAML file; a relative data `path`/`test_path` is relative to the YAML file."""
    path = Path(path).expanduser()
    try:
        fields = yaml.safe_load(read_utf8(path, "task file"))
    except (OSError, yaml.YAMLError) as error:
        raise LayercutError(
            f"cannot read task file '{path}': {str(error).splitlines()[0]}; check the path and YAML syntax"
        ) from None
    if not isinstance(fields, dict):
        raise LayercutError(
            f"task file '{path}' is not a YAML mapping of TaskSpec fields: see the built-in tasks' YAML files"
        )
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(_FIELDS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise LayercutError(f"task file '{path}': unknown key(s) {', '.join(unknown)}{hint}; use TaskSpec's fields")
    required = _REQUIRED - (_FILE_DEFAULTED if fields.get("source") == "file" else set())
    missing = sorted(required - set(fields))
    if missing:
        raise LayercutError(f"task file '{path}': missing key(s) {', '.join(missing)}; add them")
    for key in ("label_names", "label_words"):
        values = fields.get(key, [])
        if not isinstance(values, list) or any(isinstance(v, (bool, dict, list)) or v is None for v in values):
            raise LayercutError(
                f"task file '{path}': {key} must be a list of quoted strings (YAML reads yes/no/on/off as booleans)"
            )
    for key in ("path", "test_path"):
        if fields.get("source") == "file" and fields.get(key):
            fields[key] = str((path.parent / Path(fields[key]).expanduser()).resolve())
    return _build(fields)


def task_from_file(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    template: str | None = None,
    label_words: list[str] | None = None,
    *,
    text_b_column: str | None = None,
    label_names: list[str] | None = None,
    test_path: str | None = None,
) -> TaskSpec:
    """A task over a local CSV/TSV/JSONL/Parquet file; label names come from the data unless given,
    label words default to the label names."""
    fields = {
        "name": Path(path).stem,
        "source": "file",
        "path": str(Path(path).expanduser().resolve()),
        "text_column": text_column,
        "label_column": label_column,
        "text_b_column": text_b_column,
        "test_path": str(Path(test_path).expanduser().resolve()) if test_path else None,
    }
    given = {"template": template, "label_words": label_words, "label_names": label_names}
    fields.update({key: value for key, value in given.items() if value is not None})
    return _build(fields)


def _build(fields: dict) -> TaskSpec:
    if fields["source"] == "file":
        _fill_file_defaults(fields)
    fields["label_names"] = tuple(fields["label_names"])
    fields["label_words"] = tuple(fields["label_words"])
    return TaskSpec(**fields)


def _fill_file_defaults(fields: dict) -> None:
    """Check the column mapping against the data now, and take the label names from it unless given."""
    table = read_data_file(fields["path"])
    where = f"task '{fields['name']}' ({fields['path']})"
    columns = [fields.get("text_column", "text"), fields.get("label_column", "label"), fields.get("text_b_column")]
    require_columns(table, columns, where)
    if "label_names" not in fields:
        fields["label_names"] = label_names_from(table, columns[1], where)
    fields.setdefault("label_words", fields["label_names"])
    if fields.get("text_b_column"):
        fields.setdefault("template", "Text A: {text_a}\nText B: {text_b}\nLabel:")
    else:
        fields.setdefault("template", "Text: {text}\nLabel:")


@functools.cache
def _builtin() -> dict[str, TaskSpec]:
    specs = {}
    for file in sorted(BUILTIN_DIR.glob("*.yaml")):
        spec = load_task_yaml(file)
        specs[spec.name] = spec
    return specs
