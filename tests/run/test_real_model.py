"""The real packaged SmolLM2-135M, end to end: proof the weights are real, and a real cut."""

import json
import random
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from layercut.cli.main import main

pytestmark = pytest.mark.slow

SENTENCE = "The weather was cold, so she wore a warm coat and walked quickly to the station to catch the early train."


def perplexity(model, tokenizer, text):
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return torch.exp(model(ids, labels=ids).loss).item()


def test_converted_weights_are_real(smollm2):
    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    words = SENTENCE.split()
    random.Random(0).shuffle(words)
    fluent, shuffled = perplexity(model, tokenizer, SENTENCE), perplexity(model, tokenizer, " ".join(words))
    assert fluent < 60
    assert shuffled > 10 * fluent


def test_cache_serves_later_loads_quickly(smollm2):
    from layercut.model.sources import resolve_source

    start = time.perf_counter()
    assert resolve_source("smollm2-135m").location == smollm2
    assert time.perf_counter() - start < 1.0


def test_cut_smollm2_to_two_layers(smollm2, tmp_path):
    out = tmp_path / "out"
    assert main(["cut", "smollm2-135m", "--keep-first", "2", "-o", str(out)]) == 0
    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert model.config.num_hidden_layers == 2
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert round(model.num_parameters() / 1e6, 1) == 35.4
    assert json.loads((out / "layercut.json").read_text())["kept_layers"] == [0, 1]


def test_interrupted_conversion_leaves_no_cache(monkeypatch, tmp_path):
    from layercut.model import sources

    monkeypatch.setenv("LAYERCUT_CACHE", str(tmp_path))

    def dies_half_way(gguf_path, folder):
        (folder / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(sources, "_dequantize_to_folder", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        sources.resolve_source("smollm2-135m")
    models = tmp_path / "models"
    # Nothing is left: no model, no temporary folder, and no models/ folder the conversion itself created.
    assert not models.exists() or list(models.iterdir()) == []


def test_one_layer_smollm2_learns_trec_at_k64(smollm2, tmp_path):
    """The default budget (batch 8, up to 30 epochs, early stopping on dev) lifts the 1-layer model's dev accuracy
    well above the majority class at K=64: at least 20 points above the majority class of the 200
    natural-distribution dev questions."""
    from collections import Counter

    from layercut.settings.run_config import RunConfig
    from layercut.run.pipeline import run
    from layercut.settings.task import make_run_splits, resolve_task

    config = RunConfig(layers="first:1", task="trec", shots=64, seed=0, dev_size=200)
    dev = make_run_splits(config, resolve_task(config)).dev
    majority = max(Counter(e.label for e in dev).values()) / len(dev)
    result = run(config, tmp_path, show_progress=False).record
    curve = [epoch["dev_accuracy"] for epoch in result["dev"]["curve"]]
    assert result["dev"]["best_dev_accuracy"] >= majority + 0.20, (majority, curve)
    assert round(result["parameters"]["total"] / 1e6, 1) == 31.9
