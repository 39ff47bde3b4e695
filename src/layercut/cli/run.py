"""`layercut run` (one adapted, evaluated model) and `layercut predict` (use a saved one)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from layercut.cli.flags import add_task_file_arguments, add_trust_arguments, setting_flag, task_options_from_args
from layercut.errors import LayercutError
from layercut.settings.declare import GROUPS
from layercut.settings.run_config import RunConfig


def add_commands(subparsers) -> None:
    run = subparsers.add_parser("run", help="cut a model, adapt it to a task, evaluate it; writes OUT/result.json")
    add_run_settings(run)
    run.add_argument("--out", required=True, help="the run's folder (result.json, and model/ with --save-model)")
    run.add_argument("--save-model", action="store_true", help="also save the adapted model for `layercut predict`")
    run.add_argument("--overwrite", action="store_true", help="replace an earlier result in --out")
    run.set_defaults(func=run_command)

    predict = subparsers.add_parser("predict", help="classify texts with a model saved by `layercut run --save-model`")
    predict.add_argument("model_dir")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--file", help="a file with one text per line")
    predict.add_argument("--json", action="store_true", help="print JSON lines")
    add_trust_arguments(predict, ("trust_remote_code",))  # a saved run's weights are safetensors
    predict.set_defaults(func=run_predict)


def add_run_settings(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """A flag for each run setting, made from its declaration (settings/run_config.py), listed by concern, except
    those in `skip`: commands that choose them themselves (`search` picks the layers, the seed and the rate). The
    task's data-file flags fill `task_options`. No flag has an argparse default: a setting not given keeps
    RunConfig's, and a flag that only means something with another (--distill-weight) can be refused alone."""
    groups = {name: parser.add_argument_group(f"{name} settings", description) for name, description in GROUPS.items()}
    for declared in dataclasses.fields(RunConfig):
        if declared.name not in skip and declared.metadata["flag"]:
            names, options = setting_flag(declared)
            groups[declared.metadata["group"]].add_argument(*names, **options)
    add_task_file_arguments(parser)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Each RunConfig field from the flag of its name (the default where a command has no such flag); the task
    flags become `task_options`."""
    distilling = [name for name in ("distill_weight", "distill_temperature") if getattr(args, name, None) is not None]
    if distilling and not getattr(args, "teacher", None):
        flag = "--" + distilling[0].replace("_", "-")
        raise LayercutError(
            f"{flag} sets how to distill from a teacher, but no --teacher is given: "
            f"add --teacher MODEL_OR_RUN, or drop {flag}"
        )
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(RunConfig)  # a command may set some itself
        if f.name not in ("task", "task_options") and getattr(args, f.name, None) is not None
    }
    task = args.task or (Path(args.data).stem if args.data else RunConfig.task)
    return RunConfig(**values, task=task, task_options=task_options_from_args(args).changed())


def run_command(args: argparse.Namespace) -> int:
    from layercut.atomic import check_writable
    from layercut.model.checkpoint import check_output_folder
    from layercut.run.pipeline import check_run_folder, run
    from layercut.adapt.metrics import Metrics
    from layercut.run.record import KeptLayers, Parameters, Timing
    from layercut.run_files import RESULT_NAME

    config = config_from_args(args)
    if config.teacher:
        from layercut.healing.distill import check_teacher

        check_teacher(config.teacher)
    check_run_folder(Path(args.out), args.overwrite)
    check_writable(Path(args.out) / RESULT_NAME, "the run's result")
    if args.save_model:
        check_output_folder(Path(args.out) / "model", overwrite=True)  # refuses foreign files now, not after training
    result = run(config, args.out, overwrite=args.overwrite, save_model=args.save_model).record
    metrics, layers, params = Metrics.read(result), KeptLayers.read(result), Parameters.read(result)
    print(
        f"{result['task']['name']}: accuracy {metrics.accuracy:.4f}, macro-F1 {metrics.macro_f1:.4f} "
        f"on {metrics.num_examples} test examples | layers {layers.spec or 'none'} of {layers.source_depth}, "
        f"{params.total / 1e6:.1f}M parameters ({params.percent_of_source:.1f}%) | "
        f"{Timing.read(result).eval_examples_per_second:.1f} examples/s | {Path(args.out) / RESULT_NAME}"
    )
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from layercut.model.sources import Trust
    from layercut.run.predict import load_predictor, read_texts

    texts = read_texts(args.texts, args.file)
    predictor = load_predictor(args.model_dir, Trust(remote_code=args.trust_remote_code))
    for text, (label, probabilities) in zip(texts, predictor.predict(texts)):
        if args.json:
            print(json.dumps({"text": text, "label": label, "probabilities": probabilities}))
        else:
            print(f"{label}\t{probabilities[label]:.3f}\t{text}")
    return 0
