"""float32 vs bfloat16 (autocast, as `--dtype`) for evaluation and training, side by side in one run.

SmolLM2 cut to k layers, `trec` prompts with one fixed demonstration per class, on the paths `layercut run`
takes: evaluation with the demonstrations' prefix computed once (examples per second), training packed into one
sequence per batch with row-sparse AdamW (batch 8, forward + backward + step; examples per second). Each
measurement alternates float32 and bf16 (interleaved repetitions, the best of each kept), so that a load that
drifts during the run weighs on both alike. Next to every time: the FLOP-limited figure, the path's matmul FLOPs
(torch's FlopCounterMode; the same count in both precisions) at the fp32 and at the bf16 matmul peak, both
measured in the same run just before the depth's measurements. Also recorded: whether bf16 keeps the
evaluation's predictions (agreement with float32 on the same prompts) and the largest probability difference.
Usage: python benchmarks/bench_precision.py [--depths 1 2 30] [--examples 48] [--train-steps 6] [--reps 3]
(writes benchmarks/results/precision_smollm2.json; the machine's load average is recorded with the figures)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import torch

from bench_prefix import counted_flops, trec_prompts
from layercut.adapt.prefix_sharing import common_prefix_length, make_batch, pack_prompts
from layercut.adapt.evaluation import score_prompts
from layercut.adapt.optim import RowSparseAdamW, sparse_embedding_gradients
from layercut.adapt.scorers import LabelWordHead
from layercut.model.load import load_model
from layercut.settings.precision import autocast_region, resolve_precision
from layercut.run.prepare import check_precision, packing_problem

RESULTS = Path(__file__).parent / "results" / "precision_smollm2.json"
CPU = torch.device("cpu")
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}


def matmul_peak(dtype: torch.dtype, size: int = 2048) -> float:
    """Matmul FLOP/s in `dtype` on this machine, now (best of a few size^3 products)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def evaluation(scorer, prompts, pad_id, dtype, batch_size: int = 16):
    return score_prompts(scorer, prompts, pad_id, batch_size, CPU, dtype, share_prefix=True)


def training_pass(scorer, prompts, labels, prefix, packed: bool, dtype, steps: int, batch_size: int = 8) -> float:
    """Seconds per example of `steps` optimizer steps (after one untimed warm-up step) as `train()` takes them:
    the batch packed (or whole prompts where packing disagrees), bf16 autocast around the forward, the loss
    and the step in float32, row-sparse AdamW."""
    parameters = [p for p in scorer.parameters() if p.requires_grad]
    optimizer = RowSparseAdamW(parameters, lr=5e-5)
    order = list(range(len(prompts)))
    random.Random("0|epoch|1").shuffle(order)

    def step(index: int) -> None:
        chunk = [order[(index * batch_size + i) % len(order)] for i in range(batch_size)]
        batch_prompts = [prompts[i] for i in chunk]
        targets = torch.tensor([labels[i] for i in chunk])
        with autocast_region(CPU, dtype):
            logits = scorer(pack_prompts(batch_prompts, prefix) if packed else make_batch(batch_prompts, 0))
        torch.nn.functional.cross_entropy(logits.float(), targets).backward()
        optimizer.step()
        optimizer.zero_grad()

    scorer.train()
    with sparse_embedding_gradients(scorer.model):
        step(0)
        start = time.perf_counter()
        for index in range(steps):
            step(index)
        seconds = (time.perf_counter() - start) / (steps * batch_size)
    scorer.eval()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 30])
    parser.add_argument("--examples", type=int, default=48, help="test prompts evaluated per pass")
    parser.add_argument("--train-steps", type=int, default=6, help="timed optimizer steps (batch 8) per pass")
    parser.add_argument(
        "--reps", type=int, default=3, help="interleaved repetitions (float32, bf16, bf16, float32, ...)"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    results = {
        "threads": torch.get_num_threads(),
        "cpu_bf16": resolve_precision("auto", "cpu").reason,
        "examples": args.examples,
        "train_batch_size": 8,
        "train_steps": args.train_steps,
        "reps": args.reps,
        "load_average_start": os.getloadavg(),
        "depths": {},
    }
    for depth in args.depths:
        loaded = load_model("smollm2-135m", f"first:{depth}")
        tokenizer = loaded.tokenizer
        test, train, labels, label_ids = trec_prompts(tokenizer, args.examples)
        scorer = LabelWordHead(loaded.model.requires_grad_(True), label_ids)
        snapshot = {name: p.detach().clone() for name, p in scorer.named_parameters()}
        prefix = test[0][: common_prefix_length(test)]
        peaks = {name: matmul_peak(torch.bfloat16 if name == "bfloat16" else torch.float32) for name in PRECISIONS}
        row = {
            "load_average": os.getloadavg(),
            "matmul_peak_flops": peaks,
            "prompt_tokens": sum(map(len, test)) / len(test),
            "shared_prefix_tokens": len(prefix),
        }
        check = check_precision(resolve_precision("bfloat16", "cpu"), scorer, test, tokenizer.pad_token_id, CPU, True)
        row["bf16_check"] = check.record()
        packing = {
            name: packing_problem(scorer.eval(), test[:4], prefix, tokenizer.pad_token_id, CPU, dtype)
            for name, dtype in PRECISIONS.items()
        }
        row["packing_problem"] = packing
        eval_flops = counted_flops(lambda: evaluation(scorer, test, tokenizer.pad_token_id, None))
        # A pass of one timed step takes two (the warm-up and the step), of 8 examples each.
        train_flops = counted_flops(
            lambda: training_pass(scorer, train, labels, prefix, packing["float32"] is None, None, 1)
        ) / (2 * 8)
        restore(scorer, snapshot)
        best_eval = {name: float("inf") for name in PRECISIONS}
        best_train = {name: float("inf") for name in PRECISIONS}
        scores = {}
        for rep in range(args.reps):
            for name in PRECISIONS if rep % 2 == 0 else reversed(list(PRECISIONS)):
                dtype = PRECISIONS[name]
                measured = evaluation(scorer, test, tokenizer.pad_token_id, dtype)
                scores[name] = measured
                best_eval[name] = min(best_eval[name], measured.seconds)
                best_train[name] = min(
                    best_train[name],
                    training_pass(scorer, train, labels, prefix, packing[name] is None, dtype, args.train_steps),
                )
                restore(scorer, snapshot)
        for name in PRECISIONS:
            row[f"eval_{name}"] = {
                "examples_per_second": len(test) / best_eval[name],
                "flops": eval_flops,
                "flop_limited_examples_per_second": {peak: len(test) * peaks[peak] / eval_flops for peak in peaks},
            }
            row[f"train_{name}"] = {
                "examples_per_second": 1 / best_train[name],
                "flops_per_example": train_flops,
                "flop_limited_examples_per_second": {peak: peaks[peak] / train_flops for peak in peaks},
            }
        row["eval_speedup"] = best_eval["float32"] / best_eval["bfloat16"]
        row["train_speedup"] = best_train["float32"] / best_train["bfloat16"]
        fp32, bf16 = torch.tensor(scores["float32"].probabilities), torch.tensor(scores["bfloat16"].probabilities)
        agree = sum(a == b for a, b in zip(scores["float32"].predictions, scores["bfloat16"].predictions))
        row["bf16_vs_float32"] = {
            "prediction_agreement": agree / len(test),
            "largest_probability_difference": (fp32 - bf16).abs().max().item(),
        }
        row["load_average_after"] = os.getloadavg()
        results["depths"][str(depth)] = row
        write(results)  # each depth as it finishes
        print(
            f"k={depth:>2} load {row['load_average'][0]:.1f} | peaks fp32 {peaks['float32'] / 1e9:.0f}, bf16 "
            f"{peaks['bfloat16'] / 1e9:.0f} GFLOP/s | eval {row['eval_float32']['examples_per_second']:.1f} -> "
            f"{row['eval_bfloat16']['examples_per_second']:.1f} ex/s ({row['eval_speedup']:.2f}x; FLOP-limited "
            f"{row['eval_float32']['flop_limited_examples_per_second']['float32']:.1f} -> "
            f"{row['eval_bfloat16']['flop_limited_examples_per_second']['bfloat16']:.1f}) | train "
            f"{row['train_float32']['examples_per_second']:.1f} -> {row['train_bfloat16']['examples_per_second']:.1f} "
            f"ex/s ({row['train_speedup']:.2f}x; FLOP-limited "
            f"{row['train_float32']['flop_limited_examples_per_second']['float32']:.1f} -> "
            f"{row['train_bfloat16']['flop_limited_examples_per_second']['bfloat16']:.1f}) | predictions agree "
            f"{100 * row['bf16_vs_float32']['prediction_agreement']:.0f}%",
            flush=True,
        )
    results["load_average_end"] = os.getloadavg()
    write(results)
    print(f"wrote {RESULTS}")


def write(results: dict) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def restore(scorer, snapshot: dict) -> None:
    """Every pass starts from the same weights."""
    with torch.no_grad():
        for name, p in scorer.named_parameters():
            p.copy_(snapshot[name])


if __name__ == "__main__":
    main()
