"""One figure of layer importance: four panels, one per measure, layers along the x axis."""

from __future__ import annotations

import math
from pathlib import Path

from layercut.atomic import atomic_file
from layercut.errors import LayercutError
from layercut.importance.ranking import LayerRanking

PLOT_FORMATS = (".png", ".svg", ".pdf")


def check_plot_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise LayercutError(f"cannot plot to '{path}': end the file name with {', '.join(PLOT_FORMATS)}")
    return path


def plot_ranking(ranking: LayerRanking, path: str | Path) -> None:
    # A bare Figure draws with Agg and leaves pyplot's global state alone.
    from matplotlib.figure import Figure

    path = check_plot_path(path)
    layers = list(range(ranking.depth))
    figure = Figure(figsize=(12, 7.5), layout="constrained")
    figure.suptitle(
        f"Layer importance of {ranking.model} ({ranking.depth} layers), calibration: {ranking.calibration['source']}"
    )
    bi, loss, angular, greedy = figure.subplots(2, 2).flat

    if _panel(bi, "Block Influence (ShortGPT)", "1 - cos(block input, block output)", ranking.block_influence):
        bi.bar(layers, ranking.block_influence, color="tab:blue")

    if _panel(
        loss, "Calibration loss with the layer removed (Shortened LLaMA)", "loss (nats per token)", ranking.removal_loss
    ):
        loss.bar(layers, ranking.removal_loss, color="tab:orange")
        loss.axhline(ranking.full_loss, color="black", linestyle="--", label=f"all layers: {ranking.full_loss:.3f}")
        loss.set_ylim(bottom=min(ranking.full_loss, *ranking.removal_loss) * 0.95)
        loss.legend(loc="upper right")

    title = "Angular distance of runs of n layers (Gromov et al.)"
    if _panel(angular, title, "run length n", ranking.angular_distance, xlabel="first layer of the run"):
        grid = [[math.nan] * ranking.depth for _ in range(ranking.depth - 1)]
        for n, distances in ranking.angular_distance.items():
            grid[n - 1][: len(distances)] = distances
        image = angular.imshow(
            grid,
            origin="lower",
            aspect="auto",
            cmap="viridis",
            extent=(-0.5, ranking.depth - 0.5, 0.5, ranking.depth - 0.5),
        )
        figure.colorbar(image, ax=angular, label="arccos(cos) / pi, last token")

    if _panel(greedy, "Greedy removal order (SLEB)", "removal step (higher: kept longer)", ranking.greedy_order):
        step = {layer: i + 1 for i, layer in enumerate(ranking.greedy_order)}
        greedy.bar(layers, [step[layer] for layer in layers], color="tab:green")

    with atomic_file(path) as tmp:  # a kill mid-save leaves no half-written figure
        figure.savefig(tmp, format=path.suffix[1:].lower(), dpi=120)


def _panel(axes, title: str, ylabel: str, values, xlabel: str = "layer") -> bool:
    """Title and label a panel; say so in it when its measure was not computed."""
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if values is None:
        axes.text(0.5, 0.5, "not computed", transform=axes.transAxes, ha="center", va="center", color="grey")
    return values is not None
