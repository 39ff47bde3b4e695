"""`layercut rank`, and the `--keep-strategy` options that `cut` (and any command choosing layers) shares."""

from __future__ import annotations

import argparse
import json
import math

from layercut.cli.flags import add_trust_arguments, trust_from_args
from layercut.errors import LayercutError
from layercut.importance.strategies import (
    MEASURES,
    STRATEGIES,
    StrategyChoice,
    check_block_size,
    check_count,
    check_strategy,
)
from layercut.model.layers import format_index_spec
from layercut.report.text import text_table

DEFAULT_COUNTS = (2, 4, 8)  # the depths the strategies are compared at


def add_commands(subparsers) -> None:
    rank = subparsers.add_parser(
        "rank",
        help="score each layer's importance on calibration text: BI, angular distance, removal loss, greedy order",
    )
    rank.add_argument("model", help="Hub id, local folder, .gguf file, or built-in alias (smollm2-135m)")
    rank.add_argument(
        "--calibration",
        required=True,
        metavar="TASK_OR_FILE",
        help='a task name (its training texts), a text file (one text per line) or .jsonl with a "text" field',
    )
    rank.add_argument("--samples", type=int, default=64, metavar="N", help="calibration sequences (default 64)")
    rank.add_argument("--max-length", type=int, default=128, metavar="L", help="tokens per sequence (default 128)")
    rank.add_argument(
        "--per-text",
        action="store_true",
        help="one text per sequence, padded (default: texts packed into full sequences)",
    )
    rank.add_argument("--batch-size", type=int, default=8, metavar="B", help="sequences per forward pass (default 8)")
    rank.add_argument(
        "--measures",
        default=",".join(MEASURES),
        metavar="LIST",
        help=f"comma-separated subset of {','.join(MEASURES)} (default all; greedy is the slow one)",
    )
    rank.add_argument(
        "--block-size", default="all", metavar="N|all", help="run length n for angular distance (default all)"
    )
    rank.add_argument(
        "--counts",
        type=int,
        nargs="+",
        metavar="K",
        help=f"layer counts for the table of kept layers (default {' '.join(map(str, DEFAULT_COUNTS))}, up to the depth)",
    )
    rank.add_argument("-o", "--out", metavar="FILE", help="save the ranking as JSON, for `cut --ranking`")
    rank.add_argument("--json", action="store_true", help="print the ranking as JSON instead of tables")
    rank.add_argument("--plot", metavar="FILE", help="plot importance by layer (.png, .svg or .pdf)")
    add_trust_arguments(rank)
    rank.set_defaults(func=run_rank)


def add_strategy_arguments(parser: argparse.ArgumentParser, group) -> None:
    """`--keep-strategy` joins the mutually exclusive `group` of layer selections; the rest qualify it."""
    group.add_argument(
        "--keep-strategy", metavar="STRATEGY", help=f"choose --keep-count layers by strategy: {', '.join(STRATEGIES)}"
    )
    parser.add_argument("--keep-count", type=int, metavar="K", help="how many layers --keep-strategy keeps")
    parser.add_argument(
        "--calibration",
        metavar="TASK_OR_FILE",
        help="text to rank layers on (strategies bi, angular, loss, greedy) or to fit --bridge on: a task, a text or "
        ".jsonl file (strategy task: a task, whose dev examples score the layers)",
    )
    parser.add_argument(
        "--ranking", metavar="FILE", help="a ranking saved by `layercut rank -o`, instead of --calibration"
    )


def strategy_choice_from_args(args: argparse.Namespace) -> StrategyChoice | None:
    """The layer choice `--keep-strategy` asks for, or None when it is not given."""
    if args.keep_strategy is None:
        calibration = None if getattr(args, "bridge", None) else args.calibration  # a bridge fits on it too
        given = [
            flag
            for flag, value in (
                ("--keep-count", args.keep_count),
                ("--calibration", calibration),
                ("--ranking", args.ranking),
            )
            if value is not None
        ]
        if given:
            raise LayercutError(
                f"{given[0]} only works with --keep-strategy: add --keep-strategy STRATEGY or leave it out"
            )
        return None
    check_strategy(args.keep_strategy)
    if args.keep_count is None:
        raise LayercutError("--keep-strategy needs --keep-count K: say how many layers to keep")
    return StrategyChoice(args.keep_strategy, args.keep_count, calibration=args.calibration, ranking=args.ranking)


def run_rank(args: argparse.Namespace) -> int:
    from layercut.atomic import check_writable
    from layercut.importance.calibration import read_calibration_texts
    from layercut.importance.plot import check_plot_path, plot_ranking
    from layercut.importance.ranking import rank_layers
    from layercut.model.load import load_model
    from layercut.model.sources import load_config

    # Every check that needs no weights runs before the model loads.
    measures = tuple(m.strip() for m in args.measures.split(",") if m.strip())
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not measures:
        raise LayercutError(f"unknown measure '{','.join(unknown)}' in --measures: choose from {','.join(MEASURES)}")
    for flag, value in (
        ("--samples", args.samples),
        ("--max-length", args.max_length),
        ("--batch-size", args.batch_size),
    ):
        if value < 1:
            raise LayercutError(f"{flag} must be at least 1, got {value}")
    if args.plot:
        check_writable(check_plot_path(args.plot), "the plot")
    if args.out:
        check_writable(args.out, "the ranking")
    trust = trust_from_args(args)
    depth = load_config(args.model, trust).num_hidden_layers
    counts = args.counts or [k for k in DEFAULT_COUNTS if k <= depth] or [depth]
    for count in counts:
        check_count(count, depth)
    block_sizes = None if args.block_size == "all" else [check_block_size(_whole_number(args.block_size), depth)]
    texts = read_calibration_texts(args.calibration)

    loaded = load_model(args.model, "all", trust=trust)
    ranking = rank_layers(
        loaded.model,
        loaded.tokenizer,
        texts,
        samples=args.samples,
        max_length=args.max_length,
        block_sizes=block_sizes,
        measures=measures,
        batch_size=args.batch_size,
        packed=not args.per_text,
        model_id=args.model,
        source=args.calibration,
    )
    if args.out:
        ranking.save(args.out)
    if args.plot:
        plot_ranking(ranking, args.plot)
    print(json.dumps(ranking.to_dict(), indent=2) if args.json else format_ranking(ranking, counts))
    return 0


def _whole_number(text: str) -> int:
    if not text.lstrip("-").isdigit():
        raise LayercutError(f"--block-size '{text}' is not a whole number: give n (e.g. 4) or 'all'")
    return int(text)


def format_ranking(ranking, counts: list[int]) -> str:
    """A per-layer table of every measure, then the layers each strategy keeps at `counts`."""
    c = ranking.calibration
    lines = [
        f"{ranking.model}: {ranking.depth} layers; calibration {c['source']}: {c['sequences']} sequences, "
        f"{c['tokens']} tokens ({'packed' if c['packed'] else 'one text each'}, up to {c['max_length']})"
    ]
    if ranking.full_loss is not None:
        lines.append(
            f"calibration loss with all layers: {ranking.full_loss:.4f} (perplexity {math.exp(ranking.full_loss):.2f})"
        )
    greedy_step = {layer: i + 1 for i, layer in enumerate(ranking.greedy_order or [])}
    columns = [
        ("BI", ranking.block_influence, "{:.4f}"),
        ("angular n=1", (ranking.angular_distance or {}).get(1), "{:.4f}"),
        ("loss without", ranking.removal_loss, "{:.4f}"),
        ("greedy step", [greedy_step[i] for i in range(ranking.depth)] if greedy_step else None, "{}"),
    ]
    columns = [(name, values, form) for name, values, form in columns if values is not None]
    rows = [["layer"] + [name for name, _, _ in columns]]
    rows += [
        [str(layer)] + [form.format(values[layer]) for _, values, form in columns] for layer in range(ranking.depth)
    ]
    lines += ["", text_table(rows, left_columns=1), "", "kept layers (0-based) by strategy:"]
    rows = [["strategy"] + [f"K={k}" for k in counts]]
    for strategy in ranking.strategies:
        available = set(ranking.counts(strategy))
        rows.append(
            [strategy] + [format_index_spec(ranking.keep(strategy, k)) if k in available else "-" for k in counts]
        )
    lines.append(text_table(rows, left_columns=1))
    if ranking.seconds:
        lines += ["", "seconds: " + ", ".join(f"{name} {value:.1f}" for name, value in ranking.seconds.items())]
    return "\n".join(lines)
