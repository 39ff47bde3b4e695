"""Write a cut model as a plain Hugging Face checkpoint, with a record of how it was cut."""

from __future__ import annotations

import json
from pathlib import Path

from layercut.accounting import size_report
from layercut.atomic import atomic_directory, write_json_atomic, write_text_atomic
from layercut.cutting import LoadedModel
from layercut.errors import LayercutError
from layercut.provenance import package_versions
from layercut.selection import format_index_spec

RECORD_NAME = "layercut.json"


def check_output_folder(out: str | Path, overwrite: bool) -> Path:
    """Refuse a non-empty output folder unless asked, before any work is done."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LayercutError(f"output '{out}' is a file: choose a folder path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise LayercutError(f"output folder '{out}' exists and is not empty: choose another -o or pass --overwrite")
    return out


def save_cut_model(loaded: LoadedModel, out: str | Path, overwrite: bool = False, extra_record: dict | None = None) -> dict:
    """Save model, tokenizer, `layercut.json` and a model card into `out`, atomically."""
    out = check_output_folder(out, overwrite)
    report = size_report(loaded.model, loaded.source_parameters)
    record = {
        "source": loaded.spec,
        "source_depth": loaded.source_depth,
        "kept_layers": loaded.kept,
        "depth": len(loaded.kept),
        "parameters_before": loaded.source_parameters,
        "parameters_after": report.parameters,
        "non_embedding_parameters_after": report.non_embedding_parameters,
        "model_class": type(loaded.model).__name__,
        "versions": package_versions(),
        **(extra_record or {}),
    }
    with atomic_directory(out, overwrite=True) as tmp:
        loaded.model.save_pretrained(tmp, safe_serialization=True)
        loaded.tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / RECORD_NAME, record)
        write_text_atomic(tmp / "README.md", model_card(record))
    return record


def read_record(folder: str | Path) -> dict:
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        raise LayercutError(f"'{folder}' has no {RECORD_NAME}: it was not written by layercut; cut or save a model with layercut first")
    return json.loads(path.read_text())


def model_card(record: dict) -> str:
    kept = format_index_spec(record["kept_layers"])
    saved = 100.0 * (1 - record["parameters_after"] / record["parameters_before"])
    lines = [
        "---",
        "library_name: transformers",
        "tags: [layercut, layer-pruning]",
        "---",
        f"# {record['source']}, cut to {record['depth']} of {record['source_depth']} layers",
        "",
        f"This checkpoint keeps blocks {kept} (0-based) of `{record['source']}` and drops the rest; "
        "embeddings, final norm and LM head are unchanged. It was written by "
        f"[layercut](https://pypi.org/project/layercut/) {record['versions'].get('layercut')} "
        f"with transformers {record['versions'].get('transformers')}.",
        "",
        f"Parameters: {record['parameters_after'] / 1e6:.1f}M, down from {record['parameters_before'] / 1e6:.1f}M "
        f"({saved:.1f}% fewer; tied LM head counted once). Non-embedding parameters: "
        f"{record['non_embedding_parameters_after'] / 1e6:.1f}M.",
        "",
        "Load it with plain transformers: `AutoModelForCausalLM.from_pretrained(this_folder)`.",
    ]
    if "task" in record:
        lines += ["", f"Adapted to the task `{record['task']['name']}`; `layercut predict` uses the template, "
                  "label words and demonstrations recorded in `layercut.json`."]
    return "\n".join(lines) + "\n"
