"""A sweep's time left: FLOPs of the runs still to go, at the seconds per FLOP its finished runs of the same kind
(layers kept, method) took; the mean over all kinds for a kind not seen yet."""

import pytest

from layercut.cli.main import main
from layercut.settings.run_config import RunConfig
from layercut.sweep import eta
from layercut.sweep.eta import CostModel, sweep_progress


@pytest.fixture
def flops(monkeypatch):
    """1 GFLOP per kept layer, whatever the method: easy sums."""
    monkeypatch.setattr(eta, "run_flops", lambda config: 1e9 * int(config.layers.split(":")[1]))


def record(config: RunConfig, seconds: float, status: str = "complete") -> dict:
    return {
        "key": config.key(),
        "status": status,
        "config": config.to_dict(),
        "timing": {"train_seconds": seconds - 1.0, "eval_seconds": 1.0},
    }


def test_time_left_is_calibrated_by_finished_runs_of_the_same_kind(tiny_llama_folder, flops):
    runs = [
        RunConfig(model=str(tiny_llama_folder), layers=f"first:{k}", seed=seed) for k in (1, 2) for seed in (0, 1, 2)
    ]
    finished = [record(runs[0], 10.0), record(runs[1], 30.0), record(runs[3], 100.0)]  # 1 layer: 20 s/GFLOP; 2: 50
    progress = sweep_progress(runs, finished)
    assert (progress.total, progress.done, progress.failed) == (6, 3, 0)
    assert progress.elapsed_seconds == pytest.approx(140.0)
    # left: one 1-layer run (1 GFLOP at 20 s per GFLOP) and two 2-layer runs (2 GFLOP each at 50 s per GFLOP)
    assert progress.left_seconds == pytest.approx(1 * 20.0 + 2 * 2 * 50.0)
    assert "3 of 6 done" in progress.line() and "left" in progress.line()


def test_an_unseen_kind_uses_the_mean_rate_and_failures_count(tiny_llama_folder, flops):
    runs = [RunConfig(model=str(tiny_llama_folder), layers=f"first:{k}") for k in (1, 3)]
    progress = sweep_progress(runs, [record(runs[0], 10.0), {"key": "other", "status": "complete"}])
    assert progress.left_seconds == pytest.approx(3 * 10.0)  # 10 s per GFLOP, measured on 1-layer runs
    failed = sweep_progress(runs, [{**record(runs[1], 5.0), "status": "failed"}])
    assert failed.failed == 1 and failed.done == 0
    assert CostModel().seconds(runs) == pytest.approx(4e9 / CostModel().assumed_flops_per_second)


def test_status_reads_a_sweep_folder_without_touching_it(tiny_llama_folder, review_file, tmp_path, capsys):
    from tests.sweep import write_experiment

    path = write_experiment(tmp_path / "e.yaml", tiny_llama_folder, review_file, layers=[1], seeds=[0], methods=["icl"])
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    assert "| 1 of 1 done" in capsys.readouterr().out  # the progress line of each run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["sweep", "--status", str(out)]) == 0
    assert "not running; 1 of 1 done" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
