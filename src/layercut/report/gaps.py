"""The report's answer to "do k layers match full depth?", under each table with a full-depth row: how many
points each layer count's mean test accuracy lies below it, in seed spreads (the larger sample std of the two
cells over seeds). Within one spread counts as a match, the README verdict's test."""

from __future__ import annotations

import statistics

from layercut.report.tables import Cell, Table


def gap_lines(table: Table) -> list[str]:
    full = table.full_depth
    if full is None:
        return []
    rows = [
        (row.label, [_gap(row.cells.get(task), full.cells.get(task)) for task in table.tasks])
        for row in table.rows
        if row is not full
    ]
    if not any(text != "–" for _, texts in rows for text in texts):  # fewer than 2 seeds on one side everywhere
        return []
    lines = [
        "",
        "Gap to full depth: points of test accuracy below the full-depth mean, and in brackets the gap in "
        "seed spreads (the larger sample std of the two cells); *matches*: within one spread.",
        "",
        "| Layers kept | " + " | ".join(table.tasks) + " |",
        "|---:|" + "---:|" * len(table.tasks),
    ]
    return lines + [f"| {label} | " + " | ".join(texts) + " |" for label, texts in rows]


def _gap(cell: Cell | None, full: Cell | None) -> str:
    if cell is None or full is None or len(cell.accuracies) < 2 or len(full.accuracies) < 2:
        return "–"
    gap = full.mean - cell.mean
    spread = 100 * max(statistics.stdev(cell.accuracies), statistics.stdev(full.accuracies))
    if gap <= spread:
        return f"{gap:.1f} (*matches*)"
    return f"{gap:.1f} ({gap / spread:.1f}×)" if spread else f"{gap:.1f}"


def smallest_depth_lines(table: Table, shares: tuple[float, ...] = (0.9, 0.95)) -> list[str]:
    """Per task, the fewest layers whose mean test accuracy keeps each share of the full-depth mean (among the
    depths run: a depth not run may keep it with fewer)."""
    full = table.full_depth
    if full is None or not any(row is not full for row in table.rows):
        return []
    lines = []
    for task in table.tasks:
        reference = full.cells.get(task)
        if reference is None:
            continue
        found = []
        for share in shares:
            row = next(
                (r for r in table.rows if task in r.cells and r.cells[task].mean >= share * reference.mean), None
            )
            found.append(f"{100 * share:g}%: {row.label if row else 'none'}")
        lines.append(
            f"- {task}: "
            + "; ".join(found)
            + f" (of the depths run: {', '.join(r.label for r in table.rows if task in r.cells)})"
        )
    return (
        ["", "Fewest layers keeping a share of full-depth test accuracy (mean over seeds):", "", *lines]
        if lines
        else []
    )
