"""The full configuration of one run: what `run()` takes, what result.json records, what a sweep varies, what the\nrun flags are made from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from layercut.errors import LayercutError
from layercut.errors import setting as named
from layercut.model.layers import LayerSelection
from layercut.settings.declare import setting
from layercut.settings.methods import REGISTRY
from layercut.tasks.options import check_task_with_data
from layercut.tasks.splits import check_shots

HEADS = ("lm", "cls")
METHODS = tuple(REGISTRY)
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16")
DEMO_POLICIES = ("fixed", "resample", "similar", "none")
LABEL_WORD_POLICIES = ("first", "full")
BRIDGES = ("lstsq",)


@dataclass(frozen=True)
class RunConfig:
    """One experiment cell. Defaults follow the paper where it is explicit (AdamW, lr 5e-5 constant, no warm-up,
    early stopping on dev with the best-dev weights kept) and train to convergence where a CPU allows: batch 8,
    up to 30 epochs, dev checked every epoch, stop after 8 checks without gain (the paper: batch 1, up to 50
    epochs, patience 15). Each field's declaration makes its flag, help and YAML key (settings/declare.py)."""

    model: str = setting("smollm2-135m", "loading", "Hub id, local folder, .gguf file, or alias")
    layers: str = setting("all", "loading", "first:K, last:K, all, drop:SPEC, or a SPEC like 0-3,28")
    task: str = setting(
        "trec",
        "task",
        "a built-in task (`layercut tasks`) or a task YAML file; with --data, a name for "
        "the file's task (default: the file's name)",
    )
    task_options: dict = setting(None, "task", flag=False, factory=dict)  # --data/--text-column/...: a data-file task
    shots: int | str = setting(
        16,
        "task",
        "training examples per class, or all: the whole training set less dev (needs --dev-size)",
        metavar="K",
    )
    seed: int = setting(0, "task", "draws the splits, the demonstrations and the initial weights")
    head: str = setting(
        "lm", "adaptation", "lm: label words through the LM head (the paper); cls: a new linear head", choices=HEADS
    )
    method: str = setting(
        "full",
        "adaptation",
        "full fine-tuning, LoRA, prefix tuning, or in-context learning only (no training)",
        choices=METHODS,
    )
    demos: str = setting("fixed", "prompting", "demonstrations in each prompt (one per class)", choices=DEMO_POLICIES)
    label_word_policy: str = setting(
        "first",
        "prompting",
        "score a multi-token label word by its first token (paper) or whole-word log-probability",
        choices=LABEL_WORD_POLICIES,
    )
    learning_rate: float = setting(5e-5, "training", aliases=("--lr",))
    epochs: int = setting(30, "training", "the budget, unless --max-steps")
    max_steps: int | None = setting(None, "training", "a budget in batches instead of epochs")
    eval_every: int | None = setting(None, "training", "batches between dev evaluations (default: one epoch)")
    batch_size: int = setting(8, "training")
    gradient_accumulation: int = setting(1, "training")
    patience: int = setting(8, "training", "dev evaluations without gain before stopping (0: never)")
    weight_decay: float = setting(0.0, "training")
    dev_shots: int | None = setting(None, "task", "dev examples per class (default: --shots, as LM-BFF)")
    dev_size: int | None = setting(None, "task", "dev examples in all, instead of per class")
    test_size: int | None = setting(
        None, "task", "evaluate on a fixed subset of this many test examples (default: all)"
    )
    max_length: int = setting(512, "prompting", "prompt token limit")
    eval_batch_size: int = setting(16, "evaluation")
    lora_rank: int = setting(8, "lora")
    lora_alpha: int = setting(16, "lora")
    prefix_tokens: int = setting(20, "prefix", "virtual tokens of --method prefix (the paper's scripts: 20)")
    keep_strategy: str | None = setting(
        None, "loading", "choose --keep-count layers by importance: first|last|spaced|bi|angular|loss|greedy|task"
    )
    keep_count: int | None = setting(None, "loading", "how many layers --keep-strategy keeps", metavar="K")
    calibration_samples: int = setting(64, "loading", "training texts a --keep-strategy measure ranks the layers on")
    share_prefix: bool = setting(
        True,
        "evaluation",
        "compute the prompts' common prefix (fixed demonstrations) once; "
        "--no-share-prefix computes every prompt whole (the same scores, slower)",
    )
    train_layers: str = setting(
        "all",
        "healing",
        "with --method full: train every kept block (all), or only the last N "
        "plus the final norm and the head (Lu et al. 2024)",
        metavar="all|last:N",
    )
    freeze_embeddings: bool = setting(
        False, "healing", "keep the embedding tables (and an LM head tied to them) as loaded"
    )
    bridge: str | None = setting(
        None,
        "healing",
        "lstsq: fit a linear map from the cut model's last hidden state to "
        "the full model's on the training texts and fold it into the last kept block "
        "(no training)",
        choices=BRIDGES,
    )
    teacher: str | None = setting(
        None,
        "healing",
        "distill from this model (e.g. the uncut model) or a run folder saved with --save-model",
        metavar="MODEL_OR_RUN",
    )
    distill_weight: float = setting(
        0.5, "healing", "share of the KL term toward the teacher in the loss (with --teacher)", metavar="W"
    )
    distill_temperature: float = setting(
        1.0, "healing", "softmax temperature of the distillation (with --teacher)", metavar="T"
    )
    device: str = setting("auto", "loading", choices=DEVICES)
    dtype: str = setting(
        "auto",
        "loading",
        "auto: bf16 autocast (weights, optimizer and label-word logits float32) on a GPU with bf16 "
        "or a CPU with AVX512-BF16/AMX, else float32; result.json's precision says what was used and why",
        choices=DTYPES,
    )
    allow_pickle: bool = setting(
        False,
        "loading",
        "load pickle weights (pytorch_model.bin) when a model has no safetensors; unpickling can run code",
    )
    trust_remote_code: bool = setting(
        False, "loading", "run model code shipped with the model (auto_map in its config); only for sources you trust"
    )

    def __post_init__(self) -> None:
        _one_of("head", self.head, HEADS)
        _one_of("method", self.method, METHODS)
        _one_of("device", self.device, DEVICES)
        _one_of("dtype", self.dtype, DTYPES)
        _one_of("demos", self.demos, DEMO_POLICIES)
        _one_of("label_word_policy", self.label_word_policy, LABEL_WORD_POLICIES)
        if self.head == "cls" and self.method == "icl":
            raise LayercutError(
                f"{named('head', 'cls')} with {named('method', 'icl')} evaluates an untrained classification head, "
                f"which means nothing: use {named('head', 'lm')} for in-context learning, or train the head "
                f"({named('method', 'full')} or lora)"
            )
        if not 0 < self.learning_rate < math.inf:
            raise LayercutError(
                f"{named('learning_rate')} must be > 0 and finite, got {self.learning_rate}: "
                f"e.g. {named('learning_rate', '5e-5')}"
            )
        if not 0 <= self.weight_decay < math.inf:
            raise LayercutError(
                f"{named('weight_decay')} must be >= 0 and finite, got {self.weight_decay}: "
                f"e.g. {named('weight_decay', '0.01')}"
            )
        for name in (
            "epochs",
            "batch_size",
            "gradient_accumulation",
            "eval_batch_size",
            "max_length",
            "prefix_tokens",
            "lora_rank",
            "lora_alpha",
            "calibration_samples",
        ):
            if getattr(self, name) < 1:
                raise LayercutError(f"{named(name)} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "eval_every", "dev_shots", "dev_size", "test_size", "keep_count"):
            if (
                getattr(self, name) is not None and getattr(self, name) < 1
            ):  # an empty dev set would silently stop early stopping
                raise LayercutError(f"{named(name)} must be at least 1, got {getattr(self, name)}")
        if not -(2**63) <= self.seed < 2**64:  # torch.manual_seed's range
            raise LayercutError(
                f"{named('seed')} {self.seed} does not fit in 64 bits: give a seed from 0 to {2**64 - 1}"
            )
        check_shots(self.shots, self.dev_shots, self.dev_size)
        check_task_with_data(self.task, self.task_options)
        if self.patience < 0:
            raise LayercutError(f"{named('patience')} must be >= 0, got {self.patience}")
        _check_healing(self)
        if (self.keep_strategy is None) != (self.keep_count is None):
            raise LayercutError(
                f"{named('keep_strategy')} and {named('keep_count')} go together: give both (or use {named('layers')})"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise LayercutError(f"unknown run setting(s) {unknown}; allowed: {', '.join(sorted(names))}")
        return cls(**data)

    @classmethod
    def from_stored(cls, data: dict) -> "RunConfig":
        """The settings a stored record holds, leaving out any key this version does not know (a record written by a
        later one); `from_dict` refuses such keys, as a user's input must be refused."""
        return cls.from_dict({k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def key(self) -> str:
        """The run's identity in a sweep: a hash of the settings that differ from the defaults, so that a
        new setting whose default keeps the old behaviour leaves stored runs' keys (and a sweep's resume)
        intact. Changing a default's behaviour must bump KEY_VERSION.

        `dtype` enters as the precision it resolves to on this machine (settings/precision.py): float32, whether
        asked or resolved from auto, adds nothing (the key of every run before precision was recorded, all
        float32 on CPU); bfloat16 adds "precision", so a float32 run is never taken for a bfloat16 one."""
        from layercut.settings.precision import FLOAT32, resolve_precision  # torch-light

        defaults = _defaults()
        changed = {name: value for name, value in self.to_dict().items() if value != defaults[name] and name != "dtype"}
        precision = resolve_precision(self.dtype, self.device).resolved
        if precision != FLOAT32:
            changed["precision"] = precision
        text = json.dumps({"version": KEY_VERSION, **changed}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def trains(self) -> bool:
        return REGISTRY[self.method].trains


KEY_VERSION = 2


def _defaults() -> dict:
    return RunConfig().to_dict()


def _kept_count(config: RunConfig) -> int | None:
    """How many blocks the run keeps, where the config alone says (a count, first:K, last:K); a malformed
    --layers is left to the run, which names the problem against the model's depth."""
    if config.keep_count is not None:
        return config.keep_count
    try:
        selection = LayerSelection.parse(config.layers)
    except LayercutError:
        return None
    return selection.count if selection.mode in ("first", "last") and selection.count >= 0 else None


def train_layers_count(text: str) -> int | None:
    """N of `last:N`, None for `all`."""
    if text == "all":
        return None
    mode, _, count = text.partition(":")
    if mode != "last" or not count.isdigit() or int(count) < 1:
        raise LayercutError(f"{named('train_layers')} '{text}' is not all or last:N: write e.g. last:1 or all")
    return int(count)


def _check_healing(config: RunConfig) -> None:
    count = train_layers_count(config.train_layers)
    if (count is not None or config.freeze_embeddings) and config.method != "full":
        raise LayercutError(
            f"{named('train_layers')} and {named('freeze_embeddings')} choose what full fine-tuning trains, not "
            f"{named('method', config.method)}: use {named('method', 'full')}"
        )
    kept = _kept_count(config)
    if kept == 0:
        _check_depth_zero(config, count)
    if count is not None and kept is not None and count > kept:  # known before loading: a sweep skips the cell
        raise LayercutError(
            f"{named('train_layers', config.train_layers)} asks for more blocks than the {kept} kept: "
            f"choose N from 1 to {kept}, or all"
        )
    if config.bridge is not None:
        _one_of("bridge", config.bridge, BRIDGES)
    if config.teacher is not None and not config.trains:
        raise LayercutError(
            f"{named('teacher')} distills during training, and {named('method', 'icl')} does not train: "
            f"use {named('method', 'full')}, lora or prefix"
        )
    if not 0.0 <= config.distill_weight <= 1.0:
        raise LayercutError(f"{named('distill_weight')} must lie in [0, 1], got {config.distill_weight}")
    if not config.distill_temperature > 0:
        raise LayercutError(f"{named('distill_temperature')} must be > 0, got {config.distill_temperature}")


def _check_depth_zero(config: RunConfig, train_count: int | None) -> None:
    """first:0 keeps no block: what adapts or repairs blocks has nothing to work on (a sweep skips the cell)."""
    if config.method in ("lora", "prefix"):
        raise LayercutError(
            f"{named('method', config.method)} adapts the kept blocks, and {config.layers} keeps none: "
            f"use {named('method', 'full')} or icl, or keep first:1"
        )
    if train_count is not None:
        raise LayercutError(
            f"{named('train_layers', config.train_layers)} trains kept blocks, and {config.layers} keeps none: "
            f"use {named('train_layers', 'all')} (embedding, final norm and head), or keep first:1"
        )
    if config.bridge is not None:
        raise LayercutError(
            f"{named('bridge', config.bridge)} folds into the last kept block, and {config.layers} keeps none: "
            "keep first:1 or more"
        )


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise LayercutError(f"unknown {named(name)} '{value}': use one of {', '.join(allowed)}")


def ignored_settings(method: str) -> frozenset[str]:
    """The settings a run of `method` never reads: those of the groups only other methods read (a sweep keeps their
    first value there, so that sweeping them does not repeat identical runs)."""
    only_others = {group for other in REGISTRY.values() for group in other.groups} - set(REGISTRY[method].groups)
    return frozenset(f.name for f in dataclasses.fields(RunConfig) if f.metadata["group"] in only_others)
