"""One evaluation of a (cut) model: which lm-eval tasks and intrinsic measures, and the record it makes.

`layercut eval` makes one; a sweep's `evaluations:` list makes one per entry and depth.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from layercut.errors import LayercutError
from layercut.evaluate.harness import check_task_names, lm_eval_table, run_lm_eval, summary, task_manager
from layercut.model.layers import format_index_spec
from layercut.model.sources import context_length
from layercut.provenance import package_versions
from layercut.settings.precision import BFLOAT16, Precision, autocast_region, bf16_misbehaves

PERCENT_METRICS = ("acc", "acc_norm", "exact_match")  # lm-eval metrics shown in %
INTRINSIC_COLUMNS = ("top-1 agreement", "KL to full")
DEFAULT_WINDOW = 1024  # perplexity window in tokens, unless the model's context is shorter


@dataclass(frozen=True)
class EvaluationRequest:
    lm_eval: tuple[str, ...] = ()  # lm-eval task, group or tag names
    num_fewshot: int | None = None
    limit: int | None = None  # examples per lm-eval task
    include: str | None = None  # a folder of the user's own lm-eval task YAMLs
    batch_size: int = 8
    perplexity: str | None = None  # a text file, .jsonl file or task name
    compare_full: bool = False  # agreement and KL divergence to the uncut model
    window: int | None = None  # tokens per window (default: 1024, or the model's context if shorter)
    stride: int | None = None  # default: half the window
    max_tokens: int | None = None
    text: str = field(default="", repr=False, compare=False)  # the perplexity text, read by checked()

    def __post_init__(self) -> None:
        object.__setattr__(self, "lm_eval", tuple(self.lm_eval))
        if not self.lm_eval and self.perplexity is None:
            raise LayercutError(
                "nothing to evaluate: give lm-eval tasks (--lm-eval TASKS) and/or a text (--perplexity FILE_OR_TASK)"
            )
        if self.compare_full and self.perplexity is None:
            raise LayercutError(
                "--compare-full compares next-token predictions on a text: add --perplexity FILE_OR_TASK"
            )
        for name in ("num_fewshot", "limit", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "num_fewshot" else 1):
                raise LayercutError(
                    f"{name} {value} is out of range: give a whole number of at least {0 if name == 'num_fewshot' else 1}"
                )
        if self.batch_size < 1:
            raise LayercutError(f"batch size {self.batch_size} is out of range: give at least 1")
        for name, least in (("window", 2), ("stride", 1)):  # 0 is not "the default": leave the flag out for that
            value = getattr(self, name)
            if value is not None and value < least:
                raise LayercutError(
                    f"{name} {value} is out of range: give at least {least} tokens, or leave it out for the default"
                )
        if self.window is not None and self.stride is not None and self.stride >= self.window:
            raise LayercutError(
                f"stride {self.stride} is not below the window ({self.window} tokens): "
                f"give a stride from 1 to {self.window - 1}"
            )

    def checked(self) -> "EvaluationRequest":
        """This request with its text read, once every check that needs no model has passed."""
        from layercut.evaluate.intrinsic import read_text  # torch: `layercut report` imports this module

        if self.lm_eval:
            check_task_names(task_manager(self.include), self.lm_eval)
        text = read_text(self.perplexity) if self.perplexity is not None else ""
        return EvaluationRequest(**{**self.to_dict(), "lm_eval": self.lm_eval, "text": text})

    def windows(self, context: int, model: str) -> tuple[int, int]:
        """The perplexity window and stride on `model`, whose context is `context` tokens; a LayercutError
        when the model cannot take them (checked before any model loads: the config says its context)."""
        if self.window is not None and self.window > context:
            raise LayercutError(
                f"window {self.window} is longer than the context of '{model}' ({context} tokens): "
                f"give at most {context}"
            )
        window = self.window or min(DEFAULT_WINDOW, context)
        stride = self.stride or window // 2
        if stride >= window:
            raise LayercutError(
                f"stride {stride} is not below the window ({window} tokens, the most '{model}' takes): "
                f"give a stride from 1 to {window - 1}"
            )
        return window, stride

    def to_dict(self) -> dict:
        values = asdict(self)
        values.pop("text")
        values["lm_eval"] = list(self.lm_eval)
        return values


def evaluate_loaded(loaded, request: EvaluationRequest, reference=None, precision=None) -> dict:
    """Run `request` on `loaded` (a `LoadedModel`); `reference`: the uncut model, for --compare-full.
    `precision` (layercut.settings.precision; None: float32): with bfloat16, lm-eval and the intrinsic measures run
    under bf16 autocast, the LM heads (full-vocabulary logits) in float32; float32 where the model misbehaves
    in bf16 (the record's `precision` says why)."""
    # torch: `layercut report` imports this module
    from layercut.evaluate.intrinsic import intrinsic_measures
    from layercut.model.size import size_report

    if request.compare_full and reference is None:
        raise ValueError("compare_full needs the uncut model as `reference`")
    report = size_report(loaded.model, loaded.source_parameters)
    record = {
        "model": loaded.model_id,
        "layers": {
            "kept": loaded.kept,
            "spec": format_index_spec(loaded.kept),
            "count": len(loaded.kept),
            "source_depth": loaded.source_depth,
            **loaded.extras,
        },
        "parameters": {
            "total": report.parameters,
            "non_embedding": report.non_embedding_parameters,
            "source": loaded.source_parameters,
            "percent_of_source": report.percent_of_full,
        },
        "request": request.to_dict(),
        "lm_eval": None,
        "lm_eval_summary": None,
        "intrinsic": None,
        "timing": {},
        "versions": package_versions(),
    }
    with _in_precision(loaded, reference, precision, record):
        _measure(loaded, request, reference, record, intrinsic_measures)
    return record


def _in_precision(loaded, reference, precision, record: dict):
    """bf16 autocast with the LM heads in float32 (after checking the model in bf16), or nothing."""
    import contextlib

    if precision is None:
        return contextlib.nullcontext()
    from layercut.adapt.scorers import float32_output_head

    model = loaded.model
    device = next(model.parameters()).device
    probe = loaded.tokenizer(
        "The cut model is checked in bfloat16 on this text before it is measured.", return_tensors="pt"
    )["input_ids"].to(device)
    precision = check_causal_lm(precision, model, probe)
    record["precision"] = precision.record()
    stack = contextlib.ExitStack()
    if precision.autocast is not None:
        stack.enter_context(float32_output_head(model))
        if reference is not None and reference is not model:
            stack.enter_context(float32_output_head(reference))
        stack.enter_context(autocast_region(device, precision.autocast))
    return stack


def _measure(loaded, request: EvaluationRequest, reference, record: dict, intrinsic_measures) -> None:
    if request.lm_eval:
        start = time.perf_counter()
        output = run_lm_eval(
            loaded.model,
            loaded.tokenizer,
            list(request.lm_eval),
            num_fewshot=request.num_fewshot,
            limit=request.limit,
            include=request.include,
            batch_size=request.batch_size,
        )
        record.update(lm_eval=output, lm_eval_summary=summary(output))
        record["timing"]["lm_eval_seconds"] = time.perf_counter() - start
        record["versions"]["lm_eval"] = output["lm_eval_version"]
    if request.perplexity is not None:
        window, stride = request.windows(context_length(loaded.model.config), loaded.model_id)
        result = intrinsic_measures(
            loaded.model,
            loaded.tokenizer,
            request.text,
            reference=reference if request.compare_full else None,
            window=window,
            stride=stride,
            max_tokens=request.max_tokens,
            source=request.perplexity,
        )
        record["intrinsic"] = result.to_dict()
        record["timing"]["intrinsic_seconds"] = result.seconds


def format_record(record: dict) -> str:
    """What `layercut eval` prints: the cut, lm-eval's own table, the intrinsic measures."""
    layers, params = record["layers"], record["parameters"]
    lines = [
        f"{record['model']}: layers {layers['spec']} ({layers['count']} of {layers['source_depth']}), "
        f"{params['total'] / 1e6:.1f}M parameters ({params['percent_of_source']:.1f}% of full)"
    ]
    precision = record.get("precision")
    if precision and precision["resolved"] != "float32":  # float32, as before precision was recorded: not repeated
        lines[0] += f"; {precision['used']} ({precision['reason']})"
    if record["lm_eval"] is not None:
        lines += ["", lm_eval_table(record["lm_eval"]).rstrip()]
    intrinsic = record["intrinsic"]
    if intrinsic is not None:
        line = (
            f"perplexity on {intrinsic['source']} ({intrinsic['tokens']:,} tokens, window {intrinsic['window']}, "
            f"stride {intrinsic['stride']}): {intrinsic['perplexity']:.2f}"
        )
        if intrinsic["full_perplexity"] is not None:
            line += (
                f" (uncut model: {intrinsic['full_perplexity']:.2f}); top-1 agreement with the uncut model "
                f"{100 * intrinsic['top1_agreement']:.1f}%; mean KL divergence {intrinsic['kl_divergence']:.4f} nats/token"
            )
        lines += ["", line]
    return "\n".join(lines)


def figures(record: dict) -> dict[str, float]:
    """The figures a depth table shows for one evaluation, by column name."""
    values = {f"{task} {row['metric']}": row["value"] for task, row in (record["lm_eval_summary"] or {}).items()}
    intrinsic = record["intrinsic"]
    if intrinsic is not None:
        values[f"perplexity ({Path(intrinsic['source']).name})"] = intrinsic["perplexity"]
        if intrinsic["top1_agreement"] is not None:
            values["top-1 agreement"] = intrinsic["top1_agreement"]
            values["KL to full"] = intrinsic["kl_divergence"]
    return values


def figure_cell(column: str, value: float | None, full: float | None) -> str:
    """One cell: accuracies in %, each lm-eval figure and perplexity also as % of the full model's value."""
    if value is None:
        return "–"
    if column in INTRINSIC_COLUMNS:  # already comparisons with the full model
        return f"{100 * value:.1f}%" if column == "top-1 agreement" else f"{value:.3f}"
    if column.rsplit(" ", 1)[-1] in PERCENT_METRICS:
        text = f"{100 * value:.1f}"
    else:  # a perplexity: a cut model's can be in the millions
        text = f"{value:.2f}" if value < 1e4 else f"{value:.3g}"
    if not full:
        return text
    percent = 100 * value / full
    return text + (f" ({percent:,.0f}%)" if percent < 1e5 else f" ({percent:.2g}%)")


def depth_table(records: list[dict]) -> str:
    """A markdown table, one row per depth; with the full depth among them, figures also as % of its value."""
    records = sorted(records, key=lambda r: r["layers"]["count"])
    full = next((figures(r) for r in records if r["layers"]["count"] == r["layers"]["source_depth"]), {})
    columns = list(dict.fromkeys(name for r in records for name in figures(r)))
    header = ["Layers kept", "Parameters (% of full)", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for record in records:
        values, params = figures(record), record["parameters"]
        cells = [figure_cell(c, values.get(c), full.get(c)) for c in columns]
        lines.append(
            f"| {_layers_label(record)} | {params['total'] / 1e6:.1f}M ({params['percent_of_source']:.1f}%) | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def _layers_label(record: dict) -> str:
    layers = record["layers"]
    first_k = layers["kept"] == list(range(layers["count"]))
    return str(layers["count"]) if first_k else f"{layers['count']} ({layers['spec']})"


def check_causal_lm(precision: Precision, model, input_ids) -> Precision:
    """`precision`, or float32 with the reason where `model` (a causal LM) misbehaves in bf16 on `input_ids`
    ([1, T]): its next-token logits (LM head in float32, as `layercut eval` computes them) against float32's."""
    import torch

    from layercut.adapt.scorers import float32_output_head

    if precision.used != BFLOAT16:
        return precision
    name = type(model).__name__
    with torch.no_grad(), float32_output_head(model):
        reference = model(input_ids=input_ids, use_cache=False).logits
        try:
            with autocast_region(input_ids.device, torch.bfloat16):
                logits = model(input_ids=input_ids, use_cache=False).logits
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as error:
            return precision.falling_back(f"{name} fails in bfloat16 ({type(error).__name__})")
    why = bf16_misbehaves(name, reference, logits)
    if why:
        return precision.falling_back(why)
    return precision.checked((logits.float() - reference.float()).abs().max().item())
