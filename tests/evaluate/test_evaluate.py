"""`layercut eval`: lm-eval on a cut model in memory, the shipped offline tasks, perplexity, agreement and KL."""

import json
import math
import random
import subprocess
import sys

import pytest
import torch

from layercut.cli.main import main
from layercut.evaluate.intrinsic import intrinsic_measures
from layercut.model.load import load_model
from tests.cli import assert_one_line_error, run_cli
from tests.tiny_models import CALIBRATION_TEXTS, WORDS

pytestmark = pytest.mark.usefixtures("one_thread")
pytest.importorskip("lm_eval")

TEXT = " ".join(CALIBRATION_TEXTS * 3)  # about 90 tokens of the tiny vocabulary
CHOICES = ["good", "bad", "fine", "boring"]


@pytest.fixture(scope="module")
def tiny_task(tmp_path_factory):
    """A local lm-eval task YAML over JSONL files: four-way multiple choice on random word strings."""
    folder = tmp_path_factory.mktemp("lm-eval-tasks")
    rng = random.Random(0)
    for split, size in (("train", 12), ("test", 30)):
        rows = [
            {"text": " ".join(rng.choices(WORDS[15:], k=rng.randint(2, 6))), "label": rng.randrange(len(CHOICES))}
            for _ in range(size)
        ]
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (folder / "tiny_words.yaml").write_text(f"""task: tiny_words
dataset_path: json
dataset_kwargs:
  data_files:
    train: {folder / "train.jsonl"}
    test: {folder / "test.jsonl"}
output_type: multiple_choice
training_split: train
fewshot_split: train
test_split: test
doc_to_text: "Review: {{{{text}}}} Sentiment :"
doc_to_choice: {json.dumps(CHOICES)}
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
""")
    return folder


def test_lm_eval_numbers_equal_lm_evals_own_cli_on_the_saved_cut(tiny_llama_folder, tiny_task, tmp_path):
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                str(tiny_llama_folder),
                "--layers",
                "0,2",
                "--lm-eval",
                "tiny_words",
                "--include",
                str(tiny_task),
                "--num-fewshot",
                "2",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    record = json.loads(out.read_text())["evaluations"][0]
    assert record["layers"]["kept"] == [0, 2] and record["parameters"]["total"] < record["parameters"]["source"]
    ours = record["lm_eval"]["results"]["tiny_words"]

    saved = tmp_path / "cut"
    assert main(["cut", str(tiny_llama_folder), "--keep", "0,2", "-o", str(saved)]) == 0
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={saved}",
            "--tasks",
            "tiny_words",
            "--include_path",
            str(tiny_task),
            "--num_fewshot",
            "2",
            "--batch_size",
            "8",
            "--device",
            "cpu",
            "--output_path",
            str(tmp_path / "lm-eval-cli"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    theirs = json.loads(next((tmp_path / "lm-eval-cli").rglob("results_*.json")).read_text())["results"]["tiny_words"]
    for metric in ("acc,none", "acc_stderr,none", "acc_norm,none", "acc_norm_stderr,none"):
        assert ours[metric] == theirs[metric], metric
    assert 0 < ours["acc,none"] < 1
    assert record["lm_eval_summary"]["tiny_words"] == {
        "metric": "acc",
        "value": ours["acc,none"],
        "stderr": ours["acc_stderr,none"],
        "examples": 30,
    }


def test_perplexity_of_the_uncut_model_equals_a_direct_computation(tiny_llama_folder):
    loaded = load_model(str(tiny_llama_folder), "all")
    ids = loaded.tokenizer(TEXT)["input_ids"]
    with torch.no_grad():
        direct = math.exp(loaded.model(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item())
    whole = intrinsic_measures(loaded.model, loaded.tokenizer, TEXT, window=len(ids) + 1, stride=len(ids))
    assert whole.tokens == len(ids) - 1
    assert whole.perplexity == pytest.approx(direct, rel=1e-5)
    sliding = intrinsic_measures(loaded.model, loaded.tokenizer, TEXT, window=16, stride=5)
    assert sliding.tokens == len(ids) - 1 and sliding.perplexity != pytest.approx(direct, rel=1e-5)


def test_agreement_of_the_uncut_model_with_itself_is_total_and_kl_zero(tiny_llama_folder):
    first, second = (load_model(str(tiny_llama_folder), "all") for _ in range(2))
    same = intrinsic_measures(first.model, first.tokenizer, TEXT, reference=second.model, window=32, stride=16)
    assert same.top1_agreement == 1.0 and same.kl_divergence == pytest.approx(0.0, abs=1e-7)
    assert same.full_perplexity == pytest.approx(same.perplexity, rel=1e-6)

    cut = load_model(str(tiny_llama_folder), "first:1")
    other = intrinsic_measures(cut.model, cut.tokenizer, TEXT, reference=first.model, window=32, stride=16)
    # A random tiny model's top-1 is the same token almost everywhere: its distributions tell the cut apart.
    assert other.kl_divergence > 1e-4 and other.perplexity != pytest.approx(same.perplexity, rel=1e-4)
    assert other.full_perplexity == pytest.approx(same.perplexity, rel=1e-6)


def test_several_depths_give_a_table_relative_to_the_full_model(tiny_llama_folder, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(CALIBRATION_TEXTS) + "\n")
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                str(tiny_llama_folder),
                "--layers",
                "first:1",
                "all",
                "--perplexity",
                str(text),
                "--compare-full",
                "--window",
                "16",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    records = json.loads(out.read_text())["evaluations"]
    assert [r["layers"]["count"] for r in records] == [1, 4]
    full = records[1]["intrinsic"]
    assert full["top1_agreement"] == 1.0 and full["kl_divergence"] == 0.0 and full["stride"] == 8
    assert records[0]["intrinsic"]["full_perplexity"] == pytest.approx(full["perplexity"], rel=1e-6)
    ratio = round(100 * records[0]["intrinsic"]["perplexity"] / full["perplexity"])
    assert "| Layers kept |" in printed and f"({ratio}%)" in printed and "| 4 |" in printed


def test_layers_chosen_by_strategy_are_recorded(tiny_llama_folder, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(CALIBRATION_TEXTS) + "\n")
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                str(tiny_llama_folder),
                "--keep-strategy",
                "last",
                "--keep-count",
                "2",
                "--perplexity",
                str(text),
                "--window",
                "16",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    [record] = json.loads(out.read_text())["evaluations"]
    assert record["layers"]["kept"] == [2, 3] and record["layers"]["layer_strategy"]["strategy"] == "last"
    assert record["intrinsic"]["full_perplexity"] is None and record["lm_eval"] is None


def test_shipped_offline_tasks_are_the_builtin_data_as_multiple_choice():
    from layercut.evaluate.tasks.data import task_dataset
    from layercut.prompting.templates import fill_template
    from layercut.tasks import get_task, load_examples

    spec = get_task("trec")
    data, dataset = load_examples(spec), task_dataset("trec")
    assert len(dataset["train"]) == len(data.train) and len(dataset["test"]) == len(data.test)
    first = data.train[0]
    assert dataset["train"][0] == {
        "prompt": fill_template(spec.template, first),
        "choices": list(spec.label_words),
        "label": first.label,
    }
    test_prompts = [d["prompt"] for d in dataset["test"]]
    assert sorted(test_prompts) == sorted(fill_template(spec.template, e) for e in data.test)
    assert test_prompts != [fill_template(spec.template, e) for e in data.test]  # shuffled once, for --limit


def test_a_shipped_task_runs_offline_few_shot(tiny_llama_folder, capsys):
    assert (
        main(
            [
                "eval",
                str(tiny_llama_folder),
                "--layers",
                "first:2",
                "--lm-eval",
                "layercut_mr",
                "--limit",
                "3",
                "--num-fewshot",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "layercut_mr" in printed and "acc" in printed


@pytest.mark.parametrize(
    "flags, message",
    [
        ([], "nothing to evaluate"),
        (["--perplexity", "trec", "--window", "8", "--stride", "8"], "give a stride from 1 to 7"),
        (["--compare-full", "--lm-eval", "layercut_trec"], "--compare-full compares next-token predictions"),
        (["--lm-eval", "layercut_trec", "--include", "no-such-folder"], "--include 'no-such-folder' is not a folder"),
        (["--lm-eval", "nosuch_task"], "unknown lm-eval task 'nosuch_task'"),
        (["--lm-eval", "piqa"], "lm-eval task 'piqa' reads its data from the Hugging Face Hub"),
        (["--layers", "first:9", "--perplexity", "trec"], "cannot keep first 9 layers of a 4-layer model"),
    ],
)
def test_bad_input_fails_in_one_line(tiny_llama_folder, capsys, flags, message):
    assert main(["eval", str(tiny_llama_folder), *flags]) == 2
    assert message in capsys.readouterr().err


def test_missing_lm_eval_names_the_extra(tiny_llama_folder, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else find_spec(name, *a)
    )
    assert main(["eval", str(tiny_llama_folder), "--lm-eval", "layercut_trec"]) == 2
    assert "pip install 'layercut[eval]'" in capsys.readouterr().err


def test_offline_error_is_one_line_without_traceback(tiny_llama_folder):
    assert_one_line_error(run_cli("eval", tiny_llama_folder, "--lm-eval", "piqa"), "--include")


def test_sweep_evaluations_add_columns_per_depth_and_resume(
    tiny_llama_folder, review_file, tiny_task, tmp_path, capsys
):
    from tests.sweep import write_experiment

    (tmp_path / "text.txt").write_text("\n".join(CALIBRATION_TEXTS) + "\n")
    evaluations = [
        {"perplexity": "text.txt", "compare_full": True, "window": 16},
        {"lm_eval": "tiny_words", "include": str(tiny_task), "limit": 5},
    ]
    path = write_experiment(
        tmp_path / "e.yaml", tiny_llama_folder, review_file, layers=[1, 2], methods=["icl"], evaluations=evaluations
    )
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("evaluating ") == 6  # depths 1, 2 and the full 4, two evaluations each
    records = [json.loads(p.read_text()) for p in (out / "evaluations").glob("*.json")]
    full = next(r for r in records if r["layers"]["count"] == 4 and r["intrinsic"])
    assert full["intrinsic"]["top1_agreement"] == 1.0 and full["intrinsic"]["source"].endswith("text.txt")

    report = (out / "report.md").read_text()
    assert "| Average | % of full | tiny_words acc | perplexity (text.txt) | top-1 agreement | KL to full |" in report
    one = next(r for r in records if r["layers"]["count"] == 1 and r["intrinsic"])["intrinsic"]
    assert f"{one['perplexity']:.2f} ({100 * one['perplexity'] / full['intrinsic']['perplexity']:.0f}%)" in report

    assert main(["sweep", str(path), "--out", str(out)]) == 0  # stored evaluations are not redone
    assert "evaluating " not in capsys.readouterr().out


def test_bad_evaluations_in_an_experiment_fail_in_one_line(tiny_llama_folder, review_file, tmp_path, capsys):
    from tests.sweep import write_experiment

    path = write_experiment(tmp_path / "e.yaml", tiny_llama_folder, review_file, evaluations=[{"perplexty": "trec"}])
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert "unknown evaluation key(s) perplexty" in capsys.readouterr().err


@pytest.mark.slow
def test_real_model_perplexity_is_sane_and_cutting_raises_it(smollm2, tmp_path):
    text = tmp_path / "english.txt"
    text.write_text(
        "The capital of France is Paris. It is a large city with many museums, parks and old churches.\n"
        "Every year millions of people visit the city to see its famous buildings and to eat its food.\n"
    )
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                "smollm2-135m",
                "--layers",
                "first:15",
                "all",
                "--perplexity",
                str(text),
                "--compare-full",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    cut, full = json.loads(out.read_text())["evaluations"]
    assert 5 < full["intrinsic"]["perplexity"] < 60  # an ordinary English text (about 22 for one sentence)
    assert full["intrinsic"]["top1_agreement"] == 1.0 and full["intrinsic"]["kl_divergence"] == 0.0
    assert (
        cut["intrinsic"]["perplexity"] > 100 * full["intrinsic"]["perplexity"] and cut["intrinsic"]["kl_divergence"] > 1
    )
