"""Plain-text tables for the terminal: columns padded to their widest cell, two spaces apart."""

from __future__ import annotations

from typing import Sequence


def text_table(rows: Sequence[Sequence[str]], left_columns: int | None = None) -> str:
    """The first `left_columns` columns (all when None) aligned left, the others right; no trailing spaces."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    left = len(widths) if left_columns is None else left_columns
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    )
