"""`layercut search` on a tiny model: the order of depths, dev-only decisions, resuming, reusing, the saved model."""

import json

import pytest
from transformers import AutoModelForCausalLM

from layercut.cli.main import main
from layercut.settings.run_config import RunConfig
from layercut.run.predict import load_predictor
from layercut.settings.task import make_run_splits, resolve_task
from layercut.search.order import DepthOrder
from layercut.search.probe import probe_depth
from layercut.search.settings import SearchSettings
from layercut.sweep import backends
from tests.cli import assert_one_line_error, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

TASK = ["--template", "Review: {text} Sentiment:", "--label-words", "Negative,Positive"]
FAST = [
    "--shots",
    "4",
    "--dev-size",
    "6",
    "--epochs",
    "2",
    "--max-length",
    "64",
    "--seeds",
    "0,1",
    "--rates",
    "1e-3,3e-3",
]


def search(model, data, out, *extra) -> dict:
    assert (
        main(
            [
                "search",
                str(model),
                "--data",
                str(data),
                *TASK,
                *FAST,
                "--keep",
                "90%",
                "--out",
                str(out),
                *map(str, extra),
            ]
        )
        == 0
    )
    return json.loads((out / "search.json").read_text())


def decisions(result: dict) -> tuple:
    """What dev decided (each probe's rates, dev and pick; the answer), then the test accuracies of the answer."""
    return (
        [(p["depth"], p["dev_by_rate"], p["picked"]) for p in result["probes"]],
        result["answer"],
        {name: c["test_by_seed"] for name, c in result["confirmed"].items()},
    )


@pytest.mark.parametrize(
    "depth, smallest, visited",
    [
        (30, 11, [1, 2, 4, 8, 16, 12, 10, 11]),  # doubling until 16 passes, then bisection between 8 and 16
        (30, 1, [1]),
        (30, None, [1, 2, 4, 8, 16, 29]),  # the doubling's last step is the deepest depth below full
        (30, 29, [1, 2, 4, 8, 16, 29, 22, 25, 27, 28]),
        (2, None, [1]),
        (48, 3, [1, 2, 4, 3]),
    ],
)
def test_depths_are_probed_by_doubling_then_bisection(depth, smallest, visited):
    order = DepthOrder(depth)
    found = order.run(lambda k: smallest is not None and k >= smallest)
    assert found == smallest and order.visited == visited
    assert DepthOrder(depth).planned() == [k for k in (1, 2, 4, 8, 16, 32) if k < depth - 1] + [depth - 1]


def test_a_spent_budget_keeps_what_is_known():
    order = DepthOrder(30)

    def passes(k):
        if k == 8:
            raise RuntimeError("budget")
        return False

    with pytest.raises(RuntimeError):
        order.run(passes)
    assert order.visited == [1, 2, 4, 8] and order.last_fail == 4 and list(order.untried()) == list(range(5, 30))


class DevByRate:
    """Stands in for a search's runs: every run completes with a dev accuracy that depends on its rate alone."""

    def __init__(self, dev):
        self.dev, self.trained = dev, []

    def get(self, configs, what):
        self.trained += [c.learning_rate for c in configs]
        return [{"status": "complete", "dev": {"best_dev_accuracy": self.dev(c.learning_rate)}} for c in configs]


@pytest.mark.parametrize(
    "enough, tried, note",
    [
        (None, [1e-4, 4e-4, 2.5e-5, 6.25e-6, 1.56e-6], "after 3 extensions"),  # bracketing in full
        (0.85, [1e-4, 4e-4], "it passes there, so not widened further"),  # passes at the grid: no wider grid
        (0.95, [1e-4, 4e-4, 2.5e-5], "it passes there, so not widened further"),  # widened until it passes
    ],
)
def test_a_probe_widens_its_rates_only_until_it_passes(enough, tried, note):
    runs = DevByRate(lambda rate: 1 - 1000 * rate)  # the smaller the rate, the better: always the bottom edge
    settings = SearchSettings(keep=0.9, seeds=(0,), rates=(1e-4, 4e-4))
    probe = probe_depth(runs, RunConfig(model="m"), 2, 4, settings, enough=enough)
    assert runs.trained == tried and probe.picked == min(tried) and note in probe.at_edge


@pytest.fixture(scope="module")
def searched(tiny_llama_folder, review_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "out"
    return out, search(tiny_llama_folder, review_file, out)


def test_the_search_answers_confirms_and_saves_a_model_that_predicts_as_recorded(searched, review_file):
    out, result = searched
    chosen = result["confirmed"]["chosen"]
    assert result["answer"]["visited"][0] == 1 and [p["depth"] for p in result["probes"]] == sorted(
        {4, *result["answer"]["visited"]}
    )  # the full-depth reference and every depth probed
    assert set(chosen["test_by_seed"]) == {"0", "1"} and set(result["confirmed"]["full"]["test_by_seed"]) == {"0", "1"}
    answer = next(p for p in result["probes"] if p["depth"] == chosen["depth"])
    assert "not widened" not in (answer["at_edge"] or "")  # the chosen depth's rate is bracketed in full
    assert {"test_by_seed", "majority"} <= set(result["references"]["bag_of_words"])
    assert set(result["references"]["in_context"]) == {"1", "2", "3", "4"}
    saved = result["saved_model"]
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert model.config.num_hidden_layers == chosen["depth"]
    assert (
        saved["vocabulary"]["vocab_size"]
        < saved["vocabulary"]["source_vocab_size"]
        == model.config.vocab_size + (saved["vocabulary"]["source_vocab_size"] - saved["vocabulary"]["vocab_size"])
    )
    stored = json.loads((out / "store" / "runs" / saved["key"] / "result.json").read_text())
    config = RunConfig.from_dict(stored["config"])
    texts = [e.text for e in make_run_splits(config, resolve_task(config)).test]
    predicted = [label for label, _ in load_predictor(out / "model").predict(texts)]
    names = stored["task"]["label_names"]
    assert [names.index(label) for label in predicted] == stored["predictions"]["predicted"]
    assert saved["same_predictions_as_stored_run"]
    report = (out / "report.md").read_text()
    assert "Answer:" in report and "| Depth | Dev by learning rate |" in report and "bag-of-words" in report
    assert (out / "plots" / "accuracy_vs_depth.png").read_bytes()[:4] == b"\x89PNG"
    assert "How this depth was found" in (out / "model" / "README.md").read_text()
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.md").read_text() == report


def test_a_killed_search_trains_only_the_runs_it_lost(searched, tiny_llama_folder, review_file, tmp_path):
    out, first = searched
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(out, copy)
    (copy / "search.json").unlink()
    lost = [p for p in sorted((copy / "store" / "runs").iterdir())][:2]
    for folder in lost:
        shutil.rmtree(folder)
    again = search(tiny_llama_folder, review_file, copy, "--no-save-model")
    assert again["trained_runs"] == len(lost)
    assert decisions(again) == decisions(first)  # same seed, same result: the lost runs came back the same
    # The report counts every run the search used, not only those its last invocation trained.
    stored = len(list((copy / "store" / "runs").iterdir()))
    assert stored > len(lost) and f"Runs: {stored} in the store" in (copy / "report.md").read_text()


def test_reusing_a_store_trains_nothing_already_there(searched, tiny_llama_folder, review_file, tmp_path, monkeypatch):
    out, first = searched
    monkeypatch.setattr(backends, "execute_run", lambda config: pytest.fail(f"trained {config.key()} again"))
    again = search(tiny_llama_folder, review_file, tmp_path / "reused", "--no-save-model", "--reuse", out / "store")
    assert again["trained_runs"] == 0 and again["reused_runs"] > 0
    assert decisions(again) == decisions(first) and again["probes"] == first["probes"]


def test_test_labels_never_decide_the_depth(tiny_llama_folder, review_file, tmp_path):
    """The same search with every test label flipped: the same probes, rates and depth (only test figures change)."""
    rows = [json.loads(line) for line in review_file.read_text().splitlines()]
    flip = {"negative": "positive", "positive": "negative"}
    train, test = rows[::2], rows[1::2]
    for name, labels in (("true", lambda r: r["label"]), ("poisoned", lambda r: flip[r["label"]])):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps({**r, "label": labels(r)}) for r in test) + "\n")
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in train) + "\n")
    results = [
        search(
            tiny_llama_folder,
            tmp_path / "train.jsonl",
            tmp_path / name,
            "--no-save-model",
            "--test-data",
            tmp_path / f"{name}.jsonl",
            "--task",
            "reviews",
        )
        for name in ("true", "poisoned")
    ]
    assert decisions(results[0])[:2] == decisions(results[1])[:2]
    tests = [r["confirmed"]["chosen"]["test_by_seed"] for r in results]
    assert all(abs(a + b - 1) < 1e-9 for a, b in zip(tests[0].values(), tests[1].values()))  # flipped 2-class test


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--keep", "0%"], "--keep must lie in (0, 100]%"),
        (["--keep", "150%"], "--keep must lie in (0, 100]%"),
        (["--keep", "most"], "--keep 'most' is not a number"),
        (["--keep", "90%", "--shots", "40"], "exceeds the smallest class"),
        (["--keep", "90%", "--budget", "1e-9s"], "too small for the full-depth reference"),
        (["--keep", "90%", "--budget", "soon"], "--budget 'soon' is not a duration"),
        (["--keep", "90%", "--method", "icl"], "the search trains every depth"),
        (["--keep", "90%", "--seeds", "0,0"], "--seeds must be distinct"),
        (["--keep", "90%", "--reuse", "nowhere"], "holds no runs"),
    ],
)
def test_bad_search_input_fails_in_one_line_before_anything_trains(
    tiny_llama_folder, review_file, tmp_path, extra, message
):
    fast = [a for a in FAST if a not in ("--shots", "4")] if "--shots" in extra else FAST
    result = run_cli(
        "search", tiny_llama_folder, "--data", review_file, *TASK, *fast, *extra, "--out", tmp_path / "out"
    )
    assert_one_line_error(result, message)
    assert not (tmp_path / "out").exists()


def test_an_unreachable_model_fails_in_one_line(tmp_path):
    assert_one_line_error(
        run_cli("search", tmp_path / "no-model", "--task", "trec", "--keep", "90%", "--out", tmp_path / "out"),
        "no-model",
    )
