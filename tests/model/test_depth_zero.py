"""Depth 0 (`first:0`): embedding, final norm and head, no block. The floor of the depth curve: it runs, trains,
saves and reloads in every family, prefix sharing still checks its scores, and sweeps and reports take it."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from layercut.adapt.prefix_sharing import common_prefix_length, make_batch
from layercut.adapt.scorers import ClassificationHead, LabelWordHead
from layercut.cli.main import main
from layercut.errors import LayercutError
from layercut.model.blocks import find_blocks
from layercut.model.checkpoint import save_cut_model
from layercut.model.load import cut_layers, load_model
from layercut.run.pipeline import run
from layercut.run.predict import load_predictor
from layercut.run.prepare import packing_problem
from layercut.settings.task import make_run_splits, resolve_task
from tests.cli import assert_one_line_error, run_cli
from tests.sweep import write_experiment
from tests.run.test_run import tiny_config as tiny_run_config
from tests.adapt.test_shared_prefix import LABEL_IDS, PREFIX, PROMPTS
from tests.tiny_models import FAMILIES, tiny_bpe_tokenizer, tiny_config, tiny_model, tiny_model_folder

pytestmark = pytest.mark.usefixtures("one_thread")

ZERO = "first:0"


def family_folder(family: str, folder):
    """A tiny model folder a run can prompt. transformers 5 loads Qwen2's own tokenizer class for a qwen2 folder,
    which rebuilds the word-level vocabulary as a BPE without merges (words tokenize to nothing): qwen2 gets the
    byte-level BPE tokenizer, and a vocabulary to match."""
    if family != "qwen2":
        return tiny_model_folder(family, folder)
    tokenizer, config = tiny_bpe_tokenizer(), tiny_config(family)
    config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_depth_zero_cut_saves_a_checkpoint_that_reloads_with_the_same_logits(family, tmp_path):
    loaded = load_model(str(tiny_model_folder(family, tmp_path / "model")), ZERO)
    model = loaded.model
    assert loaded.kept == [] and model.config.num_hidden_layers == 0 and len(find_blocks(model).blocks) == 0
    assert not getattr(model.config, "layer_types", None)  # Gemma 2/3: the per-layer list is sliced to []
    save_cut_model(loaded, tmp_path / "cut")
    record = json.loads((tmp_path / "cut" / "layercut.json").read_text())
    assert record["kept_layers"] == [] and record["depth"] == 0 and record["parameters_after"] == model.num_parameters()

    reloaded, info = AutoModelForCausalLM.from_pretrained(tmp_path / "cut", output_loading_info=True)
    assert set(info["missing_keys"]) == set() and set(info["unexpected_keys"]) == set()
    assert reloaded.config.num_hidden_layers == 0
    prompt = torch.tensor([[5, 17, 9, 22, 31, 8]])
    with torch.no_grad():
        assert torch.equal(model(prompt).logits, reloaded.eval()(prompt).logits)
    generate = dict(max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0)
    assert torch.equal(
        reloaded.generate(prompt, use_cache=True, **generate), reloaded.generate(prompt, use_cache=False, **generate)
    )
    # Loading the saved folder again as a layercut source keeps depth 0.
    assert load_model(str(tmp_path / "cut"), "all", need_tokenizer=False).kept == []


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_depth_zero_sharing_and_packing_give_whole_prompt_scores(family):
    """What a run checks before it shares the demonstrations' prefix or packs a batch, at depth 0."""
    length = common_prefix_length(PROMPTS)
    for scorer in (
        LabelWordHead(cut_layers(tiny_model(family), []), LABEL_IDS),
        ClassificationHead(cut_layers(tiny_model(family, head="cls", num_labels=2), [])),
    ):
        with torch.no_grad():
            whole = scorer(make_batch(PROMPTS, 0))
            shared = scorer(make_batch(PROMPTS, 0, length))
            ahead = make_batch(PROMPTS, 0, length)
            ahead = scorer(ahead.with_cache(scorer.prefix_cache(ahead.prefix_ids)))
        torch.testing.assert_close(shared, whole, rtol=0, atol=1e-5)
        torch.testing.assert_close(ahead, whole, rtol=0, atol=1e-5)
        problem = packing_problem(scorer, PROMPTS, PREFIX, 0, torch.device("cpu"))
        assert problem is None or "does not take packed prompts" in problem, problem  # BLOOM: a reason, not a crash


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_depth_zero_runs_trains_saves_and_predicts(family, review_file, tmp_path):
    folder = family_folder(family, tmp_path / "model")
    for head, method in (("lm", "full"), ("cls", "full"), ("lm", "icl")):
        out = tmp_path / f"{head}-{method}"
        config = tiny_run_config(folder, review_file, layers=ZERO, head=head, method=method, max_steps=2)
        record = run(config, out, save_model=True, show_progress=False).record
        assert (
            record["layers"]["kept"] == []
            and record["parameters"]["non_embedding"] < record["parameters"]["source_total"]
        )
        assert 0 <= record["metrics"]["accuracy"] <= 1
        sharing = record["prefix_sharing"]
        assert sharing["evaluation"] or sharing["reasons"]  # checked: shared, or not and why
        if method == "full":
            assert record["parameters"]["trainable"] == record["parameters"]["total"]
            assert [point["step"] for point in record["dev"]["curve"]] == [2]
        reloaded_class = AutoModelForSequenceClassification if head == "cls" else AutoModelForCausalLM
        reloaded, info = reloaded_class.from_pretrained(out / "model", output_loading_info=True)
        assert reloaded.config.num_hidden_layers == 0 and not info["missing_keys"] and not info["unexpected_keys"]
        # The saved model scores the test texts as the run did (the record rounds to 5 decimals).
        texts = [e.text for e in make_run_splits(config, resolve_task(config)).test]
        predicted = load_predictor(out / "model").predict(texts)
        torch.testing.assert_close(
            torch.tensor([list(p.values()) for _, p in predicted]),
            torch.tensor(record["predictions"]["probabilities"]),
            rtol=0,
            atol=1e-5,
        )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(method="lora"), "method: lora adapts the kept blocks, and first:0 keeps none"),
        (dict(method="prefix"), "method: prefix adapts the kept blocks, and first:0 keeps none"),
        (dict(train_layers="last:1"), "train_layers: last:1 trains kept blocks, and first:0 keeps none"),
        (dict(bridge="lstsq"), "bridge: lstsq folds into the last kept block, and first:0 keeps none"),
    ],
)
def test_depth_zero_refuses_what_needs_a_block(tiny_llama_folder, review_file, overrides, message):
    with pytest.raises(LayercutError, match=message.replace("-", r"\-")):
        tiny_run_config(tiny_llama_folder, review_file, layers=ZERO, **overrides)


def test_depth_zero_on_the_command_line(tiny_llama_folder, review_file, tmp_path):
    out = tmp_path / "cut"
    assert main(["cut", str(tiny_llama_folder), "--keep-first", "0", "-o", str(out)]) == 0
    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 0
    assert_one_line_error(
        run_cli(
            "run",
            "--model",
            tiny_llama_folder,
            "--layers",
            ZERO,
            "--method",
            "lora",
            "--data",
            review_file,
            "--template",
            "Review: {text} Sentiment:",
            "--label-words",
            "Negative,Positive",
            "--out",
            tmp_path / "run",
        ),
        "--method lora adapts the kept blocks, and first:0 keeps none: use --method full or icl",
    )
    assert_one_line_error(
        run_cli("cut", tiny_llama_folder, "--keep-last", "0", "-o", tmp_path / "never"), "choose k from 1 to 4"
    )


def test_sweep_takes_depth_zero_and_reports_its_row(tiny_llama_folder, review_file, tmp_path):
    path = write_experiment(
        tmp_path / "e.yaml",
        tiny_llama_folder,
        review_file,
        layers=[0, 1, "all"],
        methods=["full", "icl", "lora"],
        shots=[4],
        settings={"max_steps": 2},
    )
    from layercut.sweep import load_experiment, run_sweep

    experiment = load_experiment(path)
    assert {(r.layers, r.method) for r in experiment.runs} == {
        (layers, method) for layers in ("first:0", "first:1", "all") for method in ("full", "icl", "lora")
    } - {("first:0", "lora")}
    assert any("method: lora adapts the kept blocks" in w for w in experiment.warnings)  # skipped, and said why
    assert main(["sweep", str(path), "--dry-run"]) == 0  # the compute estimate counts depth 0's parameters too
    summary = run_sweep(experiment, tmp_path / "out", echo=lambda line: None)
    assert summary.finished == 8 and not summary.failed
    report = summary.report.read_text()
    # Row "0" in the full fine-tuning and ICL tables and in their "other measures" tables; LoRA has none.
    assert report.count("\n| 0 | ") == 4 and report.count("\n| 0 | 4.1k (10.0%) | 32 | ") == 2
