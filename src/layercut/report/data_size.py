"""The report's learning curves over data size: where a store holds the same setting at several K (examples
per class), one table per task says, for each layer count and K, the test accuracy and the share of that K's
own full-depth accuracy it keeps ("with K examples per class, k layers keep X% of full depth")."""

from __future__ import annotations

from collections import defaultdict

from layercut.report.tables import TABLE_FIELDS, Cell, Table, shots_order


def data_size_comparison(tables: list[Table], shown: tuple[str, ...]) -> list[str]:
    groups: dict[tuple, list[Table]] = defaultdict(list)
    for table in tables:
        groups[tuple(table.fields[name] for name in TABLE_FIELDS if name != "shots")].append(table)
    lines = []
    for members in (m for m in groups.values() if len(m) > 1):
        members.sort(key=lambda table: shots_order(table.fields["shots"]))
        lines += _group(members, tuple(name for name in shown if name != "shots"))
    return lines


def _group(tables: list[Table], shown: tuple[str, ...]) -> list[str]:
    first = tables[0]
    lines = []
    for task in sorted({task for table in tables for task in table.tasks}):
        members = [table for table in tables if task in table.tasks]
        if len(members) < 2:  # this task ran at one K only
            continue
        counts = sorted({row.kept for table in members for row in table.rows})
        seeds = max(table.seeds for table in members)
        lines += [
            "",
            f"## {first.fields['model']}: {first.label(shown)}, {task}: data size",
            "",
            "Test accuracy (%) by examples per class (K), and in brackets the share kept of the same K's "
            "full-depth accuracy.",
            "",
            "| Layers kept | " + " | ".join(f"K={table.fields['shots']}" for table in members) + " |",
            "|---:|" + "---:|" * len(members),
        ]
        for kept in counts:
            cells = [_cell(table, kept, task) for table in members]
            if any(cells):
                lines.append(
                    f"| {kept} | "
                    + " | ".join(_text(cell, seeds, _full(table, task)) for cell, table in zip(cells, members))
                    + " |"
                )
    return lines


def _cell(table: Table, kept: int, task: str) -> Cell | None:
    return next((row.cells[task] for row in table.rows if row.kept == kept and task in row.cells), None)


def _full(table: Table, task: str) -> Cell | None:
    full = table.full_depth
    return full.cells.get(task) if full else None


def _text(cell: Cell | None, seeds: int, full: Cell | None) -> str:
    return "–" if cell is None else cell.text_with_share(seeds, full)
