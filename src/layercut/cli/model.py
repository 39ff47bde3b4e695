"""`layercut cut` and `layercut info`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from layercut.cli.flags import add_trust_arguments, trust_from_args
from layercut.cli.importance import add_strategy_arguments, strategy_choice_from_args
from layercut.errors import LayercutError
from layercut.model.layers import LayerSelection, format_index_spec
from layercut.model.sources import Trust
from layercut.report.text import text_table
from layercut.settings.run_config import BRIDGES


def add_commands(subparsers) -> None:
    cut = subparsers.add_parser("cut", help="keep some blocks of a model and save a plain Hugging Face checkpoint")
    cut.add_argument("model", help="Hub id, local folder, .gguf file, or built-in alias (smollm2-135m)")
    add_strategy_arguments(cut, add_selection_arguments(cut, required=True))
    cut.add_argument(
        "--bridge",
        choices=BRIDGES,
        help="lstsq: fit a linear map from the cut model's last hidden "
        "state to the full model's on --calibration text and fold it into the last kept block",
    )
    cut.add_argument("-o", "--out", required=True, help="output folder")
    cut.add_argument("--overwrite", action="store_true", help="replace an output folder that layercut wrote earlier")
    cut.add_argument(
        "--trim-vocab",
        metavar="TASK_OR_FILE",
        help="keep only the tokens this task's prompts (or this .txt file's lines) use; see `layercut trim`",
    )
    add_trust_arguments(cut)
    cut.set_defaults(func=run_cut)

    info = subparsers.add_parser("info", help="depth, parameters and size of a model, whole and cut")
    info.add_argument("model", help="Hub id, local folder, .gguf file, alias, or a config.json")
    info.add_argument(
        "--keep-first", type=int, nargs="+", metavar="K", help="depths to account for (default: a spread)"
    )
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_trust_arguments(info)
    info.set_defaults(func=run_info)


def add_selection_arguments(parser: argparse.ArgumentParser, required: bool):
    """Add the --keep-first/--keep-last/--keep/--drop group and return it (other ways to choose layers join it)."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--keep-first", type=int, metavar="K", help="keep blocks 0..K-1 (the paper)")
    group.add_argument("--keep-last", type=int, metavar="K", help="keep the last K blocks")
    group.add_argument("--keep", metavar="SPEC", help="keep these blocks, e.g. 0-3,28,29 (0-based)")
    group.add_argument("--drop", metavar="SPEC", help="drop these blocks, keep the rest")
    return group


def selection_from_args(args: argparse.Namespace) -> LayerSelection:
    if args.keep_first is not None:
        return LayerSelection("first", count=args.keep_first)
    if args.keep_last is not None:
        return LayerSelection("last", count=args.keep_last)
    if args.keep is not None:
        return LayerSelection("keep", spec=args.keep)
    if args.drop is not None:
        return LayerSelection("drop", spec=args.drop)
    return LayerSelection("all")


def run_cut(args: argparse.Namespace) -> int:
    from layercut.healing.bridge import apply_bridge
    from layercut.importance.choose import load_cut_model
    from layercut.model.checkpoint import check_output_folder, save_cut_model

    check_output_folder(args.out, args.overwrite)
    texts = bridge_texts(args)
    choice = strategy_choice_from_args(args) or selection_from_args(args)
    loaded = load_cut_model(args.model, choice, trust=trust_from_args(args), need_tokenizer=False)
    kept = choice.describe() if isinstance(choice, LayerSelection) else format_index_spec(loaded.kept)
    extra_record = {"selection": kept, **loaded.extras}
    if texts:
        extra_record["bridge"] = apply_bridge(loaded, texts, args.calibration, samples=BRIDGE_SAMPLES)
    if args.trim_vocab:
        from layercut.slim.trim import trim_loaded

        loaded, extra_record["vocabulary"] = trim_loaded(loaded, args.trim_vocab)
    record = save_cut_model(loaded, args.out, overwrite=args.overwrite, extra_record=extra_record)
    trimmed = f", vocabulary {record['vocabulary']['vocab_size']:,} tokens" if args.trim_vocab else ""
    print(
        f"kept layers {record['kept_layers']} of {record['source_depth']}: "
        f"{record['parameters_after'] / 1e6:.1f}M parameters (from {record['parameters_before'] / 1e6:.1f}M){trimmed}, saved to {args.out}"
    )
    if texts:
        bridge = record["bridge"]
        print(
            f"bridge: relative error of the last hidden state {bridge['relative_error_before']:.4f} -> "
            f"{bridge['relative_error_after']:.4f} on {bridge['calibration_tokens']} tokens, fitted in {bridge['seconds']:.1f} s"
        )
    return 0


BRIDGE_SAMPLES = 64  # calibration sequences of 128 tokens, as the importance measures use


def bridge_texts(args: argparse.Namespace) -> list[str] | None:
    """The calibration texts `--bridge` fits on, read before any weights load (a bad source fails at once)."""
    from layercut.importance.calibration import read_calibration_texts

    if args.bridge is None:
        return None
    if args.calibration is None:
        raise LayercutError("--bridge lstsq fits on calibration text: add --calibration TASK_OR_FILE")
    return read_calibration_texts(args.calibration)


def run_info(args: argparse.Namespace) -> int:
    from layercut.model.size import config_size_reports

    config, note = _config_for(args.model, trust_from_args(args))
    depth = config.num_hidden_layers
    depths = sorted(set(args.keep_first or _default_depths(depth)))
    reports = config_size_reports(config, depths)
    if args.json:
        print(
            json.dumps({"model": args.model, "source_depth": depth, "cuts": [r.to_dict() for r in reports]}, indent=2)
        )
        return 0
    if note:
        print(note)
    print(format_size_table(args.model, depth, reports))
    return 0


def format_size_table(model: str, depth: int, reports) -> str:
    header = f"{model} ({depth} layers)\n"
    columns = ("layers", "hidden", "vocab", "params", "non-emb", "% full", "fp32", "bf16")
    rows = [columns] + [
        (
            str(r.depth),
            str(r.hidden_size),
            str(r.vocab_size),
            f"{r.parameters / 1e6:.1f}M",
            f"{r.non_embedding_parameters / 1e6:.1f}M",
            f"{r.percent_of_full:.1f}",
            human_bytes(r.fp32_bytes),
            human_bytes(r.bf16_bytes),
        )
        for r in reports
    ]
    return header + text_table(rows, left_columns=0)


def _config_for(model: str, trust: Trust):
    """The config of `model`; a config.json is read directly, a paper model offline from a stored copy."""
    from layercut.model.size import config_from_file, known_config
    from layercut.model.sources import load_config

    if model.endswith(".json"):
        if not Path(model).is_file():
            raise LayercutError(f"config file '{model}' does not exist: check the path")
        return config_from_file(model), None
    try:
        return load_config(model, trust), None
    except LayercutError:
        stored = known_config(model)
        if stored is None:
            raise
        return stored, f"(Hub unreachable: using layercut's stored copy of {model}'s config)"


def _default_depths(depth: int) -> list[int]:
    return [d for d in (1, 2, depth // 4, depth // 2, depth) if d >= 1]


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n}"
