"""The `task` strategy's removal scan: dev prompts in padded batches vs packed into one sequence, side by side.

SmolLM2-135M, all 30 layers; the dev prompts of a `trec` run (K=16, dev 200 natural, seed 0; the scan
scores the first 64, `--calibration-samples`), one fixed demonstration per class. One scoring round of the
greedy scan (the loss without each of the 30 layers; the greedy order runs such rounds on 30, 29, ..., 2
layers) is timed both ways. Next to each time: the FLOP-limited time, the round's matmul FLOPs at the fp32
matmul peak measured in the same run (one whole-model pass counted by torch's FlopCounterMode, times the
round's block passes over the depth: removing layer l replays the blocks from l on).
Usage: python benchmarks/bench_task_rank.py   (writes benchmarks/results/task_rank_smollm2.json)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from bench_prefix import counted_flops, matmul_peak

from layercut.importance import task as task_strategy
from layercut.importance.removal import removal_scan
from layercut.model.load import load_model
from layercut.padding import collate_padded
from layercut.prompting.build import build_prompting
from layercut.settings.run_config import RunConfig
from layercut.settings.task import make_run_splits, resolve_task

RESULTS = Path(__file__).parent / "results" / "task_rank_smollm2.json"


def main() -> None:
    torch.manual_seed(0)
    config = RunConfig(task="trec", shots=16, seed=0, dev_size=200, learning_rate=1e-4)
    spec = resolve_task(config)
    splits = make_run_splits(config, spec)
    loaded = load_model("smollm2-135m", "all")
    model = loaded.model.eval()
    label_words, prompts, demos = build_prompting(config, spec, splits, model, loaded.tokenizer)
    dev = splits.dev[: config.calibration_samples]
    demos.prepare(dev)
    encoded = [prompts.encode(e, demos.for_query(e)) for e in dev]
    labels = [e.label for e in dev]
    objective = task_strategy.LabelWordLoss(torch.tensor(label_words.first_ids))
    packed, packing = task_strategy.dev_batches(model, encoded, labels, loaded.tokenizer.pad_token_id, objective)
    padded = []
    for start in range(0, len(encoded), task_strategy.BATCH_SIZE):
        ids, mask = collate_padded(
            encoded[start : start + task_strategy.BATCH_SIZE], loaded.tokenizer.pad_token_id, left=False
        )
        padded.append(task_strategy.DevBatch(ids, mask, torch.tensor(labels[start : start + task_strategy.BATCH_SIZE])))
    peak = matmul_peak()
    results = {
        "threads": torch.get_num_threads(),
        "prompts": len(encoded),
        "packing": packing,
        "prompt_tokens": sum(map(len, encoded)),
        "matmul_peak_flops": peak,
    }
    depth = model.config.num_hidden_layers
    block_passes = depth * (depth + 1) // 2 + depth  # each removal's replay, and the pass that records block inputs
    for name, batches in (("padded", padded), ("packed", packed)):
        one_round = lambda: removal_scan(model, batches, greedy=False, progress=False, objective=objective)  # noqa: E731
        with torch.no_grad():
            flops = counted_flops(lambda: [objective.forward(model, batch) for batch in batches]) * block_passes / depth
        start = time.perf_counter()
        scan = one_round()
        seconds = time.perf_counter() - start
        results[name] = {
            "round_seconds": seconds,
            "round_flops": flops,
            "flop_limited_seconds": flops / peak,
            "removal_loss": scan.removal_loss,
        }
        print(
            f"{name:>6}: one round (30 layers) {seconds:.1f} s (FLOP-limited {flops / peak:.1f} s, "
            f"{flops / 1e12:.2f} TFLOP)",
            flush=True,
        )
    gap = max(abs(a - b) for a, b in zip(results["padded"]["removal_loss"], results["packed"]["removal_loss"]))
    results["speedup"] = results["padded"]["round_seconds"] / results["packed"]["round_seconds"]
    results["max_removal_loss_difference"] = gap
    print(
        f"packed is {results['speedup']:.1f}x faster; removal losses agree within {gap:.1e}; matmul peak "
        f"{peak / 1e9:.0f} GFLOP/s; {packing}"
    )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
