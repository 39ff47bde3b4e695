"""A training step's cost in the vocabulary: a Gemma-3-sized vocabulary (262,144 tokens) against SmolLM2's (49,152).

Models with Gemma 3 270M's shapes (hidden 640, 4 heads of 256, 1 KV head, MLP 2048, tied embedding) and with
SmolLM2-135M's, cut to 2 layers, random weights; each at both vocabulary sizes, so that what scales with the
vocabulary stands apart from what the blocks cost. `train()` as a run calls it: 2 epochs of 96 examples (K=16
for 6 classes) in batches of 8, dev checked every epoch with a gain at each check (so the best weights are
snapshotted each time, the most a run does), prompts of a 126-token shared prefix and 16 tokens of their own,
token ids drawn over the whole vocabulary. Heads: label words' first tokens through the tied LM head (packed
batches), whole label words (2 tokens each: full-vocabulary softmax), and a classification head.

"before" runs the code of a commit (default: the one before the fix), "after" this working tree, each in its
own process, alternately (--reps), the best of each kept. Also recorded per run: the optimizer's state and one
best-weights snapshot in bytes, and (with --profile) the time in operators that take a vocabulary-sized tensor.
Usage: python benchmarks/bench_vocab_step.py [--before COMMIT] [--reps 2] [--profile]
(writes benchmarks/results/vocab_step.json)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "vocab_step.json"
ROOT = Path(__file__).resolve().parents[1]
SHAPES = {
    "gemma3-270m": dict(
        hidden_size=640,
        intermediate_size=2048,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=256,
        sliding_window=512,
    ),
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3),
}
VOCABS = (49152, 262144)
HEADS = ("lm", "lm-whole-word", "cls")


def worker(shape: str, vocab: int, head: str, profile: bool) -> dict:
    """One measurement, in this process (run with the code under test on the path)."""
    import random

    import torch
    import transformers

    try:
        from layercut.adapt.prefix_sharing import make_batch, pack_prompts
    except ImportError:  # the code before adapt/batching.py was renamed (a "before" commit)
        from layercut.adapt.batching import make_batch, pack_prompts
    from layercut.adapt.scorers import ClassificationHead, LabelWordHead, WholeWordHead
    from layercut.adapt.training import Budget, train

    torch.manual_seed(0)
    common = dict(
        vocab_size=vocab, num_hidden_layers=2, max_position_embeddings=4096, tie_word_embeddings=True, **SHAPES[shape]
    )
    config = (transformers.Gemma3TextConfig if shape.startswith("gemma") else transformers.LlamaConfig)(**common)
    if head == "cls":
        config.num_labels = 6
        config.pad_token_id = 0
        scorer = ClassificationHead(transformers.AutoModelForSequenceClassification.from_config(config))
    else:
        model = transformers.AutoModelForCausalLM.from_config(config)
        scorer = (
            LabelWordHead(model, [100 * (i + 1) for i in range(6)])
            if head == "lm"
            else WholeWordHead(model, [[100 * (i + 1), 100 * (i + 1) + 1] for i in range(6)], 0)
        )
    rng = random.Random(0)
    prefix = [rng.randrange(1, vocab) for _ in range(126)]
    prompts = [prefix + [rng.randrange(1, vocab) for _ in range(16)] for _ in range(96)]
    labels = [i % 6 for i in range(96)]
    packed = head != "lm-whole-word"

    def batches(epoch):
        for start in range(0, 96, 8):
            chunk = prompts[start : start + 8]
            inputs = pack_prompts(chunk, prefix) if packed else make_batch(chunk, 0, len(prefix))
            yield [(inputs, torch.tensor(labels[start : start + 8]), None)]

    checks = iter(range(1, 1000))
    sizes = {}
    import layercut.adapt.training as training

    real_snapshot = training._snapshot

    def measured_snapshot(*args):  # the bytes one best-weights snapshot holds
        taken = real_snapshot(*args)
        sizes["snapshot_bytes"] = sum(_bytes(value) for value in taken.values())
        return taken

    training._snapshot = measured_snapshot
    real_adamw = training.RowSparseAdamW

    class Measured(real_adamw):
        def step(self):
            super().step()
            sizes["optimizer_state_bytes"] = sum(
                _bytes(value) for state in getattr(self, "state", {}).values() for value in state.values()
            ) + sum(_bytes(value) for state in getattr(self, "rows", {}).values() for value in vars(state).values())

    training.RowSparseAdamW = Measured

    def run_training():
        return train(
            scorer,
            batches,
            lambda: (next(checks) / 1000, 1.0),
            Budget(steps=24, eval_every=12, patience=0),
            learning_rate=1e-4,
            weight_decay=0.0,
            gradient_accumulation=1,
            show_progress=False,
        )

    start = time.perf_counter()
    outcome = run_training()
    seconds = time.perf_counter() - start
    result = {
        "ms_per_step": 1e3 * seconds / outcome.steps,
        "steps": outcome.steps,
        "optimizer": outcome.optimizer,
        **sizes,
    }
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            run_training()
        events = prof.key_averages(group_by_input_shape=True)
        vocab_sized = [
            e for e in events if any(shape and shape[0] == vocab for shape in e.input_shapes if isinstance(shape, list))
        ]
        total = sum(e.self_cpu_time_total for e in events)
        result["profile"] = {
            "ms_per_step_in_vocabulary_sized_operators": sum(e.self_cpu_time_total for e in vocab_sized) / 1e3 / 24,
            "share_of_cpu_time": sum(e.self_cpu_time_total for e in vocab_sized) / total,
            "top": [
                {"op": e.key, "calls": e.count, "ms": e.self_cpu_time_total / 1e3, "shapes": str(e.input_shapes)[:80]}
                for e in sorted(vocab_sized, key=lambda e: -e.self_cpu_time_total)[:6]
            ],
        }
    return result


def _bytes(value) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if hasattr(value, "rows") and hasattr(value, "weights"):  # a snapshot of touched rows
        return _bytes(value.rows) + _bytes(value.weights)
    return 0


def source_tree(commit: str, folder: Path) -> Path:
    """`commit`'s src/ extracted into `folder`."""
    archive = subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def measure(src: Path, shape: str, vocab: int, head: str, profile: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_vocab_step as b; "
        f"print(json.dumps(b.worker({shape!r}, {vocab}, {head!r}, {profile})))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before", default="f05242e", help="the commit whose code is 'before' (default: the last before the fix)"
    )
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="also profile each run (vocabulary-sized operators)")
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", args.before], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    results = {
        "before": commit,
        "after": "working tree",
        "threads": int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())),
        "load_average_start": os.getloadavg(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        sources = {"before": source_tree(commit, Path(folder)), "after": ROOT / "src"}
        for head in args.heads:
            for shape in SHAPES:
                for vocab in VOCABS:
                    row = {"shape": shape, "vocab": vocab, "head": head, "load_average": os.getloadavg()}
                    for rep in range(args.reps):
                        for name in ("before", "after") if rep % 2 == 0 else ("after", "before"):
                            measured = measure(sources[name], shape, vocab, head, args.profile and rep == 0)
                            best = row.get(name)
                            if best is None or measured["ms_per_step"] < best["ms_per_step"]:
                                row[name] = {
                                    **measured,
                                    "profile": measured.get("profile", (best or {}).get("profile")),
                                }
                    row["speedup"] = row["before"]["ms_per_step"] / row["after"]["ms_per_step"]
                    results["runs"].append(row)
                    print(
                        f"{head:14s} {shape:13s} vocab {vocab:>7,}: {row['before']['ms_per_step']:7.1f} -> "
                        f"{row['after']['ms_per_step']:7.1f} ms/step ({row['speedup']:.2f}x); optimizer state "
                        f"{row['before'].get('optimizer_state_bytes', 0) / 2**20:.0f} -> "
                        f"{row['after'].get('optimizer_state_bytes', 0) / 2**20:.0f} MiB, snapshot "
                        f"{row['before'].get('snapshot_bytes', 0) / 2**20:.0f} -> "
                        f"{row['after'].get('snapshot_bytes', 0) / 2**20:.0f} MiB (load {row['load_average'][0]:.1f})",
                        flush=True,
                    )
                    results["load_average_end"] = os.getloadavg()
                    RESULTS.parent.mkdir(exist_ok=True)
                    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
