"""The report's healing comparison: every repair of a cut model side by side, per task and layers kept.

Where a store holds repaired runs (a bridge, partial fine-tuning, distillation; issue 14's arms), each
variant (method, layer strategy, repair) is a row, each layer count a column, and each cell says how much of
the full-depth accuracy it keeps. The reference is the plain full fine-tuning table's full-depth row (same
model, head, demonstrations and shots). A paired table follows: each variant against plain first-k seed by
seed (a seed fixes the training examples, demonstrations and initial weights, so the difference is the
repair's own effect, free of the spread between seeds). Then a cost table: training seconds per run and
trainable parameters, the two costs a repair adds.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from layercut.adapt.metrics import Metrics
from layercut.report.tables import HEAD_NAMES, Cell, Table
from layercut.run.record import KeptLayers, Parameters, Timing


def repair_comparison(tables: list[Table], shown: tuple[str, ...]) -> list[str]:
    groups: dict[tuple, list[Table]] = defaultdict(list)
    for table in tables:
        groups[tuple(table.fields[name] for name in ("model", "head", "demos", "shots"))].append(table)
    lines = []
    for members in groups.values():
        if any(table.repaired for table in members):
            lines += _group(members, shown)
    return lines


def _group(members: list[Table], shown: tuple[str, ...]) -> list[str]:
    reference = next((t for t in members if _plain(t) and t.full_depth), None)
    variants = sorted(members, key=lambda t: (not _plain(t), t.repaired, t.label(shown, with_head=False)))
    counts = sorted({row.kept for t in members for row in t.rows if row.kept != row.source_depth})
    first = members[0]
    title = f"{first.fields['model']}: {HEAD_NAMES[first.fields['head']]}" + "".join(
        f", {name} {first.fields[name]}" for name in ("demos", "shots") if name in shown
    )
    seeds = max(table.seeds for table in members)
    lines = []
    for task in first.tasks if reference is None else reference.tasks:
        full = reference.full_depth.cells.get(task) if reference else None
        lines += [
            "",
            f"## {title}, {task}: repairs of the cut model compared",
            "",
            "Test accuracy (%), mean ± std over seeds, and in brackets the share of the full-depth accuracy "
            + (
                f"kept (the reference: {reference.label(shown, with_head=False)}, all layers, {full.text(seeds)})."
                if full
                else "kept (none shown: this store has no full-depth run of plain full fine-tuning)."
            ),
            "",
            *_head(counts),
        ]
        best: dict[int, tuple[float, str]] = {}
        for table in variants:
            cells = _cells_by_count(table, task)
            label = table.label(shown, with_head=False)
            lines.append(f"| {label} | " + " | ".join(_text(cells.get(k), seeds, full) for k in counts) + " |")
            for k, cell in cells.items():
                if cell.mean > best.get(k, (-1.0, ""))[0]:
                    best[k] = (cell.mean, label)
        lines += [
            "",
            "Best per layer count: "
            + "; ".join(f"{k} layers: {best[k][1]} ({best[k][0]:.1f})" for k in counts if k in best)
            + ".",
        ]
        plain = next((t for t in variants if _plain(t)), None)
        if plain is not None:
            lines += _paired(plain, [t for t in variants if t is not plain], task, counts, shown)
        lines += [
            "",
            "Cost per run, mean over seeds: training seconds, + the repair's own seconds where it has "
            "any (the bridge's fit, the teacher's scores, the task ranking), / trainable parameters.",
            "",
            *_head(counts),
        ]
        lines += _rows(variants, task, counts, shown, lambda k, cell: _cost(cell))
    return lines


def _paired(plain: Table, others: list[Table], task: str, counts: list[int], shown: tuple[str, ...]) -> list[str]:
    base = _cells_by_count(plain, task)
    lines = [
        "",
        f"Against {plain.label(shown, with_head=False)} at the same seed: the variant's test accuracy minus "
        "the plain run's, in points, mean ± std over the seeds both have, and how many of them it is ahead "
        "at.",
        "",
        *_head(counts),
    ]
    return lines + _rows(others, task, counts, shown, lambda k, cell: _difference(cell, base.get(k)))


def _head(counts: list[int]) -> list[str]:
    return ["| Variant | " + " | ".join(f"{k} layers" for k in counts) + " |", "|---|" + "---:|" * len(counts)]


def _rows(tables: list[Table], task: str, counts: list[int], shown: tuple[str, ...], text) -> list[str]:
    """One row per table: its label, then `text(k, cell)` per layer count (cell None where it has no runs)."""
    lines = []
    for table in tables:
        cells = _cells_by_count(table, task)
        lines.append(
            f"| {table.label(shown, with_head=False)} | " + " | ".join(text(k, cells.get(k)) for k in counts) + " |"
        )
    return lines


def _difference(cell: Cell | None, base: Cell | None) -> str:
    if cell is None or base is None:
        return "–"
    by_seed = {r["config"]["seed"]: Metrics.read(r).accuracy for r in base.runs}
    gains = [
        100 * (Metrics.read(r).accuracy - by_seed[r["config"]["seed"]])
        for r in cell.runs
        if r["config"]["seed"] in by_seed
    ]
    if not gains:
        return "–"
    text = f"{statistics.fmean(gains):+.1f}" + (f" ± {statistics.stdev(gains):.1f}" if len(gains) > 1 else "")
    return text + f" ({sum(gain > 0 for gain in gains)} of {len(gains)} ahead)"


def _plain(table: Table) -> bool:
    return table.fields["method"] == "full" and not table.fields["keep_strategy"] and not table.repaired


def _cells_by_count(table: Table, task: str) -> dict[int, Cell]:
    return {row.kept: row.cells[task] for row in table.rows if task in row.cells and row.kept != row.source_depth}


def _text(cell: Cell | None, seeds: int, full: Cell | None) -> str:
    return "–" if cell is None else cell.text_with_share(seeds, full)


def _cost(cell: Cell | None) -> str:
    if cell is None:
        return "–"
    seconds = statistics.fmean(Timing.read(r).train_seconds for r in cell.runs)
    repair = statistics.fmean(_repair_seconds(r) for r in cell.runs)
    trainable = statistics.fmean(Parameters.read(r).trainable for r in cell.runs)
    return f"{seconds:.0f} s" + (f" + {repair:.0f} s" if repair >= 0.5 else "") + f" / {_millions(trainable)}"


def _repair_seconds(record: dict) -> float:
    healing = record.get("healing") or {}
    ranking = KeptLayers.read(record).ranking or {}
    parts = [
        (healing.get("bridge") or {}).get("seconds"),
        (healing.get("teacher") or {}).get("seconds"),
        *(ranking.get("seconds") or {}).values(),
    ]
    return sum(part for part in parts if part)


def _millions(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else f"{n:.0f}"
