"""Healing a cut model: the folded least-squares bridge, partial fine-tuning, distillation from a teacher."""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from layercut.errors import LayercutError
from layercut.healing.bridge import fit_bridge, fold_bridge, output_projection
from layercut.importance.calibration import calibration_batches
from layercut.model.blocks import find_blocks
from layercut.model.load import cut_layers
from layercut.run.pipeline import run
from tests.cli import assert_one_line_error, run_cli
from tests.run.test_run import tiny_config
from tests.tiny_models import CALIBRATION_TEXTS, tiny_model, tiny_tokenizer

FOLDABLE = ["gpt2", "opt", "llama", "qwen2", "gpt_neox", "phi", "falcon", "bloom", "gptj", "gemma"]


def calibration(texts=CALIBRATION_TEXTS * 4):
    return calibration_batches(tiny_tokenizer(), texts, samples=16, max_length=16)


def logits(model, ids):
    with torch.no_grad():
        return model(ids, use_cache=False).logits


@pytest.mark.parametrize("family", FOLDABLE)
def test_folded_bridge_reloads_and_equals_the_unfolded_map(family, tmp_path, one_thread):
    full = tiny_model(family)
    kept = [0, 1]
    fit = fit_bridge(full, kept, calibration())
    assert fit.record["relative_error_after"] < fit.record["relative_error_before"]
    cut = cut_layers(copy.deepcopy(full), kept)
    _, projection = output_projection(cut, find_blocks(cut).blocks[-1])
    matrix = fit.matrix.float()
    handle = projection.register_forward_hook(lambda module, args, output: output @ matrix)
    ids = torch.tensor([[2, 5, 9, 11, 40, 7]])
    unfolded = logits(cut, ids)
    handle.remove()
    assert not torch.allclose(unfolded, logits(cut, ids), atol=1e-4)  # the map does something
    fold_bridge(cut, fit.matrix)
    cut.save_pretrained(tmp_path)
    reloaded, info = AutoModelForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert type(reloaded) is type(full) and reloaded.config.num_hidden_layers == 2
    assert torch.allclose(logits(reloaded.eval(), ids), unfolded, atol=1e-4)


def test_bridge_over_identity_blocks_is_the_identity(one_thread):
    model = tiny_model("llama")
    for block in find_blocks(model).blocks[2:]:  # zero outputs of attention and MLP: the block passes its input on
        torch.nn.init.zeros_(block.self_attn.o_proj.weight)
        torch.nn.init.zeros_(block.mlp.down_proj.weight)
    fit = fit_bridge(model, [0, 1], calibration())
    assert fit.record["calibration_tokens"] > model.config.hidden_size
    assert fit.record["relative_error_before"] < 1e-6
    assert torch.allclose(fit.matrix, torch.eye(model.config.hidden_size, dtype=torch.float64), atol=1e-5)


def test_bridge_reduces_the_gap_on_a_real_cut(one_thread):
    fit = fit_bridge(tiny_model("llama"), [0], calibration())
    assert fit.record["relative_error_after"] < 0.9 * fit.record["relative_error_before"]


@pytest.mark.parametrize("family", ["gemma2", "gemma3"])
def test_a_norm_after_the_mlp_cannot_hold_the_bridge(family):
    model = tiny_model(family)
    with pytest.raises(LayercutError, match="cannot be folded"):
        output_projection(model, find_blocks(model).blocks[-1])


def saved_weights(folder):
    return load_file(folder / "model" / "model.safetensors")


@pytest.mark.parametrize("freeze_embeddings", [False, True])
def test_training_the_last_block_leaves_every_other_weight_bit_identical(
    tiny_llama_folder, review_file, tmp_path, freeze_embeddings, one_thread
):
    config = tiny_config(tiny_llama_folder, review_file, train_layers="last:1", freeze_embeddings=freeze_embeddings)
    record = run(config, tmp_path, save_model=True, show_progress=False).record
    assert record["healing"]["trains"]["trained_blocks"] == [1]
    before = {
        k: v
        for k, v in load_file(tiny_llama_folder / "model.safetensors").items()
        if not k.startswith("model.layers.") or k.startswith(("model.layers.0.", "model.layers.1."))
    }
    after = saved_weights(tmp_path)
    trained = {k for k in after if not torch.equal(after[k], before[k])}
    frozen = {k for k in after if k.startswith("model.layers.0.")} | (
        {"model.embed_tokens.weight"} if freeze_embeddings else set()
    )
    assert trained and all(k.startswith(("model.layers.1.", "model.norm.", "model.embed_tokens.")) for k in trained), (
        trained
    )
    assert not trained & frozen
    assert "model.layers.1.mlp.down_proj.weight" in trained and "model.norm.weight" in trained
    assert ("model.embed_tokens.weight" in trained) is not freeze_embeddings  # the tied LM head trains unless frozen
    block = sum(v.numel() for k, v in after.items() if k.startswith("model.layers.1."))
    embedding = after["model.embed_tokens.weight"].numel()
    norm = after["model.norm.weight"].numel()
    assert record["parameters"]["trainable"] == block + norm + (0 if freeze_embeddings else embedding)


def test_partial_training_needs_full_fine_tuning_and_enough_blocks(tiny_llama_folder, review_file):
    with pytest.raises(LayercutError, match="not method: lora: use method: full"):  # Python's spelling of settings
        tiny_config(tiny_llama_folder, review_file, train_layers="last:1", method="lora")
    with pytest.raises(LayercutError, match="all or last:N"):
        tiny_config(tiny_llama_folder, review_file, train_layers="first:1")
    with pytest.raises(LayercutError, match="more blocks than the 2 kept"):
        run(tiny_config(tiny_llama_folder, review_file, train_layers="last:3"), show_progress=False)


def test_a_run_with_the_bridge_records_the_fit_and_saves_a_plain_checkpoint(
    tiny_llama_folder, review_file, tmp_path, one_thread
):
    config = tiny_config(tiny_llama_folder, review_file, bridge="lstsq", method="icl")
    record = run(config, tmp_path, save_model=True, show_progress=False).record
    bridge = record["healing"]["bridge"]
    assert bridge["calibration_tokens"] > 0 and bridge["seconds"] >= 0
    assert bridge["relative_error_after"] < bridge["relative_error_before"]
    assert bridge["folded_into"] == "block 1 (source layer 1): mlp.down_proj"
    reloaded, info = AutoModelForCausalLM.from_pretrained(tmp_path / "model", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    original = load_file(tiny_llama_folder / "model.safetensors")["model.layers.1.mlp.down_proj.weight"]
    assert not torch.equal(reloaded.model.layers[1].mlp.down_proj.weight, original)


def test_the_teacher_is_scored_once_per_run(tiny_llama_folder, review_file, tmp_path, one_thread):
    config = tiny_config(tiny_llama_folder, review_file, teacher=str(tiny_llama_folder), epochs=3, eval_batch_size=3)
    record = run(config, tmp_path, show_progress=False).record
    teacher = record["healing"]["teacher"]
    train_size = record["splits"]["sizes"]["train"]
    assert teacher["examples_scored"] == train_size and teacher["forward_batches"] == -(-train_size // 3)
    assert teacher["depth"] == 4 and teacher["head"] == "lm" and teacher["weight"] == 0.5
    assert len(record["dev"]["curve"]) == 3  # three epochs of training, one teacher pass


def test_a_run_saved_with_its_model_teaches_another(tiny_llama_folder, review_file, tmp_path, one_thread):
    teacher_run = tmp_path / "teacher"
    run(
        tiny_config(tiny_llama_folder, review_file, layers="all", head="cls"),
        teacher_run,
        save_model=True,
        show_progress=False,
    )
    record = run(tiny_config(tiny_llama_folder, review_file, teacher=str(teacher_run)), show_progress=False).record
    assert record["healing"]["teacher"]["head"] == "cls" and record["healing"]["teacher"]["depth"] == 4
    run(tiny_config(tiny_llama_folder, review_file, method="icl"), tmp_path / "unsaved", show_progress=False)
    with pytest.raises(LayercutError, match="saved no model"):
        run(tiny_config(tiny_llama_folder, review_file, teacher=str(tmp_path / "unsaved")), show_progress=False)


def test_distillation_loss_mixes_cross_entropy_and_kl():
    from layercut.healing.distill import distillation_loss

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    teacher = torch.softmax(logits, dim=-1)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(
        distillation_loss(0.5, 1.0)(logits, labels, teacher), 0.5 * ce, atol=1e-6
    )  # KL to itself is 0
    assert torch.allclose(distillation_loss(0.0, 2.0)(logits, labels, teacher.flip(1)), ce)
    assert distillation_loss(1.0, 2.0)(logits, labels, teacher.flip(1)) > 0


def test_cut_folds_a_bridge_fitted_on_calibration_text(tiny_llama_folder, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(CALIBRATION_TEXTS * 4))
    out = tmp_path / "cut"
    result = run_cli(
        "cut", tiny_llama_folder, "--keep-first", "2", "--bridge", "lstsq", "--calibration", texts, "-o", out
    )
    assert result.returncode == 0, result.stderr
    assert "bridge:" in result.stdout
    bridge = json.loads((out / "layercut.json").read_text())["bridge"]
    assert bridge["relative_error_after"] < bridge["relative_error_before"] and bridge["calibration"]["texts"] == 24
    reloaded, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and reloaded.config.num_hidden_layers == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["cut", "{model}", "--keep-first", "2", "--bridge", "lstsq", "-o", "{out}"],
            "--bridge lstsq fits on calibration text",
        ),
        (
            ["run", "--model", "{model}", "--train-layers", "last:x", "--out", "{out}"],
            "--train-layers 'last:x' is not all or last:N",
        ),
        (
            ["run", "--model", "{model}", "--teacher", "{model}", "--method", "icl", "--out", "{out}"],
            "--teacher distills during training",
        ),
    ],
)
def test_bad_healing_options_get_one_line(tiny_llama_folder, tmp_path, args, message):
    filled = [a.format(model=tiny_llama_folder, out=tmp_path / "out") for a in args]
    assert_one_line_error(run_cli(*filled), message)
