"""The bag-of-words reference beside each table: per task, the classifier fitted on the splits of the table's
own runs (one fit per task, K and seed, cached in the store's `baselines/`), as a cell over the same seeds."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from layercut.adapt.metrics import Metrics
from layercut.baselines.bag_of_words import bag_of_words_for, split_key
from layercut.errors import LayercutError
from layercut.report.tables import Cell, Table
from layercut.settings.run_config import RunConfig

BASELINES_FOLDER = "baselines"
BAG_OF_WORDS_NOTE = (
    "Bag-of-words: TF-IDF word 1-2-grams and character 2-5-grams + logistic regression "
    "(scikit-learn), fitted on each run's own training split, C picked on its dev split, scored on "
    "its test split; mean ± std over the same seeds. Cached in `baselines/`."
)


@dataclass
class References:
    """Per table (by position) and task, the bag-of-words cell; `missing`: why a task has none."""

    cells: list[dict[str, Cell]]
    missing: dict[str, str] = field(default_factory=dict)


def bag_of_words_references(tables: list[Table], store: Path) -> References:
    cache = store / BASELINES_FOLDER
    cache.mkdir(exist_ok=True)
    references = References([])
    for table in tables:
        cells = {}
        for task in table.tasks:
            if task in references.missing:
                continue
            try:
                cell = _cell([run for row in table.rows if task in row.cells for run in row.cells[task].runs], cache)
            except LayercutError as error:
                references.missing[task] = str(error)
                continue
            if cell is not None:
                cells[task] = cell
        references.cells.append(cells)
    return references


def _cell(runs: list[dict], cache: Path) -> Cell | None:
    """Mean over seeds of the reference on every distinct split the runs used (one per seed, unless the table
    mixes dev sizes)."""
    by_seed: dict[int, dict[str, float]] = defaultdict(dict)
    for record in runs:
        hashes = record.get("splits", {}).get("hashes")
        if not hashes:
            continue  # written before runs recorded their splits
        key = split_key(hashes)
        if key not in by_seed[record["config"]["seed"]]:
            config = RunConfig.from_stored(record["config"])
            result = bag_of_words_for(config, hashes, cache)
            by_seed[record["config"]["seed"]][key] = Metrics.read(result).accuracy
    if not by_seed:
        return None
    accuracies = [statistics.fmean(fits.values()) for _, fits in sorted(by_seed.items())]
    return Cell(accuracies, {}, None)


def against_lines(table: Table, cells: dict[str, Cell]) -> list[str]:
    """Which depths lie ahead of the bag-of-words reference and which behind, per task (mean test accuracy)."""
    lines = []
    for task in table.tasks:
        reference = cells.get(task)
        if reference is None:
            continue
        ahead = [row.label for row in table.rows if task in row.cells and row.cells[task].mean > reference.mean]
        behind = [row.label for row in table.rows if task in row.cells and row.cells[task].mean <= reference.mean]
        lines.append(
            f"- {task}: bag-of-words {reference.text(table.seeds)}; ahead of it: "
            f"{', '.join(ahead) or 'no depth'}; behind or level: {', '.join(behind) or 'no depth'}"
        )
    return (
        ["", "Against bag-of-words (layers kept whose mean test accuracy lies above / not above it):", "", *lines]
        if lines
        else []
    )
