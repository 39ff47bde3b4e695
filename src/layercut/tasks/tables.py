"""Tabular data (local CSV/TSV/JSONL/Parquet files or Hub datasets) to `Example`s, with a column mapping."""

from __future__ import annotations

import difflib
from pathlib import Path

from layercut.errors import LayercutError, first_line
from layercut.tasks.spec import Example, TaskSpec
from layercut.text_files import check_utf8

# file suffix -> (datasets builder, builder options)
FORMATS = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".tab": ("csv", {"delimiter": "\t"}),
    ".jsonl": ("json", {}),
    ".json": ("json", {}),
    ".parquet": ("parquet", {}),
    ".pq": ("parquet", {}),
}


def read_data_file(path: str | Path):
    """A local data file as a `datasets.Dataset`; unreadable or empty files are a LayercutError."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise LayercutError(f"data file '{path}' does not exist: check the path")
    if path.suffix.lower() not in FORMATS:
        raise LayercutError(f"data file '{path}' has an unknown format; use one of {', '.join(FORMATS)}")
    if path.stat().st_size == 0:
        raise LayercutError(f"data file '{path}' is empty: give a file with labelled examples")
    builder, options = FORMATS[path.suffix.lower()]
    if builder != "parquet":
        check_utf8(path, "data file")
    import datasets

    bars_were_on = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # a local file reads in a moment: no progress bar
    verbosity = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its "Failed to read file" line: the error below says it
    try:
        table = datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as error:  # each format's parser raises its own error types
        while error.__cause__ is not None:  # datasets wraps the parser's error: report the parser's
            error = error.__cause__
        raise LayercutError(
            f"cannot read '{path}' as {builder} ({first_line(error)}): check that it is a {builder} file "
            "with named columns and at least one row"
        ) from None
    finally:
        datasets.logging.set_verbosity(verbosity)
        if bars_were_on:
            datasets.enable_progress_bars()
    if len(table) == 0:
        raise LayercutError(f"data file '{path}' has no rows: give a file with labelled examples")
    return table


def label_names_from(table, column: str, where: str) -> tuple[str, ...]:
    """Class names from a ClassLabel feature, else the sorted distinct values of the column."""
    require_columns(table, [column], where)
    feature = table.features[column]
    if hasattr(feature, "names"):
        return tuple(feature.names)
    values = set(table[column])
    if None in values:
        raise LayercutError(f"{where}: column '{column}' has empty labels; fill or drop those rows")
    ordered = sorted(values) if all(isinstance(v, int) for v in values) else sorted(map(str, values))
    return tuple(str(v) for v in ordered)


def require_columns(table, columns: list[str | None], where: str) -> None:
    for column in filter(None, columns):
        if column not in table.column_names:
            close = difflib.get_close_matches(column, table.column_names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise LayercutError(
                f"{where}: no column '{column}' (columns: {', '.join(table.column_names)}); "
                f"{hint}set the column mapping (--text-column/--label-column)"
            )


def to_examples(table, spec: TaskSpec, uid_prefix: str, where: str) -> list[Example]:
    """Map rows to examples through the task's columns; a label outside its label names or an empty text is an error
    naming the row."""
    text_column, label_column, text_b_column = spec.text_column, spec.label_column, spec.text_b_column
    require_columns(table, [text_column, label_column, text_b_column], where)
    to_index = _label_indexer(spec.label_names)
    texts_b = table[text_b_column] if text_b_column else None
    examples = []
    for row, (text, label) in enumerate(zip(table[text_column], table[label_column])):
        text_b = texts_b[row] if texts_b is not None else None
        for column, value in ((text_column, text), (text_b_column, text_b)):
            if column and (value is None or not str(value).strip()):
                raise LayercutError(f"{where}: row {row + 1} has an empty '{column}'; fill or drop that row")
        index = to_index(label)
        if index is None:
            raise LayercutError(
                f"{where}: row {row + 1} has label {label!r}, not one of {', '.join(spec.label_names)}; "
                "fix the row or list the label in label_names"
            )
        examples.append(
            Example(
                text=str(text).strip(),
                label=index,
                uid=f"{uid_prefix}:{row}",
                text_b=None if text_b is None else str(text_b).strip(),
            )
        )
    return examples


def _label_indexer(label_names: tuple[str, ...]):
    """A label is a class name, or (ClassLabel style) an integer index when no name looks like a number."""
    by_name = {name: i for i, name in enumerate(label_names)}
    numeric_names = any(name.lstrip("-").isdigit() for name in label_names)

    def to_index(label) -> int | None:
        if str(label) in by_name:
            return by_name[str(label)]
        if (
            isinstance(label, int)
            and not isinstance(label, bool)
            and not numeric_names
            and 0 <= label < len(label_names)
        ):
            return label
        return None

    return to_index
