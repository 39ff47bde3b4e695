"""Time the layer-importance measures on SmolLM2-135M (30 layers); record its rankings on the built-in tasks.

Calibration: 64 sequences of 128 tokens packed from each task's training texts. Block Influence and
angular distance come from one hooked pass, the removal loss from one replay per layer, the greedy
(SLEB) order from rescoring after every removal. BI and angular distance run on every task, the removal
loss and the greedy order (by far the slowest: about 250 full forward passes' worth of work, growing
linearly with the sequences) on trec. Stages run cheapest first and the results file is rewritten
after each, so a long run keeps what it has finished.
Usage: python benchmarks/bench_rank.py [--tasks trec mr bbc] [--loss-tasks trec] [--greedy-tasks trec]
       [--samples 64] [--greedy-samples 8] [--max-length 128] [--resume]
A task may also be a text or .jsonl file. Writes benchmarks/results/rank_smollm2.json and rank_smollm2_<task>.png.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path

import torch

from layercut.atomic import write_json_atomic
from layercut.importance import LayerRanking, plot_ranking, rank_layers, read_calibration_texts
from layercut.model.layers import format_index_spec
from layercut.model.load import load_model

RESULTS = Path(__file__).parent / "results"
COUNTS = (2, 4, 8)
SHOWN = 5  # layers listed at each end of a ranking


def importance_order(ranking) -> dict[str, list[int]]:
    """Each measure's layers, most important (highest score, or removed last) first."""

    def by_value(values):
        return sorted(range(ranking.depth), key=lambda layer: (-values[layer], layer))

    orders = {}
    if ranking.block_influence is not None:
        orders["bi"] = by_value(ranking.block_influence)
        orders["angular n=1"] = by_value(ranking.angular_distance[1])
    if ranking.removal_loss is not None:
        orders["loss"] = by_value(ranking.removal_loss)
    if ranking.greedy_order is not None:
        orders["greedy"] = list(reversed(ranking.greedy_order))
    return orders


def summary(ranking) -> dict:
    orders = importance_order(ranking)
    return {
        "most_important": {name: order[:SHOWN] for name, order in orders.items()},
        "least_important": {name: order[-SHOWN:][::-1] for name, order in orders.items()},
        "kept": {s: {k: format_index_spec(ranking.keep(s, k)) for k in COUNTS} for s in ranking.strategies},
    }


def plan(args) -> list[tuple[str, tuple[str, ...], int]]:
    """(task, measures, sequences) stages, cheapest first."""
    return (
        [(task, ("bi", "angular"), args.samples) for task in args.tasks]
        + [(task, ("loss",), args.samples) for task in args.loss_tasks]
        + [(task, ("greedy",), args.greedy_samples) for task in args.greedy_tasks]
    )


def merge(into, ranking) -> None:
    """Copy a stage's measures into the task's ranking. A greedy stage on fewer sequences brings only
    its order (its first round, the removal loss on those sequences, stays in its own record)."""
    names = ["block_influence", "angular_distance", "full_loss", "removal_loss"]
    if ranking.greedy_order is not None:
        names = ["greedy_order", "greedy_loss"]
        into.calibration["greedy_sequences"] = ranking.calibration["sequences"]
    for name in names:
        if getattr(ranking, name) is not None:
            setattr(into, name, getattr(ranking, name))
    into.seconds.update(ranking.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["trec", "mr", "bbc"], help="tasks for BI and angular distance")
    parser.add_argument("--loss-tasks", nargs="*", default=["trec"], help="tasks for the removal loss")
    parser.add_argument("--greedy-tasks", nargs="*", default=["trec"], help="tasks for the greedy order")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument(
        "--greedy-samples", type=int, default=8, help="sequences for the greedy order (its time grows linearly)"
    )
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--resume", action="store_true", help="keep the stages already in the results file")
    args = parser.parse_args()

    loaded = load_model("smollm2-135m")
    results = {"model": "smollm2-135m", "stages": [], "tasks": {}}
    out = RESULTS / "rank_smollm2.json"
    rankings = {}
    if args.resume and out.is_file():
        results = json.loads(out.read_text())
        rankings = {task: LayerRanking.from_dict(entry["ranking"]) for task, entry in results["tasks"].items()}
    # Each stage records its own sequences, threads and niceness: a resumed run may differ in them.
    results["machine"] = {"cpus": os.cpu_count(), "torch": torch.__version__}
    results["settings"] = {"max_length": args.max_length, "packed": True, "batch_size": 8}
    done = {(s["task"], tuple(s["measures"]), s["sequences"]) for s in results["stages"]}
    for task, measures, samples in plan(args):
        if (task, measures, samples) in done:
            continue
        load_before = os.getloadavg()[0]
        ranking = rank_layers(
            loaded.model,
            loaded.tokenizer,
            read_calibration_texts(task),
            samples=samples,
            max_length=args.max_length,
            measures=measures,
            model_spec="smollm2-135m",
            source=task,
        )
        load_after = os.getloadavg()[0]
        stage = {
            "task": task,
            "measures": list(measures),
            "sequences": ranking.calibration["sequences"],
            "seconds": ranking.seconds,
            "torch_threads": torch.get_num_threads(),
            "nice": os.nice(0),
            "load_average_before_after": [load_before, load_after],
        }
        results["stages"].append(stage)
        if "greedy" in measures:
            stage["greedy_ranking"] = ranking.to_dict()
        merge(rankings.setdefault(task, copy.deepcopy(ranking)), ranking)
        results["tasks"][task] = {"summary": summary(rankings[task]), "ranking": rankings[task].to_dict()}
        write_json_atomic(out, results)
        plot_ranking(rankings[task], RESULTS / f"rank_smollm2_{Path(task).stem}.png")
        print(
            f"\n{task} {'+'.join(measures)} on {samples} sequences: seconds {ranking.seconds}; "
            f"load average {load_before:.1f} -> {load_after:.1f}"
        )
        facts = results["tasks"][task]["summary"]
        for name, layers in facts["most_important"].items():
            print(f"  {name:12s} most important {layers}, least {facts['least_important'][name]}")
        for strategy, kept in facts["kept"].items():
            print(f"  keep by {strategy:8s} " + "  ".join(f"K={k}: {spec}" for k, spec in kept.items()))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
