"""A sweep's results as tables: one per model x head x method (x layer strategy, demonstrations, shots where
these vary); rows are the layers kept, columns the tasks, cells the runs of the setting picked on dev accuracy."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from layercut.adapt.metrics import Metrics
from layercut.run.record import KeptLayers, Parameters, Timing
from layercut.settings.methods import REGISTRY
from layercut.settings.run_config import HEADS, METHODS, RunConfig
from layercut.sweep.grid import layer_choice
from layercut.tasks.splits import ALL

# What a healing arm varies: each value is its own table (a repair is compared, never picked on dev).
REPAIR_FIELDS = ("bridge", "train_layers", "freeze_embeddings", "teacher")
TABLE_FIELDS = ("model", "head", "method", "keep_strategy", "demos", "shots", *REPAIR_FIELDS)
_NOT_SETTINGS = {*TABLE_FIELDS, "layers", "keep_count", "task", "task_options", "seed"}
_DEFAULTS = RunConfig().to_dict()  # for records written before a field existed
HEAD_NAMES = {"lm": "LM head", "cls": "classification head"}


@dataclass
class Cell:
    """One task at one depth: the runs (one per seed) of the setting picked on dev accuracy."""

    accuracies: list[float]
    setting: dict  # the picked values of the settings this cell tried several of ({} if one)
    dev: float | None
    others: list[tuple[dict, float | None]] = field(default_factory=list)  # the settings not picked
    kept_specs: list[str] = field(default_factory=list)  # the layer indices its runs kept (a strategy may vary by seed)
    runs: list[dict] = field(default_factory=list)  # the picked runs' records, by seed

    @property
    def mean(self) -> float:
        return 100 * statistics.fmean(self.accuracies)

    def mean_of(self, read) -> float | None:
        """The mean over the picked runs of `read(record)` (in %), when every run has it."""
        values = [read(record) for record in self.runs]
        return 100 * statistics.fmean(values) if values and None not in values else None

    def text(self, seeds: int) -> str:
        value = f"{self.mean:.1f}"
        if len(self.accuracies) > 1:
            value += f" ± {100 * statistics.stdev(self.accuracies):.1f}"
        return value + (f" (n={len(self.accuracies)})" if len(self.accuracies) < seeds else "")

    def text_with_share(self, seeds: int, full: "Cell | None") -> str:
        """`text`, and in brackets the share of the full-depth cell `full` it keeps (none for that cell itself)."""
        share = full is not None and full is not self and full.mean
        return self.text(seeds) + (f" ({100 * self.mean / full.mean:.0f}%)" if share else "")


@dataclass
class Row:
    label: str  # layers kept, with the rule when it is not the paper's (e.g. `2 (last:2)`)
    kept: int
    parameters: int
    non_embedding: int
    percent: float
    source_depth: int
    eval_speed: float | None  # test examples per second, mean over the row's runs (None: not measured)
    cells: dict[str, Cell]

    def average(self, tasks: list[str]) -> float | None:
        """The mean over tasks of the cell means, when every task has one."""
        return statistics.fmean(self.cells[t].mean for t in tasks) if all(t in self.cells for t in tasks) else None

    def retained(self, full: "Row | None", tasks: list[str]) -> float | None:
        """The row's average as a % of the full-depth row's average."""
        mine, theirs = self.average(tasks), full.average(tasks) if full else None
        return 100 * mine / theirs if mine is not None and theirs else None


@dataclass
class Table:
    fields: dict  # TABLE_FIELDS -> value
    tasks: list[str]
    rows: list[Row]
    seeds: int  # the most seeds any cell has

    @property
    def full_depth(self) -> Row | None:
        """The row that kept every layer of the model, if the table has one."""
        return next((row for row in self.rows if row.kept == row.source_depth), None)

    @property
    def repaired(self) -> bool:
        return any(self.fields[name] != _DEFAULTS[name] for name in REPAIR_FIELDS)

    def label(self, shown: tuple[str, ...], with_strategy: bool = True, with_head: bool = True) -> str:
        """e.g. `LM head, full fine-tuning, layers chosen by bi`; `shown`: varying fields to name too."""
        parts = [HEAD_NAMES[self.fields["head"]]] if with_head else []
        parts.append(REGISTRY[self.fields["method"]].report_name)
        if with_strategy and self.fields["keep_strategy"]:
            parts.append(f"layers chosen by {self.fields['keep_strategy']}")
        parts += self.repair_parts()
        if "demos" in shown:
            parts.append(f"demos {self.fields['demos']}")
        if "shots" in shown:
            parts.append(shots_label(self.fields["shots"]))
        return ", ".join(parts)

    def repair_parts(self) -> list[str]:
        fields, parts = self.fields, []
        if fields["bridge"]:
            parts.append(f"{fields['bridge']} bridge")
        if fields["train_layers"] != _DEFAULTS["train_layers"]:
            parts.append(f"training only the {fields['train_layers']} blocks")
        if fields["freeze_embeddings"]:
            parts.append("embeddings frozen")
        if fields["teacher"]:
            parts.append(f"distilled from {fields['teacher']}")
        return parts


def build_tables(records: list[dict], order: dict[str, list[str]] | None = None) -> list[Table]:
    """`order`: models and tasks as the experiment file lists them; others follow alphabetically."""
    order = order or {}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        groups[table_key(record["config"])].append(record)
    tables = []
    for key in sorted(groups, key=lambda key: _table_order(key, order.get("models", []))):
        members = groups[key]
        tasks = sorted({r["config"]["task"] for r in members}, key=lambda task: _ranked(task, order.get("tasks", [])))
        by_choice: dict[str, list[dict]] = defaultdict(list)
        for record in members:
            by_choice[layer_choice(record["config"])].append(record)
        rows = sorted((_row(choice, runs) for choice, runs in by_choice.items()), key=lambda row: (row.kept, row.label))
        seeds = max(len(cell.accuracies) for row in rows for cell in row.cells.values())
        tables.append(Table(dict(zip(TABLE_FIELDS, key)), tasks, rows, seeds))
    return tables


def table_key(config: dict) -> tuple:
    """The record's TABLE_FIELDS; `first` chosen as a strategy keeps the same layers as `--layers first:K`."""
    fields = {name: config.get(name, _DEFAULTS[name]) for name in TABLE_FIELDS}
    if fields["keep_strategy"] == "first":
        fields["keep_strategy"] = None
    return tuple(fields.values())


def _table_order(key: tuple, models: list[str]) -> tuple:
    fields = dict(zip(TABLE_FIELDS, key))
    return (
        _ranked(fields["model"], models),
        HEADS.index(fields["head"]),
        METHODS.index(fields["method"]),
        fields["keep_strategy"] or "",
        fields["demos"],
        shots_order(fields["shots"]),
        *(str(fields[name]) for name in REPAIR_FIELDS),
    )


def shots_label(shots: int | str) -> str:
    return "the whole training set" if shots == ALL else f"{shots} shots"


def shots_order(shots: int | str) -> tuple:
    """K ascending, the whole training set (`all`) last."""
    return (shots == ALL, 0 if shots == ALL else shots)


def _ranked(value: str, listed: list[str]) -> tuple:
    return (listed.index(value) if value in listed else len(listed), value)


def _row(choice: str, runs: list[dict]) -> Row:
    by_task: dict[str, list[dict]] = defaultdict(list)
    for record in runs:
        by_task[record["config"]["task"]].append(record)
    first = runs[0]
    layers, parameters = KeptLayers.read(first), Parameters.read(first)
    kept = len(layers.kept)
    paper_rule = first["config"]["keep_strategy"] or choice == "all" or choice.startswith("first:")
    return Row(
        label=str(kept) if paper_rule else f"{kept} ({choice})",
        kept=kept,
        parameters=parameters.total,
        non_embedding=parameters.non_embedding,
        percent=parameters.percent_of_source,
        source_depth=layers.source_depth,
        eval_speed=_mean_speed(runs),
        cells={task: _pick(task_runs) for task, task_runs in by_task.items()},
    )


def _mean_speed(runs: list[dict]) -> float | None:
    """None when no run measured its own speed (depths scored together by the one-pass profile)."""
    speeds = [speed for speed in (Timing.read(r).eval_examples_per_second for r in runs) if speed is not None]
    return statistics.fmean(speeds) if speeds else None


def _pick(runs: list[dict]) -> Cell:
    """The setting with the best mean dev accuracy; ties, and cells without dev accuracy (ICL), keep the first."""
    by_setting: dict[str, list[dict]] = defaultdict(list)
    for record in runs:
        config = {**_DEFAULTS, **record["config"]}  # records written before a setting existed have its default
        # The precision a run computed in, not how it was asked: `auto` runs before precision was recorded were
        # float32 (CPU), the same runs as `float32` ones.
        config["dtype"] = (record.get("precision") or {}).get("resolved", "float32")
        setting = {k: v for k, v in config.items() if k not in _NOT_SETTINGS}
        by_setting[json.dumps(setting, sort_keys=True)].append(record)
    texts = sorted(by_setting)
    settings = [json.loads(text) for text in texts]
    swept = [name for name in settings[0] if len({json.dumps(s[name]) for s in settings}) > 1]
    shown = [{name: s[name] for name in swept} for s in settings]
    devs = [_mean_dev(by_setting[text]) for text in texts]
    best = max(range(len(texts)), key=lambda i: (devs[i] is not None, devs[i] or 0.0))
    chosen = sorted(by_setting[texts[best]], key=lambda r: r["config"]["seed"])
    return Cell(
        [Metrics.read(r).accuracy for r in chosen],
        shown[best],
        devs[best],
        [(shown[i], devs[i]) for i in range(len(texts)) if i != best],
        sorted({KeptLayers.read(r).spec for r in chosen}),
        chosen,
    )


def _mean_dev(runs: list[dict]) -> float | None:
    values = [r["dev"]["best_dev_accuracy"] for r in runs if r.get("dev") and r["dev"]["best_dev_accuracy"] is not None]
    return statistics.fmean(values) if values and len(values) == len(runs) else None
