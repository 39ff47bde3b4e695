"""The bad-input catalogue: every command, every class of wrong input (file system, damaged or
unsupported models, models without tokenizer files, damaged records, values accepted although wrong,
sweeps whose errors show while expanding, unsafe sources, overwriting) ends in exactly one line
`layercut: error: ...`, exit code 2, no traceback, and leaves no file behind.

Cases run in-process through `layercut.cli.main.main` (fast); `test_process_boundary.py` covers what
needs a real process (Ctrl-C, SIGKILL).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from layercut.cli.main import main
from tests.sweep import review_task
from tests.tiny_models import tiny_model, tiny_model_folder, tiny_tokenizer

UNWRITABLE = Path("/sys/layercut-test")  # a read-only file system: unwritable even for root
TEMPLATE = ["--template", "Review: {text} Sentiment:", "--label-words", "Negative,Positive"]


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def world(tmp_path_factory, review_file):
    """Every wrong thing a user may point layercut at, built once: damaged models, records and folders."""
    root = tmp_path_factory.mktemp("world")
    good = tiny_model_folder("llama", root / "good")
    w = {"root": root, "good": good, "data": review_file, "work": root / "work"}
    w["work"].mkdir()
    (w["work"] / "notes.txt").write_text("mine")
    (root / "afile").write_text("a file, not a folder")
    (root / "adir").mkdir()
    (root / "adir.png").mkdir()
    (root / "foreign").mkdir()
    (root / "foreign" / "thesis.tex").write_text("not layercut's")

    def variant(name, edit=None):
        folder = root / name
        shutil.copytree(good, folder)
        if edit:
            edit(folder)
        return folder

    weights = "model.safetensors"
    w["truncated"] = variant("truncated", lambda f: (f / weights).write_bytes((f / weights).read_bytes()[:1000]))
    w["garbage"] = variant("garbage", lambda f: (f / weights).write_bytes(b"not safetensors " * 64))
    w["unknown_type"] = variant("unknown-type", lambda f: _edit_config(f, model_type="foobar"))
    w["custom_code"] = variant(
        "custom-code",
        lambda f: _edit_config(
            f,
            model_type="xmodel",
            auto_map={"AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "modeling_x.XModel"},
        ),
    )
    w["bad_config"] = variant("bad-config", lambda f: (f / "config.json").write_text("{not json"))
    w["list_config"] = variant("list-config", lambda f: (f / "config.json").write_text("[1, 2]"))
    w["no_weights"] = variant("no-weights", lambda f: (f / weights).unlink())
    w["no_config"] = variant("no-config", lambda f: (f / "config.json").unlink())
    pickled = root / "pickle-only"
    model = tiny_model("llama")
    model.config.save_pretrained(pickled)
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    tiny_tokenizer().save_pretrained(pickled)
    w["pickle"] = pickled
    w["no_tokenizer"] = root / "no-tokenizer"
    tiny_model("llama").save_pretrained(w["no_tokenizer"])
    (root / "garbage.gguf").write_bytes(b"GGUF but not really")
    w["garbage_gguf"] = root / "garbage.gguf"

    # A cut model (no task) and an adapted one, with damaged copies of its record.
    assert main(["cut", str(good), "--keep-first", "1", "-o", str(root / "cut")]) == 0
    w["cut"] = root / "cut"
    assert (
        main(
            [
                "run",
                "--model",
                str(good),
                "--layers",
                "first:1",
                "--data",
                str(review_file),
                *TEMPLATE,
                "--shots",
                "2",
                "--method",
                "icl",
                "--test-size",
                "4",
                "--out",
                str(root / "adapted"),
                "--save-model",
            ]
        )
        == 0
    )
    w["adapted_run"] = root / "adapted"
    adapted = root / "adapted" / "model"
    record = json.loads((adapted / "layercut.json").read_text())
    w["record_not_json"] = variant_of(
        adapted, root / "record-not-json", lambda f: (f / "layercut.json").write_text("{oops")
    )
    w["record_list"] = variant_of(adapted, root / "record-list", lambda f: (f / "layercut.json").write_text("[]"))
    w["record_no_head"] = variant_of(
        adapted,
        root / "record-no-head",
        lambda f: (f / "layercut.json").write_text(json.dumps({k: v for k, v in record.items() if k != "head"})),
    )
    w["record_bad_words"] = variant_of(
        adapted,
        root / "record-bad-words",
        lambda f: (f / "layercut.json").write_text(json.dumps({**record, "label_words": {"words": ["x"]}})),
    )
    w["no_record"] = variant_of(adapted, root / "no-record", lambda f: (f / "layercut.json").unlink())
    w["foreign_model_run"] = root / "foreign-model-run"
    (w["foreign_model_run"] / "model").mkdir(parents=True)
    (w["foreign_model_run"] / "model" / "mine.txt").write_text("not layercut's")

    # Sweep folders whose records are damaged.
    result = json.loads((root / "adapted" / "result.json").read_text())

    def sweep_folder(name, file, content):
        folder = root / name / "runs" / "0123456789abcdef"
        folder.mkdir(parents=True)
        (folder / file).write_text(content if isinstance(content, str) else json.dumps(content))
        return root / name

    w["report_no_metrics"] = sweep_folder(
        "report-no-metrics", "result.json", {k: v for k, v in result.items() if k != "metrics"}
    )
    w["report_no_task"] = sweep_folder(
        "report-no-task",
        "result.json",
        {**result, "config": {k: v for k, v in result["config"].items() if k != "task"}},
    )
    w["report_not_json"] = sweep_folder("report-not-json", "result.json", "{half a record")
    w["report_failure_no_config"] = sweep_folder(
        "report-failure-no-config", "failure.json", {"key": "x", "status": "failed"}
    )
    w["report_no_runs"] = root / "report-no-runs"
    (w["report_no_runs"] / "runs").mkdir(parents=True)
    return w


def variant_of(source: Path, folder: Path, edit) -> Path:
    shutil.copytree(source, folder)
    edit(folder)
    return folder


def experiment(world, name: str, **grid) -> str:
    """An experiment file on the tiny model and the review data; `grid` adds or replaces keys."""
    settings = {"epochs": 1, "max_length": 64, "learning_rate": 1.0e-3, **grid.pop("settings", {})}
    content = {
        "models": [str(world["good"])],
        "layers": [1],
        "shots": [2],
        "seeds": [0],
        "tasks": [review_task(world["data"])],
        "settings": settings,
        **grid,
    }
    path = world["root"] / "experiments" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(content))
    return str(path)


def run_args(world, *extra) -> list[str]:
    """A valid tiny `run` (with `extra` making it wrong), writing into a fresh folder."""
    return [
        "run",
        "--model",
        str(world["good"]),
        "--layers",
        "first:1",
        "--data",
        str(world["data"]),
        *TEMPLATE,
        "--shots",
        "2",
        "--epochs",
        "1",
        "--out",
        str(world["root"] / "new-run"),
        *extra,
    ]


def cut_args(world, model, *extra) -> list[str]:
    return ["cut", str(model), "--keep-first", "1", "-o", str(world["root"] / "new-cut"), *extra]


def rank_args(world, *extra, model=None) -> list[str]:
    return [
        "rank",
        str(model or world["good"]),
        "--calibration",
        str(world["data"]),
        "--samples",
        "2",
        "--max-length",
        "8",
        "--measures",
        "bi",
        *extra,
    ]


def show_args(world, *extra, model=None) -> list[str]:
    return ["show-prompt", "--data", str(world["data"]), *TEMPLATE, "--model", str(model or world["good"]), *extra]


r = lambda w, key: str(w["root"] / key)  # noqa: E731  a path in the world

# (id, argv from the world, a part of the expected message)
CASES = [
    # --- file system: outputs that are files, lie under files, cannot be written, or hold foreign files
    ("cut-out-is-file", lambda w: ["cut", str(w["good"]), "--keep-first", "1", "-o", r(w, "afile")], "is a file"),
    (
        "cut-out-under-file",
        lambda w: ["cut", str(w["good"]), "--keep-first", "1", "-o", r(w, "afile/out")],
        "is a file, not a folder",
    ),
    (
        "cut-out-unwritable",
        lambda w: ["cut", str(w["good"]), "--keep-first", "1", "-o", str(UNWRITABLE / "out")],
        "cannot write",
    ),
    ("cut-out-not-empty", lambda w: ["cut", str(w["good"]), "--keep-first", "1", "-o", r(w, "foreign")], "--overwrite"),
    (
        "cut-overwrite-foreign",
        lambda w: ["cut", str(w["good"]), "--keep-first", "1", "-o", r(w, "foreign"), "--overwrite"],
        "did not write (thesis.tex)",
    ),
    (
        "cut-overwrite-cwd",
        lambda w: ["cut", str(w["good"]), "--keep-first", "1", "-o", ".", "--overwrite"],
        "working directory",
    ),
    (
        "cut-overwrite-parent-of-cwd",
        lambda w: ["cut", str(w["good"]), "--keep-first", "1", "-o", "..", "--overwrite"],
        "working directory",
    ),
    ("run-out-is-file", lambda w: run_args(w)[:-2] + ["--out", r(w, "afile")], "is a file, not a folder"),
    ("run-out-under-file", lambda w: run_args(w)[:-2] + ["--out", r(w, "afile/run")], "is a file, not a folder"),
    ("run-out-unwritable", lambda w: run_args(w)[:-2] + ["--out", str(UNWRITABLE / "run")], "cannot write"),
    ("run-out-has-result", lambda w: run_args(w)[:-2] + ["--out", str(w["adapted_run"])], "already holds a run"),
    (
        "run-save-model-foreign",
        lambda w: run_args(w)[:-2] + ["--out", str(w["foreign_model_run"]), "--save-model"],
        "did not write (mine.txt)",
    ),
    ("rank-out-under-file", lambda w: rank_args(w, "-o", r(w, "afile/rank.json")), "is a file, not a folder"),
    ("rank-out-unwritable", lambda w: rank_args(w, "-o", str(UNWRITABLE / "rank.json")), "cannot write"),
    ("rank-out-is-folder", lambda w: rank_args(w, "-o", r(w, "adir")), "is a folder"),
    ("rank-plot-under-file", lambda w: rank_args(w, "--plot", r(w, "afile/rank.png")), "is a file, not a folder"),
    ("rank-plot-unwritable", lambda w: rank_args(w, "--plot", str(UNWRITABLE / "rank.png")), "cannot write"),
    ("rank-plot-is-folder", lambda w: rank_args(w, "--plot", r(w, "adir.png")), "is a folder"),
    ("rank-plot-bad-suffix", lambda w: rank_args(w, "--plot", r(w, "rank.txt")), "end the file name"),
    ("report-on-file", lambda w: ["report", r(w, "afile")], "not a sweep folder"),
    ("report-unwritable", lambda w: ["report", "/sys"], "not a sweep folder"),
    ("report-no-finished-runs", lambda w: ["report", str(w["report_no_runs"])], "no finished runs"),
    ("sweep-out-is-file", lambda w: ["sweep", experiment(w, "ok"), "--out", r(w, "afile")], "is a file"),
    ("sweep-out-under-file", lambda w: ["sweep", experiment(w, "ok"), "--out", r(w, "afile/sweep")], "cannot write"),
    (
        "sweep-out-unwritable",
        lambda w: ["sweep", experiment(w, "ok"), "--out", str(UNWRITABLE / "sweep")],
        "cannot write",
    ),
    ("sweep-out-foreign", lambda w: ["sweep", experiment(w, "ok"), "--out", r(w, "foreign")], "holds no sweep"),
    (
        "sweep-file-missing",
        lambda w: ["sweep", r(w, "missing.yaml"), "--out", r(w, "sweep")],
        "cannot read experiment file",
    ),
    ("sweep-file-is-folder", lambda w: ["sweep", r(w, "adir"), "--out", r(w, "sweep")], "cannot read experiment file"),
    (
        "predict-file-missing",
        lambda w: ["predict", str(w["adapted_run"] / "model"), "--file", r(w, "missing.txt")],
        "does not exist",
    ),
    (
        "predict-file-is-folder",
        lambda w: ["predict", str(w["adapted_run"] / "model"), "--file", r(w, "adir")],
        "does not exist",
    ),
    ("rank-calibration-missing", lambda w: rank_args(w)[:2] + ["--calibration", r(w, "missing.txt")], "missing.txt"),
    ("info-config-missing", lambda w: ["info", r(w, "missing.json")], "does not exist"),
    (
        "run-data-missing",
        lambda w: ["run", "--model", str(w["good"]), "--data", r(w, "missing.csv"), "--out", r(w, "new-run")],
        "missing.csv",
    ),
    # --- damaged or unsupported models
    ("cut-truncated-weights", lambda w: cut_args(w, w["truncated"]), "cannot load the weights"),
    ("cut-garbage-weights", lambda w: cut_args(w, w["garbage"]), "cannot load the weights"),
    ("cut-unknown-model-type", lambda w: cut_args(w, w["unknown_type"]), "model type 'foobar'"),
    ("cut-custom-code", lambda w: cut_args(w, w["custom_code"]), "--trust-remote-code"),
    ("cut-config-not-json", lambda w: cut_args(w, w["bad_config"]), "not valid JSON"),
    ("cut-config-a-list", lambda w: cut_args(w, w["list_config"]), "not a model configuration"),
    ("cut-no-weights", lambda w: cut_args(w, w["no_weights"]), "holds no weights"),
    ("cut-no-config", lambda w: cut_args(w, w["no_config"]), "no config.json"),
    ("cut-model-is-file", lambda w: cut_args(w, w["root"] / "afile"), "is a file, not a model"),
    ("cut-missing-path", lambda w: cut_args(w, w["root"] / "missing-model"), "does not exist"),
    ("cut-alias-typo", lambda w: cut_args(w, "smollm2-13m"), "did you mean the built-in alias 'smollm2-135m'"),
    ("cut-missing-gguf", lambda w: cut_args(w, w["root"] / "missing.gguf"), "does not exist"),
    ("cut-garbage-gguf", lambda w: cut_args(w, w["garbage_gguf"]), "not a valid GGUF file"),
    ("info-unknown-model-type", lambda w: ["info", str(w["unknown_type"])], "model type 'foobar'"),
    ("info-custom-code", lambda w: ["info", str(w["custom_code"])], "--trust-remote-code"),
    ("rank-truncated-weights", lambda w: rank_args(w, model=w["truncated"]), "cannot load the weights"),
    (
        "run-truncated-weights",
        lambda w: run_args(w)[:1] + ["--model", str(w["truncated"])] + run_args(w)[3:],
        "cannot load the weights",
    ),
    (
        "run-unknown-model-type",
        lambda w: run_args(w)[:1] + ["--model", str(w["unknown_type"])] + run_args(w)[3:],
        "foobar",
    ),
    ("show-prompt-custom-code", lambda w: show_args(w, model=w["custom_code"]), "--trust-remote-code"),
    # --- unsafe by default: pickle weights need --allow-pickle
    ("cut-pickle-only", lambda w: cut_args(w, w["pickle"]), "--allow-pickle"),
    ("run-pickle-only", lambda w: run_args(w)[:1] + ["--model", str(w["pickle"])] + run_args(w)[3:], "--allow-pickle"),
    ("rank-pickle-only", lambda w: rank_args(w, model=w["pickle"]), "--allow-pickle"),
    # --- model folders without tokenizer files, for commands that need one
    (
        "run-no-tokenizer",
        lambda w: run_args(w)[:1] + ["--model", str(w["no_tokenizer"])] + run_args(w)[3:],
        "no tokenizer files",
    ),
    ("rank-no-tokenizer", lambda w: rank_args(w, model=w["no_tokenizer"]), "no tokenizer files"),
    ("show-prompt-no-tokenizer", lambda w: show_args(w, model=w["no_tokenizer"]), "no tokenizer files"),
    (
        "rank-strategy-cut-no-tokenizer",
        lambda w: (
            cut_args(w, w["no_tokenizer"])[:2]
            + ["--keep-strategy", "bi", "--keep-count", "1", "--calibration", str(w["data"]), "-o", r(w, "new-cut")]
        ),
        "no tokenizer files",
    ),
    # --- damaged records
    ("predict-record-not-json", lambda w: ["predict", str(w["record_not_json"]), "good movie"], "not valid JSON"),
    ("predict-record-a-list", lambda w: ["predict", str(w["record_list"]), "good movie"], "not a JSON object"),
    ("predict-record-no-head", lambda w: ["predict", str(w["record_no_head"]), "good movie"], "incomplete or damaged"),
    (
        "predict-record-bad-words",
        lambda w: ["predict", str(w["record_bad_words"]), "good movie"],
        "incomplete or damaged",
    ),
    ("predict-no-record", lambda w: ["predict", str(w["no_record"]), "good movie"], "has no layercut.json"),
    ("predict-cut-only", lambda w: ["predict", str(w["cut"]), "good movie"], "never adapted"),
    ("predict-no-texts", lambda w: ["predict", str(w["adapted_run"] / "model")], "no texts"),
    (
        "report-result-no-metrics",
        lambda w: ["report", str(w["report_no_metrics"])],
        "lacks the field 'metrics.accuracy'",
    ),
    ("report-result-no-task", lambda w: ["report", str(w["report_no_task"])], "lacks the field 'config.task'"),
    ("report-result-not-json", lambda w: ["report", str(w["report_not_json"])], "is damaged"),
    (
        "report-failure-no-config",
        lambda w: ["report", str(w["report_failure_no_config"])],
        "lacks the field 'config.model'",
    ),
    # --- accepted although wrong: every value and combination is checked before any model loads
    ("run-task-with-data", lambda w: run_args(w, "--task", "trec"), "not both"),
    ("run-dev-shots-0", lambda w: run_args(w, "--dev-shots", "0"), "dev-shots must be at least 1"),
    ("run-dev-shots-negative", lambda w: run_args(w, "--dev-shots", "-2"), "dev-shots must be at least 1"),
    ("run-dev-size-0", lambda w: run_args(w, "--dev-size", "0"), "dev-size must be at least 1"),
    ("run-test-size-0", lambda w: run_args(w, "--test-size", "0"), "test-size must be at least 1"),
    ("run-lora-alpha-negative", lambda w: run_args(w, "--lora-alpha", "-16"), "lora-alpha must be at least 1"),
    ("run-lora-rank-0", lambda w: run_args(w, "--lora-rank", "0", "--method", "lora"), "lora-rank must be at least 1"),
    ("run-max-length-0", lambda w: run_args(w, "--max-length", "0"), "max-length must be at least 1"),
    ("run-weight-decay-negative", lambda w: run_args(w, "--weight-decay", "-0.1"), "--weight-decay must be >= 0"),
    ("run-lr-infinite", lambda w: run_args(w, "--lr", "inf"), "--learning-rate must be > 0 and finite"),
    ("run-lr-nan", lambda w: run_args(w, "--lr", "nan"), "--learning-rate must be > 0 and finite"),
    ("run-lr-zero", lambda w: run_args(w, "--lr", "0"), "--learning-rate must be > 0"),
    ("run-epochs-0", lambda w: run_args(w, "--epochs", "0"), "epochs must be at least 1"),
    (
        "run-keep-count-0",
        lambda w: run_args(w, "--keep-strategy", "first", "--keep-count", "0"),
        "keep-count must be at least 1",
    ),
    ("run-keep-count-alone", lambda w: run_args(w, "--keep-count", "2"), "go together"),
    ("run-shots-too-many", lambda w: run_args(w, "--shots", "500"), "exceeds the smallest class"),
    ("run-shots-all-no-dev", lambda w: run_args(w, "--shots", "all"), "--shots all trains on every training example"),
    (
        "run-shots-word",
        lambda w: run_args(w, "--shots", "most"),
        "--shots must be a whole number of examples per class (at least 1) or 'all', got 'most'",
    ),
    ("run-test-size-too-big", lambda w: run_args(w, "--test-size", "100000"), "test_size 100000"),
    ("run-cls-icl", lambda w: run_args(w, "--head", "cls", "--method", "icl"), "--head cls with --method icl"),
    ("show-prompt-max-length-0", lambda w: show_args(w, "--max-length", "0"), "--max-length must be at least 1"),
    ("rank-samples-0", lambda w: rank_args(w, "--samples", "0"), "--samples must be at least 1"),
    (
        "rank-max-length-0",
        lambda w: rank_args(w)[:6] + ["--max-length", "0", "--measures", "bi"],
        "--max-length must be at least 1",
    ),
    ("rank-batch-size-0", lambda w: rank_args(w, "--batch-size", "0"), "--batch-size must be at least 1"),
    ("rank-unknown-measure", lambda w: rank_args(w)[:-2] + ["--measures", "bogus"], "unknown measure"),
    # --- sweeps: what would fail only when a run starts fails while expanding the grid
    (
        "sweep-model-missing",
        lambda w: ["sweep", experiment(w, "m", models=[r(w, "missing-model")]), "--out", r(w, "sweep")],
        "does not exist",
    ),
    (
        "sweep-alias-typo",
        lambda w: ["sweep", experiment(w, "a", models=["smollm2-13m"]), "--out", r(w, "sweep")],
        "did you mean",
    ),
    (
        "sweep-dry-run-model-missing",
        lambda w: ["sweep", experiment(w, "d", models=[r(w, "missing-model")]), "--dry-run"],
        "does not exist",
    ),
    (
        "sweep-shots-too-many",
        lambda w: ["sweep", experiment(w, "k", shots=[2, 500]), "--out", r(w, "sweep")],
        "exceeds the smallest class",
    ),
    (
        "sweep-test-size-too-big",
        lambda w: ["sweep", experiment(w, "t", settings={"test_size": 100000}), "--out", r(w, "sweep")],
        "test_size 100000",
    ),
    (
        "sweep-second-lr-invalid",
        lambda w: ["sweep", experiment(w, "l", settings={"learning_rate": [1.0e-4, -1.0]}), "--out", r(w, "sweep")],
        "learning_rate must be > 0 and finite, got -1.0: e.g. learning_rate: 5e-5",  # the file's spelling
    ),
    (
        "sweep-shots-all-no-dev",
        lambda w: ["sweep", experiment(w, "a", shots=[2, "all"]), "--out", r(w, "sweep")],
        "shots 'all' trains on every training example: set the dev set apart under settings (dev_size: N)",
    ),
    (
        "sweep-dev-shots-0",
        lambda w: ["sweep", experiment(w, "v", settings={"dev_shots": 0}), "--out", r(w, "sweep")],
        "dev_shots must be at least 1",
    ),
    (
        "sweep-lora-alpha-negative",
        lambda w: ["sweep", experiment(w, "la", settings={"lora_alpha": -1}), "--out", r(w, "sweep")],
        "lora_alpha must be at least 1",
    ),
    (
        "sweep-weight-decay-infinite",
        lambda w: ["sweep", experiment(w, "wd", settings={"weight_decay": float("inf")}), "--out", r(w, "sweep")],
        "weight_decay must be >= 0",
    ),
    (
        "sweep-task-with-data",
        lambda w: [
            "sweep",
            experiment(w, "td", tasks=[{"name": "trec", "data": str(w["data"])}]),
            "--out",
            r(w, "sweep"),
        ],
        "not both",
    ),
    (
        "sweep-pickle-model",
        lambda w: ["sweep", experiment(w, "p", models=[str(w["pickle"])]), "--out", r(w, "sweep")],
        "or pass allow_pickle: true if you trust their source",  # the experiment file's spelling
    ),
    (
        "sweep-custom-code-model",
        lambda w: ["sweep", experiment(w, "c", models=[str(w["custom_code"])]), "--out", r(w, "sweep")],
        "pass trust_remote_code: true if you trust its source",
    ),
    (
        "sweep-damaged-model",
        lambda w: ["sweep", experiment(w, "dm", models=[str(w["bad_config"])]), "--out", r(w, "sweep")],
        "not valid JSON",
    ),
    (
        "sweep-allow-pickle-not-bool",
        lambda w: ["sweep", experiment(w, "b", settings={"allow_pickle": "yes"}), "--out", r(w, "sweep")],
        "true or false",
    ),
]


def _snapshot(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_bad_input_fails_in_one_line_and_leaves_nothing(case, world, capsys, monkeypatch, tmp_path, one_thread):
    check_one_line_and_nothing_left(case, world, capsys, monkeypatch, tmp_path)


def check_one_line_and_nothing_left(case, world, capsys, monkeypatch, tmp_path) -> None:
    """`case`: (id, argv built from the `world` fixture, expected part of the message). One line under 600
    characters, exit code 2, no traceback, and nothing new under the world's root."""
    _, argv_of, expected = case
    monkeypatch.setenv("LAYERCUT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(world["work"])
    argv = argv_of(world)
    capsys.readouterr()
    before = _snapshot(world["root"])
    code = main(argv)
    out, err = capsys.readouterr()
    lines = (out + err).strip().splitlines()
    assert code == 2, (argv, out, err)
    assert len(lines) == 1 and lines[0].startswith("layercut: error: "), (out, err)
    assert "Traceback" not in err and expected in lines[0] and len(lines[0]) < 600, lines[0]
    assert _snapshot(world["root"]) == before, "files were left behind"


def test_the_catalogue_covers_every_command_and_is_large():
    prefixes = {case[0].split("-")[0] for case in CASES}
    assert {"cut", "run", "rank", "report", "sweep", "predict", "info", "show"} <= prefixes
    assert len(CASES) >= 80 and len({case[0] for case in CASES}) == len(CASES)
