"""Every layer-cutting check of hf-layer-cutting.md, over one tiny random model per family."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from layercut.model.blocks import find_blocks
from layercut.model.load import cut_layers
from tests.tiny_models import FAMILIES, tiny_model

CUTS = {"first2": [0, 1], "set02": [0, 2], "last1": [3], "none": []}  # none: depth 0 (first:0)
PROMPT = torch.tensor([[5, 17, 9, 22, 31, 8]])


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    return request.param


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_cut_model_is_consistent(family, cut, tmp_path):
    keep = CUTS[cut]
    model = tiny_model(family)
    full_parameters = model.num_parameters()
    dropped = [b for i, b in enumerate(find_blocks(model).blocks) if i not in keep]
    dropped_parameters = sum(p.numel() for block in dropped for p in block.parameters())
    kept_blocks = [find_blocks(model).blocks[i] for i in keep]

    cut_layers(model, keep)

    blocks = find_blocks(model).blocks
    assert len(blocks) == len(keep) == model.config.num_hidden_layers
    assert all(a is b for a, b in zip(blocks, kept_blocks))
    assert model.num_parameters() == full_parameters - dropped_parameters

    # A stale layer_idx breaks (or silently corrupts) the KV cache: cached must equal uncached.
    generate = dict(max_new_tokens=6, do_sample=False, pad_token_id=0, min_new_tokens=6)
    cached = model.generate(PROMPT, use_cache=True, **generate)
    uncached = model.generate(PROMPT, use_cache=False, **generate)
    assert torch.equal(cached, uncached)

    model.save_pretrained(tmp_path)
    reloaded, info = AutoModelForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] or set(info["missing_keys"]) == set()
    assert set(info["unexpected_keys"]) == set()
    assert reloaded.config.num_hidden_layers == len(keep)
    with torch.no_grad():
        assert torch.allclose(model(PROMPT).logits, reloaded.eval()(PROMPT).logits, atol=1e-6)
    if model.config.tie_word_embeddings:
        assert reloaded.get_output_embeddings().weight.data_ptr() == reloaded.get_input_embeddings().weight.data_ptr()


def test_per_layer_config_lists_are_sliced(family, tmp_path):
    model = tiny_model(family)
    layer_types = getattr(model.config, "layer_types", None)
    cut_layers(model, [0, 3])
    if layer_types is not None:
        assert model.config.layer_types == [layer_types[0], layer_types[3]]
    model.save_pretrained(tmp_path)  # transformers 5 validates per-layer lists on save
    assert AutoModelForCausalLM.from_pretrained(tmp_path).config.num_hidden_layers == 2


@pytest.mark.parametrize("keep", [[1, 2], []], ids=["set12", "none"])
def test_sequence_classification_model_cuts(family, keep, tmp_path):
    model = tiny_model(family, head="cls", num_labels=3)
    cut_layers(model, keep)
    batch = torch.tensor([[0, 0, 7, 8, 9], [5, 6, 7, 8, 9]])
    mask = (batch != 0).long()
    with torch.no_grad():
        logits = model(input_ids=batch, attention_mask=mask).logits
    assert logits.shape == (2, 3)
    model.save_pretrained(tmp_path)
    reloaded, info = AutoModelForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert set(info["missing_keys"]) == set() and set(info["unexpected_keys"]) == set()
    with torch.no_grad():
        assert torch.allclose(reloaded.eval()(input_ids=batch, attention_mask=mask).logits, logits, atol=1e-6)
