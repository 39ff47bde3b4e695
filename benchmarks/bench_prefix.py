"""Shared-prefix computation and the row-sparse optimizer vs the whole-prompt path, side by side.

SmolLM2 cut to k layers, `trec` prompts with one fixed demonstration per class (the paper's protocol).
Evaluation: examples per second, whole prompts (left-padded batches) vs the common prefix computed once.
Training (one epoch of K=16 per class, batch 8, forward + backward + AdamW step, each batch packed into one
sequence that holds the prefix once where the model allows, as `layercut run` does): the path before shared prefixes (whole prompts,
torch's default AdamW over dense gradients) vs shared prefixes with `RowSparseAdamW`. Next to every
measured time: the FLOP-limited time, the path's matmul FLOPs (counted by torch's FlopCounterMode)
divided by the fp32 matmul peak measured in the same run.
Usage: python benchmarks/bench_prefix.py [--depths 1 2 30] [--examples 96]
(writes benchmarks/results/prefix_smollm2.json)
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from layercut.adapt.prefix_sharing import (
    common_prefix_length,
    group_by_prefix,
    make_batch,
    pack_prompts,
    prefix_overlap,
)
from layercut.adapt.evaluation import score_prompts
from layercut.adapt.optim import RowSparseAdamW, sparse_embedding_gradients
from layercut.adapt.scorers import LabelWordHead
from layercut.model.load import load_model
from layercut.prompting import DemoSelector, PromptBuilder, resolve_label_words
from layercut.run.prepare import packing_problem
from layercut.tasks import get_task, load_examples, make_splits

RESULTS = Path(__file__).parent / "results" / "prefix_smollm2.json"


def matmul_peak() -> float:
    """fp32 matmul FLOP/s on this machine, now (best of a few 2048^3 products)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048**3 / (time.perf_counter() - start))
    return best


def trec_prompts(tokenizer, count: int):
    spec = get_task("trec")
    splits = make_splits(load_examples(spec), shots=16, seed=0, test_size=count)
    demos = DemoSelector("fixed", splits.train, spec.num_classes, seed=0)
    builder = PromptBuilder(spec, tokenizer, max_length=512)
    encode = lambda examples: [builder.encode(e, demos.for_query(e)) for e in examples]  # noqa: E731
    return (
        encode(splits.test),
        encode(splits.train),
        [e.label for e in splits.train],
        resolve_label_words(tokenizer, spec.label_words).first_ids,
    )


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def evaluation(scorer, prompts, pad_id, share: bool, batch_size: int = 16) -> dict:
    score = lambda: score_prompts(scorer, prompts, pad_id, batch_size, torch.device("cpu"), share_prefix=share)  # noqa: E731
    flops = counted_flops(score)
    seconds = min(score().seconds for _ in range(2))
    return {"examples_per_second": len(prompts) / seconds, "seconds": seconds, "flops": flops}


def training(scorer, prompts, labels, pad_id, prefix: list[int] | None, packed: bool, batch_size: int = 8) -> dict:
    """Seconds per example of one epoch of optimizer steps over `prompts` (shuffled as a run shuffles them),
    after one untimed warm-up step; its FLOPs counted in a separate pass. With a `prefix`, each batch is scored
    as `layercut run` does: `packed` into one sequence holding the prefix once, or else split into the prompts
    with the whole prefix and those whose own demonstration was swapped, the prefix computed once for both."""
    shared = prefix is not None
    parameters = [p for p in scorer.parameters() if p.requires_grad]
    optimizer = RowSparseAdamW(parameters, lr=5e-5) if shared else torch.optim.AdamW(parameters, lr=5e-5)
    snapshot = {name: p.detach().clone() for name, p in scorer.named_parameters()}
    order = list(range(len(prompts)))
    random.Random("0|epoch|1").shuffle(order)
    steps = len(order) // batch_size

    def step(index: int) -> None:
        chunk = order[index * batch_size : (index + 1) * batch_size]
        batch_prompts = [prompts[i] for i in chunk]
        groups = group_by_prefix(batch_prompts, prefix) if shared and not packed else [list(range(len(chunk)))]
        batches = [
            pack_prompts([batch_prompts[i] for i in g], prefix)
            if packed
            else make_batch(
                [batch_prompts[i] for i in g],
                pad_id,
                prefix_overlap([batch_prompts[i] for i in g], prefix) if shared else 0,
            )
            for g in groups
        ]
        targets = torch.tensor([labels[chunk[i]] for g in groups for i in g])
        loss = torch.nn.functional.cross_entropy(scorer.score_together(batches), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def restore() -> None:  # every pass starts from the same weights
        with torch.no_grad():
            for name, p in scorer.named_parameters():
                p.copy_(snapshot[name])

    scorer.train()
    with sparse_embedding_gradients(scorer.model, enabled=shared):
        flops = counted_flops(lambda: [step(index) for index in range(steps)])
        restore()
        step(0)
        start = time.perf_counter()
        for index in range(steps):
            step(index)
        seconds = (time.perf_counter() - start) / (steps * batch_size)
    scorer.eval()
    restore()
    return {"seconds_per_example": seconds, "flops_per_example": flops / (steps * batch_size), "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 30])
    parser.add_argument("--examples", type=int, default=96)
    args = parser.parse_args()
    torch.manual_seed(0)
    results = {"threads": torch.get_num_threads(), "examples": args.examples, "train_batch_size": 8, "depths": {}}
    for depth in args.depths:
        loaded = load_model("smollm2-135m", f"first:{depth}")
        tokenizer = loaded.tokenizer
        test, train, labels, label_ids = trec_prompts(tokenizer, args.examples)
        scorer = LabelWordHead(loaded.model.requires_grad_(True), label_ids)
        peak = matmul_peak()
        row = {
            "matmul_peak_flops": peak,
            "prompt_tokens": sum(map(len, test)) / len(test),
            "shared_prefix_tokens": common_prefix_length(test),
        }
        for name, share in (("whole", False), ("shared", True)):
            measured = evaluation(scorer, test, tokenizer.pad_token_id, share)
            measured["flop_limited_examples_per_second"] = len(test) * peak / measured["flops"]
            row[f"eval_{name}"] = measured
        prefix = test[0][: common_prefix_length(test)]
        packing = packing_problem(scorer.eval(), test[:4], prefix, tokenizer.pad_token_id, torch.device("cpu"))
        row["training_packed"] = packing is None
        for name, shared in (("before", None), ("shared_rowsparse", prefix)):
            measured = training(
                scorer, train, labels, tokenizer.pad_token_id, shared, shared is not None and packing is None
            )
            measured["flop_limited_seconds_per_example"] = measured["flops_per_example"] / peak
            row[f"train_{name}"] = measured
        row["eval_speedup"] = row["eval_shared"]["examples_per_second"] / row["eval_whole"]["examples_per_second"]
        row["train_speedup"] = (
            row["train_before"]["seconds_per_example"] / row["train_shared_rowsparse"]["seconds_per_example"]
        )
        row["train_shared_vs_flop_limited"] = (
            row["train_shared_rowsparse"]["seconds_per_example"]
            / row["train_shared_rowsparse"]["flop_limited_seconds_per_example"]
        )
        results["depths"][str(depth)] = row
        ev, tw, ts = row["eval_whole"], row["train_before"], row["train_shared_rowsparse"]
        print(
            f"k={depth:>2}  peak {peak / 1e9:.0f} GFLOP/s | eval {ev['examples_per_second']:.1f} -> "
            f"{row['eval_shared']['examples_per_second']:.1f} ex/s ({row['eval_speedup']:.1f}x; FLOP-limited "
            f"{ev['flop_limited_examples_per_second']:.1f} -> {row['eval_shared']['flop_limited_examples_per_second']:.1f}) | "
            f"train {tw['seconds_per_example'] * 1e3:.1f} -> {ts['seconds_per_example'] * 1e3:.1f} ms/ex "
            f"({row['train_speedup']:.1f}x; FLOP-limited {tw['flop_limited_seconds_per_example'] * 1e3:.1f} -> "
            f"{ts['flop_limited_seconds_per_example'] * 1e3:.1f} ms/ex; shared at {row['train_shared_vs_flop_limited']:.1f}x "
            f"the FLOP limit)",
            flush=True,
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
