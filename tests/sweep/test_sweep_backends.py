"""A sweep killed with SIGKILL resumes with every run done exactly once; Ray gives the local results."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from layercut.sweep import ResultStore, load_experiment, run_sweep
from tests.sweep import write_experiment

pytestmark = pytest.mark.usefixtures("one_thread")


def results(out):
    return {path.parent.name: path.stat() for path in (out / "runs").glob("*/result.json")}


def test_a_killed_sweep_resumes_and_runs_each_run_once(tiny_llama_folder, review_file, tmp_path):
    path = write_experiment(
        tmp_path / "e.yaml", tiny_llama_folder, review_file, layers=[1, 2, 3], seeds=[0, 1], settings={"epochs": 4}
    )
    out = tmp_path / "out"
    command = [sys.executable, "-m", "layercut", "sweep", str(path), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while not results(out):  # kill it as soon as one run is stored: the next one is under way
        assert first.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = results(out)
    assert 1 <= len(before) < 6

    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"6 runs: {len(before)} already complete" in second.stdout
    assert second.stdout.count(": accuracy ") == 6 - len(before)
    after = results(out)
    assert len(after) == 6
    for key, stat in before.items():  # results stored before the kill were not written again
        assert (after[key].st_ino, after[key].st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert sorted(r["key"] for r in rows) == sorted(after)
    assert "6 finished runs" in (out / "report.md").read_text()


def test_ray_backend_gives_the_local_results(tiny_llama_folder, review_file, tmp_path):
    ray = pytest.importorskip("ray")
    experiment = load_experiment(write_experiment(tmp_path / "e.yaml", tiny_llama_folder, review_file, layers=[1, 2]))
    run_sweep(experiment, tmp_path / "local", echo=lambda line: None)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # the backend uses a running Ray as it finds it
    try:
        summary = run_sweep(experiment, tmp_path / "ray", backend="ray", echo=lambda line: None)
    finally:
        ray.shutdown()
    assert summary.finished == 2 and not summary.failed
    local, remote = ({r.key: r.record for r in ResultStore(tmp_path / name).records()} for name in ("local", "ray"))
    assert sorted(local) == sorted(remote) == sorted(r.key() for r in experiment.runs)
    for key in local:
        assert remote[key]["metrics"] == local[key]["metrics"]
        assert remote[key]["predictions"] == local[key]["predictions"]
        assert remote[key]["dev"]["best_dev_accuracy"] == local[key]["dev"]["best_dev_accuracy"]
