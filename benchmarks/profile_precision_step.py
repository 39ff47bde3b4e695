"""Where a training step's and an evaluation's time go in float32 and in bf16 autocast, by phase and by operator.

SmolLM2 at --depth layers (default 30), a packed batch of 8 `trec` prompts as `layercut run` trains it (LM head on
the label words, row-sparse AdamW), alternately float32 and bf16: the best of --steps timed steps per phase, then one
profiled step per precision (torch.profiler, the operators by self CPU time). Explains what bench_precision.py's
training ratio is made of. Then the attention inside bf16 autocast, float32 (what runs do where gradients are taken,
layercut.settings.precision.autocast_region) against bf16 (plain torch.autocast): the whole training step, interleaved.
Last, the evaluation pass as `layercut run` scores a test set (48 prompts, the demonstrations' prefix computed once,
batches of 16), profiled in each precision: its time split into matrix products, attention, dtype casts and the
rest, which says how far bf16 can speed evaluation up when only the matrix products get faster.
Usage: python benchmarks/profile_precision_step.py [--depth 30] [--steps 3]
(writes benchmarks/results/precision_step_profile.json, with the thread count and the load average)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench_prefix import trec_prompts
from layercut.adapt.evaluation import score_prompts
from layercut.adapt.optim import RowSparseAdamW, sparse_embedding_gradients
from layercut.adapt.prefix_sharing import common_prefix_length, pack_prompts
from layercut.adapt.scorers import LabelWordHead
from layercut.model.load import load_model
from layercut.settings.precision import autocast_region

RESULTS = Path(__file__).parent / "results" / "precision_step_profile.json"
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    loaded = load_model("smollm2-135m", f"first:{args.depth}")
    test, train, labels, label_ids = trec_prompts(loaded.tokenizer, 48)
    scorer = LabelWordHead(loaded.model.requires_grad_(True), label_ids)
    prefix = test[0][: common_prefix_length(test)]
    optimizer = RowSparseAdamW([p for p in scorer.parameters() if p.requires_grad], lr=5e-5)
    chunk = random.Random(0).sample(range(len(train)), 8)
    batch = pack_prompts([train[i] for i in chunk], prefix)
    targets = torch.tensor([labels[i] for i in chunk])

    def step(dtype, region=autocast_region) -> tuple[float, float, float]:
        start = time.perf_counter()
        with region("cpu", dtype):
            logits = scorer(batch)
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad()
        return forward - start, backward - forward, time.perf_counter() - backward

    results = {"depth": args.depth, "threads": torch.get_num_threads(), "load_average_start": os.getloadavg()}
    scorer.train()
    with sparse_embedding_gradients(scorer.model, optimizer=optimizer):
        best = {name: [float("inf")] * 3 for name in PRECISIONS}
        for rep in range(args.steps):
            for name in PRECISIONS if rep % 2 == 0 else reversed(list(PRECISIONS)):
                step(PRECISIONS[name])  # warm-up
                best[name] = [min(a, b) for a, b in zip(best[name], step(PRECISIONS[name]))]
        for name, dtype in PRECISIONS.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step(dtype)
            events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
            total = sum(e.self_cpu_time_total for e in events)
            forward, backward, step_seconds = best[name]
            results[name] = {
                "seconds": {"forward": forward, "backward": backward, "optimizer": step_seconds},
                "operators": [
                    {
                        "op": e.key,
                        "calls": e.count,
                        "seconds": e.self_cpu_time_total / 1e6,
                        "share": e.self_cpu_time_total / total,
                    }
                    for e in events[:10]
                ],
            }
            print(
                f"{name}: forward {forward:.3f} s, backward {backward:.3f} s, optimizer {step_seconds:.3f} s; top operators:"
            )
            for op in results[name]["operators"][:6]:
                print(f"  {op['op'][:44]:44s} {op['seconds']:.3f} s ({op['share']:.0%}, {op['calls']} calls)")
        results["attention_in_bf16_step"] = attention_variants(step, args)
    results["evaluation"] = evaluation_profile(scorer, test, loaded.tokenizer.pad_token_id)
    results["load_average_end"] = os.getloadavg()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


def plain_autocast(device, dtype):
    """bf16 autocast with nothing kept in float32: torch's CPU autocast then runs the attention in bf16 too."""
    return torch.autocast(getattr(device, "type", device), dtype=dtype, enabled=dtype is not None)


def attention_variants(step, args) -> dict:
    """Best-of seconds of a training step: float32, bf16 with float32 attention, bf16 with bf16 attention,
    interleaved over 2 * args.steps repetitions."""
    variants = {
        "float32": (autocast_region, None),
        "bf16, float32 attention": (autocast_region, torch.bfloat16),
        "bf16, bf16 attention": (plain_autocast, torch.bfloat16),
    }
    seconds = {name: float("inf") for name in variants}
    for rep in range(2 * args.steps):
        for name, (region, dtype) in variants.items() if rep % 2 == 0 else reversed(list(variants.items())):
            step(dtype, region)
            seconds[name] = min(seconds[name], sum(step(dtype, region)))
    ratios = {name: seconds["float32"] / seconds[name] for name in list(variants)[1:]}
    print("training step: bf16 over float32 " + ", ".join(f"{r:.2f}x with {name[6:]}" for name, r in ratios.items()))
    return {"training_step_seconds": seconds, "speedup_over_float32": ratios}


# Operator groups of an evaluation pass (self CPU time): what bf16 speeds up (matrix products) and what it does not.
OPERATOR_GROUPS = {
    "matrix products": ("aten::mm", "aten::bmm", "aten::addmm"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu",),
    "dtype casts": ("aten::copy_", "aten::_to_copy"),
}


def evaluation_profile(scorer, prompts, pad_id) -> dict:
    """One profiled evaluation pass per precision (after an unprofiled one), self CPU seconds by operator group;
    then the whole pass's speedup and the speedup of its matrix products alone."""
    groups = {}
    for name, dtype in PRECISIONS.items():
        with torch.no_grad():
            score_prompts(scorer, prompts, pad_id, 16, torch.device("cpu"), dtype, share_prefix=True)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                score_prompts(scorer, prompts, pad_id, 16, torch.device("cpu"), dtype, share_prefix=True)
        seconds = {group: 0.0 for group in [*OPERATOR_GROUPS, "the rest"]}
        for event in prof.key_averages():
            group = next((g for g, ops in OPERATOR_GROUPS.items() if event.key in ops), "the rest")
            seconds[group] += event.self_cpu_time_total / 1e6
        groups[name] = {"seconds": seconds, "total_seconds": sum(seconds.values())}
    fp32, bf16 = groups["float32"], groups["bfloat16"]
    speedups = {
        "whole_pass": fp32["total_seconds"] / bf16["total_seconds"],
        "matrix_products": fp32["seconds"]["matrix products"] / bf16["seconds"]["matrix products"],
    }
    print(
        f"evaluation ({len(prompts)} prompts): bf16 over float32 {speedups['whole_pass']:.2f}x, its matrix products "
        f"{speedups['matrix_products']:.2f}x; bf16 time by group: "
        + ", ".join(f"{g} {s / bf16['total_seconds']:.0%}" for g, s in bf16["seconds"].items())
    )
    return {"prompts": len(prompts), "batch_size": 16, "precisions": groups, "speedup_over_float32": speedups}


if __name__ == "__main__":
    main()
