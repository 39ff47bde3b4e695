"""Experiment files, the result store, sweeps and reports, end to end on a tiny random model."""

import csv
import importlib
import json
import sys
from pathlib import Path

import pytest

from layercut.cli.main import main
from layercut.errors import LayercutError
from layercut.report.markdown import build_tables
from layercut.run.record import RunRecord
from layercut.settings.run_config import RunConfig
from layercut.sweep import ResultStore, load_experiment, run_sweep, write_report
from tests.sweep import fake_record, write_experiment

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).parents[2] / "configs"


def test_expansion_skips_invalid_cells_and_repeats_no_run(tiny_llama_folder, review_file, tmp_path):
    path = write_experiment(
        tmp_path / "e.yaml",
        tiny_llama_folder,
        review_file,
        layers=[1, "all", "first:9"],
        heads=["lm", "cls"],
        methods=["full", "icl"],
        seeds=[0, 1],
        settings={"learning_rate": ["5e-5", 1.0e-4]},
    )
    experiment = load_experiment(path)
    # 2 usable layer choices x (lm full x 2 lr + cls full x 2 lr + lm icl x 1) x 2 seeds; first:9 > 4 layers; cls+icl
    assert len(experiment.runs) == 2 * 5 * 2 == len({r.key() for r in experiment.runs})
    assert {r.layers for r in experiment.runs} == {"first:1", "all"}
    assert {r.learning_rate for r in experiment.runs if r.method == "full"} == {5e-5, 1e-4}  # "5e-5" is a YAML string
    assert {r.learning_rate for r in experiment.runs if r.method == "icl"} == {5e-5}  # ICL ignores it: not repeated
    assert len(experiment.warnings) == 2
    assert any("first 9 layers of a 4-layer model" in w for w in experiment.warnings)
    assert any("head: cls with method: icl" in w for w in experiment.warnings)
    assert load_experiment(path).key == experiment.key


def test_strategies_and_per_model_layers(tiny_llama_folder, review_file, tmp_path):
    path = write_experiment(
        tmp_path / "e.yaml",
        tiny_llama_folder,
        review_file,
        strategies=["first", "bi"],
        keep_counts=[2, 4],
        models=[{"name": str(tiny_llama_folder), "layers": [3]}],
    )
    runs = load_experiment(path).runs
    assert sorted((r.layers, r.keep_strategy, r.keep_count) for r in runs) == [
        ("all", "bi", 2),
        ("all", "bi", 4),
        ("all", "first", 2),
        ("all", "first", 4),
        ("first:3", None, None),
    ]


def test_a_strategy_gets_its_own_table_and_ranks_once(tiny_llama_folder, review_file, tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERCUT_CACHE", str(tmp_path / "cache"))
    path = write_experiment(
        tmp_path / "e.yaml", tiny_llama_folder, review_file, layers=[2], strategies=["bi", "last"], keep_counts=[2, 3]
    )
    run_sweep(load_experiment(path), tmp_path / "out", echo=lambda line: None)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "LM head, full fine-tuning\n" in report and "LM head, full fine-tuning, layers chosen by bi\n" in report
    rows = list(csv.DictReader((tmp_path / "out" / "runs.csv").open()))
    assert sorted((r["keep_strategy"], r["layers_kept"]) for r in rows) == [
        ("", "2"),
        ("bi", "2"),
        ("bi", "3"),
        ("last", "2"),
        ("last", "3"),
    ]
    # The strategies side by side, in the order of STRATEGIES, with each cell's accuracy and kept layers.
    accuracy = {(r["keep_strategy"], r["layers_kept"]): 100 * float(r["accuracy"]) for r in rows}
    comparison = report.split("reviews: layer strategies compared\n")[1].splitlines()
    assert comparison[5] == f"| last | {accuracy['last', '2']:.1f} [2-3] | {accuracy['last', '3']:.1f} [1-3] |"
    assert comparison[6].startswith(f"| bi | {accuracy['bi', '2']:.1f} [")
    # Both bi runs rank the same model on the same training texts: the second reads the first's ranking.
    assert len(list((tmp_path / "cache" / "rankings").glob("*.json"))) == 1
    rankings = {
        (r.config["keep_strategy"], r.config["keep_count"]): r.record["layers"]["ranking"]
        for r in ResultStore(tmp_path / "out").records()
    }
    assert rankings["last", 2] is None and rankings["bi", 2] == rankings["bi", 3]  # one ranking, its timing included
    assert (
        rankings["bi", 2]["calibration"]["source"] == "reviews training texts"
        and rankings["bi", 2]["seconds"]["bi_angular"] >= 0
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("models: [a\n", "is not valid YAML"),
        ("modles: [x]\n", "unknown key(s) modles; allowed: description, models,"),
        ("heads: []\n", "'heads' is empty"),
        ("heads: [lm, clss]\n", "unknown head 'clss'"),
        ("tasks: [trc]\n", "unknown task 'trc'; did you mean trec"),
        ("settings: {lr: 1}\n", "unknown setting(s) lr; allowed: label_word_policy, learning_rate"),
        ("settings: {epochs: [1, two]}\n", "epochs 'two' is not a whole number"),
        ("layers: [last:0]\n", "layers 'last:0' keeps no layer"),
        ("strategies: [bi]\n", "'strategies' and 'keep_counts' go together"),
        ("heads: [cls]\nmethods: [icl]\n", "the grid is empty: skipped 1 grid cell(s)"),
        ("", "expected a mapping of lists"),
    ],
)
def test_bad_experiment_files_fail_in_one_line(smollm2, tmp_path, capsys, text, message):
    """`smollm2`: the default model converted beforehand, so its one-time conversion line is not in the error."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_sweep_runs_resumes_and_reports(tiny_llama_folder, review_file, tmp_path, capsys):
    path = write_experiment(
        tmp_path / "e.yaml",
        tiny_llama_folder,
        review_file,
        layers=[1, 2],
        seeds=[0, 1],
        methods=["full", "icl"],
        settings={"learning_rate": [1.0e-3, 3.0e-3]},
    )
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    assert "12 runs: 0 already complete" in capsys.readouterr().out
    assert len(list((out / "runs").glob("*/result.json"))) == 12
    assert main(["sweep", str(path), "--out", str(out)]) == 0  # a second sweep finds everything done
    assert "12 runs: 12 already complete in" in capsys.readouterr().out

    report = (out / "report.md").read_text()
    assert "12 finished runs" in report and report.count("| Layers kept | Parameters") == 2  # LM head: full, ICL
    assert "Other measures" in report and "Majority-class baseline" in report and "Splits: train: balanced" in report
    assert "Settings picked per cell by the best mean dev accuracy" in report and "learning_rate=0.00" in report
    assert report.count("| bag-of-words | – | – |") == 2 and "Against bag-of-words" in report
    assert len(list((out / "baselines").glob("*.json"))) == 2  # one fit per seed, shared by every depth and method
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert len(rows) == 12 == len({r["key"] for r in rows}) and {r["status"] for r in rows} == {"complete"}
    for name in (
        "accuracy_vs_layers_",
        "accuracy_vs_parameters",
        "speedup_vs_layers",
        "dev_accuracy_curves_",
        "train_loss_curves_",
    ):
        [plot] = (out / "plots").glob(f"{name}*.png")
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failing_run_is_recorded_retried_and_does_not_stop_the_sweep(
    tiny_llama_folder, review_file, tmp_path, capsys, monkeypatch
):
    run_module = importlib.import_module("layercut.run.pipeline")  # `layercut.run` is the function
    real_run = run_module.run

    def run_failing_at_5_shots(config, *args, **kwargs):  # a failure no check before the run can see
        if config.shots == 5:
            raise RuntimeError("the device went away")
        return real_run(config, *args, **kwargs)

    monkeypatch.setattr(run_module, "run", run_failing_at_5_shots)
    path = write_experiment(tmp_path / "e.yaml", tiny_llama_folder, review_file, shots=[4, 5])
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 1
    assert "1 run(s) failed" in capsys.readouterr().err
    [failure] = (out / "runs").glob("*/failure.json")
    assert "the device went away" in json.loads(failure.read_text())["error"]
    assert "## Failed runs" in (out / "report.md").read_text()
    assert main(["sweep", str(path), "--out", str(out)]) == 1
    assert "2 runs: 1 already complete" in capsys.readouterr().out


def test_a_folder_of_another_experiment_is_refused_unless_allowed(tiny_llama_folder, review_file, tmp_path, capsys):
    out = tmp_path / "out"
    first = load_experiment(write_experiment(tmp_path / "a.yaml", tiny_llama_folder, review_file))
    run_sweep(first, out, echo=lambda line: None)
    second = write_experiment(tmp_path / "b.yaml", tiny_llama_folder, review_file, seeds=[0, 1])
    assert main(["sweep", str(second), "--out", str(out)]) == 2
    assert "holds the results of another experiment" in capsys.readouterr().err
    assert main(["sweep", str(second), "--out", str(out), "--allow-different"]) == 0
    assert "2 runs: 1 already complete" in capsys.readouterr().out  # seed 0 is the same run: reused


def test_unwritable_output_and_missing_ray_fail_cleanly(tiny_llama_folder, review_file, tmp_path, capsys, monkeypatch):
    path = write_experiment(tmp_path / "e.yaml", tiny_llama_folder, review_file)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["sweep", str(path), "--out", str(blocker / "out")]) == 2
    assert "cannot write to" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--backend", "ray"]) == 2
    assert "pip install 'layercut[ray]'" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a sweep folder" in capsys.readouterr().err


def test_report_from_stored_results_picks_settings_on_dev(tmp_path):
    store = ResultStore(tmp_path)
    records = [
        # 1 layer, task a: lr 1e-3 has the better dev mean (0.8 vs 0.6), so its test accuracies (0.5, 0.7) are shown
        fake_record("k1", 1, "a", 0, 0.5, 0.8),
        fake_record("k2", 1, "a", 1, 0.7, 0.8),
        fake_record("k3", 1, "a", 0, 0.9, 0.6, learning_rate=3e-3),
        fake_record("k4", 1, "a", 1, 0.9, 0.6, learning_rate=3e-3),
        fake_record("k5", 1, "b", 0, 0.4, 0.5),
        fake_record("k6", 1, "b", 1, 0.6, 0.5),
        fake_record("k7", 4, "a", 0, 0.8, 0.9),  # one seed only: (n=1)
        fake_record("k10", 4, "b", 0, 0.6, 0.9),  # full depth averages 70: 1 layer keeps 55 / 70 = 79%
        fake_record("k8", 1, "a", 0, 0.55, None, method="icl"),
    ]
    for record in records:
        store.save(RunRecord(record))
    store.save(
        RunRecord(
            {
                "status": "failed",
                "key": "k9",
                "config": {**records[0]["config"], "seed": 9},
                "error": "LayercutError: boom",
            }
        )
    )
    (tmp_path / "experiment.yaml").write_text("tasks: [b, a]\n")  # columns follow the file
    files = write_report(tmp_path)
    report = files.report.read_text()
    assert "| Layers kept | Parameters (% of full) | Non-embedding | b | a | Average | % of full |" in report
    assert "| 1 | 1.5M (25.0%) | 500.0k | 50.0 ± 14.1 | 60.0 ± 14.1 | 55.0 | 79% |" in report
    assert "| 4 | 6.0M (100.0%) | 2.0M | 60.0 (n=1) | 80.0 (n=1) | 70.0 | 100% |" in report
    assert "- layers 1, a: learning_rate=0.001 (dev 80.0; also tried learning_rate=0.003: 60.0)" in report
    assert "## m: LM head, in-context learning (no training)" in report
    assert "9 finished runs, 1 failed" in report and "`k9`" in report and "boom" in report
    assert len(list(csv.DictReader(files.runs_csv.open()))) == 10
    [full, icl] = build_tables(records)
    assert [row.kept for row in full.rows] == [1, 4] and icl.fields["method"] == "icl"


@pytest.mark.parametrize(
    "name, runs",
    [
        ("demo", 18),
        ("trec-k16", 9),
        ("strategies", 36),
        ("paper", 600),
        ("healing", 210),
        ("healing-reference", 6),
        *((f"replication/{part}", 90) for part in ("trec-k16", "trec-k8", "trec-k64", "mr-k16", "bbc-k16")),
        ("replication/trec-all", 36),
        ("replication/trec-all-deep", 9),
        ("replication/trec-all-edges", 6),
        ("replication/mr-bbc-all-edges", 3),
        ("replication/bbc-all-full", 3),
        ("replication/shallow-rates-edges-mr-k64", 6),
        ("replication/shallow-rates-edges-bbc-k64", 3),
        ("replication/shallow-rates", 18),
        ("replication/shallow-rates-mr-bbc", 12),
        ("replication/shallow-rates-cls", 36),
        ("replication/shallow-rates-cls-mr-bbc", 24),
        ("healing-first-rates", 24),
        ("replication/paper-arm", 9),
    ],
)
def test_dry_run_of_shipped_experiments(name, runs, capsys):
    assert main(["sweep", str(CONFIGS / f"{name}.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"\n{runs} runs\n" in out and "estimated compute:" in out


def test_dry_run_counts_the_whole_training_set_for_shots_all():
    """The embedded trec has 4,881 training questions: `all` less a 200-question dev set trains on 4,681 per
    epoch: between K=780 and K=781 (6 classes: 4,680 and 4,686)."""
    from layercut.sweep.plan import run_flops

    whole, below, above = (
        run_flops(RunConfig(layers="first:1", shots=shots, dev_size=200, epochs=1)) for shots in ("all", 780, 781)
    )
    assert below < whole <= above


def test_load_experiment_error_names_the_file(tmp_path):
    with pytest.raises(LayercutError, match="cannot read experiment file"):
        load_experiment(tmp_path / "missing.yaml")


def test_dry_run_counts_each_layer_ranking_once():
    """Rankings are cached: a grid over layer counts pays for one per task and seed; SLEB-style greedy scans cost
    about depth/3 times a single removal round."""
    from layercut.sweep.plan import describe_plan, ranking_flops

    runs = [
        RunConfig(keep_strategy=strategy, keep_count=count, layers="all", seed=seed)
        for strategy in ("task", "loss")
        for count in (2, 4)
        for seed in (0, 1)
    ]
    rankings = dict(filter(None, map(ranking_flops, runs)))
    assert len(rankings) == 4  # 2 strategies x 2 seeds; the counts share their ranking
    assert ranking_flops(RunConfig(layers="first:2")) is None
    greedy = ranking_flops(RunConfig(keep_strategy="greedy", keep_count=2, layers="all"))[1]
    one_round = ranking_flops(RunConfig(keep_strategy="loss", keep_count=2, layers="all"))[1]
    assert 8 < greedy / one_round < 12  # 30 layers: sum over n of n(n+3)/2 against 30·33/2
    assert "+ 4 layer ranking(s)" in describe_plan(runs)


def test_a_sweep_into_a_dir_another_sweep_holds_is_refused(tiny_llama_folder, review_file, tmp_path):
    experiment = load_experiment(write_experiment(tmp_path / "e.yaml", tiny_llama_folder, review_file))
    store = ResultStore(tmp_path / "out")
    with store.claim(experiment):
        assert store.is_running()
        with pytest.raises(LayercutError, match="another sweep is writing to"):
            with ResultStore(tmp_path / "out").claim(experiment):
                pytest.fail("two sweeps held one DIR")
    assert not store.is_running()
