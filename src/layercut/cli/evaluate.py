"""`layercut eval`: cut a model in memory and measure it the way depth-pruning papers do."""

from __future__ import annotations

import argparse
import sys

from layercut.cli.flags import add_trust_arguments, trust_from_args
from layercut.cli.importance import add_strategy_arguments, strategy_choice_from_args


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="cut a model in memory and run lm-eval tasks, perplexity, agreement and KL to the full model",
        description="Cut MODEL in memory, then run lm-evaluation-harness tasks (--lm-eval) and/or measure perplexity "
        "on a text (--perplexity), with top-1 agreement and KL divergence to the uncut model "
        "(--compare-full). Offline lm-eval tasks over the built-in data: layercut_trec, layercut_mr, "
        "layercut_bbc (all three: layercut).",
    )
    parser.add_argument("model", help="Hub id, local folder, .gguf file, or built-in alias (smollm2-135m)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--layers",
        nargs="+",
        default=["all"],
        metavar="LAYERS",
        help="first:K, last:K, all (default), drop:SPEC, or a SPEC like 0-3,28; "
        "several (e.g. first:1 first:2 all) give one row each and a table with %% of full",
    )
    add_strategy_arguments(parser, choice)
    parser.add_argument(
        "--lm-eval",
        metavar="TASKS",
        help="comma-separated lm-eval tasks, groups or tags "
        "(layercut_trec, piqa, hellaswag, ...; needs `pip install 'layercut[eval]'`)",
    )
    parser.add_argument(
        "--num-fewshot", type=int, metavar="N", help="few-shot examples per prompt (default: each task's own, else 0)"
    )
    parser.add_argument("--limit", type=int, metavar="N", help="score only the first N examples of each lm-eval task")
    parser.add_argument("--include", metavar="DIR", help="a folder of your own lm-eval task YAMLs")
    parser.add_argument("--batch-size", type=int, default=8, help="lm-eval batch size (default 8)")
    parser.add_argument(
        "--perplexity",
        metavar="FILE_OR_TASK",
        help='a text file (one text per line), a .jsonl file with "text", or a task name (its training texts)',
    )
    parser.add_argument(
        "--compare-full",
        action="store_true",
        help="also load the uncut model: top-1 next-token agreement and mean KL divergence to it",
    )
    parser.add_argument(
        "--window", type=int, metavar="T", help="perplexity window in tokens (default 1024, or the model's context)"
    )
    parser.add_argument("--stride", type=int, metavar="S", help="tokens between windows (default: half the window)")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="score only the text's first N tokens")
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="auto: bf16 autocast (LM head in float32) on a GPU or CPU with native bf16 "
        "(AVX512-BF16, AMX), else float32; the JSON records what was used and why",
    )
    parser.add_argument("-o", "--out", metavar="FILE", help="write the results and the cut's record as JSON")
    add_trust_arguments(parser)
    parser.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from layercut.atomic import check_writable, write_json_atomic
    from layercut.evaluate.request import EvaluationRequest, depth_table, evaluate_loaded, format_record
    from layercut.importance.choose import load_cut_model
    from layercut.model.layers import LayerSelection
    from layercut.model.load import load_model
    from layercut.model.sources import context_length, load_config
    from layercut.settings.precision import resolve_precision

    # Every check that needs no weights runs before the model loads.
    if args.out:
        check_writable(args.out, "the JSON results")
    tasks = tuple(name.strip() for name in (args.lm_eval or "").split(",") if name.strip())
    request = EvaluationRequest(
        lm_eval=tasks,
        num_fewshot=args.num_fewshot,
        limit=args.limit,
        include=args.include,
        batch_size=args.batch_size,
        perplexity=args.perplexity,
        compare_full=args.compare_full,
        window=args.window,
        stride=args.stride,
        max_tokens=args.max_tokens,
    ).checked()
    selections = [LayerSelection.parse(text) for text in args.layers]
    trust = trust_from_args(args)
    config = load_config(args.model, trust)
    depth = config.num_hidden_layers
    if request.perplexity is not None:
        request.windows(context_length(config), args.model)  # a window the model cannot take fails before it loads
    for selection in selections:
        selection.indices(depth)  # a selection the model cannot hold fails before any load
    strategy = strategy_choice_from_args(args)
    by_strategy = load_cut_model(args.model, strategy, trust=trust) if strategy else None
    full = load_model(args.model, "all", trust=trust) if request.compare_full else None
    precision = resolve_precision(args.dtype, "cpu")  # the models are loaded on the CPU
    records = []
    for loaded in [by_strategy] if by_strategy else (_load(args.model, s, full, depth, trust) for s in selections):
        records.append(evaluate_loaded(loaded, request, full.model if full else None, precision))
        print(format_record(records[-1]) + "\n", flush=True)
    if len(records) > 1:
        print(depth_table(records))
    if args.out:
        write_json_atomic(args.out, {"evaluations": records})
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _load(model: str, selection, full, depth: int, trust):
    """The model cut by `selection`; the uncut one already loaded for comparison is reused as is."""
    from layercut.model.load import load_model

    if full is not None and selection.indices(depth) == list(range(depth)):
        return full
    return load_model(model, selection, trust=trust)
