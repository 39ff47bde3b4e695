"""The one-pass depth profile equals separate ICL runs at every depth; sweeps use it and keep full records."""

import dataclasses
import json

import pytest
import torch
import yaml

from layercut.adapt.prefix_sharing import common_prefix_length
from layercut.adapt.evaluation import score_prompts
from layercut.adapt.scorers import LabelWordHead
from layercut.cli.main import main
from layercut.errors import LayercutError
from layercut.model.load import load_model
from layercut.run.pipeline import run
from layercut.slim.profile import profile_depths, score_depths
from layercut.sweep import ResultStore, load_experiment, run_sweep
from tests.run.test_run import tiny_config as tiny_run_config
from tests.sweep import write_experiment
from tests.tiny_models import FAMILIES, tiny_model_folder

pytestmark = pytest.mark.usefixtures("one_thread")

# They share a prefix (as prompts with fixed demonstrations do) and differ in length (so batches pad).
PROMPTS = [
    [2, 30, 31, 40, 9],
    [2, 30, 31, 50, 51, 52, 53, 54, 55, 9],
    [2, 30, 31, 41, 9],
    [2, 30, 31, 60, 61, 62, 63, 9],
    [2, 30, 31, 70, 71, 9],
]


@pytest.mark.parametrize("share_prefix", [False, True], ids=["whole", "shared-prefix"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_depth_from_one_pass_equals_the_cut_model(family, share_prefix, tmp_path):
    folder = tiny_model_folder(family, tmp_path / family)
    full = load_model(str(folder)).model
    token_ids = [20, 21, 22]
    prefix_length = common_prefix_length(PROMPTS) if share_prefix else 0
    profiled = score_depths(
        full,
        PROMPTS,
        token_ids,
        [1, 2, 3, 4],
        pad_id=0,
        batch_size=2,
        device=torch.device("cpu"),
        prefix_length=prefix_length,
    )
    for depth in (1, 2, 3, 4):
        cut = load_model(str(folder), f"first:{depth}").model
        separate = score_prompts(
            LabelWordHead(cut, token_ids), PROMPTS, 0, 2, torch.device("cpu"), share_prefix=share_prefix
        )
        assert separate.shared_prefix_tokens == prefix_length
        torch.testing.assert_close(
            torch.tensor(profiled[depth]), torch.tensor(separate.probabilities), rtol=0, atol=1e-7
        )
    assert (torch.tensor(profiled[1]) - torch.tensor(profiled[4])).abs().max() > 1e-5  # the depths really differ


def test_profile_gives_the_predictions_of_separate_icl_runs(tiny_llama_folder, review_file):
    config = tiny_run_config(tiny_llama_folder, review_file, method="icl", eval_batch_size=3)
    profile = profile_depths(config)
    assert profile.depths == [1, 2, 3, 4] and profile.source_depth == 4
    for depth in profile.depths:
        separate = run(dataclasses.replace(config, layers=f"first:{depth}"), show_progress=False).record
        assert profile.scores[depth].predictions == separate["predictions"]["predicted"]
        assert profile.metrics(depth) == separate["metrics"]
        assert separate["prefix_sharing"]["test_prefix_tokens"] == profile.scores[depth].shared_prefix_tokens > 0


def test_profile_refuses_what_one_pass_cannot_give(tiny_llama_folder, review_file):
    config = tiny_run_config(tiny_llama_folder, review_file, method="icl")
    with pytest.raises(LayercutError, match="similar"):
        profile_depths(dataclasses.replace(config, demos="similar"))
    with pytest.raises(LayercutError, match="method: icl"):
        profile_depths(dataclasses.replace(config, method="full"))
    with pytest.raises(LayercutError, match="1..4"):
        profile_depths(config, [2, 7])


def test_sweep_scores_untrained_depths_in_one_pass_with_complete_records(tiny_llama_folder, review_file, tmp_path):
    experiment_file = write_experiment(
        tmp_path / "e.yaml",
        tiny_llama_folder,
        review_file,
        layers=[1, 2, "all"],
        methods=["icl", "full"],
        settings={"epochs": 1},
    )
    experiment = load_experiment(experiment_file)
    summary = run_sweep(experiment, tmp_path / "out", echo=lambda line: None)
    assert summary.finished == 6 and not summary.failed and summary.report.is_file()
    records = {r.key: r.record for r in ResultStore(tmp_path / "out").records()}
    icl = [c for c in experiment.runs if c.method == "icl"]
    for config in icl:
        one_pass = records[config.key()]
        assert one_pass["scored_by"]["method"] == "one-pass depth profile"
        assert one_pass["timing"]["eval_seconds"] == pytest.approx(one_pass["scored_by"]["pass_seconds"] / len(icl))
        separate = run(config, show_progress=False).record
        assert set(one_pass) == set(separate) | {"scored_by"}
        for section in ("timing", "parameters", "layers", "metrics", "splits", "label_words"):
            assert set(one_pass[section]) == set(separate[section]), section
        assert one_pass["predictions"] == separate["predictions"] and one_pass["metrics"] == separate["metrics"]
        assert one_pass["parameters"] == separate["parameters"] and one_pass["config"] == separate["config"]
    assert all("scored_by" not in records[c.key()] for c in experiment.runs if c.method == "full")


def test_profile_command_prints_accuracy_and_sizes_per_depth(tiny_llama_folder, review_file, tmp_path, capsys):
    task = tmp_path / "reviews.yaml"
    task.write_text(
        yaml.safe_dump(
            {
                "name": "reviews",
                "source": "file",
                "path": str(review_file),
                "template": "Review: {text} Sentiment:",
                "label_words": ["Negative", "Positive"],
            }
        )
    )
    assert (
        main(
            [
                "profile",
                str(tiny_llama_folder),
                "--task",
                str(task),
                "--shots",
                "4",
                "--max-length",
                "64",
                "--plot",
                str(tmp_path / "depth.png"),
                "--json",
                str(tmp_path / "depth.json"),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out.splitlines()
    assert "4 depths scored in one pass" in table[0] and len(table) == 1 + 1 + 4 + 1  # title, header, depths, plot
    rows = json.loads((tmp_path / "depth.json").read_text())["depths"]
    assert [r["depth"] for r in rows] == [1, 2, 3, 4] and (tmp_path / "depth.png").stat().st_size > 0
    for row in rows:
        assert row["trimmed_parameters"] < row["parameters"] and row["fp32_bytes"] == 4 * row["parameters"]
        assert row["parameters"] - row["trimmed_parameters"] == 32 * (row["vocab_size"] - row["trimmed_vocab_size"])
    assert rows[1]["parameters"] > rows[0]["parameters"]


def test_run_refuses_precomputed_scores_that_do_not_fit(tiny_llama_folder, review_file):
    from layercut.adapt.evaluation import Scores

    from layercut.run.pipeline import ScoredElsewhere, execute, prepare

    config = tiny_run_config(tiny_llama_folder, review_file, method="icl")
    scored = ScoredElsewhere(Scores([0], [[1.0, 0.0]], 0.1), 0.1, {"method": "a test"})
    with pytest.raises(LayercutError, match="precomputed test scores"):
        execute(prepare(config), show_progress=False, scored_elsewhere=scored)
    with pytest.raises(LayercutError, match="precomputed test scores"):
        execute(prepare(dataclasses.replace(config, method="full")), show_progress=False, scored_elsewhere=scored)
