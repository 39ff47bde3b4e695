"""Meta-device accounting reproduces the paper's parameter counts without any weights."""

import pytest
from transformers import GPT2Config, OPTConfig

from layercut.model.size import config_size_reports, known_config

GPT2_XL = GPT2Config(n_embd=1600, n_layer=48, n_head=25, n_positions=1024, vocab_size=50257)
OPT_1_3B = OPTConfig(
    hidden_size=2048,
    num_hidden_layers=24,
    num_attention_heads=32,
    ffn_dim=8192,
    max_position_embeddings=2048,
    vocab_size=50272,
    word_embed_proj_dim=2048,
)


@pytest.mark.parametrize(
    "config, depths, millions",
    [
        (GPT2_XL, [1, 2, 12, 24, 48], [112.8, 143.5, 450.9, 819.8, 1557.6]),
        (OPT_1_3B, [1, 2, 6, 12, 24], [157.5, 207.9, 409.3, 711.5, 1315.8]),
    ],
)
def test_paper_parameter_counts(config, depths, millions):
    reports = config_size_reports(config, depths)
    assert [round(r.parameters / 1e6, 1) for r in reports] == millions
    assert reports[-1].percent_of_full == 100.0
    assert all(r.fp32_bytes == 4 * r.parameters and r.bf16_bytes == 2 * r.parameters for r in reports)
    # At one layer the embeddings are most of the model: the non-embedding count shows it.
    assert reports[0].non_embedding_parameters < reports[0].parameters / 2


def test_stored_paper_configs_match_the_paper():
    assert round(config_size_reports(known_config("gpt2-xl"), [1])[0].parameters / 1e6, 1) == 112.8
    assert round(config_size_reports(known_config("facebook/opt-1.3b"), [24])[0].parameters / 1e6, 1) == 1315.8
    assert known_config("no/such-model") is None
