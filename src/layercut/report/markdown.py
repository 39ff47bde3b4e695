"""`layercut report DIR`: paper-style tables (report.md), every run (runs.csv), and plots (plots/).

One table per model x head x method (x layer strategy, and demonstrations / shots where these
vary). Rows: the layers kept, with their parameters and share of the full model. Columns: tasks
and their average. Cells: mean ± std of test accuracy over seeds. Where training settings were
swept, each cell shows the setting with the best mean dev accuracy (LM-BFF's protocol), and the
picks are listed under the table.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

from layercut.adapt.metrics import Metrics
from layercut.atomic import write_text_atomic
from layercut.errors import LayercutError
from layercut.evaluate.per_depth import EVALUATION_NOTE, EvaluationColumns
from layercut.importance.strategies import STRATEGIES
from layercut.report.data_size import data_size_comparison
from layercut.report.gaps import gap_lines, smallest_depth_lines
from layercut.report.plots import write_plots
from layercut.report.references import BAG_OF_WORDS_NOTE, References, against_lines, bag_of_words_references
from layercut.report.repairs import repair_comparison
from layercut.report.tables import Table, build_tables
from layercut.settings.run_config import RunConfig
from layercut.run.record import FINISHED, KeptLayers, Parameters, Timing, read_json
from layercut.sweep.grid import layer_choice
from layercut.sweep.store import ResultStore


@dataclass
class ReportFiles:
    report: Path
    runs_csv: Path
    plots: list[Path]


def write_report(folder: str | Path) -> ReportFiles:
    folder = Path(folder)
    records = [stored.record for stored in ResultStore(folder).records()]
    finished = [r for r in records if r["status"] in FINISHED]
    if not finished:
        raise LayercutError(f"no finished runs in '{folder}': run `layercut sweep EXPERIMENT --out {folder}` first")
    tables = build_tables(finished, _listed_order(folder))
    shown = tuple(name for name in ("demos", "shots") if len({t.fields[name] for t in tables}) > 1)
    references = bag_of_words_references(tables, folder)
    plots = write_plots(tables, shown, folder / "plots", references.cells)
    files = ReportFiles(folder / "report.md", folder / "runs.csv", plots)
    write_text_atomic(files.runs_csv, runs_csv(records))
    names = {str(r["config"].get(key)) for r in records for key in ("task", "model")}
    write_text_atomic(files.report, escape_names(markdown(tables, shown, records, folder, plots, references), names))
    return files


def _listed_order(folder: Path) -> dict[str, list[str]]:
    """The models and tasks named in DIR/experiment.yaml, in its order (the paper's column order, say)."""
    try:
        data = yaml.safe_load((folder / "experiment.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        key: [str(entry.get("name") if isinstance(entry, dict) else entry) for entry in data.get(key) or []]
        for key in ("models", "tasks")
        if isinstance(data.get(key), list)
    }


def markdown(
    tables: list[Table],
    shown: tuple[str, ...],
    records: list[dict],
    folder: Path,
    plots: list[Path],
    references: References,
) -> str:
    finished = [r for r in records if r["status"] in FINISHED]
    diverged = sum(r["status"] == "diverged" for r in finished)
    failed = [r for r in records if r["status"] not in FINISHED]
    owner = read_json(folder / "sweep.json")
    lines = [
        "# Sweep report",
        "",
        f"{len(finished)} finished runs"
        + (f" ({diverged} diverged: evaluated with their last good weights)" if diverged else "")
        + (f", {len(failed)} failed" if failed else "")
        + (f"; experiment `{owner['source']}` ({owner['experiment']}), copied to `experiment.yaml`" if owner else "")
        + ".",
        "",
        "Cells: test accuracy (%), mean ± std over seeds (sample std; one seed shows its value alone; "
        "(n=k): fewer seeds than the table's other cells). Average: the mean of the task means; % of full: the "
        "average as a share of the full-depth row's. Parameters count a tied LM head once; % is of the full model; "
        "non-embedding parameters are those of the kept blocks and final norm.",
        *_protocol_lines(finished),
    ]
    evaluations = EvaluationColumns(folder)
    if evaluations.by_depth:
        lines += ["", EVALUATION_NOTE]
    if any(references.cells):
        lines += ["", BAG_OF_WORDS_NOTE]
    lines += [f"Bag-of-words not computed for {task}: {why}" for task, why in sorted(references.missing.items())]
    for table, bag_of_words in zip(tables, references.cells):
        lines += ["", f"## {table.fields['model']}: {table.label(shown)}", ""]
        model = table.fields["model"]
        header = [
            "Layers kept",
            "Parameters (% of full)",
            "Non-embedding",
            *table.tasks,
            "Average",
            "% of full",
            *evaluations.header(model),
        ]
        lines += ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
        full = table.full_depth
        for row in table.rows:
            average, retained = row.average(table.tasks), row.retained(full, table.tasks)
            cells = [row.cells[t].text(table.seeds) if t in row.cells else "–" for t in table.tasks]
            kept_specs = {spec for cell in row.cells.values() for spec in cell.kept_specs}
            lines.append(
                "| "
                + " | ".join(
                    [
                        row.label,
                        f"{_count(row.parameters)} ({row.percent:.1f}%)",
                        _count(row.non_embedding),
                        *cells,
                        "–" if average is None else f"{average:.1f}",
                        "–" if retained is None else f"{retained:.0f}%",
                        *evaluations.cells(model, kept_specs),
                    ]
                )
                + " |"
            )
        if bag_of_words:
            cells = [bag_of_words[t].text(table.seeds) if t in bag_of_words else "–" for t in table.tasks]
            average = (
                f"{sum(bag_of_words[t].mean for t in table.tasks) / len(table.tasks):.1f}"
                if all(t in bag_of_words for t in table.tasks)
                else "–"
            )
            lines.append(
                "| "
                + " | ".join(
                    ["bag-of-words", "–", "–", *cells, average, "–", *("–" for _ in evaluations.header(model))]
                )
                + " |"
            )
        lines += gap_lines(table)
        lines += smallest_depth_lines(table)
        lines += against_lines(table, bag_of_words)
        lines += _other_measures(table)
        lines += _pick_notes(table)
    lines += data_size_comparison(tables, shown)
    lines += _strategy_comparison(tables, shown)
    lines += repair_comparison(tables, shown)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem.replace('_', ' ')}](plots/{p.name})" for p in plots]
    if failed:
        lines += ["", "## Failed runs (a new sweep tries them again)", ""]
        lines += [
            f"- `{r['key']}` ({layer_choice(r['config'])}, {r['config']['task']}, seed {r['config']['seed']}): "
            f"{r['error'].splitlines()[0]} (`runs/{r['key']}/failure.json`)"
            for r in failed
        ]
    return "\n".join(lines) + "\n"


def _protocol_lines(finished: list[dict]) -> list[str]:
    """How the splits were drawn and what the runs cost, from the records themselves."""
    drawn = {
        json.dumps(r["splits"]["drawn"], sort_keys=True): r["splits"]["drawn"]
        for r in finished
        if "drawn" in r.get("splits", {})
    }
    seeds = sorted({r["config"]["seed"] for r in finished})
    hours = sum(Timing.read(r).seconds for r in finished) / 3600
    lines = [
        "",
        f"Seeds: {', '.join(map(str, seeds))}. Compute: {hours:.2f} h of training and evaluation in all "
        "(the runs' own timings).",
    ]
    for _, rule in sorted(drawn.items()):
        lines.append("Splits: " + "; ".join(f"{name}: {how}" for name, how in rule.items()) + ".")
    return lines


def _other_measures(table: Table) -> list[str]:
    """Macro-F1 and accuracy after contextual calibration next to the majority-class baseline, per task."""
    measures = (
        ("macro-F1", lambda r: Metrics.read(r).macro_f1),
        ("calibrated accuracy", lambda r: (r.get("calibrated") or {}).get("metrics", {}).get("accuracy")),
    )
    if not any(cell.mean_of(measures[1][1]) is not None for row in table.rows for cell in row.cells.values()):
        return []
    header = ["Layers kept", *(f"{task}: {name}" for task in table.tasks for name, _ in measures)]
    lines = [
        "",
        "Other measures (%, mean over the same runs): macro-F1, and test accuracy after contextual "
        "calibration (the label words' prior read from content-free queries, divided out).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---:|" * len(header),
    ]
    for row in table.rows:
        values = [
            row.cells[task].mean_of(read) if task in row.cells else None for task in table.tasks for _, read in measures
        ]
        lines.append("| " + " | ".join([row.label, *("–" if v is None else f"{v:.1f}" for v in values)]) + " |")
    majority = []
    for task in table.tasks:
        cells = [row.cells[task] for row in table.rows if task in row.cells]
        value = cells[0].mean_of(lambda r: Metrics.read(r).majority_baseline) if cells else None
        if value is not None:
            majority.append(f"{task} {value:.1f}")
    if majority:
        lines += [
            "",
            "Majority-class baseline (test accuracy of always predicting the most frequent class): "
            + ", ".join(majority)
            + ".",
        ]
    return lines


def _strategy_comparison(tables: list[Table], shown: tuple[str, ...]) -> list[str]:
    """Where several layer strategies ran, one table per model, head, method and task: strategies side by side."""
    groups: dict[tuple, list[Table]] = defaultdict(list)
    for table in tables:
        if table.fields["keep_strategy"] and not table.repaired:
            groups[tuple(v for k, v in table.fields.items() if k != "keep_strategy")].append(table)
    lines = []
    for members in (m for m in groups.values() if len(m) > 1):
        members.sort(key=lambda table: STRATEGIES.index(table.fields["keep_strategy"]))
        first = members[0]
        title = first.label(shown, with_strategy=False)
        counts = sorted({row.kept for table in members for row in table.rows})
        for task in first.tasks:
            lines += [
                "",
                f"## {first.fields['model']}: {title}, {task}: layer strategies compared",
                "",
                "Test accuracy (%) and, in brackets, the layers kept.",
                "",
                "| Strategy | " + " | ".join(f"{k} layers" for k in counts) + " |",
                "|---|" + "---:|" * len(counts),
            ]
            for table in members:
                cells = {row.kept: row.cells[task] for row in table.rows if task in row.cells}
                lines.append(
                    f"| {table.fields['keep_strategy']} | "
                    + " | ".join(
                        f"{cells[k].text(table.seeds)} [{'; '.join(cells[k].kept_specs)}]" if k in cells else "–"
                        for k in counts
                    )
                    + " |"
                )
    return lines


def _pick_notes(table: Table) -> list[str]:
    notes = []
    for row in table.rows:
        for task in table.tasks:
            cell = row.cells.get(task)
            if cell is None or not cell.others:
                continue
            if cell.dev is None:
                notes.append(
                    f"- layers {row.label}, {task}: no dev accuracy to choose by (no training): "
                    f"shows {_setting(cell.setting)}"
                )
                continue
            tried = "; ".join(f"{_setting(s)}: {'–' if d is None else f'{100 * d:.1f}'}" for s, d in cell.others)
            edge = _edge(cell)
            # Every value scoring the same dev is no open edge: the setting does not move this cell.
            tie = edge and all(dev is not None and round(dev, 3) == round(cell.dev, 3) for _, dev in cell.others)
            notes.append(
                f"- layers {row.label}, {task}: {_setting(cell.setting)} (dev {100 * cell.dev:.1f}; also tried {tried})"
                + (f" **at the {edge} edge of the values tried**" if edge else "")
                + (": every value tried ties on dev, so none does better" if tie else "")
            )
    return (
        [
            "",
            "Settings picked per cell by the best mean dev accuracy (LM-BFF's protocol); a pick at the top or "
            "bottom of a numeric setting's values tried is marked: the best value may lie beyond it.",
            "",
            *notes,
        ]
        if notes
        else []
    )


def _edge(cell) -> str | None:
    """ "top" or "bottom" when a numeric setting's picked value is the largest or smallest of those tried."""
    for name, value in cell.setting.items():
        values = [value, *(other[name] for other, _ in cell.others if name in other)]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and len(set(values)) > 1:
            if value == max(values):
                return "top"
            if value == min(values):
                return "bottom"
    return None


def _count(n: int) -> str:
    """Parameters as the paper writes them: 112.8M, 1.56B."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.{2 if unit == 'B' else 1}f}{unit}"
    return str(n)


def _setting(values: dict) -> str:
    return ", ".join(f"{name}={value}" for name, value in values.items())


def runs_csv(records: list[dict]) -> str:
    """Every run, finished or failed, one row each: its full configuration and main measurements."""
    config_fields = list(RunConfig().to_dict())
    measures = [
        "layers_kept",
        "kept_indices",
        "accuracy",
        "macro_f1",
        "test_examples",
        "best_dev_accuracy",
        "best_epoch",
        "parameters",
        "non_embedding_parameters",
        "percent_of_source",
        "train_seconds",
        "eval_examples_per_second",
        "peak_memory_bytes",
        "error",
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["key", "status", *config_fields, *measures], lineterminator="\n")
    writer.writeheader()
    grid_order = ("model", "task", "head", "method", "seed")
    for record in sorted(records, key=lambda r: json.dumps([r["config"][k] for k in grid_order]) + r["key"]):
        row = {
            "key": record["key"],
            "status": record["status"],
            **record["config"],
            "task_options": json.dumps(record["config"]["task_options"], sort_keys=True),
        }
        if record["status"] in FINISHED:
            metrics, dev, params = Metrics.read(record), record["dev"] or {}, Parameters.read(record)
            layers, timing = KeptLayers.read(record), Timing.read(record)
            row.update(
                layers_kept=len(layers.kept),
                kept_indices=layers.spec,
                accuracy=metrics.accuracy,
                macro_f1=metrics.macro_f1,
                test_examples=metrics.num_examples,
                best_dev_accuracy=dev.get("best_dev_accuracy"),
                best_epoch=dev.get("best_epoch"),
                parameters=params.total,
                non_embedding_parameters=params.non_embedding,
                percent_of_source=params.percent_of_source,
                train_seconds=timing.train_seconds,
                eval_examples_per_second=timing.eval_examples_per_second,
                peak_memory_bytes=record["memory"]["peak_bytes"],
            )
        else:
            row["error"] = record.get("error", "")
        writer.writerow({name: _spreadsheet_safe(value) for name, value in row.items()})
    return buffer.getvalue()


def _spreadsheet_safe(value):
    """A text cell starting with = + - @ (or tab/CR) runs as a formula in a spreadsheet: prefix ' to keep it text.
    Numbers stay numbers (a negative figure is no formula)."""
    return "'" + value if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")) else value


_MARKDOWN = str.maketrans({"|": "\\|", "<": "&lt;", ">": "&gt;", "`": "\\`", "*": "\\*", "[": "\\[", "]": "\\]"})


def escape_names(text: str, names: set[str]) -> str:
    """Task and model names come from users' files: one with `|` would break a table, one with `<script>` would be
    HTML. Each such name is written escaped wherever the report names it (ordinary names are left as they are)."""
    for name in sorted(names, key=len, reverse=True):
        escaped = name.translate(_MARKDOWN)
        if escaped != name:
            text = text.replace(name, escaped)
    return text
