"""`layercut search`: the smallest first-k depth keeping a share of the full model's accuracy, as a saved model."""

from __future__ import annotations

import argparse
import shlex
import sys

from layercut.cli.flags import add_backend_flags
from layercut.cli.run import add_run_settings, config_from_args
from layercut.search.settings import DEFAULT_RATES, DEFAULT_SEEDS, SearchSettings, parse_budget, parse_keep, parse_list

# What the search chooses itself: which layers, the learning rate (picked on dev per depth) and the seeds.
_CHOSEN = (
    "model",
    "layers",
    "keep_strategy",
    "keep_count",
    "calibration_samples",
    "seed",
    "learning_rate",
    "bridge",
    "teacher",
    "distill_weight",
    "distill_temperature",
)


def add_commands(subparsers) -> None:
    search = subparsers.add_parser(
        "search",
        help="find the smallest first-k depth keeping X%% of the full model's accuracy; save it, trimmed",
        description="Probe first-k depths by doubling, then bisection, each trained at every learning rate of --rates "
        "(the grid extended past an edge while dev picks it, until the depth passes; the chosen depth's and the full "
        "model's grids are extended to the end) and judged on dev against the full model; "
        "confirm the answer on test over --seeds; save it with its vocabulary trimmed to the task. "
        "Every probe is a run in DIR/store: a killed search resumes.",
    )
    search.add_argument("model", help="Hub id, local folder, .gguf file, or alias (e.g. smollm2-135m)")
    search.add_argument(
        "--keep",
        required=True,
        type=parse_keep,
        metavar="X%",
        help="the share of the full model's dev accuracy to keep, e.g. 95%%",
    )
    search.add_argument("--out", required=True, metavar="DIR", help="the search's folder: store/, report.md, model/")
    search.add_argument(
        "--seeds",
        default=",".join(map(str, DEFAULT_SEEDS)),
        metavar="S1,S2,...",
        help="the answer is confirmed on test over these seeds (default %(default)s)",
    )
    search.add_argument(
        "--probe-seeds",
        type=int,
        default=1,
        metavar="N",
        help="the first N seeds decide each depth and rate on dev (default 1)",
    )
    search.add_argument(
        "--rates",
        default=",".join(f"{r:g}" for r in DEFAULT_RATES),
        metavar="R1,R2,...",
        help="learning rates every depth tries first (default %(default)s)",
    )
    search.add_argument(
        "--budget",
        type=parse_budget,
        metavar="TIME",
        help="stop probing when the next probe's estimate would pass it, e.g. 2h, 90m",
    )
    search.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="STORE",
        help="a sweep's or search's folder whose finished runs of the same settings are copied, not "
        "trained again (repeatable), e.g. docs/replication/store",
    )
    search.add_argument(
        "--no-save-model",
        dest="save_model",
        action="store_false",
        help="answer only; do not train the chosen depth again to save it",
    )
    add_backend_flags(search, "ray: a probe's runs (its rates and seeds) in parallel, one Ray task each")
    search.add_argument(
        "--dry-run", action="store_true", help="print the probes it may run and their compute; run nothing"
    )
    add_run_settings(search, skip=_CHOSEN)
    search.set_defaults(func=run_search_command)


def run_search_command(args: argparse.Namespace) -> int:
    from layercut.search.search import check_request, plan_lines, search_depth

    settings = SearchSettings(
        keep=args.keep,
        seeds=parse_list(args.seeds, int, "--seeds", "0,42,421"),
        probe_seeds=args.probe_seeds,
        rates=parse_list(args.rates, float, "--rates", "1e-4,3e-4"),
        budget_seconds=args.budget,
        save_model=args.save_model,
    )
    base = config_from_args(args)
    if args.dry_run:
        from layercut.sweep.store import ResultStore

        stores = [ResultStore(path) for path in [*args.reuse, f"{args.out}/store"]]
        print("\n".join(plan_lines(base, settings, check_request(base, settings), stores)))
        return 0
    command = "layercut " + " ".join(shlex.quote(arg) for arg in sys.argv[1:]) if sys.argv[1:2] == ["search"] else ""
    from layercut.search.report import screen_lines

    result = search_depth(
        base, settings, args.out, reuse=args.reuse, backend=args.backend, address=args.address, command=command
    )
    print("\n".join(["", *screen_lines(result), f"report: {args.out}/report.md"]))
    return 0
