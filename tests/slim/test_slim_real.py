"""Vocabulary trimming and the one-pass depth profile on the real SmolLM2-135M and TREC."""

import dataclasses
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from layercut.adapt.prefix_sharing import make_batch
from layercut.adapt.scorers import LabelWordHead
from layercut.cli.main import main
from layercut.prompting import DemoSelector, PromptBuilder, resolve_label_words
from layercut.settings.run_config import RunConfig
from layercut.run.pipeline import run
from layercut.slim.profile import profile_depths
from layercut.tasks import get_task, load_examples, make_splits

pytestmark = pytest.mark.slow

OUTSIDE = "Schrödinger's 🐈 wasn't in Zürich — ¿verdad? 東京"


@pytest.fixture(scope="module")
def trimmed_smollm2(smollm2, tmp_path_factory):
    out = tmp_path_factory.mktemp("smollm2-trimmed") / "k2"
    assert main(["cut", "smollm2-135m", "--keep-first", "2", "--trim-vocab", "trec", "-o", str(out)]) == 0
    return out


def trec_prompts(tokenizer, count=24):
    spec = get_task("trec")
    splits = make_splits(load_examples(spec), shots=8, seed=0, test_size=count)
    demos = DemoSelector("fixed", splits.train, spec.num_classes, seed=0)
    builder = PromptBuilder(spec, tokenizer, max_length=512)
    return [builder.encode(e, demos.for_query(e)) for e in splits.test], spec.label_words


def test_trimmed_smollm2_reloads_plainly_and_scores_trec_as_before(smollm2, trimmed_smollm2):
    vocabulary = json.loads((trimmed_smollm2 / "layercut.json").read_text())["vocabulary"]
    kept = vocabulary["kept_source_ids"]
    new_id = {old: new for new, old in enumerate(kept)}
    assert vocabulary["source_vocab_size"] == 49152 and vocabulary["vocab_size"] < 49152 // 2
    old_model = AutoModelForCausalLM.from_pretrained(smollm2, num_hidden_layers=2).eval()
    new_model = AutoModelForCausalLM.from_pretrained(trimmed_smollm2).eval()
    old_tokenizer, new_tokenizer = (
        AutoTokenizer.from_pretrained(smollm2),
        AutoTokenizer.from_pretrained(trimmed_smollm2),
    )
    assert new_model.num_parameters() < 0.5 * old_model.num_parameters()
    old_prompts, words = trec_prompts(old_tokenizer)
    new_prompts, _ = trec_prompts(new_tokenizer)
    assert new_prompts == [[new_id[i] for i in ids] for ids in old_prompts]  # the same pieces
    old_words = resolve_label_words(old_tokenizer, words).first_ids
    new_words = resolve_label_words(new_tokenizer, words).first_ids
    assert [kept[i] for i in new_words] == old_words
    with torch.no_grad():
        old_scores = LabelWordHead(old_model, old_words)(make_batch(old_prompts, old_tokenizer.pad_token_id))
        new_scores = LabelWordHead(new_model, new_words)(make_batch(new_prompts, new_tokenizer.pad_token_id))
    torch.testing.assert_close(new_scores, old_scores, rtol=1e-4, atol=1e-4)
    assert (new_scores.argmax(1) == old_scores.argmax(1)).all()


def test_trimmed_smollm2_still_tokenizes_and_runs_any_text(smollm2, trimmed_smollm2):
    old_tokenizer, new_tokenizer = (
        AutoTokenizer.from_pretrained(smollm2),
        AutoTokenizer.from_pretrained(trimmed_smollm2),
    )
    ids = new_tokenizer(OUTSIDE)["input_ids"]
    assert new_tokenizer.decode(ids) == OUTSIDE and len(ids) > len(old_tokenizer(OUTSIDE)["input_ids"])
    with torch.no_grad():
        logits = AutoModelForCausalLM.from_pretrained(trimmed_smollm2)(torch.tensor([ids])).logits
    assert torch.isfinite(logits).all()


def test_one_pass_profile_equals_separate_icl_runs_on_smollm2(smollm2):
    config = RunConfig(model="smollm2-135m", task="trec", shots=8, seed=0, method="icl", test_size=16)
    profile = profile_depths(config, [1, 2, 30])
    for depth in profile.depths:
        separate = run(dataclasses.replace(config, layers=f"first:{depth}"), show_progress=False).record
        assert profile.scores[depth].predictions == separate["predictions"]["predicted"], depth
    assert profile.scores[30].predictions != profile.scores[1].predictions
