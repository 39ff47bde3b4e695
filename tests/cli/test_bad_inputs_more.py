"""More of the bad-input catalogue (issue #27): model code run without asking, text files that are not UTF-8,
a full disk, sweeps that failed only after runs had started, and rough edges. Each case ends in one line
`layercut: error: ...`, exit code 2, no traceback, and leaves no file behind; it reuses the world of
`test_bad_inputs.py`.
"""

from __future__ import annotations

import argparse
import errno
import json
import shutil

import pytest
import torch

from layercut.cli.main import main
from tests.cli import assert_one_line_error, run_cli
from tests.cli.test_bad_inputs import (
    TEMPLATE,
    check_one_line_and_nothing_left,
    UNWRITABLE,
    _edit_config,
    _snapshot,
    cut_args,
    experiment,
    r,
    rank_args,
    run_args,
    world,  # noqa: F401  (a fixture)
)

# A module of model code that leaves a mark when it runs (on import, as transformers imports it).
MARKING_CODE = """
from pathlib import Path
Path({marker!r}).write_text("the model's own code ran")
from transformers import LlamaConfig, LlamaForCausalLM
class XConfig(LlamaConfig):
    model_type = "xmodel"
class XModel(LlamaForCausalLM):
    config_class = XConfig
"""


def test_predict_never_runs_the_models_own_code_even_when_stdin_says_yes(world, tmp_path):
    folder = tmp_path / "custom-adapted"
    shutil.copytree(world["adapted_run"] / "model", folder)
    marker = tmp_path / "code-ran"
    for name in ("configuration_x.py", "modeling_x.py"):
        (folder / name).write_text(MARKING_CODE.format(marker=str(marker)))
    _edit_config(
        folder,
        model_type="xmodel",
        auto_map={"AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "modeling_x.XModel"},
    )
    result = run_cli("predict", folder, "good movie", input="y\n", timeout=300)
    assert_one_line_error(result, "--trust-remote-code")
    assert not marker.exists()


LATIN1 = "café good movie\nbad film\n".encode("latin-1")
RANDOM_BYTES = bytes(range(256)) * 4


@pytest.fixture(scope="module")
def more(world):
    """The world, plus the inputs of this catalogue."""
    root = world["root"]
    w = dict(world)
    for name, content in {
        "latin1.yaml": "models: [caf\xe9]\n".encode("latin-1"),
        "random.yaml": RANDOM_BYTES,
        "latin1-task.yaml": f"name: t\nsource: file\npath: {world['data']}\ntemplate: 'Caf\xe9 {{text}}'\n".encode(
            "latin-1"
        ),
        "latin1.txt": LATIN1,
        "random.txt": RANDOM_BYTES,
        "corpus.txt": b"good movie\nbad film\n",
        "latin1.jsonl": '{"text": "caf\xe9 good", "label": "positive"}\n{"text": "bad", "label": "negative"}\n'.encode(
            "latin-1"
        ),
        "latin1.csv": "text,label\ncaf\xe9 good,positive\nbad,negative\n".encode("latin-1"),
        "empty.txt": b"\n  \n",
        "one-per-class.jsonl": b'{"text": "good movie", "label": "positive"}\n'
        b'{"text": "bad film", "label": "negative"}\n',
    }.items():
        (root / name).write_bytes(content)
        w[name] = root / name
    # A sweep folder whose result holds its accuracy as text.
    result = json.loads((world["adapted_run"] / "result.json").read_text())
    w["report_accuracy_text"] = root / "report-accuracy-text"
    (w["report_accuracy_text"] / "runs" / "0123456789abcdef").mkdir(parents=True)
    (w["report_accuracy_text"] / "runs" / "0123456789abcdef" / "result.json").write_text(
        json.dumps({**result, "metrics": {**result["metrics"], "accuracy": "0.9"}})
    )
    # Pickle weights holding an object besides the tensors, which torch's weights-only unpickler refuses.
    w["pickle_objects"] = root / "pickle-objects"
    shutil.copytree(world["pickle"], w["pickle_objects"])
    state = torch.load(w["pickle_objects"] / "pytorch_model.bin", weights_only=True)
    torch.save({**state, "args": argparse.Namespace(lr=1.0)}, w["pickle_objects"] / "pytorch_model.bin")
    return w


def t(w, key: str) -> str:
    return str(w[key])


# (id, argv from the world, a part of the expected message)
CASES = [
    # --- text inputs that are not UTF-8: one rule, one line naming the file
    (
        "sweep-experiment-latin1",
        lambda w: ["sweep", t(w, "latin1.yaml"), "--out", r(w, "sweep")],
        "is not UTF-8 text (line 1)",
    ),
    (
        "sweep-experiment-random-bytes",
        lambda w: ["sweep", t(w, "random.yaml"), "--out", r(w, "sweep")],
        "random.yaml' is not UTF-8",
    ),
    (
        "run-task-yaml-latin1",
        lambda w: run_args(w)[:5] + ["--task", t(w, "latin1-task.yaml"), "--shots", "2", "--out", r(w, "new-run")],
        "task file",
    ),
    ("cut-trim-vocab-latin1", lambda w: cut_args(w, w["good"], "--trim-vocab", t(w, "latin1.txt")), "corpus file"),
    (
        "cut-trim-vocab-random-bytes",
        lambda w: cut_args(w, w["good"], "--trim-vocab", t(w, "random.txt")),
        "is not UTF-8",
    ),
    (
        "trim-corpus-latin1",
        lambda w: ["trim", str(w["cut"]), "--corpus", t(w, "latin1.txt"), "-o", r(w, "new-trim")],
        "corpus file",
    ),
    (
        "predict-file-latin1",
        lambda w: ["predict", str(w["adapted_run"] / "model"), "--file", t(w, "latin1.txt")],
        "is not UTF-8",
    ),
    ("rank-calibration-latin1", lambda w: rank_args(w)[:2] + ["--calibration", t(w, "latin1.txt")], "is not UTF-8"),
    (
        "eval-perplexity-random-bytes",
        lambda w: ["eval", str(w["good"]), "--perplexity", t(w, "random.txt")],
        "is not UTF-8",
    ),
    (
        "run-data-jsonl-latin1",
        lambda w: [
            "run",
            "--model",
            str(w["good"]),
            "--data",
            t(w, "latin1.jsonl"),
            *TEMPLATE,
            "--out",
            r(w, "new-run"),
        ],
        "data file",
    ),
    (
        "run-data-csv-latin1",
        lambda w: ["run", "--model", str(w["good"]), "--data", t(w, "latin1.csv"), *TEMPLATE, "--out", r(w, "new-run")],
        "is not UTF-8 text (line 2)",
    ),
    # --- sweeps: what failed only after runs had started fails while expanding the grid
    (
        "sweep-teacher-missing",
        lambda w: ["sweep", experiment(w, "tm", settings={"teacher": r(w, "missing-teacher")}), "--out", r(w, "sweep")],
        "missing-teacher' does not exist",
    ),
    (
        "sweep-teacher-missing-in-arm",
        lambda w: [
            "sweep",
            experiment(w, "ta", arms={"plain": {}, "distilled": {"teacher": r(w, "missing-teacher")}}),
            "--out",
            r(w, "sweep"),
        ],
        "missing-teacher' does not exist",
    ),
    (
        "sweep-evaluation-unknown-lm-eval-task",
        lambda w: [
            "sweep",
            experiment(w, "el", evaluations=[{"lm_eval": ["no_such_lm_eval_task"]}]),
            "--out",
            r(w, "sweep"),
        ],
        "unknown lm-eval task 'no_such_lm_eval_task'",
    ),
    (
        "sweep-evaluation-window-below-stride",
        lambda w: [
            "sweep",
            experiment(w, "ew", evaluations=[{"perplexity": str(w["data"]), "window": 8, "stride": 16}]),
            "--out",
            r(w, "sweep"),
        ],
        "stride 16 is not below the window",
    ),
    (
        "sweep-evaluation-default-window-below-stride",
        lambda w: [
            "sweep",
            experiment(w, "ed", evaluations=[{"perplexity": str(w["data"]), "stride": 300}]),
            "--out",
            r(w, "sweep"),
        ],
        "stride 300 is not below the window (256",
    ),
    (
        "sweep-evaluation-window-beyond-context",
        lambda w: [
            "sweep",
            experiment(w, "ec", evaluations=[{"perplexity": str(w["data"]), "window": 4096}]),
            "--out",
            r(w, "sweep"),
        ],
        "longer than the context",
    ),
    (
        "sweep-label-words-share-first-token",
        lambda w: [
            "sweep",
            experiment(
                w,
                "lw",
                tasks=[
                    {
                        "name": "reviews",
                        "data": str(w["data"]),
                        "template": "Review: {text} Sentiment:",
                        "label_words": "great,great fun",
                    }
                ],
            ),
            "--out",
            r(w, "sweep"),
        ],
        "label words share a first token",
    ),
    (
        "sweep-seed-beyond-64-bits",
        lambda w: ["sweep", experiment(w, "sd", seeds=[0, 2**64]), "--out", r(w, "sweep")],
        "does not fit in 64 bits",
    ),
    # --- rough edges: values accepted although wrong
    ("run-seed-beyond-64-bits", lambda w: run_args(w, "--seed", str(2**64)), "does not fit in 64 bits"),
    (
        "run-teacher-missing",
        lambda w: run_args(w, "--teacher", r(w, "missing-teacher")),
        "missing-teacher' does not exist",
    ),
    (
        "eval-window-0",
        lambda w: ["eval", str(w["good"]), "--perplexity", str(w["data"]), "--window", "0"],
        "window 0 is out of range",
    ),
    (
        "eval-stride-0",
        lambda w: ["eval", str(w["good"]), "--perplexity", str(w["data"]), "--stride", "0"],
        "stride 0 is out of range",
    ),
    (
        "eval-window-beyond-context",
        lambda w: ["eval", str(w["good"]), "--perplexity", str(w["data"]), "--window", "4096"],
        "longer than the context of",
    ),
    (
        "run-distill-weight-without-teacher",
        lambda w: run_args(w, "--distill-weight", "0.3"),
        "--distill-weight sets how to distill from a teacher, but no --teacher is given",
    ),
    ("run-distill-temperature-without-teacher", lambda w: run_args(w, "--distill-temperature", "2"), "no --teacher"),
    (
        "cut-allow-pickle-objects",
        lambda w: cut_args(w, w["pickle_objects"], "--allow-pickle"),
        "holds objects that are not tensors",
    ),
    ("report-accuracy-text", lambda w: ["report", str(w["report_accuracy_text"])], "holds '0.9' as 'metrics.accuracy'"),
    # --- outputs checked before the work, named as the user gave them (never a temporary name)
    (
        "eval-out-unwritable",
        lambda w: ["eval", str(w["good"]), "--perplexity", str(w["data"]), "-o", str(UNWRITABLE / "eval.json")],
        f"cannot write the JSON results '{UNWRITABLE}/eval.json'",
    ),
    (
        "eval-out-is-folder",
        lambda w: ["eval", str(w["good"]), "--perplexity", str(w["data"]), "-o", r(w, "adir")],
        "is a folder",
    ),
    (
        "profile-plot-unwritable",
        lambda w: ["profile", str(w["good"]), "--plot", str(UNWRITABLE / "depths.png")],
        f"cannot write the plot '{UNWRITABLE}/depths.png'",
    ),
    (
        "profile-json-unwritable",
        lambda w: ["profile", str(w["good"]), "--json", str(UNWRITABLE / "depths.json")],
        f"cannot write the JSON figures '{UNWRITABLE}/depths.json'",
    ),
    # --- noise: messages that say the right thing, briefly
    (
        "info-config-json-unknown-type",
        lambda w: ["info", str(w["unknown_type"] / "config.json")],
        "model type 'foobar'",
    ),
    (
        "eval-perplexity-empty",
        lambda w: ["eval", str(w["good"]), "--perplexity", t(w, "empty.txt")],
        "perplexity file '",
    ),
    (
        "run-data-too-small-for-k",
        lambda w: [
            "run",
            "--model",
            str(w["good"]),
            "--data",
            t(w, "one-per-class.jsonl"),
            *TEMPLATE,
            "--shots",
            "16",
            "--out",
            r(w, "new-run"),
        ],
        "K=16 training examples per class",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_bad_input_fails_in_one_line_and_leaves_nothing(case, more, capsys, monkeypatch, tmp_path, one_thread):
    check_one_line_and_nothing_left(case, more, capsys, monkeypatch, tmp_path)


# --- a full disk: whichever library writes, one line naming the output, nothing left behind, and a retry works


def _safetensors_full(*args, **kwargs):
    from safetensors import SafetensorError

    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def _tokenizers_full(*args, **kwargs):
    raise Exception("No space left on device (os error 28)")  # tokenizers' Rust writer raises a bare Exception


def _fsync_full(fd):
    raise OSError(errno.ENOSPC, "No space left on device")


def _sweep_args(w):
    return ["sweep", experiment(w, "full", methods=["icl"], settings={"test_size": 4}), "--out", r(w, "new-sweep/deep")]


DISK_FULL = [
    (
        "cut",
        "transformers.modeling_utils.safe_save_file",
        _safetensors_full,
        lambda w: ["cut", str(w["good"]), "--keep-first", "1", "-o", r(w, "new-cut/deep")],
    ),
    (
        "trim",
        "transformers.PreTrainedTokenizerFast.save_pretrained",
        _tokenizers_full,
        lambda w: ["trim", str(w["cut"]), "--corpus", t(w, "corpus.txt"), "-o", r(w, "new-trim")],
    ),
    (
        "run-icl-save-model",
        "transformers.modeling_utils.safe_save_file",
        _safetensors_full,
        lambda w: run_args(w, "--method", "icl", "--test-size", "4", "--save-model"),
    ),
    ("run-result", "os.fsync", _fsync_full, lambda w: run_args(w, "--method", "icl", "--test-size", "4")),
    ("sweep", "os.fsync", _fsync_full, _sweep_args),
]


@pytest.mark.parametrize("case", DISK_FULL, ids=[case[0] for case in DISK_FULL])
def test_a_full_disk_fails_in_one_line_leaves_nothing_and_a_retry_works(
    case, more, capsys, monkeypatch, tmp_path, one_thread
):
    _, target, full, argv_of = case
    monkeypatch.setenv("LAYERCUT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(more["work"])
    argv = argv_of(more)
    before = _snapshot(more["root"])
    try:
        with monkeypatch.context() as patch:
            patch.setattr(target, full)
            capsys.readouterr()
            code = main(argv)
            out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "No space left on device" in lines[0], (out, err)
        assert lines[0].startswith("layercut: error: ") and ".lc-" not in lines[0], lines[0]
        assert _snapshot(more["root"]) == before, "files were left behind"
        assert main(argv) == 0, capsys.readouterr()  # space is back
    finally:
        for name in ("new-cut", "new-trim", "new-run", "new-sweep"):
            shutil.rmtree(more["root"] / name, ignore_errors=True)


def test_a_bridge_fitted_on_fewer_tokens_than_its_width_is_flagged(more, tmp_path, capsys, one_thread):
    (tmp_path / "few.txt").write_text("good movie\n")  # a handful of tokens for a map of width 32
    out = tmp_path / "bridged"
    assert (
        main(
            [
                "cut",
                str(more["good"]),
                "--keep-first",
                "1",
                "--bridge",
                "lstsq",
                "--calibration",
                str(tmp_path / "few.txt"),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert "underdetermined" in capsys.readouterr().err
    bridge = json.loads((out / "layercut.json").read_text())["bridge"]
    assert bridge["underdetermined"] is True and bridge["calibration_tokens"] < bridge["hidden_size"]


def test_a_run_into_a_folder_another_run_is_writing_is_refused(more, tmp_path, capsys, one_thread):
    from layercut.run.pipeline import hold_run_folder

    out = tmp_path / "shared"
    argv = run_args(more)[:-2] + ["--out", str(out), "--method", "icl", "--test-size", "4", "--save-model"]
    with hold_run_folder(out):  # a run writing into `out` now
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and "another run is writing to" in err and not any(out.iterdir()), err
    assert main(argv) == 0 and (out / "model").is_dir()  # once it is done


def test_a_closed_pipe_ends_the_listing_silently(tmp_path):
    from tests.cli import start_cli

    for flags in ([], ["--json"]):
        process = start_cli("tasks", *flags)
        process.stdout.close()  # the reader is gone before anything is written (`layercut tasks | head -c 0`)
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0 and err == "", err


@pytest.mark.parametrize(
    "name, content", [("unreadable.csv", "text,label\ngood,a\nbad,b,c\n"), ("fake.parquet", "not parquet at all")]
)
def test_a_data_file_datasets_cannot_read_is_one_line_of_layercut(more, tmp_path, name, content):
    (tmp_path / name).write_text(content)
    result = run_cli(
        "run", "--model", more["good"], "--data", tmp_path / name, *TEMPLATE, "--out", tmp_path / "run", timeout=300
    )
    assert_one_line_error(result, f"cannot read '{tmp_path / name}'")
