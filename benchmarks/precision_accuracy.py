"""bfloat16 against float32 in accuracy: each bfloat16 run of a store beside the float32 run of the same settings.

Pairs every finished bfloat16 run in --bf16 (e.g. the runs of configs/precision/*.yaml) with the float32 run in
--float32 (docs/replication/store) whose settings differ only in precision, and prints per depth and learning rate
the test accuracy over seeds in both, the per-seed differences, and whether the mean difference lies within the
seed spread (the larger of the two standard deviations). Also the cell as the report picks it: the rate with the
best mean dev accuracy, in each precision.
Usage: python benchmarks/precision_accuracy.py [--bf16 docs/precision/store] [--float32 docs/replication/store]
(writes benchmarks/results/precision_accuracy.json)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from collections import defaultdict
from pathlib import Path

from layercut.run.record import RunRecord
from layercut.run_files import RESULT_NAME
from layercut.settings.run_config import RunConfig
from layercut.sweep.store import ResultStore

RESULTS = Path(__file__).parent / "results" / "precision_accuracy.json"


def _depth(config: RunConfig) -> str:
    return "30" if config.layers == "all" else config.layers.removeprefix("first:")


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bf16", default="docs/precision/store")
    parser.add_argument("--float32", default="docs/replication/store")
    args = parser.parse_args()
    float32 = ResultStore(args.float32)
    pairs: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for record in ResultStore(args.bf16).records():
        config = RunConfig.from_dict(record.config)
        if not record.finished or config.dtype != "bfloat16":
            continue
        reference = RunRecord.read(float32.folder(dataclasses.replace(config, dtype="float32").key()) / RESULT_NAME)
        if reference is None or not reference.finished:
            continue
        pairs[(_depth(config), config.learning_rate)].append(
            {
                "seed": config.seed,
                "bfloat16": {"test": record.accuracy, "dev": record.record["dev"]["best_dev_accuracy"]},
                "float32": {"test": reference.accuracy, "dev": reference.record["dev"]["best_dev_accuracy"]},
                "predictions_agree": sum(
                    a == b
                    for a, b in zip(
                        record.record["predictions"]["predicted"], reference.record["predictions"]["predicted"]
                    )
                )
                / len(record.record["predictions"]["predicted"]),
            }
        )
    rows = []
    for (depth, rate), runs in sorted(pairs.items(), key=lambda item: (int(item[0][0]), item[0][1])):
        runs.sort(key=lambda run: run["seed"])
        summary = {"depth": depth, "learning_rate": rate, "seeds": [run["seed"] for run in runs], "runs": runs}
        for precision in ("float32", "bfloat16"):
            for split in ("test", "dev"):
                summary[f"{precision}_{split}"] = _mean_std([100 * run[precision][split] for run in runs])
        difference = summary["bfloat16_test"][0] - summary["float32_test"][0]
        spread = max(summary["bfloat16_test"][1], summary["float32_test"][1])
        summary |= {"difference": difference, "spread": spread, "within_spread": abs(difference) <= spread}
        rows.append(summary)
        print(
            f"{depth:>2} layers, lr {rate:g}, seeds {summary['seeds']}: test float32 "
            f"{summary['float32_test'][0]:.1f} ± {summary['float32_test'][1]:.1f}, bf16 {summary['bfloat16_test'][0]:.1f} "
            f"± {summary['bfloat16_test'][1]:.1f} ({difference:+.1f}; {'within' if abs(difference) <= spread else 'outside'} "
            f"the seed spread {spread:.1f}); dev {summary['float32_dev'][0]:.1f} -> {summary['bfloat16_dev'][0]:.1f}; "
            f"predictions agree {statistics.mean(run['predictions_agree'] for run in runs):.0%}"
        )
    picks = {}
    for precision in ("float32", "bfloat16"):
        for depth in sorted({row["depth"] for row in rows}, key=int):
            candidates = [row for row in rows if row["depth"] == depth and len(row["seeds"]) == 3]
            if candidates:
                best = max(candidates, key=lambda row: row[f"{precision}_dev"][0])
                picks[f"{precision} {depth}"] = {
                    "learning_rate": best["learning_rate"],
                    "test": best[f"{precision}_test"],
                }
    for name, pick in picks.items():
        print(
            f"picked on dev, {name} layers: lr {pick['learning_rate']:g}, test {pick['test'][0]:.1f} ± {pick['test'][1]:.1f}"
        )
    RESULTS.write_text(
        json.dumps({"bf16_store": args.bf16, "float32_store": args.float32, "cells": rows, "picked": picks}, indent=2)
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
