"""The report's figures: accuracy vs layers kept (per model, one panel per task), accuracy vs
parameters, and evaluation speed-up vs layers kept. Bare `Figure`s draw with Agg and leave
pyplot's global state alone; the folder is replaced whole, so it never mixes two reports."""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from pathlib import Path

from layercut.atomic import atomic_directory
from layercut.report.tables import HEAD_NAMES, Cell, Table, shots_label


def write_plots(
    tables: list[Table], shown: tuple[str, ...], folder: Path, references: list[dict[str, Cell]] | None = None
) -> list[Path]:
    """`references`: per table, the bag-of-words cell of each task (a dashed line on the accuracy plots)."""
    references = references or [{} for _ in tables]
    names = []
    with atomic_directory(folder, overwrite=True) as tmp:
        for model in sorted({t.fields["model"] for t in tables}):
            name = f"accuracy_vs_layers_{_slug(model)}.png"
            mine = [i for i, t in enumerate(tables) if t.fields["model"] == model]
            _accuracy_vs_layers(model, [tables[i] for i in mine], shown, [references[i] for i in mine]).savefig(
                tmp / name, dpi=110
            )
            names.append(name)
            trained = [
                t
                for t in tables
                if t.fields["model"] == model
                and any(
                    cell.runs and (cell.runs[0].get("dev") or {}).get("curve")
                    for row in t.rows
                    for cell in row.cells.values()
                )
            ]
            for measure in ("dev_accuracy", "train_loss"):
                if trained:
                    name = f"{measure}_curves_{_slug(model)}.png"
                    _training_curves(model, trained, shown, measure).savefig(tmp / name, dpi=110)
                    names.append(name)
        for name, draw in (
            ("accuracy_vs_parameters.png", _accuracy_vs_parameters),
            ("speedup_vs_layers.png", _speedup_vs_layers),
        ):
            draw(tables, shown).savefig(tmp / name, dpi=110)
            names.append(name)
    return [folder / name for name in names]


def _accuracy_vs_layers(model: str, tables: list[Table], shown: tuple[str, ...], references: list[dict[str, Cell]]):
    """Mean test accuracy over seeds with a ±1 std band, one line per head/method/strategy; the bag-of-words
    reference dashed, one line per K (tables of the same K share it)."""
    tasks = sorted({task for table in tables for task in table.tasks})
    columns = min(3, len(tasks))
    entries = len(tables) + len({table.fields["shots"] for table in tables} if "shots" in shown else {0})
    legend_height = 0.2 * math.ceil(entries / columns)  # one legend under the panels: inside, it hid the lines
    figure = _figure(
        f"Test accuracy vs layers kept: {model}", (4.5 * columns, 3.6 * math.ceil(len(tasks) / columns) + legend_height)
    )
    panels = figure.subplots(math.ceil(len(tasks) / columns), columns, squeeze=False).flat
    legend = {}  # table index -> (label, line): each line is named once and keeps its colour in every panel
    styles = {}  # bag-of-words label -> line style, the same in every panel
    for task, axes in zip(tasks, panels):  # tasks first: zip must not take a panel it will not use
        for index, table in enumerate(tables):
            rows = [row for row in table.rows if task in row.cells]
            if not rows:
                continue
            kept = [row.kept for row in rows]
            means = [row.cells[task].mean for row in rows]
            spreads = [
                100 * statistics.stdev(row.cells[task].accuracies) if len(row.cells[task].accuracies) > 1 else 0.0
                for row in rows
            ]
            (line,) = axes.plot(kept, means, marker="o", color=_colour(index, len(tables)))
            legend.setdefault(index, (table.label(shown), line))
            axes.fill_between(
                kept,
                [m - s for m, s in zip(means, spreads)],
                [m + s for m, s in zip(means, spreads)],
                color=line.get_color(),
                alpha=0.2,
            )
        drawn = set()
        for table, cells in zip(tables, references):
            label = "bag-of-words" + (f", {shots_label(table.fields['shots'])}" if "shots" in shown else "")
            if task in cells and label not in drawn:
                drawn.add(label)
                style = styles.setdefault(label, ("--", ":", "-.", (0, (5, 1, 1, 1)))[len(styles) % 4])
                legend.setdefault(
                    label, (label, axes.axhline(cells[task].mean, color="black", linestyle=style, linewidth=1))
                )
        _layers_axis(axes, [row.kept for table in tables for row in table.rows])
        axes.set(title=task, ylabel="test accuracy (%)")
    for axes in panels:  # the grid's unused panels
        axes.set_visible(False)
    entries = [legend[index] for index in sorted(key for key in legend if isinstance(key, int))]
    entries += [legend[label] for label in styles if label in legend]  # the references, in the order first drawn
    figure.legend(
        [line for _, line in entries],
        [label for label, _ in entries],
        loc="outside lower center",
        ncols=min(columns, len(entries)),
        fontsize=7,
    )
    return figure


def _training_curves(model: str, tables: list[Table], shown: tuple[str, ...], measure: str):
    """Dev accuracy or training loss against optimizer steps, one line per depth (the lowest seed's run of
    the setting picked on dev), one panel per table and task."""
    panels = [(table, task) for table in tables for task in table.tasks]
    columns = min(3, len(panels))
    title = {"dev_accuracy": "Dev accuracy", "train_loss": "Training loss"}[measure]
    figure = _figure(f"{title} during training: {model}", (4.5 * columns, 3.4 * math.ceil(len(panels) / columns)))
    grid = figure.subplots(math.ceil(len(panels) / columns), columns, squeeze=False).flat
    for (table, task), axes in zip(panels, grid):
        for row in table.rows:
            cell = row.cells.get(task)
            curve = (cell.runs[0].get("dev") or {}).get("curve") if cell and cell.runs else None
            if curve:
                scale = 100 if measure == "dev_accuracy" else 1
                axes.plot(
                    [p.get("step", p["epoch"]) for p in curve],
                    [scale * p[measure] for p in curve],
                    label=f"{row.label} layers",
                )
        axes.set(
            title=f"{task}: {table.label(shown)}",
            xlabel="optimizer steps",
            ylabel="dev accuracy (%)" if measure == "dev_accuracy" else "training loss",
        )
        axes.title.set_fontsize(8)
        axes.legend(fontsize=6)
    for axes in grid:
        axes.set_visible(False)
    return figure


def _accuracy_vs_parameters(tables: list[Table], shown: tuple[str, ...]):
    figure = _figure("Average test accuracy vs parameters kept", (7, 4.5))
    axes = figure.subplots()
    for table in tables:
        points = [(row.parameters / 1e6, row.average(table.tasks)) for row in table.rows]
        points = [(x, y) for x, y in points if y is not None]
        if points:
            axes.plot(*zip(*points), marker="o", label=f"{table.fields['model']}: {table.label(shown)}")
    axes.set(xscale="log", xlabel="parameters (millions, log scale)", ylabel="average test accuracy over tasks (%)")
    axes.legend(fontsize=7)
    return figure


def _speedup_vs_layers(tables: list[Table], shown: tuple[str, ...]):
    """Test examples per second relative to the deepest model run, per model, head and method."""
    figure = _figure("Evaluation speed-up vs layers kept", (7, 4.5))
    axes = figure.subplots()
    lines: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    depth = {}
    for table in tables:
        key = (table.fields["model"], table.fields["head"], table.fields["method"])
        for row in (row for row in table.rows if row.eval_speed is not None):  # one-pass depths: no own speed
            lines[key][row.kept].append(row.eval_speed)
            depth[key] = row.source_depth
    for (model, head, method), speeds in lines.items():  # in the tables' order
        kept = sorted(speeds)
        base = statistics.fmean(speeds[kept[-1]])
        against = "the full model" if kept[-1] == depth[(model, head, method)] else f"{kept[-1]} layers"
        axes.plot(
            kept,
            [statistics.fmean(speeds[k]) / base for k in kept],
            marker="o",
            label=f"{model}: {HEAD_NAMES[head]}, {method} (vs {against})",
        )
    if lines:
        _layers_axis(axes, [k for speeds in lines.values() for k in speeds])
        axes.legend(fontsize=7)
    axes.set(ylabel="test examples per second (× the deepest run)")
    return figure


def _colour(index: int, count: int):
    """Distinct colours for up to 20 lines (tab10's are the clearer while they suffice)."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return palette(index % palette.N)


def _figure(title: str, size: tuple[float, float]):
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    figure.suptitle(title)
    return figure


def _layers_axis(axes, kept: list[int]) -> None:
    """Depths like 1, 2, 4, ..., 30 spread evenly on a log axis, labelled with the depths themselves."""
    ticks = sorted(set(kept))
    if ticks[0] == 0 and ticks[-1] >= 8:  # depth 0 (no block): linear between 0 and 1, log above
        axes.set_xscale("symlog", base=2, linthresh=1)
    elif ticks[0] > 0 and ticks[-1] >= 8 * ticks[0]:
        axes.set_xscale("log", base=2)
    axes.set_xticks(ticks, [str(k) for k in ticks])
    axes.minorticks_off()
    axes.set_xlabel("layers kept")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[-60:]
