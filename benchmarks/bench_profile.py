"""One-pass depth profile vs separate ICL runs: wall time, and whether every prediction agrees.

Separate: `run(--method icl --layers first:k)` for each depth k (load, prompts, score). One pass:
`profile_depths`, one forward pass of the deepest model read after every profiled block.
SmolLM2 on `trec`, 8 shots (the demo's demonstrations), seed 0.
Usage: python benchmarks/bench_profile.py [--test-size 60] [--depths 1-30]
(writes benchmarks/results/profile_smollm2.json)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from layercut.model.layers import parse_index_spec
from layercut.settings.run_config import RunConfig
from layercut.run.pipeline import run
from layercut.slim.profile import profile_depths

RESULTS = Path(__file__).parent / "results" / "profile_smollm2.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--test-size", type=int, default=60)
    parser.add_argument("--depths", default="1-30")
    args = parser.parse_args()
    depths = parse_index_spec(args.depths)
    config = RunConfig(model="smollm2-135m", task="trec", shots=8, seed=0, method="icl", test_size=args.test_size)
    run(dataclasses.replace(config, layers="first:1"), show_progress=False)  # untimed: caches, thread pools warm up

    start = time.perf_counter()
    profile = profile_depths(config, depths)
    one_pass_seconds = time.perf_counter() - start
    print(f"one pass over {len(depths)} depths: {one_pass_seconds:.1f} s (forward passes {profile.seconds:.1f} s)")

    rows, separate_seconds = [], 0.0
    for depth in depths:
        start = time.perf_counter()
        record = run(dataclasses.replace(config, layers=f"first:{depth}"), show_progress=False).record
        seconds = time.perf_counter() - start
        separate_seconds += seconds
        same = record["predictions"]["predicted"] == profile.scores[depth].predictions
        rows.append(
            {
                "depth": depth,
                "accuracy": record["metrics"]["accuracy"],
                "separate_seconds": seconds,
                "same_predictions": same,
            }
        )
        print(
            f"depth {depth:2d}: accuracy {100 * record['metrics']['accuracy']:.1f}, separate run {seconds:.1f} s, "
            f"same predictions as the one pass: {same}"
        )
    print(
        f"separate runs: {separate_seconds:.1f} s; one pass: {one_pass_seconds:.1f} s "
        f"({separate_seconds / one_pass_seconds:.1f}x faster)"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "model": "smollm2-135m",
                "task": "trec",
                "shots": 8,
                "seed": 0,
                "test_size": args.test_size,
                "depths": depths,
                "one_pass_seconds": one_pass_seconds,
                "one_pass_forward_seconds": profile.seconds,
                "separate_seconds": separate_seconds,
                "all_predictions_equal": all(r["same_predictions"] for r in rows),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
