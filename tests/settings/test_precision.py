"""`--dtype auto|float32|bfloat16`: what auto resolves to, run keys, mixed-precision training and evaluation.

The suite runs with LAYERCUT_CPU_BF16=0 (conftest): `auto` resolves to float32 whatever the machine, and the
tests here ask for bf16 where they test it.
"""

import dataclasses
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from layercut.adapt.prefix_sharing import BF16_SHARING_TOLERANCE, make_batch
from layercut.adapt.evaluation import score_prompts
from layercut.adapt.optim import RowSparseAdamW
from layercut.adapt.scorers import ClassificationHead, LabelWordHead
from layercut.adapt.training import Budget, train
from layercut.model.blocks import find_blocks
from layercut.settings import precision as precision_module
from layercut.settings.run_config import KEY_VERSION, RunConfig
from layercut.run.pipeline import run
from layercut.settings.precision import Precision, resolve_precision
from layercut.run.prepare import check_precision, packing_problem
from tests.run.test_run import tiny_config
from tests.adapt.test_shared_prefix import LABEL_IDS, PREFIX, PROMPTS, without_dropout
from tests.tiny_models import FAMILIES, tiny_model

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


@pytest.fixture
def cpu_flags(monkeypatch):
    """Pretend the CPU has the given /proc/cpuinfo flags (no override)."""
    monkeypatch.delenv("LAYERCUT_CPU_BF16", raising=False)

    def set_flags(*flags):
        monkeypatch.setattr(precision_module, "_cpu_flags", lambda: frozenset(flags))

    return set_flags


def test_auto_is_bf16_on_a_cpu_with_native_bf16_and_float32_elsewhere(cpu_flags):
    cpu_flags("avx2", "avx512f", "avx512_bf16")
    assert resolve_precision("auto", "cpu") == Precision("auto", "bfloat16", "CPU has AVX512-BF16")
    cpu_flags("amx_bf16", "amx_tile")
    assert resolve_precision("auto", "cpu").reason == "CPU has AMX-BF16"
    cpu_flags("avx2", "avx512f")
    auto = resolve_precision("auto", "cpu")
    assert auto.used == auto.resolved == "float32" and "no native bfloat16" in auto.reason
    assert resolve_precision("float32", "cpu").resolved == "float32"
    assert resolve_precision("bfloat16", "cpu").resolved == "bfloat16"  # asked for: emulated, and said so
    assert "emulated" in resolve_precision("bfloat16", "cpu").reason


def test_the_override_and_the_suite_pin(monkeypatch):
    assert resolve_precision("auto", "cpu").resolved == "float32"  # conftest's LAYERCUT_CPU_BF16=0
    monkeypatch.setenv("LAYERCUT_CPU_BF16", "1")
    assert resolve_precision("auto", "cpu").resolved == "bfloat16"


def test_cpu_flags_agree_with_torch():
    """/proc/cpuinfo (read without torch, for run keys) says what torch's own query says."""
    flags = precision_module._cpu_flags()
    query = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    if flags is None or query is None:
        pytest.skip("no /proc/cpuinfo or no torch query here")
    assert ("avx512_bf16" in flags) == query()


def old_key(config: RunConfig) -> str:
    """RunConfig.key() before precision entered it."""
    defaults = RunConfig().to_dict()
    changed = {name: value for name, value in config.to_dict().items() if value != defaults[name]}
    return hashlib.sha256(
        json.dumps({"version": KEY_VERSION, **changed}, sort_keys=True, default=str).encode()
    ).hexdigest()[:16]


def test_precision_is_part_of_the_run_key(monkeypatch):
    config = RunConfig(layers="first:2", learning_rate=1e-3)
    assert config.key() == old_key(config)  # auto resolving to float32: the key of every stored run
    assert dataclasses.replace(config, dtype="float32").key() == old_key(config)
    bf16 = dataclasses.replace(config, dtype="bfloat16")
    assert bf16.key() != config.key()
    monkeypatch.setenv("LAYERCUT_CPU_BF16", "1")  # a machine where auto means bf16
    assert config.key() == bf16.key() != dataclasses.replace(config, dtype="float32").key() == old_key(config)


def committed_results() -> list[Path]:
    """docs/'s result.json files under version control (all of them outside a git checkout)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "docs"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return sorted((ROOT / "docs").rglob("result.json"))
    return sorted(ROOT / name for name in listed.decode().split("\0") if name.endswith("/result.json"))


def test_every_committed_run_keeps_its_key():
    """Every stored run under docs/ is found under the key it was stored with, as the precision it used (the
    runs before precision was recorded: float32, all on CPU)."""
    results = committed_results()
    assert len(results) > 400
    for path in results:
        record = json.loads(path.read_text())
        used = (record.get("precision") or {}).get("resolved", "float32")
        if "precision" not in record:
            assert record["device"] == "cpu", path  # auto on CUDA meant bf16 before precision was recorded
        config = RunConfig.from_dict(record["config"])
        assert dataclasses.replace(config, dtype=used).key() == record["key"], path
        if used == "float32":
            assert config.key() == record["key"], path  # as `dtype: auto` resolves in the suite


# configs/precision/ holds the bfloat16 arm of the precision comparison, bfloat16 on purpose.
@pytest.mark.parametrize(
    "path", sorted(p for p in (ROOT / "configs").rglob("*.yaml") if p.parent.name != "precision"), ids=lambda p: p.name
)
def test_shipped_configs_stay_float32_on_any_machine(path, monkeypatch):
    from layercut.sweep.experiment import load_experiment

    runs = load_experiment(path).runs
    assert runs and all(r.dtype == "float32" for r in runs)
    keys = [r.key() for r in runs]
    monkeypatch.setenv("LAYERCUT_CPU_BF16", "1")
    assert [r.key() for r in runs] == keys == [old_key(dataclasses.replace(r, dtype="auto")) for r in runs]


@pytest.mark.parametrize("name", ["trec-k16-shallow.yaml", "trec-k16-full.yaml"])
def test_the_precision_arm_is_the_replication_cell_in_bfloat16(name):
    """The bfloat16 runs differ from their float32 counterparts in the replication's store by the precision only."""
    from layercut.sweep.experiment import load_experiment

    arm = load_experiment(ROOT / "configs" / "precision" / name).runs
    replication = {r.key(): r for r in load_experiment(ROOT / "configs" / "replication" / "trec-k16.yaml").runs}
    assert arm and all(r.dtype == "bfloat16" for r in arm)
    assert all(dataclasses.replace(r, dtype="float32").key() in replication for r in arm)


def scorer_of(family: str, head: str):
    model = without_dropout(tiny_model(family, head=head, num_labels=2))
    return LabelWordHead(model, LABEL_IDS) if head == "lm" else ClassificationHead(model)


class CheckedAdamW(RowSparseAdamW):
    """The training's optimizer, checked at every step: the weights, their gradients and the optimizer's moments
    must be float32 (mixed precision: bf16 only inside the forward and backward)."""

    steps = 0

    def step(self):
        for p in self.parameters:
            assert p.dtype == torch.float32
            assert p.grad is None or p.grad.dtype == torch.float32
        super().step()
        moments = [(s["exp_avg"], s["exp_avg_sq"]) for s in self.state.values()]
        moments += [(s.exp_avg, s.exp_avg_sq) for s in self.rows.values()]
        assert moments and all(m.dtype == v.dtype == torch.float32 for m, v in moments)
        CheckedAdamW.steps += 1


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("head", ["lm", "cls"])
def test_bf16_training_and_evaluation_run_or_fall_back(family, head, monkeypatch, one_thread):
    scorer = scorer_of(family, head)
    precision = check_precision(Precision("bfloat16", "bfloat16", "asked"), scorer, PROMPTS, 0, CPU, trains=True)
    if precision.used == "float32":  # a family that misbehaves in bf16 says why
        assert "float32 instead" in precision.reason
        return
    assert precision.gap_to_float32 is not None and all(p.grad is None for p in scorer.parameters())
    monkeypatch.setattr("layercut.adapt.training.RowSparseAdamW", CheckedAdamW)
    CheckedAdamW.steps = 0
    linear_outputs = []
    first_linear = next(m for m in find_blocks(scorer.model).blocks[0].modules() if isinstance(m, (nn.Linear, Conv1D)))
    first_linear.register_forward_hook(lambda module, args, output: linear_outputs.append(output.dtype))
    labels = torch.tensor([0, 1, 1, 0])

    def batches(epoch):
        yield [(make_batch(PROMPTS, 0), labels, None)]

    def dev():
        scores = score_prompts(scorer, PROMPTS, 0, 4, CPU, torch.bfloat16)
        assert all(torch.isfinite(torch.tensor(scores.probabilities)).flatten())
        return scores.accuracy(labels.tolist()), scores.loss(labels.tolist())

    outcome = train(
        scorer,
        batches,
        dev,
        Budget(steps=3, eval_every=3, patience=0),
        learning_rate=1e-3,
        weight_decay=0.0,
        gradient_accumulation=1,
        autocast_dtype=torch.bfloat16,
        show_progress=False,
    )
    assert not outcome.diverged and CheckedAdamW.steps == 3
    assert torch.bfloat16 in linear_outputs  # the forward did run in bf16
    assert all(p.dtype == torch.float32 for p in scorer.parameters())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = scorer(make_batch(PROMPTS, 0))
    assert logits.dtype == torch.float32  # label-word logits and the classification head in float32


def test_cpu_bf16_attention_is_float32_where_gradients_are_taken_and_bf16_elsewhere(monkeypatch):
    """autocast_region on a CPU: the attention's inputs are float32 in a forward that trains (its bf16 backward is the
    slower), bf16 in a no-grad forward; transformers' sdpa registration is itself again on leaving."""
    from transformers import AttentionInterface

    from layercut.settings.precision import autocast_region

    scorer = scorer_of("llama", "lm")
    attention_dtypes = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording_sdpa(*args, **kwargs):
        output = sdpa(*args, **kwargs)
        attention_dtypes.append(output.dtype)  # what it computed in: autocast casts the inputs below this call
        return output

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording_sdpa)
    registered = AttentionInterface()["sdpa"]
    with autocast_region(CPU, torch.bfloat16):
        scorer(make_batch(PROMPTS, 0)).sum().backward()
        with torch.no_grad():
            scorer(make_batch(PROMPTS, 0))
    with torch.no_grad(), autocast_region("cpu", None):
        scorer(make_batch(PROMPTS, 0))
    layers = len(find_blocks(scorer.model).blocks)
    assert attention_dtypes == [torch.float32] * layers + [torch.bfloat16] * layers + [torch.float32] * layers
    assert AttentionInterface()["sdpa"] is registered
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in scorer.parameters())


def test_a_family_failing_in_bf16_falls_back_with_the_reason():
    scorer = scorer_of("llama", "lm")

    def refuse(module, args, output):
        if output.dtype == torch.bfloat16:
            raise RuntimeError("\"addmm\" not implemented for 'BFloat16'")

    next(m for m in find_blocks(scorer.model).blocks[0].modules() if isinstance(m, nn.Linear)).register_forward_hook(
        refuse
    )
    precision = check_precision(Precision("auto", "bfloat16", "CPU has AVX512-BF16"), scorer, PROMPTS, 0, CPU, True)
    assert precision.used == "float32" and precision.resolved == "bfloat16"
    assert "LlamaForCausalLM fails in bfloat16 (RuntimeError" in precision.reason
    assert precision.record()["asked"] == "auto"


@pytest.mark.parametrize("family", ["llama", "gemma3", "bloom"])
def test_packing_compares_bf16_with_bf16(family):
    """Packed bf16 scores against whole-prompt bf16 scores, within the bf16 tolerance: the families that pack in
    float32 pack in bf16, and those that cannot (Gemma 3's sliding window, BLOOM's ALiBi) still cannot."""
    scorer = scorer_of(family, "lm").eval()
    fp32 = packing_problem(scorer, PROMPTS, PREFIX, 0, CPU)
    bf16 = packing_problem(scorer, PROMPTS, PREFIX, 0, CPU, torch.bfloat16)
    assert (fp32 is None) == (bf16 is None) == (family == "llama"), (fp32, bf16)
    if family == "gemma3":
        assert "(bf16; allowed" in bf16


def test_a_bf16_run_records_its_precision(tiny_llama_folder, review_file):
    fp32 = run(tiny_config(tiny_llama_folder, review_file), show_progress=False).record
    bf16 = run(tiny_config(tiny_llama_folder, review_file, dtype="bfloat16"), show_progress=False).record
    assert fp32["precision"] == {
        "asked": "auto",
        "resolved": "float32",
        "used": "float32",
        "reason": "LAYERCUT_CPU_BF16=0: the CPU is taken to have no native bfloat16",
    }
    assert bf16["precision"]["used"] == "bfloat16" and bf16["precision"]["gap_to_float32"] < 0.05
    assert bf16["key"] != fp32["key"]
    sharing = bf16["prefix_sharing"]
    assert sharing["evaluation"] and sharing["training_packed"], sharing["reasons"]
    assert 0 < sharing["tolerance"] < BF16_SHARING_TOLERANCE  # 2^-5 of the tiny model's scores (below 1)
    assert "tolerance" not in fp32["prefix_sharing"]
    assert bf16["metrics"]["num_examples"] == fp32["metrics"]["num_examples"]


def test_the_one_pass_profile_in_bf16_gives_the_separate_bf16_runs(tiny_llama_folder, review_file, one_thread):
    from layercut.slim.profile import profile_depths

    config = tiny_config(tiny_llama_folder, review_file, method="icl", eval_batch_size=3, dtype="bfloat16")
    profile = profile_depths(config)
    assert profile.precision.used == "bfloat16"
    for depth in profile.depths:
        separate = run(dataclasses.replace(config, layers=f"first:{depth}"), show_progress=False).record
        assert separate["precision"]["used"] == "bfloat16"
        assert profile.scores[depth].predictions == separate["predictions"]["predicted"]
        for ours, theirs in zip(profile.scores[depth].probabilities, separate["predictions"]["probabilities"]):
            assert ours == pytest.approx(theirs, abs=1e-4)  # theirs rounded to 5 places


def test_the_task_ranking_runs_in_bf16_under_its_own_cache_key(
    tiny_llama_folder, review_file, tmp_path, monkeypatch, one_thread
):
    from layercut.importance import task as task_strategy
    from layercut.model.load import load_model
    from layercut.settings.task import make_run_splits, resolve_task

    monkeypatch.setenv("LAYERCUT_CACHE", str(tmp_path))
    rankings = {}
    for dtype in ("float32", "bfloat16"):
        config = tiny_config(
            tiny_llama_folder, review_file, layers="all", keep_strategy="task", keep_count=2, method="icl", dtype=dtype
        )
        calibration = task_strategy.TaskCalibration(
            config, resolve_task(config), make_run_splits(config, resolve_task(config))
        )
        rankings[dtype] = task_strategy.rank_by_task(
            load_model(str(tiny_llama_folder), "all"), calibration, progress=False
        )
    assert len(list((tmp_path / "rankings").glob("*.json"))) == 2  # one cached ranking per precision
    assert "precision" not in rankings["float32"].calibration  # float32 rankings as before
    bf16 = rankings["bfloat16"].calibration
    assert bf16["precision"]["used"] == "bfloat16" and bf16["packing"].startswith("packed")
    assert sorted(rankings["bfloat16"].task_order) == [0, 1, 2, 3]
    assert bf16["full_loss"] == pytest.approx(rankings["float32"].calibration["full_loss"], rel=0.05)


def test_eval_in_bf16_keeps_the_head_in_float32_and_records_it(tiny_llama_folder, capsys, one_thread):
    from layercut.evaluate.request import EvaluationRequest, evaluate_loaded
    from layercut.model.load import load_model
    from tests.tiny_models import CALIBRATION_TEXTS

    text = " ".join(CALIBRATION_TEXTS * 3)
    request = EvaluationRequest(perplexity="inline", compare_full=True, window=32, stride=16)
    request = dataclasses.replace(request, text=text)
    full = load_model(str(tiny_llama_folder), "all")
    cut = load_model(str(tiny_llama_folder), "first:2")
    records = {
        dtype: evaluate_loaded(cut, request, full.model, resolve_precision(dtype, "cpu"))
        for dtype in ("float32", "bfloat16")
    }
    assert records["float32"]["precision"]["used"] == "float32"
    assert records["bfloat16"]["precision"]["used"] == "bfloat16"
    ours, theirs = records["bfloat16"]["intrinsic"], records["float32"]["intrinsic"]
    assert ours["perplexity"] == pytest.approx(theirs["perplexity"], rel=0.02)
    assert ours["full_perplexity"] == pytest.approx(theirs["full_perplexity"], rel=0.02)
    plain = evaluate_loaded(cut, request, full.model)  # no precision: float32, as before
    assert "precision" not in plain
    assert {**plain["intrinsic"], "seconds": 0} == {**theirs, "seconds": 0}
    assert full.model.get_output_embeddings().forward.__func__ is nn.Linear.forward  # the head unpatched after


def test_status_counts_the_float32_runs_of_a_store_written_before_precision(monkeypatch):
    from layercut.cli.sweep import as_stored

    monkeypatch.setenv("LAYERCUT_CPU_BF16", "1")  # `auto` now resolves to bf16 here
    runs = [RunConfig(layers="first:1"), RunConfig(layers="first:2"), RunConfig(layers="first:3")]
    float32 = [dataclasses.replace(r, dtype="float32") for r in runs]
    records = [
        {"key": float32[0].key(), "status": "complete"},  # stored before precision was recorded
        {"key": float32[1].key(), "status": "complete", "precision": {"resolved": "float32"}},
        {"key": runs[2].key(), "status": "complete", "precision": {"resolved": "bfloat16"}},
    ]
    stored = as_stored(runs, records)
    assert stored == [float32[0], runs[1], runs[2]]  # a run recorded as float32 is not taken for `auto`'s bf16 one
