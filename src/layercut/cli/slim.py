"""`layercut profile` (accuracy and size at every depth from one pass) and `layercut trim` (a saved model's vocabulary)."""

from __future__ import annotations

import argparse
from pathlib import Path

from layercut.errors import LayercutError
from layercut.report.text import text_table
from layercut.settings.run_config import RunConfig


def add_commands(subparsers) -> None:
    profile = subparsers.add_parser(
        "profile",
        help="untrained (ICL) accuracy and size at every first-k depth, from one forward pass",
        description="Score the task's test split at every depth 1..N of MODEL (keeping the first k blocks) from one "
        "forward pass of the full model: the same predictions as separate `layercut run --method icl "
        "--layers first:K` runs. Also prints parameters and fp32 size per depth, with the vocabulary "
        "trimmed to the task's tokens (`layercut cut --trim-vocab`) and without.",
    )
    defaults = RunConfig()
    profile.add_argument("model", help="Hub id, local folder, .gguf file, or alias (smollm2-135m)")
    profile.add_argument("--task", default=defaults.task, help="a built-in task (`layercut tasks`) or a task YAML file")
    profile.add_argument("--depths", metavar="SPEC", help="depths to score, e.g. 1-4,8,30 (default: all)")
    profile.add_argument(
        "--shots",
        type=int,
        default=defaults.shots,
        metavar="K",
        help="training examples per class (the demonstrations' pool)",
    )
    profile.add_argument("--seed", type=int, default=defaults.seed)
    profile.add_argument(
        "--demos",
        choices=("fixed", "resample", "none"),
        default=defaults.demos,
        help="demonstrations in each prompt (one per class)",
    )
    profile.add_argument("--test-size", type=int, help="evaluate on a fixed subset of this many test examples")
    profile.add_argument("--max-length", type=int, default=defaults.max_length, help="prompt token limit")
    profile.add_argument("--eval-batch-size", type=int, default=defaults.eval_batch_size)
    profile.add_argument("--device", choices=("auto", "cpu", "cuda"), default=defaults.device)
    profile.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default=defaults.dtype,
        help="auto: bf16 autocast on a GPU or CPU with native bf16, else float32 (as `layercut run`)",
    )
    profile.add_argument("--plot", metavar="FILE", help="draw accuracy vs depth (.png, .svg or .pdf)")
    profile.add_argument("--json", metavar="FILE", help="also write every depth's figures as JSON")
    profile.set_defaults(func=run_profile)

    trim = subparsers.add_parser(
        "trim",
        help="trim the vocabulary of a saved model (`layercut cut`, `run --save-model`) to a task's tokens",
        description="Keep only the tokens a corpus uses (plus special, base and label-word tokens and their merge "
        "paths) in the embedding, LM head and tokenizer. Corpus texts tokenize and score as before; "
        "other texts tokenize into smaller pieces. The result is a plain Hugging Face folder.",
    )
    trim.add_argument("model_dir", help="a folder written by `layercut cut` or `layercut run --save-model`")
    trim.add_argument(
        "--corpus",
        metavar="TASK_OR_FILE",
        help="a task name or task YAML (its prompts), or a .txt file (one text per line); "
        "default: the task a run's model was adapted to",
    )
    trim.add_argument("-o", "--out", required=True, help="output folder")
    trim.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    trim.set_defaults(func=run_trim)


def run_profile(args: argparse.Namespace) -> int:
    from layercut.atomic import check_writable
    from layercut.model.layers import parse_index_spec
    from layercut.slim.profile import profile_depths

    plot = _checked_plot_path(args.plot)
    for path, what in ((plot, "the plot"), (args.json, "the JSON figures")):  # before the work, not after it
        if path:
            check_writable(path, what)
    config = RunConfig(
        model=args.model,
        task=args.task,
        shots=args.shots,
        seed=args.seed,
        method="icl",
        head="lm",
        demos=args.demos,
        test_size=args.test_size,
        max_length=args.max_length,
        eval_batch_size=args.eval_batch_size,
        device=args.device,
        dtype=args.dtype,
    )
    profile = profile_depths(config, parse_index_spec(args.depths) if args.depths else None)
    rows = profile_rows(profile)
    print(
        f"{args.model} on {args.task}: {len(profile.labels)} test examples, in-context learning "
        f"(demos {args.demos}, {args.shots} shots, seed {args.seed}); {len(profile.depths)} depths scored in one "
        f"pass of {profile.seconds:.1f} s"
    )
    print(format_profile_table(rows))
    if args.json:
        from layercut.atomic import write_json_atomic

        write_json_atomic(
            args.json,
            {
                "config": profile.config.to_dict(),
                "seconds": profile.seconds,
                "source_depth": profile.source_depth,
                "depths": rows,
                "precision": profile.precision.record() if profile.precision else None,
            },
        )
    if plot:
        plot_accuracy_vs_depth(rows, f"{args.model} on {args.task}: in-context accuracy vs layers kept", plot)
        print(f"plot: {plot}")
    return 0


def profile_rows(profile) -> list[dict]:
    """Accuracy, macro-F1 and size of every profiled depth, with and without a trimmed vocabulary."""
    from layercut.model.sources import load_config, load_tokenizer
    from layercut.slim.corpus import resolve_corpus
    from layercut.slim.sizes import depth_sizes, trimmed_vocab_size

    model_config = load_config(profile.config.model)
    tokenizer = load_tokenizer(profile.config.model)
    try:
        vocab = trimmed_vocab_size(tokenizer, resolve_corpus(profile.config.task, tokenizer), model_config)
    except LayercutError:  # a tokenizer trimming does not support: the untrimmed sizes still hold
        vocab = None
    rows = []
    for size in depth_sizes(model_config, profile.depths, vocab):
        metrics = profile.metrics(size.depth)
        rows.append(
            {
                "depth": size.depth,
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "vocab_size": model_config.vocab_size,
                "trimmed_vocab_size": vocab,
                **size.to_dict(),
            }
        )
    return rows


def format_profile_table(rows: list[dict]) -> str:
    from layercut.cli.model import human_bytes

    vocab = rows[0]["trimmed_vocab_size"]
    header = (
        "layers",
        "accuracy",
        "macro-F1",
        "params",
        "fp32",
        f"params (vocab {vocab:,})" if vocab else "params (trimmed: unsupported)",
        "fp32",
    )
    lines = [header] + [
        (
            str(r["depth"]),
            f"{100 * r['accuracy']:.1f}",
            f"{100 * r['macro_f1']:.1f}",
            f"{r['parameters'] / 1e6:.1f}M",
            human_bytes(r["fp32_bytes"]),
            f"{r['trimmed_parameters'] / 1e6:.1f}M" if vocab else "-",
            human_bytes(r["trimmed_fp32_bytes"]) if vocab else "-",
        )
        for r in rows
    ]
    return text_table(lines, left_columns=0)


def plot_accuracy_vs_depth(rows: list[dict], title: str, path: Path) -> None:
    from matplotlib.figure import Figure  # a bare Figure draws with Agg and leaves pyplot alone

    from layercut.atomic import atomic_file

    figure = Figure(figsize=(7, 4.2), layout="constrained")
    axes = figure.subplots()
    axes.plot([r["depth"] for r in rows], [100 * r["accuracy"] for r in rows], marker="o")
    axes.set(title=title, xlabel="layers kept (first k)", ylabel="test accuracy (%)")
    axes.grid(alpha=0.3)
    with atomic_file(path) as tmp:  # a kill mid-save leaves no half-written figure
        figure.savefig(tmp, format=Path(path).suffix[1:].lower(), dpi=110)


def run_trim(args: argparse.Namespace) -> int:
    from layercut.model.checkpoint import check_output_folder, read_record
    from layercut.slim.saved import trim_saved_model

    check_output_folder(args.out, args.overwrite)
    if Path(args.out).resolve() == Path(args.model_dir).resolve():
        raise LayercutError("-o is the model folder itself: write the trimmed model to another folder")
    record = trim_saved_model(args.model_dir, read_record(args.model_dir), args.corpus, args.out, args.overwrite)
    vocabulary = record["vocabulary"]
    print(
        f"kept {vocabulary['vocab_size']:,} of {vocabulary['source_vocab_size']:,} tokens ({vocabulary['corpus']}): "
        f"{record['parameters_after'] / 1e6:.1f}M parameters, saved to {args.out}"
    )
    return 0


def _checked_plot_path(path: str | None) -> Path | None:
    if path is None:
        return None
    from layercut.importance.plot import check_plot_path

    return check_plot_path(path)
