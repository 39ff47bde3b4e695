"""The `task` strategy: greedy layer removal scored by the label-word loss on the run's dev examples."""

import pytest
import torch

from layercut.adapt.evaluation import score_prompts
from layercut.adapt.scorers import LabelWordHead
from layercut.importance import task as task_strategy
from layercut.importance.ranking import LayerRanking
from layercut.importance.strategies import kept_layers
from layercut.model.load import cut_layers, load_model
from layercut.run.pipeline import run
from layercut.prompting.build import build_prompting
from layercut.settings.task import make_run_splits, resolve_task
from layercut.padding import collate_padded
from tests.cli import assert_one_line_error, run_cli
from tests.run.test_run import tiny_config


def test_task_strategy_keeps_the_layers_greedy_task_removal_reaches_last(
    tiny_llama_folder, review_file, tmp_path, monkeypatch, one_thread
):
    monkeypatch.setenv("LAYERCUT_CACHE", str(tmp_path / "cache"))
    config = tiny_config(tiny_llama_folder, review_file, layers="all", keep_strategy="task", keep_count=2, method="icl")
    record = run(config, show_progress=False).record
    order = record["layers"]["ranking"]
    assert record["layers"]["strategy"] == "task" and len(record["layers"]["kept"]) == 2
    assert order["calibration"]["objective"] == "label-word loss" and order["calibration"]["examples"] == 8
    rankings = list((tmp_path / "cache" / "rankings").glob("*.json"))
    assert len(rankings) == 1
    saved = LayerRanking.load(rankings[0])
    assert sorted(saved.task_order) == [0, 1, 2, 3] and len(saved.task_loss) == 3
    assert record["layers"]["kept"] == sorted(saved.task_order[-2:]) == kept_layers("task", 2, 4, saved)
    assert saved.removal_loss is None  # the task loss is not the next-token removal loss


def test_the_task_order_is_computed_once_and_reused(tiny_llama_folder, review_file, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("LAYERCUT_CACHE", str(tmp_path))
    scans = []
    real = task_strategy.removal_scan
    monkeypatch.setattr(task_strategy, "removal_scan", lambda *a, **k: scans.append(1) or real(*a, **k))
    for count in (1, 3):
        config = tiny_config(
            tiny_llama_folder, review_file, layers="all", keep_strategy="task", keep_count=count, method="icl"
        )
        assert len(run(config, show_progress=False).record["layers"]["kept"]) == count
    assert len(scans) == 1


def test_greedy_task_removal_drops_the_layer_that_hurts_the_dev_loss_least(
    tiny_llama_folder, review_file, tmp_path, monkeypatch, one_thread
):
    """Round one of the scan equals scoring every 3-layer cut directly."""
    monkeypatch.setenv("LAYERCUT_CACHE", str(tmp_path))
    config = tiny_config(tiny_llama_folder, review_file, layers="all", keep_strategy="task", keep_count=2, method="icl")
    calibration = task_strategy.TaskCalibration(
        config, resolve_task(config), make_run_splits(config, resolve_task(config))
    )
    loaded = load_model(str(tiny_llama_folder), "all")
    ranking = task_strategy.rank_by_task(loaded, calibration, progress=False)

    losses = []
    for removed in range(4):
        model = load_model(str(tiny_llama_folder), "all").model
        cut_layers(model, [i for i in range(4) if i != removed])
        words, prompts, demos = build_prompting(config, calibration.spec, calibration.splits, model, loaded.tokenizer)
        dev = calibration.splits.dev
        demos.prepare(dev)
        scores = score_prompts(
            LabelWordHead(model, words.first_ids),
            [prompts.encode(e, demos.for_query(e)) for e in dev],
            loaded.tokenizer.pad_token_id,
            8,
            torch.device("cpu"),
        )
        losses.append(scores.loss([e.label for e in dev]))
    assert ranking.task_order[0] == min(range(4), key=lambda i: (round(losses[i], 5), i))
    assert ranking.task_loss[0] == pytest.approx(min(losses), rel=1e-4)


def test_cut_by_task_needs_a_task(tiny_llama_folder, tmp_path):
    result = run_cli("cut", tiny_llama_folder, "--keep-strategy", "task", "--keep-count", "2", "-o", tmp_path / "o")
    assert_one_line_error(result, "strategy 'task' needs --calibration TASK")


def test_packed_dev_prompts_give_the_padded_scan(tiny_llama_folder, review_file, tmp_path, monkeypatch, one_thread):
    """The scan packs the dev prompts (the demonstrations once); its order and losses are the padded batches'."""
    config = tiny_config(tiny_llama_folder, review_file, layers="all", keep_strategy="task", keep_count=2, method="icl")
    calibration = task_strategy.TaskCalibration(
        config, resolve_task(config), make_run_splits(config, resolve_task(config))
    )
    scans = {}
    for name, packs in (("packed", True), ("padded", False)):
        monkeypatch.setenv("LAYERCUT_CACHE", str(tmp_path / name))
        if not packs:
            monkeypatch.setattr(task_strategy, "dev_batches", lambda *a: (_padded(*a), "padded"))
        scans[name] = task_strategy.rank_by_task(load_model(str(tiny_llama_folder), "all"), calibration, progress=False)
    assert scans["packed"].calibration["packing"].startswith("packed: ")
    assert scans["packed"].task_order == scans["padded"].task_order
    assert scans["packed"].task_loss == pytest.approx(scans["padded"].task_loss, rel=1e-5)


def _padded(model, encoded, labels, pad_id, objective, autocast_dtype=None):
    batches = []
    for start in range(0, len(encoded), task_strategy.BATCH_SIZE):
        ids, mask = collate_padded(encoded[start : start + task_strategy.BATCH_SIZE], pad_id, left=False)
        batches.append(
            task_strategy.DevBatch(ids, mask, torch.tensor(labels[start : start + task_strategy.BATCH_SIZE]))
        )
    return batches


def test_a_family_that_cannot_pack_scans_padded_batches(one_thread):
    """BLOOM builds ALiBi from a 2-D mask: its dev prompts stay in padded batches, and the record says so."""
    from tests.tiny_models import tiny_model

    model = tiny_model("bloom").eval()
    encoded = [[5, 6, 7, 8, 9, 10 + i] for i in range(10)]
    objective = task_strategy.LabelWordLoss(torch.tensor([11, 12]))
    batches, packing = task_strategy.dev_batches(model, encoded, [i % 2 for i in range(10)], 0, objective)
    assert packing.startswith("padded batches: BloomForCausalLM") and len(batches) == 2
    assert all(isinstance(batch, task_strategy.DevBatch) for batch in batches)
