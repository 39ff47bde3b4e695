"""`run()` end to end on a tiny random model: heads, methods, padding, determinism, bad input."""

import dataclasses
import json

import pytest
import torch

from layercut.adapt.prefix_sharing import PromptBatch
from layercut.adapt.scorers import LabelWordHead, last_token_hidden
from layercut.cli.main import build_parser
from layercut.cli.run import config_from_args
from layercut.errors import LayercutError
from layercut.settings.run_config import RunConfig
from layercut.run.pipeline import run
from layercut.run.record import RunRecord, Timing
from tests.cli import assert_one_line_error, run_cli
from tests.tiny_models import FAMILIES, tiny_model


def tiny_config(model_folder, data, **overrides):
    settings = dict(
        model=str(model_folder),
        layers="first:2",
        task="",
        shots=4,
        seed=0,
        epochs=2,
        batch_size=4,
        learning_rate=1e-3,
        patience=0,
        max_length=64,
        eval_batch_size=8,
        task_options={"data": str(data), "template": "Review: {text} Sentiment:", "label_words": "Negative,Positive"},
    )
    settings.update(overrides)
    return RunConfig(**settings)


@pytest.mark.parametrize(
    "head, method", [("lm", "full"), ("lm", "lora"), ("lm", "icl"), ("cls", "full"), ("cls", "lora")]
)
def test_run_writes_a_complete_result(tiny_llama_folder, review_file, tmp_path, head, method):
    config = tiny_config(tiny_llama_folder, review_file, head=head, method=method)
    result = run(config, tmp_path, show_progress=False).record
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    metrics = result["metrics"]
    assert 0.0 <= metrics["accuracy"] <= 1.0 and set(metrics["per_class_accuracy"]) == {"negative", "positive"}
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["num_examples"] == result["splits"]["sizes"]["test"]
    assert result["splits"]["sizes"]["train"] == 8 and len(result["splits"]["hashes"]["train"]) > 8
    assert result["layers"]["kept"] == [0, 1] and result["config"]["method"] == method
    assert result["versions"]["torch"] and result["seed"] == 0
    assert result["label_words"]["token_ids"] and result["memory"]["peak_bytes"] > 0
    params = result["parameters"]
    if method == "icl":
        assert params["trainable"] == 0 and result["dev"] is None
    else:
        assert len(result["dev"]["curve"]) == 2 and result["timing"]["train_seconds"] > 0
    assert result["timing"] == dataclasses.asdict(Timing.read(result))  # written through the type, read back whole
    if method == "lora":
        assert 0 < params["trainable"] < params["total"] / 2
    if method == "full":
        assert params["trainable"] == params["total"]


def test_shots_all_trains_on_every_example_outside_dev(tiny_llama_folder, review_file, tmp_path):
    config = tiny_config(tiny_llama_folder, review_file, shots="all", dev_size=6, epochs=1)
    result = run(config, tmp_path, show_progress=False).record
    from layercut.settings.task import resolve_task
    from layercut.tasks import load_examples

    sizes = result["splits"]["sizes"]
    assert sizes["dev"] == 6 and sizes["train"] + sizes["dev"] == len(load_examples(resolve_task(config)).train) > 8
    assert result["splits"]["drawn"]["train"] == "natural: the whole training set outside dev"
    assert result["config"]["shots"] == "all"


def test_training_learns_the_tiny_task(tiny_llama_folder, review_file):
    config = tiny_config(tiny_llama_folder, review_file, epochs=8, shots=8, batch_size=1, learning_rate=3e-3)
    result = run(config, show_progress=False).record
    curve = result["dev"]["curve"]
    assert curve[-1]["train_loss"] < 0.5 * curve[0]["train_loss"]
    assert result["metrics"]["accuracy"] >= 0.75


def test_same_seed_same_result_other_seed_other_splits(tiny_llama_folder, review_file):
    first = run(tiny_config(tiny_llama_folder, review_file), show_progress=False).record
    again = run(tiny_config(tiny_llama_folder, review_file), show_progress=False).record
    other = run(tiny_config(tiny_llama_folder, review_file, seed=1), show_progress=False).record
    assert first["metrics"] == again["metrics"] and first["dev"]["curve"] == again["dev"]["curve"]
    assert first["predictions"] == again["predictions"]
    assert first["splits"]["hashes"]["train"] != other["splits"]["hashes"]["train"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_restricted_label_logits_equal_full_vocabulary_columns(family):
    model = tiny_model(family)
    label_ids = [7, 40, 99]
    ids = torch.tensor([[0, 0, 5, 9, 11], [4, 6, 8, 10, 12]])
    mask = (ids != 0).long()
    mask[1, 0] = 1
    with torch.no_grad():
        restricted = LabelWordHead(model, label_ids)(PromptBatch(ids, mask))
        for row in range(2):
            real = ids[row][mask[row].bool()].unsqueeze(0)
            full = model(real).logits[0, -1, label_ids]
            assert torch.allclose(restricted[row], full, atol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_left_and_right_padding_agree(family):
    model = tiny_model(family)
    prompts = [[5, 9, 11], [4, 6, 8, 10, 12, 14]]
    width = 6
    left = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    right = torch.tensor([p + [0] * (width - len(p)) for p in prompts])
    with torch.no_grad():
        from_left = last_token_hidden(model, PromptBatch(left, (left != 0).long()))
        from_right = last_token_hidden(model, PromptBatch(right, (right != 0).long()))
    assert torch.allclose(from_left, from_right, atol=1e-5)


def test_predict_returns_the_labels_the_evaluation_saw(tiny_llama_folder, review_file, tmp_path):
    from layercut.run.predict import load_predictor
    from layercut.settings.task import resolve_task
    from layercut.tasks import load_examples, make_splits

    config = tiny_config(tiny_llama_folder, review_file, epochs=3)
    result = run(config, tmp_path, save_model=True, show_progress=False).record
    test = make_splits(load_examples(resolve_task(config)), config.shots, config.seed).test
    predicted = [label for label, _ in load_predictor(tmp_path / "model").predict([e.text for e in test])]
    names = result["task"]["label_names"]
    assert predicted == [names[i] for i in result["predictions"]["predicted"]]


def test_nan_loss_stops_keeps_last_good_weights_and_the_result(tiny_llama_folder, review_file, tmp_path, monkeypatch):
    real_forward = LabelWordHead.forward
    training_calls = []

    def diverges_in_epoch_two(self, batch):
        logits = real_forward(self, batch)
        if self.training:
            training_calls.append(1)
            if len(training_calls) > 2:  # an epoch is 2 steps here
                return logits * float("nan")
        return logits

    monkeypatch.setattr(LabelWordHead, "forward", diverges_in_epoch_two)
    config = tiny_config(tiny_llama_folder, review_file, epochs=3, share_prefix=False)  # one forward per step
    with pytest.raises(LayercutError, match="epoch 2, step 1.*last good weights"):
        run(config, tmp_path, show_progress=False)
    saved = RunRecord.load(tmp_path).record
    assert saved["status"] == "diverged" and saved["metrics"]["num_examples"] > 0
    assert saved["dev"]["best_epoch"] == 1 and len(saved["dev"]["curve"]) == 1


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--lr", "0"], "--learning-rate must be > 0 and finite, got 0.0: e.g. --learning-rate 5e-5"),
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--batch-size", "0"], "batch-size must be at least 1"),
        (["--device", "cuda"], "no CUDA GPU"),
        (["--head", "cls", "--method", "icl"], "untrained classification head"),
        (["--max-length", "6"], "raise --max-length"),
    ],
)
def test_bad_run_input_fails_in_one_line(tiny_llama_folder, review_file, tmp_path, flags, message):
    if flags[0] == "--device" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = run_cli(
        "run",
        "--model",
        tiny_llama_folder,
        "--layers",
        "first:1",
        "--data",
        review_file,
        "--template",
        "Review: {text} Sentiment:",
        "--label-words",
        "Negative,Positive",
        "--shots",
        "2",
        "--epochs",
        "1",
        "--out",
        tmp_path / "run",
        *flags,
    )
    assert_one_line_error(result, message)


def test_existing_result_needs_overwrite(tiny_llama_folder, review_file, tmp_path):
    config = tiny_config(tiny_llama_folder, review_file, method="icl")
    run(config, tmp_path, show_progress=False)
    before = (tmp_path / "result.json").read_text()
    with pytest.raises(LayercutError, match="--overwrite"):
        run(config, tmp_path, show_progress=False)
    assert (tmp_path / "result.json").read_text() == before
    run(config, tmp_path, overwrite=True, show_progress=False)


@pytest.mark.parametrize("head", ["lm", "cls"])
def test_a_run_keeps_the_layers_its_strategy_chooses(tiny_llama_folder, review_file, tmp_path, monkeypatch, head):
    from layercut.importance import LayerRanking
    from layercut.model.load import load_model

    monkeypatch.setenv("LAYERCUT_CACHE", str(tmp_path / "cache"))
    config = tiny_config(
        tiny_llama_folder, review_file, layers="all", keep_strategy="bi", keep_count=2, head=head, epochs=1
    )
    record = run(config, show_progress=False).record
    # The run ranked the layers once on its training texts, and kept what that ranking says.
    [saved] = (tmp_path / "cache" / "rankings").glob("*.json")
    ranking = LayerRanking.load(saved)
    assert record["layers"]["kept"] == ranking.keep("bi", 2)
    assert record["layers"]["ranking"] == {"calibration": ranking.calibration, "seconds": ranking.seconds}
    assert ranking.calibration["source"] == "reviews training texts"
    cut = load_model(
        str(tiny_llama_folder), record["layers"]["spec"], head=head, num_labels=2 if head == "cls" else None
    )
    assert record["parameters"]["total"] == cut.model.num_parameters()


def test_the_run_flags_are_every_config_field_with_its_default(tmp_path):
    args = build_parser().parse_args(["run", "--out", str(tmp_path)])
    assert config_from_args(args) == RunConfig()
    args = build_parser().parse_args(["run", "--out", str(tmp_path), "--data", "reviews.csv", "--label-words", "a,b"])
    config = config_from_args(args)
    assert (config.task, config.task_options) == ("reviews", {"data": "reviews.csv", "label_words": "a,b"})


def test_every_committed_run_reads_through_the_record_types():
    """Every result.json under docs/ is a finished record that reports can read, and its timing reads back as
    `Timing` with the figures it holds (records from before evaluation was timed lack eval_seconds: 0 s)."""
    from tests.settings.test_precision import committed_results

    results = committed_results()
    assert len(results) > 400
    fields = [field.name for field in dataclasses.fields(Timing)]
    for path in results:
        record = RunRecord.read(path)
        assert record is not None and record.finished and record.damage() is None, path
        written, timing = record.record["timing"], Timing.read(record.record)
        assert set(written) <= set(fields) and "train_seconds" in written, path
        assert all(getattr(timing, name) == value for name, value in written.items()), path
