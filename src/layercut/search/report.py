"""A search's report from DIR/search.json alone (`layercut report DIR` writes it again): report.md, the plot of
dev and test accuracy against depth with its references, the screen the command prints, and the model card."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from layercut.atomic import atomic_directory, write_text_atomic
from layercut.run.record import Timing
from layercut.sweep.plan import duration
from layercut.sweep.store import ResultStore

SEARCH_RECORD = "search.json"  # the search's answer and every probe, written by search.search
STORE_FOLDER = "store"  # every probe's run, resumable (DIR/store/runs/<key>/result.json)

PLOT_NAME = "accuracy_vs_depth.png"
MIN_TICK_GAP = 0.2  # octaves between labelled depths on the plot's log axis: closer labels overlap


def write_search_report(folder: str | Path) -> Path:
    folder = Path(folder)
    result = json.loads((folder / SEARCH_RECORD).read_text())
    with atomic_directory(folder / "plots", overwrite=True) as tmp:
        _plot(result).savefig(tmp / PLOT_NAME, dpi=110)
    lines = [
        "# Depth search",
        "",
        *screen_lines(result),
        "",
        *_probe_table(result),
        "",
        *_references(result),
        _store_totals(folder),
        "",
        f"![accuracy vs depth](plots/{PLOT_NAME})",
        "",
        "Command:",
        "",
        "```",
        result.get("command", ""),
        "```",
    ]
    write_text_atomic(folder / "report.md", "\n".join(lines) + "\n")
    return folder / "report.md"


def screen_lines(result: dict) -> list[str]:
    """The answer in a few lines: what `layercut search` prints when it ends."""
    settings, depth, confirmed = result["settings"], result["source_depth"], result["confirmed"]
    answer, saved = result["answer"], result["saved_model"]
    keep = f"{100 * settings['keep']:g}%"
    lines = []
    if answer["stopped"]:
        lines.append(
            f"Stopped early: {answer['stopped']}."
            + (f" Depths not decided: {_span(answer['untried'])}." if answer["untried"] else "")
        )
    if not answer["passed"]:
        curve = ", ".join(
            f"{p['depth']}: {100 * _dev(p):.1f}" for p in sorted(result["probes"], key=lambda p: p["depth"])
        )
        lines.append(
            f"No depth below {depth} keeps {keep} of the full model's dev accuracy: the task needs every layer "
            f"(dev by depth, {curve})."
        )
    if confirmed is None:
        return lines + ["Not confirmed on test: the budget ran out first."]
    chosen, full = confirmed["chosen"], confirmed["full"]
    bag = result["references"]["bag_of_words"]
    lines.append(
        f"Answer: {chosen['depth']} of {depth} layers keep {keep} of {result['task']} (dev, "
        f"{settings['probe_seeds']} seed(s); full-depth dev {100 * result['target_dev'] / settings['keep']:.1f})."
    )
    lines.append(
        f"Test accuracy over seeds {', '.join(map(str, chosen['test_by_seed']))}: {_mean_std(chosen['test_by_seed'])} "
        f"(lr {chosen['learning_rate']:g}) vs full depth {_mean_std(full['test_by_seed'])} (lr {full['learning_rate']:g}); "
        f"bag-of-words {_mean_std(bag['test_by_seed'])}; majority class {100 * bag['majority']:.1f}."
    )
    if chosen["parameters"] and full["parameters"]:
        lines.append(
            f"Parameters: {chosen['parameters'] / 1e6:.1f}M vs {full['parameters'] / 1e6:.1f}M"
            + (
                f"; saved with the vocabulary trimmed to the task ({saved['vocabulary']['vocab_size']:,} of "
                f"{saved['vocabulary']['source_vocab_size']:,} tokens): {saved['parameters'] / 1e6:.1f}M, "
                f"model.safetensors {saved['bytes'] / 1e6:.1f} MB"
                if saved
                else ""
            )
            + "."
        )
    if chosen["examples_per_second"] and full["examples_per_second"]:
        slim, whole = statistics.fmean(chosen["examples_per_second"]), statistics.fmean(full["examples_per_second"])
        lines.append(f"Evaluation: {slim:.1f} vs {whole:.1f} test examples/s ({slim / whole:.1f}x).")
    if saved:
        lines.append(
            f"Model: {saved['folder']}/ (seed {saved['seed']}, test {100 * saved['test_accuracy']:.1f}; "
            f"`layercut predict DIR/{saved['folder']} TEXT`, or `from_pretrained`)"
            + (
                ""
                if saved["same_predictions_as_stored_run"]
                else "; its test predictions differ from the stored run's (training is not bit-reproducible here)"
            )
        )
    return lines


def model_card_lines(result: dict) -> list[str]:
    """How the saved model was found, for its README.md."""
    settings = result["settings"]
    return [
        f"`layercut search` kept the first k of {result['source_depth']} layers for the smallest k whose dev accuracy "
        f"keeps {100 * settings['keep']:g}% of the full model's (doubling, then bisection; each depth's learning "
        f"rate picked on dev from {', '.join(f'{r:g}' for r in settings['rates'])}, extended past an edge).",
        "",
        *screen_lines({**result, "saved_model": None}),
        "",
        f"Command: `{result.get('command', '')}`",
    ]


def _probe_table(result: dict) -> list[str]:
    full_dev = result["target_dev"] / result["settings"]["keep"]
    lines = [
        "Probes, in the order run (full depth first): dev accuracy (%) at each learning rate over the probing "
        "seed(s), the rate picked, its share of full-depth dev, and the test accuracy of the picked runs "
        "(read only after the depth was chosen).",
        "",
        "| Depth | Dev by learning rate | Picked | Dev | % of full | Test | Note |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    visited = [result["source_depth"], *result["answer"]["visited"]]
    by_depth = {p["depth"]: p for p in result["probes"]}
    for depth in visited:
        p = by_depth[depth]
        rates = "; ".join(
            f"{float(r):g}: {'–' if d is None else f'{100 * d:.1f}'}" for r, d in p["dev_by_rate"].items()
        )
        dev = _dev(p)
        tests = [t for t in p["test_by_seed"].values() if t is not None]
        note = "; ".join(
            filter(
                None,
                [p["at_edge"], f"extended to {', '.join(f'{r:g}' for r in p['extended'])}" if p["extended"] else None],
            )
        )
        test = f"{100 * statistics.fmean(tests):.1f}" if tests else "–"
        lines.append(
            f"| {depth} | {rates} | {p['picked']:g} | {100 * dev:.1f} | {100 * dev / full_dev:.0f}% | {test} | {note} |"
        )
    return lines


def _references(result: dict) -> list[str]:
    bag = result["references"]["bag_of_words"]
    icl = {int(k): v for k, v in result["references"]["in_context"].items()}
    best = max(icl, key=lambda k: (icl[k], -k)) if icl else None
    lines = [
        f"References on the same splits: majority class {100 * bag['majority']:.1f}; bag-of-words ({bag['method']}) "
        f"test {_mean_std(bag['test_by_seed'])}, dev {_mean_std(bag['dev_by_seed'])}."
    ]
    if best is not None:
        lines.append(
            f"In-context learning without training (seed {result['settings']['seeds'][0]}, one pass over every "
            f"depth): best test accuracy {100 * icl[best]:.1f} at {best} layers; at full depth "
            f"{100 * icl.get(result['source_depth'], float('nan')):.1f}."
        )
    return lines


def _store_totals(folder: Path) -> str:
    """Every run the search used, read from its store: a resumed search's own counters (search.json's
    trained_runs, reused_runs, seconds) cover its last invocation only."""
    records = ResultStore(folder / STORE_FOLDER).records()
    seconds = sum(Timing.read(record.record).seconds for record in records)
    return (
        f"Runs: {len(records)} in the store, {duration(seconds)} of training and evaluation in all (a run copied from "
        "another store counts its own time)."
    )


def _plot(result: dict):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    axes = figure.subplots()
    probes = sorted(result["probes"], key=lambda p: p["depth"])
    depths = [p["depth"] for p in probes]
    axes.plot(depths, [100 * _dev(p) for p in probes], marker="o", label="dev (picked rate)")
    tested = [(p["depth"], [t for t in p["test_by_seed"].values() if t is not None]) for p in probes]
    axes.plot(
        [d for d, t in tested if t],
        [100 * statistics.fmean(t) for d, t in tested if t],
        marker="s",
        label="test (same runs)",
    )
    icl = sorted((int(k), v) for k, v in result["references"]["in_context"].items())
    if icl:
        axes.plot(
            [k for k, _ in icl], [100 * v for _, v in icl], color="grey", linewidth=1, label="in-context learning, test"
        )
    bag = result["references"]["bag_of_words"]
    axes.axhline(
        100 * statistics.fmean(bag["test_by_seed"].values()),
        color="black",
        linestyle="--",
        linewidth=1,
        label="bag-of-words, test",
    )
    axes.axhline(100 * bag["majority"], color="black", linestyle=":", linewidth=1, label="majority class")
    axes.axhline(
        100 * result["target_dev"],
        color="tab:red",
        linewidth=1,
        alpha=0.6,
        label=f"target: {100 * result['settings']['keep']:g}% of full-depth dev",
    )
    axes.set(
        xlabel="first k layers kept",
        ylabel="accuracy (%)",
        title=f"{result['model']} on {result['task']}: accuracy vs depth",
    )
    axes.set_xscale("log", base=2)
    chosen = (result.get("confirmed") or {}).get("chosen") or {}
    axes.set_xticks(depths, _tick_labels(depths, [result["source_depth"], chosen.get("depth")]))
    axes.minorticks_off()
    axes.legend(fontsize=7)
    return figure


def _tick_labels(depths: list[int], marked: list[int]) -> list[str]:
    """A label for each probed depth (ascending) that has room on the log axis, the `marked` ones first."""
    labelled = [depth for depth in marked if depth in depths]
    for depth in depths:
        if all(abs(math.log2(depth / other)) >= MIN_TICK_GAP for other in labelled):
            labelled.append(depth)
    return [str(depth) if depth in labelled else "" for depth in depths]


def _dev(probe: dict) -> float:
    """The probe's dev accuracy at the rate it picked."""
    return probe["dev_by_rate"][repr(probe["picked"])]


def _mean_std(by_seed: dict) -> str:
    values = [100 * v for v in by_seed.values() if v is not None]
    if not values:
        return "–"
    return f"{statistics.fmean(values):.1f}" + (f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else "")


def _span(depths: list[int]) -> str:
    return f"{depths[0]}-{depths[-1]}" if len(depths) > 2 else ", ".join(map(str, depths))
