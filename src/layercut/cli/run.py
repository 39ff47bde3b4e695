"""`layercut run` (one adapted, evaluated model) and `layercut predict` (use a saved one)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from layercut.cli.flags import add_task_file_arguments, add_trust_arguments, shots, task_options_from_args
from layercut.errors import LayercutError
from layercut.run.config import BRIDGES, METHODS, RunConfig


def add_commands(subparsers) -> None:
    run = subparsers.add_parser("run", help="cut a model, adapt it to a task, evaluate it; writes OUT/result.json")
    add_run_settings(run)
    run.add_argument("--out", required=True, help="the run's folder (result.json, and model/ with --save-model)")
    add_trust_arguments(run)
    run.add_argument("--save-model", action="store_true", help="also save the adapted model for `layercut predict`")
    run.add_argument("--overwrite", action="store_true", help="replace an earlier result in --out")
    run.set_defaults(func=run_run)

    predict = subparsers.add_parser("predict", help="classify texts with a model saved by `layercut run --save-model`")
    predict.add_argument("model_dir")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--file", help="a file with one text per line")
    predict.add_argument("--json", action="store_true", help="print JSON lines")
    predict.add_argument("--trust-remote-code", action="store_true",
                         help="run model code shipped with the model (auto_map in its config); only for sources you trust")
    predict.set_defaults(func=run_predict)


def add_run_settings(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """A flag for each run setting (and the task's), except those in `skip`: commands that choose them
    themselves (`search` picks the layers, the seed and the rate)."""

    def add(*flags, **options) -> None:
        if (options.get("dest") or flags[0].lstrip("-").replace("-", "_")) not in skip:
            parser.add_argument(*flags, **options)

    defaults = RunConfig()
    add("--model", default=defaults.model, help="Hub id, local folder, .gguf file, or alias")
    add("--layers", default=defaults.layers, help="first:K, last:K, all, drop:SPEC, or a SPEC like 0-3,28")
    add("--keep-strategy", help="choose --keep-count layers by importance: first|last|spaced|bi|angular|loss|greedy|task")
    add("--keep-count", type=int, metavar="K")
    add("--calibration-samples", type=int, default=defaults.calibration_samples,
        help="training texts a --keep-strategy measure ranks the layers on")
    add("--task", help=f"a built-in task (`layercut tasks`) or a task YAML file (default {defaults.task}); "
                       "with --data, a name for the file's task")
    add_task_file_arguments(parser)
    add("--shots", type=shots, default=defaults.shots, metavar="K",
        help="training examples per class, or all: the whole training set less dev (needs --dev-size)")
    add("--seed", type=int, default=defaults.seed)
    add("--head", choices=("lm", "cls"), default=defaults.head,
        help="lm: label words through the LM head (the paper); cls: a new linear head")
    add("--method", choices=METHODS, default=defaults.method,
        help="full fine-tuning, LoRA, prefix tuning, or in-context learning only (no training)")
    add("--demos", choices=("fixed", "resample", "similar", "none"), default=defaults.demos,
        help="demonstrations in each prompt (one per class)")
    add("--label-word-policy", choices=("first", "full"), default=defaults.label_word_policy,
        help="score a multi-token label word by its first token (paper) or whole-word log-probability")
    add("--train-layers", default=defaults.train_layers, metavar="all|last:N",
        help="with --method full: train every kept block (all), or only the last N plus the final norm "
             "and the head (Lu et al. 2024)")
    add("--freeze-embeddings", action="store_true",
        help="keep the embedding tables (and an LM head tied to them) as loaded")
    add("--bridge", choices=BRIDGES,
        help="lstsq: fit a linear map from the cut model's last hidden state to the full model's on the "
             "training texts and fold it into the last kept block (no training)")
    add("--teacher", metavar="MODEL_OR_RUN",
        help="distill from this model (e.g. the uncut model) or a run folder saved with --save-model")
    # No argparse default: given without --teacher, these would be ignored, so config_from_args refuses them.
    add("--distill-weight", type=float, metavar="W",
        help=f"share of the KL term toward the teacher in the loss (default {defaults.distill_weight}; with --teacher)")
    add("--distill-temperature", type=float, metavar="T",
        help=f"softmax temperature of the distillation (default {defaults.distill_temperature}; with --teacher)")
    add("--lr", type=float, default=defaults.learning_rate, dest="learning_rate")
    add("--epochs", type=int, default=defaults.epochs, help="the budget, unless --max-steps")
    add("--max-steps", type=int, help="a budget in batches instead of epochs")
    add("--eval-every", type=int, help="batches between dev evaluations (default: one epoch)")
    add("--batch-size", type=int, default=defaults.batch_size)
    add("--gradient-accumulation", type=int, default=defaults.gradient_accumulation)
    add("--patience", type=int, default=defaults.patience, help="dev evaluations without gain before stopping (0: never)")
    add("--weight-decay", type=float, default=defaults.weight_decay)
    add("--dev-shots", type=int, help="dev examples per class (default: --shots)")
    add("--dev-size", type=int, help="dev examples in all, instead of per class")
    add("--test-size", type=int, help="evaluate on a fixed subset of this many test examples")
    add("--max-length", type=int, default=defaults.max_length, help="prompt token limit")
    add("--eval-batch-size", type=int, default=defaults.eval_batch_size)
    add("--lora-rank", type=int, default=defaults.lora_rank)
    add("--lora-alpha", type=int, default=defaults.lora_alpha)
    add("--prefix-tokens", type=int, default=defaults.prefix_tokens, help="virtual tokens of --method prefix")
    add("--no-share-prefix", dest="share_prefix", action="store_false",
        help="compute every prompt whole (the shared-prefix path gives the same scores, faster)")
    add("--device", choices=("auto", "cpu", "cuda"), default=defaults.device)
    add("--dtype", choices=("auto", "float32", "bfloat16"), default=defaults.dtype,
        help="auto: bf16 autocast (weights, optimizer and label-word logits float32) on a GPU with bf16 or a CPU "
             "with AVX512-BF16/AMX, else float32; result.json's precision says what was used and why")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Each RunConfig field from the flag of its name (the default where a command has no such flag); the task
    flags become `task_options`."""
    distilling = [name for name in ("distill_weight", "distill_temperature") if getattr(args, name, None) is not None]
    if distilling and not getattr(args, "teacher", None):
        flag = "--" + distilling[0].replace("_", "-")
        raise LayercutError(f"{flag} sets how to distill from a teacher, but no --teacher is given: "
                            f"add --teacher MODEL_OR_RUN, or drop {flag}")
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)  # a command may set some itself
              if f.name not in ("task", "task_options") and getattr(args, f.name, None) is not None}
    task = args.task or (Path(args.data).stem if args.data else RunConfig.task)
    return RunConfig(**values, task=task, task_options=task_options_from_args(args).changed())


def run_run(args: argparse.Namespace) -> int:
    from layercut.atomic import check_writable
    from layercut.model.checkpoint import check_output_folder
    from layercut.run.pipeline import check_run_folder, run
    from layercut.run.record import RESULT_NAME

    config = config_from_args(args)
    if config.teacher:
        from layercut.healing.distill import check_teacher

        check_teacher(config.teacher)
    check_run_folder(Path(args.out), args.overwrite)
    check_writable(Path(args.out) / RESULT_NAME, "the run's result")
    if args.save_model:
        check_output_folder(Path(args.out) / "model", overwrite=True)  # refuses foreign files now, not after training
    result = run(config, args.out, overwrite=args.overwrite, save_model=args.save_model).record
    metrics, layers, params = result["metrics"], result["layers"], result["parameters"]
    print(
        f"{result['task']['name']}: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} "
        f"on {metrics['num_examples']} test examples | layers {layers['spec'] or 'none'} of {layers['source_depth']}, "
        f"{params['total'] / 1e6:.1f}M parameters ({params['percent_of_source']:.1f}%) | "
        f"{result['timing']['eval_examples_per_second']:.1f} examples/s | {Path(args.out) / RESULT_NAME}"
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
