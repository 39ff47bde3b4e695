"""`layercut cut` and `layercut info` end to end, and every bad input the foundation names."""

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM

from layercut.cli.main import main
from tests.cli import assert_one_line_error, cli_env, run_cli


def test_cut_writes_a_checkpoint_plain_transformers_reloads(tiny_llama_folder, tmp_path):
    out = tmp_path / "cut"
    assert main(["cut", str(tiny_llama_folder), "--keep", "0,2", "-o", str(out)]) == 0
    record = json.loads((out / "layercut.json").read_text())
    assert record["kept_layers"] == [0, 2] and record["source_depth"] == 4 and record["depth"] == 2
    assert record["versions"]["transformers"] and record["parameters_after"] < record["parameters_before"]
    assert "2 of 4 layers" in (out / "README.md").read_text()

    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert model.config.num_hidden_layers == 2
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.num_parameters() == record["parameters_after"]

    full = AutoModelForCausalLM.from_pretrained(tiny_llama_folder).eval()
    ids = torch.tensor([[4, 9, 11, 13]])
    from layercut.model.load import cut_layers

    with torch.no_grad():
        assert torch.allclose(cut_layers(full, [0, 2])(ids).logits, model.eval()(ids).logits, atol=1e-6)


@pytest.mark.parametrize(
    "flags, kept",
    [(["--keep-first", "3"], [0, 1, 2]), (["--keep-last", "1"], [3]), (["--drop", "1-2"], [0, 3])],
)
def test_cut_selections(tiny_llama_folder, tmp_path, flags, kept):
    out = tmp_path / "cut"
    assert main(["cut", str(tiny_llama_folder), *flags, "-o", str(out)]) == 0
    assert json.loads((out / "layercut.json").read_text())["kept_layers"] == kept


def test_keep_first_at_load_time_equals_cutting_by_hand(tiny_llama_folder):
    from layercut.model.load import cut_layers, load_model

    loaded = load_model(str(tiny_llama_folder), "first:2")
    by_hand = cut_layers(AutoModelForCausalLM.from_pretrained(tiny_llama_folder).eval(), [0, 1])
    ids = torch.tensor([[4, 9, 11, 13, 20]])
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, by_hand(ids).logits)
    assert loaded.kept == [0, 1] and loaded.source_depth == 4


def test_info_json_counts_match_loaded_models(tiny_llama_folder, capsys):
    from layercut.model.load import load_model

    assert main(["info", str(tiny_llama_folder), "--keep-first", "1", "4", "--json"]) == 0
    cuts = json.loads(capsys.readouterr().out)["cuts"]
    assert [c["depth"] for c in cuts] == [1, 4]
    assert cuts[0]["parameters"] == load_model(str(tiny_llama_folder), "first:1").model.num_parameters()
    assert cuts[1]["percent_of_full"] == 100.0


def test_info_reads_a_bare_config_json(tmp_path, capsys):
    from tests.tiny_models import tiny_config

    tiny_config("gpt2").save_pretrained(tmp_path)
    assert main(["info", str(tmp_path / "config.json"), "--keep-first", "2"]) == 0
    assert "gpt2" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--keep-last", "0"], "choose k from 1 to 4"),
        (["--keep-first", "5"], "choose k from 0 to 4"),
        (["--keep", "0,9"], "beyond the model's depth"),
        (["--keep", "-1"], "negative"),
        (["--keep", "0,0"], "more than once"),
        (["--keep", "0,x"], "malformed"),
        (["--keep", "3-1"], "backwards"),
        (["--drop", "0-3"], "keeps no layer"),
    ],
)
def test_bad_selections_fail_in_one_line(tiny_llama_folder, tmp_path, args, message):
    out = tmp_path / "never"
    assert_one_line_error(run_cli("cut", tiny_llama_folder, *args, "-o", out), message)
    assert not out.exists()


def test_bad_model_specs_fail_in_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    bad_gguf = tmp_path / "broken.gguf"
    bad_gguf.write_bytes(b"GGUF" + b"\0" * 20)
    cases = {
        "no-such-alias-or-hub-id": "Hugging Face Hub",
        str(tmp_path / "missing" / "model"): "does not exist",
        str(empty): "not a Hugging Face model",
        str(bad_gguf): "not a valid GGUF file",
        str(tmp_path / "missing.gguf"): "does not exist",
    }
    for spec, message in cases.items():
        result = run_cli("cut", spec, "--keep-first", "1", "-o", tmp_path / "out")
        assert_one_line_error(result, message)
        assert "smollm2-135m" in result.stderr or message != "Hugging Face Hub"


def test_existing_output_needs_overwrite(tiny_llama_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = run_cli("cut", tiny_llama_folder, "--keep-first", "1", "-o", out)
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert (out / "keep.txt").read_text() == "precious"
    # --overwrite replaces a folder layercut made, never files it did not write.
    assert main(["cut", str(tiny_llama_folder), "--keep-first", "1", "-o", str(out), "--overwrite"]) == 2
    assert (out / "keep.txt").read_text() == "precious"
    (out / "keep.txt").unlink()
    assert main(["cut", str(tiny_llama_folder), "--keep-first", "1", "-o", str(out)]) == 0
    assert main(["cut", str(tiny_llama_folder), "--keep-first", "2", "-o", str(out), "--overwrite"]) == 0
    assert json.loads((out / "layercut.json").read_text())["kept_layers"] == [0, 1]


def test_unlocatable_blocks_name_the_model_class():
    from layercut.errors import LayercutError
    from layercut.model.blocks import find_blocks

    with pytest.raises(LayercutError, match="Linear"):
        find_blocks(torch.nn.Linear(2, 2))


def test_missing_gguf_package_is_named(monkeypatch, tmp_path):
    import importlib.util

    from layercut.errors import LayercutError
    from layercut.model import sources

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real_find_spec(name, *a)
    )
    fake = tmp_path / "m.gguf"
    fake.write_bytes(b"GGUF")
    monkeypatch.setenv("LAYERCUT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(LayercutError, match="pip install gguf"):
        sources.resolve_source(str(fake))


def test_help_does_not_import_torch():
    """`layercut --help` and every command's parser load without torch or transformers (they take seconds)."""
    code = (
        "import sys; from layercut.cli.main import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_the_top_level_api_is_lazy_and_every_name_resolves():
    code = (
        "import sys, layercut; loaded = 'torch' in sys.modules; "
        "missing = [n for n in layercut.__all__ if getattr(layercut, n, None) is None]; print(loaded, missing)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=cli_env())
    assert result.stdout.strip() == "False []", result.stdout
