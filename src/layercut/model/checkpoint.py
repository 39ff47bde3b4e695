"""Write a cut model as a plain Hugging Face checkpoint, with a record of how it was cut."""

from __future__ import annotations

import json
from pathlib import Path

from layercut.atomic import atomic_directory, check_writable, write_json_atomic, write_text_atomic
from layercut.errors import LayercutError, reported_as
from layercut.model.layers import format_index_spec
from layercut.model.load import LoadedModel
from layercut.model.size import size_report
from layercut.provenance import package_versions

RECORD_NAME = "layercut.json"


def check_output_folder(out: str | Path, overwrite: bool) -> Path:
    """Refuse, before any work is done, an output that is a file, and a non-empty folder unless
    `overwrite`; even then, only a folder layercut wrote (and nothing added since) is replaced."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LayercutError(f"output '{out}' is a file: choose a folder path")
    check_writable(out, "the output folder", folder=True)
    if not out.is_dir() or not any(out.iterdir()):
        return out
    if not overwrite:
        raise LayercutError(f"output folder '{out}' exists and is not empty: choose another -o or pass --overwrite")
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise LayercutError(
            f"--overwrite never replaces the working directory or a folder holding it ('{out}'): choose a new output folder"
        )
    foreign = sorted(set(p.name for p in out.iterdir()) - set(_written_files(out)))
    if foreign:
        raise LayercutError(
            f"output folder '{out}' holds files layercut did not write ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}): --overwrite replaces only a model folder layercut made; "
            "choose another -o, or move those files away"
        )
    return out


def _written_files(folder: Path) -> list[str]:
    """The files layercut wrote into a model folder, as its record lists them (none if it has no readable record)."""
    try:
        files = json.loads((folder / RECORD_NAME).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [name for name in files if isinstance(name, str)]


def save_cut_model(
    loaded: LoadedModel, out: str | Path, overwrite: bool = False, extra_record: dict | None = None
) -> dict:
    """Save model, tokenizer (when the source has one), `layercut.json` and a model card into `out`, atomically."""
    out = check_output_folder(out, overwrite)
    report = size_report(loaded.model, loaded.source_parameters)
    record = {
        "source": loaded.model_id,
        "source_depth": loaded.source_depth,
        "kept_layers": loaded.kept,
        "depth": len(loaded.kept),
        "parameters_before": loaded.source_parameters,
        "parameters_after": report.parameters,
        "non_embedding_parameters_after": report.non_embedding_parameters,
        "model_class": type(loaded.model).__name__,
        "loading": loaded.trust.record(),
        "versions": package_versions(),
        **(extra_record or {}),
    }
    with atomic_directory(out, overwrite=True) as tmp:
        loaded.model.save_pretrained(tmp, safe_serialization=True)
        if loaded.tokenizer is not None:
            loaded.tokenizer.save_pretrained(tmp)
        record["files"] = sorted([p.name for p in tmp.iterdir()] + [RECORD_NAME, "README.md"])
        write_json_atomic(tmp / RECORD_NAME, record)
        write_text_atomic(tmp / "README.md", model_card(record))
    return record


def read_record(folder: str | Path) -> dict:
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        raise LayercutError(
            f"'{folder}' has no {RECORD_NAME}: it was not written by layercut; cut or save a model with layercut first"
        )
    with reported_as(f"'{path}' is damaged (not valid JSON)", "save the model again with layercut", ValueError):
        record = json.loads(path.read_text())
    if not isinstance(record, dict):
        raise LayercutError(f"'{path}' is damaged (not a JSON object): save the model again with layercut")
    return record


def model_card(record: dict) -> str:
    kept = (
        f"keeps blocks {format_index_spec(record['kept_layers'])} (0-based)"
        if record["kept_layers"]
        else "keeps no block (depth 0)"
    )
    saved = 100.0 * (1 - record["parameters_after"] / record["parameters_before"])
    lines = [
        "---",
        "library_name: transformers",
        "tags: [layercut, layer-pruning]",
        "---",
        f"# {record['source']}, cut to {record['depth']} of {record['source_depth']} layers",
        "",
        f"This checkpoint {kept} of `{record['source']}` and drops the rest; "
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
        lines += [
            "",
            f"Adapted to the task `{record['task']['name']}`; `layercut predict` uses the template, "
            "label words and demonstrations recorded in `layercut.json`.",
        ]
    if "search" in record:  # written by `layercut search`: the depth it found, and against what
        lines += ["", "## How this depth was found", "", *record["search"]["summary"]]
    return "\n".join(lines) + "\n"
