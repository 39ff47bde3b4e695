"""Safe defaults that still let the user do what they ask: pickle and custom code only when allowed
(and recorded), cutting without tokenizer files, --overwrite of layercut's own folders only,
temporaries of dead processes cleared, progress that reads well in a log file."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from layercut.atomic import _HOST, _temporary_prefix, remove_stale_temporaries, write_text_atomic
from layercut.cli.main import main
from layercut.progress import progress_bar
from tests.tiny_models import tiny_model, tiny_tokenizer


def test_pickle_weights_load_when_allowed_and_the_permission_is_recorded(tmp_path, review_file, capsys):
    folder = tmp_path / "pickled"
    model = tiny_model("llama")
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    tiny_tokenizer().save_pretrained(folder)
    assert main(["cut", str(folder), "--keep-first", "1", "-o", str(tmp_path / "refused")]) == 2
    assert "--allow-pickle" in capsys.readouterr().err and not (tmp_path / "refused").exists()

    assert main(["cut", str(folder), "--keep-first", "1", "-o", str(tmp_path / "cut"), "--allow-pickle"]) == 0
    record = json.loads((tmp_path / "cut" / "layercut.json").read_text())
    assert record["loading"] == {"allow_pickle": True, "trust_remote_code": False}
    assert (tmp_path / "cut" / "model.safetensors").exists()  # what layercut writes is always safetensors

    assert (
        main(
            [
                "run",
                "--model",
                str(folder),
                "--layers",
                "first:1",
                "--data",
                str(review_file),
                "--method",
                "icl",
                "--template",
                "Review: {text} Sentiment:",
                "--label-words",
                "Negative,Positive",
                "--shots",
                "2",
                "--test-size",
                "4",
                "--out",
                str(tmp_path / "run"),
                "--allow-pickle",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "run" / "result.json").read_text())["config"]["allow_pickle"] is True


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt"])
def test_cut_needs_no_tokenizer_files(tmp_path, family):
    """Training checkpoints often have none: cutting does not tokenize, so it works for every family."""
    folder = tmp_path / "checkpoint"
    tiny_model(family).save_pretrained(folder)
    assert main(["cut", str(folder), "--keep", "0,2", "-o", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "layercut.json").read_text())
    assert record["kept_layers"] == [0, 2] and not (tmp_path / "out" / "tokenizer.json").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == record["files"]


def test_overwrite_replaces_only_what_layercut_wrote(tiny_llama_folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()  # an empty folder is fine
    assert main(["cut", str(tiny_llama_folder), "--keep-first", "1", "-o", str(out)]) == 0
    assert main(["cut", str(tiny_llama_folder), "--keep-first", "2", "-o", str(out), "--overwrite"]) == 0
    assert json.loads((out / "layercut.json").read_text())["kept_layers"] == [0, 1]
    (out / "notes.md").write_text("mine")
    assert main(["cut", str(tiny_llama_folder), "--keep-first", "1", "-o", str(out), "--overwrite"]) == 2
    assert "notes.md" in capsys.readouterr().err and (out / "notes.md").read_text() == "mine"
    monkeypatch.chdir(out)
    assert main(["cut", str(tiny_llama_folder), "--keep-first", "1", "-o", ".", "--overwrite"]) == 2
    assert "working directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no hidden .old or .tmp folder


def test_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale_dir = tmp_path / f".model.lc-{_HOST}-{dead_pid}-abc123.tmp"
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_bytes(b"half")
    stale_file = tmp_path / f".result.json.lc-{_HOST}-{dead_pid}-xyz.tmp"
    stale_file.write_text("{half")
    live = tmp_path / f"{_temporary_prefix('result.json')}live.tmp"
    live.write_text("being written")
    other_host = tmp_path / f".result.json.lc-otherhost-{dead_pid}-abc.tmp"
    other_host.write_text("another machine's")
    write_text_atomic(tmp_path / "result.json", "{}")
    assert not stale_dir.exists() and not stale_file.exists()
    assert live.exists() and other_host.exists()
    remove_stale_temporaries(tmp_path / "missing")  # nothing to do, no error


def test_progress_in_a_log_file_is_plain_lines(monkeypatch):
    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    with progress_bar(total=5000, desc="training", unit="step") as bar:
        for _ in range(5000):
            bar.update(1)
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert 1 <= len(lines) <= 3 and lines[-1].startswith("training: 100%")


def test_a_refused_sweep_creates_nothing(tiny_llama_folder, review_file, tmp_path, capsys):
    from tests.sweep import write_experiment

    first = write_experiment(tmp_path / "a.yaml", tiny_llama_folder, review_file)
    second = write_experiment(tmp_path / "b.yaml", tiny_llama_folder, review_file, seeds=[0, 1])
    out = tmp_path / "out"
    assert main(["sweep", str(first), "--out", str(out)]) == 0
    listing = sorted(p.name for p in out.iterdir())
    (out / ".lock").unlink()  # as in a folder copied elsewhere: a refused sweep must not create one
    assert main(["sweep", str(second), "--out", str(out)]) == 2
    assert "another experiment" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [name for name in listing if name != ".lock"]


@pytest.mark.parametrize(
    "code, fix",
    [
        (errno.EBUSY, "in use"),
        (errno.ENOSPC, "disk space"),
        (errno.EACCES, "permissions"),
        (errno.EROFS, "writable file system"),
    ],
)
def test_file_system_errors_become_one_line(monkeypatch, capsys, code, fix):
    import layercut.cli.tasks

    def failing(args):
        raise OSError(code, os.strerror(code), "/data/out/result.json")

    monkeypatch.setattr(layercut.cli.tasks, "list_tasks_command", failing)
    assert main(["tasks"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("layercut: error: cannot use '/data/out/result.json' (") and fix in line


def test_unexpected_errors_keep_their_traceback(monkeypatch):
    """A bug is not the user's fault: hiding it behind a message would hide it from the report too."""
    import layercut.cli.tasks

    monkeypatch.setattr(layercut.cli.tasks, "list_tasks_command", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["tasks"])


def test_ctrl_c_dropped_by_a_finalizer_still_ends_the_command(monkeypatch, capsys):
    """Python ignores an exception raised in `__del__` (CI saw a Ctrl-C land in regex's Group.__del__ during
    garbage collection, and the sweep ran on): the command must still stop with the one line and 130."""
    import layercut.cli.tasks

    class Finalized:
        def __del__(self):
            raise KeyboardInterrupt  # where a Ctrl-C can land

    def command(args):
        Finalized()  # dropped at once: its __del__ runs, and Python ignores what it raises
        time.sleep(5)  # the interrupt, delivered again, cuts this short
        return 0

    monkeypatch.setattr(layercut.cli.tasks, "list_tasks_command", command)
    handler, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    # Python's own Ctrl-C handler, as a terminal gives it: a shell starts background jobs with SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main(["tasks"]) == 130
    finally:
        signal.signal(signal.SIGINT, handler)  # main ignores a second Ctrl-C after the first
    assert capsys.readouterr().err.splitlines() == ["layercut: interrupted; finished results are kept"]
    assert sys.unraisablehook is hook  # main's own hook is gone with it
