"""Evaluations in sweeps: an experiment file's optional `evaluations:` list, run once per model and depth.

    evaluations:
      - lm_eval: [layercut_trec, layercut_mr]   # any EvaluationRequest field
        limit: 100
      - perplexity: trec
        compare_full: true
        max_tokens: 2048

Each entry runs on every (model, kept layers) the sweep's finished runs used, and on the full
model, as cut but not adapted: what cutting alone kept. Results live in DIR/evaluations/<key>.json
(resumable like runs), and the report shows them as columns next to the classification results,
each also as % of the full model's value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Callable

from layercut.atomic import write_json_atomic
from layercut.errors import LayercutError
from layercut.evaluate.request import EvaluationRequest, INTRINSIC_COLUMNS, evaluate_loaded, figure_cell, figures
from layercut.model.layers import LayerSelection, format_index_spec
from layercut.model.sources import load_config

FOLDER = "evaluations"
EVALUATION_NOTE = (
    "Columns after Average: the model cut to those layers, before any adaptation (the experiment's `evaluations`): "
    "lm-eval accuracy (%), perplexity, top-1 next-token agreement and mean KL divergence (nats/token) to the full "
    "model; in brackets, % of the full model's value (above 100% is worse for perplexity)."
)
_FIELDS = {f.name for f in dataclasses.fields(EvaluationRequest)} - {"text"}


def parse_evaluations(entries, base: Path, where: str) -> tuple[EvaluationRequest, ...]:
    """The checked requests of an `evaluations:` list; relative paths are relative to the experiment file."""
    if entries is None:
        return ()
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise LayercutError(
            f"{where}: 'evaluations' must be a list of mappings, e.g. [{{lm_eval: [layercut_trec], limit: 100}}]"
        )
    requests = []
    for entry in entries:
        unknown = sorted(set(entry) - _FIELDS, key=str)
        if unknown:
            raise LayercutError(
                f"{where}: unknown evaluation key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(sorted(_FIELDS))}"
            )
        fields = dict(entry)
        if isinstance(fields.get("lm_eval"), str):
            fields["lm_eval"] = [fields["lm_eval"]]
        for key in ("include", "perplexity"):
            if fields.get(key) and (base / str(fields[key])).exists():
                fields[key] = str((base / str(fields[key])).resolve())
        try:
            requests.append(EvaluationRequest(**fields).checked())
        except TypeError as error:
            raise LayercutError(
                f"{where}: evaluation {entry} is malformed ({error}): see layercut.evaluate.per_depth"
            ) from None
    return tuple(requests)


def run_evaluations(
    requests: tuple[EvaluationRequest, ...], root: Path, records: list[dict], echo: Callable[[str], None] = print
) -> None:
    """Each request on each (model, kept layers) of the finished `records` and on each full model, unless stored."""
    from layercut.model.load import load_model  # torch: `layercut report` imports this module

    depths: dict[str, set[str]] = defaultdict(set)
    for record in records:
        depths[record["config"]["model"]].add(record["layers"]["spec"])
    for model, specs in depths.items():
        full_spec = format_index_spec(list(range(load_config(model).num_hidden_layers)))
        full = None  # loaded once per model: the full depth's row, and the reference for compare_full
        for spec in sorted(specs | {full_spec}, key=lambda s: (s != full_spec, s)):
            todo = [r for r in requests if not (root / FOLDER / f"{_key(model, spec, r)}.json").is_file()]
            if not todo:
                continue
            full = full or load_model(model, "all")
            loaded = full if spec == full_spec else load_model(model, LayerSelection("keep", spec=spec))
            for request in todo:
                echo(f"evaluating {model} layers {spec} ({_describe(request)})")
                write_json_atomic(
                    root / FOLDER / f"{_key(model, spec, request)}.json", evaluate_loaded(loaded, request, full.model)
                )


class EvaluationColumns:
    """The report's extra columns: figures per (model, kept layers), with the full model's for % of full."""

    def __init__(self, folder: Path):
        self.by_depth: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        self.full: dict[str, dict[str, float]] = defaultdict(dict)
        for path in sorted((Path(folder) / FOLDER).glob("*.json")):
            record = json.loads(path.read_text())
            values = figures(record)
            self.by_depth[(record["model"], record["layers"]["spec"])].update(values)
            if record["layers"]["count"] == record["layers"]["source_depth"]:
                self.full[record["model"]].update(values)

    def header(self, model: str) -> list[str]:
        """lm-eval columns first, then the intrinsic ones, each in the order first seen."""
        names = list(dict.fromkeys(name for (m, _), values in self.by_depth.items() if m == model for name in values))
        return sorted(names, key=lambda name: name in INTRINSIC_COLUMNS or name.startswith("perplexity ("))

    def cells(self, model: str, kept_specs: set[str]) -> list[str]:
        """A row's cells; a row whose runs kept different layers (a strategy ranked per seed) shows none."""
        values = self.by_depth.get((model, next(iter(kept_specs))), {}) if len(kept_specs) == 1 else {}
        return [figure_cell(name, values.get(name), self.full[model].get(name)) for name in self.header(model)]


def _key(model: str, spec: str, request: EvaluationRequest) -> str:
    text = json.dumps({"model": model, "layers": spec, "request": request.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _describe(request: EvaluationRequest) -> str:
    parts = [f"lm-eval {','.join(request.lm_eval)}"] if request.lm_eval else []
    return ", ".join(parts + ([f"perplexity on {request.perplexity}"] if request.perplexity else []))
