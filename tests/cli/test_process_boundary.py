"""What only a real process shows: Ctrl-C at any moment gives one line and exit code 130, and a
SIGKILL at any moment leaves either no output or a complete one, with no debris after the next start."""

from __future__ import annotations

import json
import random
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from layercut.atomic import is_temporary
from layercut.run.record import RunRecord
from tests.cli import run_cli, start_cli
from tests.sweep import review_task

TEMPLATE = ["--template", "Review: {text} Sentiment:", "--label-words", "Negative,Positive"]


def write_experiment(path: Path, model: Path, data: Path, seeds: int) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "models": [str(model)],
                "layers": [1, 2],
                "shots": [2],
                "seeds": list(range(seeds)),
                "tasks": [review_task(data)],
                "settings": {"epochs": 1, "max_length": 64, "learning_rate": 1.0e-3, "test_size": 8},
            }
        )
    )
    return path


@pytest.mark.parametrize("seconds", [0.5, 2.0, 5.0])
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(tiny_llama_folder, review_file, tmp_path, seconds):
    experiment = write_experiment(
        tmp_path / "e.yaml", tiny_llama_folder, review_file, seeds=50
    )  # far longer than the wait
    process = start_cli("sweep", experiment, "--out", tmp_path / "out")
    time.sleep(seconds)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.strip().splitlines() == ["layercut: interrupted; finished results are kept"], err


# --- fault injection: SIGKILL at random moments, then the same command again


def _cut_model_complete(folder: Path) -> None:
    record = json.loads((folder / "layercut.json").read_text())
    assert sorted(p.name for p in folder.iterdir() if not is_temporary(p.name)) == record["files"], folder


def check_cut(out: Path) -> None:
    if out.exists():
        _cut_model_complete(out)


def check_run(out: Path) -> None:
    if (out / "result.json").exists():
        assert json.loads((out / "result.json").read_text())["status"] == "complete"
    if (out / "model").exists():
        _cut_model_complete(out / "model")


def check_sweep(out: Path) -> None:
    for result in (out / "runs").glob("*/result.json"):
        assert RunRecord.load(result.parent).missing_field() is None, result
    check_report(out)


def check_report(out: Path) -> None:
    if (out / "report.md").exists():
        assert (out / "report.md").read_text().endswith("\n")
        assert (out / "runs.csv").read_text().startswith("key,")
    for plot in (out / "plots").glob("*"):
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot


def debris(folder: Path, killed_pid: int) -> list[str]:
    """Temporary files anywhere under `folder`, empty run folders, and the killed process's scratch folders."""
    found = [str(p) for p in folder.rglob("*") if is_temporary(p.name)]
    found += [str(p) for p in folder.glob("runs/*") if p.is_dir() and not any(p.iterdir())]
    found += [str(p) for p in Path(tempfile.gettempdir()).glob(f".layercut-run.lc-*-{killed_pid}-*")]
    return found


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_no_half_output_and_no_debris(tiny_llama_folder, review_file, tmp_path):
    experiment = write_experiment(tmp_path / "e.yaml", tiny_llama_folder, review_file, seeds=2)
    finished_sweep = tmp_path / "finished-sweep"
    assert run_cli("sweep", experiment, "--out", finished_sweep).returncode == 0
    commands = {  # name -> (arguments writing into WORK, the output to check, its check)
        "cut": (lambda work: ["cut", tiny_llama_folder, "--keep", "0,2", "-o", work / "out"], check_cut),
        "run": (
            lambda work: [
                "run",
                "--model",
                tiny_llama_folder,
                "--layers",
                "first:2",
                "--data",
                review_file,
                *TEMPLATE,
                "--shots",
                "2",
                "--epochs",
                "1",
                "--test-size",
                "8",
                "--out",
                work / "out",
                "--save-model",
            ],
            check_run,
        ),
        "sweep": (lambda work: ["sweep", experiment, "--out", work / "out"], check_sweep),
        "report": (lambda work: ["report", work / "out"], check_report),
    }
    start = time.perf_counter()
    assert run_cli("tasks").returncode == 0
    startup = time.perf_counter() - start  # imports only: a kill then cannot catch a write
    rng = random.Random(13)
    trials = 5  # per command: 20 kills in all
    left_temporaries = 0  # kills that caught a write in flight (printed: how many moments were informative)
    for name, (arguments, check) in commands.items():
        start = time.perf_counter()
        reference = run_cli(
            *arguments(_fresh(tmp_path / f"{name}-reference", finished_sweep if name == "report" else None))
        )
        assert reference.returncode == 0, reference.stderr
        duration = time.perf_counter() - start
        for trial in range(trials):
            work = _fresh(tmp_path / f"{name}-{trial}", finished_sweep if name == "report" else None)
            process = start_cli(*arguments(work))
            # One random moment in each fifth of the command's work after its imports.
            time.sleep(startup + max(0.0, duration - startup) * (trial + rng.random()) / trials)
            process.kill()
            process.wait()
            check(work / "out")
            left_temporaries += bool(debris(work, process.pid))
            again = run_cli(
                *arguments(work), *(["--overwrite"] if name in ("cut", "run") and (work / "out").exists() else [])
            )
            assert again.returncode == 0, (name, trial, again.stderr)
            check(work / "out")
            assert debris(work, process.pid) == [], (name, trial)
    print(
        f"{len(commands) * trials} kills, {left_temporaries} of them mid-write (temporaries left until the next start)"
    )


def _fresh(folder: Path, sweep: Path | None) -> Path:
    folder.mkdir()
    if sweep is not None:
        shutil.copytree(sweep, folder / "out")
    return folder
