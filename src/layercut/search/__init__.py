"""`layercut search`: the smallest first-k depth that keeps a share of the full model's dev accuracy, confirmed on
test over seeds and handed over as a trimmed, reloadable model (order: the depths probed; probe: one depth's
runs and its learning-rate pick; clock: budget and time left; references: what the answer is read against;
answer: confirmation and the saved model; report: report.md, the plot and the printed screen)."""

from layercut.search.settings import SearchSettings

__all__ = ["SearchSettings", "search_depth"]


def __getattr__(name: str):
    if name == "search_depth":  # torch-free import of the settings for `layercut --help`
        from layercut.search.search import search_depth

        return search_depth
    raise AttributeError(name)
