"""`layercut sweep` (run an experiment file into a result folder) and `layercut report` (tables, CSV, plots)."""

from __future__ import annotations

import argparse
import sys

from layercut.errors import LayercutError
from layercut.cli.flags import add_backend_flags


def add_commands(subparsers) -> None:
    sweep = subparsers.add_parser(
        "sweep",
        help="run every combination of an experiment file (depths x tasks x heads x ...), resumably, then report",
        description="Run an experiment file into --out DIR: one folder per run, keyed by its configuration's hash. "
        "Runs already complete in DIR are skipped, so a killed sweep resumes where it stopped. "
        "Grid cells that cannot run (e.g. head cls with method icl) are skipped with a warning.",
    )
    sweep.add_argument("experiment", nargs="?", help="an experiment YAML file, e.g. configs/demo.yaml")
    sweep.add_argument("--out", metavar="DIR", help="the result folder (required unless --dry-run)")
    add_backend_flags(
        sweep, "local: one run after another in this process; ray: one Ray task per run (pip install 'layercut[ray]')"
    )
    sweep.add_argument(
        "--dry-run", action="store_true", help="print the runs, their count and a compute estimate; run nothing"
    )
    sweep.add_argument(
        "--status",
        metavar="DIR",
        help="where the sweep in DIR stands (runs done, failed, time left), running or stopped; changes nothing",
    )
    sweep.add_argument(
        "--allow-different",
        action="store_true",
        help="write into a DIR made by another experiment file (the report covers every run in it)",
    )
    sweep.set_defaults(func=run_sweep_command)

    report = subparsers.add_parser(
        "report", help="write report.md (paper-style tables), runs.csv and plots/ for a sweep folder"
    )
    report.add_argument("folder", metavar="DIR", help="a sweep's or a depth search's --out folder")
    report.set_defaults(func=run_report_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    from layercut.sweep.experiment import load_experiment
    from layercut.sweep.store import ResultStore

    if args.status:
        return _print_status(args.status)
    if args.experiment is None:
        raise LayercutError("name the experiment file, e.g. `layercut sweep configs/demo.yaml --out runs/demo`")
    if args.out is None and not args.dry_run:
        raise LayercutError("give the result folder with --out DIR (or use --dry-run to see the plan)")
    experiment = load_experiment(args.experiment)
    for warning in experiment.warnings:
        print(f"layercut: warning: {warning}", file=sys.stderr)
    if args.dry_run:
        from layercut.sweep.plan import describe_plan

        store = ResultStore(args.out) if args.out else None
        done = {r.key() for r in experiment.runs if store and store.is_done(r.key())}
        print(describe_plan(list(experiment.runs), done))
        return 0
    from layercut.sweep.runner import run_sweep

    summary = run_sweep(
        experiment, args.out, backend=args.backend, address=args.address, allow_different=args.allow_different
    )
    if summary.report:
        print(
            f"report: {summary.report} (tables), {summary.report.parent / 'runs.csv'}, plots in {summary.report.parent / 'plots'}"
        )
    if summary.failed:
        print(
            f"layercut: {len(summary.failed)} run(s) failed (errors in {args.out}/runs/<key>/failure.json); "
            "run the sweep again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


def _print_status(folder: str) -> int:
    """Read-only: the experiment copied into DIR, its stored runs, and whether a sweep holds DIR's lock now."""
    from pathlib import Path

    from layercut.sweep.eta import sweep_progress
    from layercut.sweep.experiment import load_experiment
    from layercut.sweep.store import ResultStore

    store = ResultStore(folder)
    if not (Path(folder) / "experiment.yaml").is_file():
        raise LayercutError(f"'{folder}' holds no sweep (no experiment.yaml): give the --out of `layercut sweep`")
    experiment = load_experiment(Path(folder) / "experiment.yaml")
    records = [stored.record for stored in store.records()]
    progress = sweep_progress(as_stored(list(experiment.runs), records), records)
    print(f"{folder}: {'running' if store.is_running() else 'not running'}; {progress.line()}")
    return 0


def as_stored(runs: list, records: list[dict]) -> list:
    """`runs` as the store holds them. A DIR's experiment.yaml written before precision entered run keys asks
    `dtype: auto`, which on a machine with native bf16 now resolves to bfloat16, while the runs it stored (and a
    sweep started before then still stores) ran in float32 under the float32 key, with no `precision` in their
    records: such a run is counted as the float32 run it was."""
    import dataclasses

    keys = {record.get("key") for record in records}
    before_precision = {record.get("key") for record in records if "precision" not in record}
    stored = []
    for config in runs:
        if config.dtype == "auto" and config.key() not in keys:
            pinned = dataclasses.replace(config, dtype="float32")
            config = pinned if pinned.key() in before_precision else config
        stored.append(config)
    return stored


def run_report_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from layercut.atomic import check_writable
    from layercut.report.markdown import write_report

    from layercut.search.report import SEARCH_RECORD

    if (Path(args.folder) / SEARCH_RECORD).is_file():  # a depth search's folder: its own report
        from layercut.search.report import write_search_report

        check_writable(Path(args.folder) / "report.md", "the report")
        print(f"wrote {write_search_report(args.folder)}")
        return 0
    if not (Path(args.folder) / "runs").is_dir():
        raise LayercutError(
            f"'{args.folder}' is not a sweep folder (no runs/ in it): give the --out of `layercut sweep`"
        )
    check_writable(Path(args.folder) / "report.md", "the report")
    files = write_report(args.folder)
    print(f"wrote {files.report}, {files.runs_csv} and {len(files.plots)} plots in {files.report.parent / 'plots'}")
    return 0
