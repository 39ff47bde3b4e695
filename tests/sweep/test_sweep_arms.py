"""Experiment arms: named variants of one grid (e.g. the repairs of configs/healing.yaml)."""

from pathlib import Path

import pytest

from layercut.errors import LayercutError
from layercut.sweep.experiment import expand, load_experiment

ROOT = Path(__file__).resolve().parents[2]


def grid(**extra):
    return {"models": ["smollm2-135m"], "layers": [1], "tasks": ["trec"], "methods": ["full"], **extra}


def test_each_arm_repeats_the_grid_with_its_own_values():
    arms = {
        "plain": {},
        "icl": {"method": "icl"},
        "bridge": {"bridge": "lstsq", "freeze_embeddings": True},
        "last1": {"train_layers": "last:1"},
    }
    runs, warnings = expand(grid(arms=arms, seeds=[0, 1]), ROOT, "test")
    assert len(runs) == 8 and not warnings
    by_arm = {(r.method, r.bridge, r.train_layers, r.freeze_embeddings) for r in runs}
    assert by_arm == {
        ("full", None, "all", False),
        ("icl", None, "all", False),
        ("full", "lstsq", "all", True),
        ("full", None, "last:1", False),
    }


@pytest.mark.parametrize(
    "arms, message",
    [
        ({"x": {"colour": 1}}, "arm 'x' sets unknown field"),
        ([{"bridge": "lstsq"}], "'arms' must map arm names to settings"),
        ({"x": {"freeze_embeddings": "yes"}}, "freeze_embeddings 'yes' is not true or false"),
    ],
)
def test_bad_arms_are_errors(arms, message):
    with pytest.raises(LayercutError, match=message):
        expand(grid(arms=arms), ROOT, "test")


def test_the_healing_experiment_expands():
    experiment = load_experiment(ROOT / "configs" / "healing.yaml")
    arms = {(r.keep_strategy, r.method, r.bridge, r.train_layers, r.teacher) for r in experiment.runs if r.keep_count}
    assert len(arms) == 9 and {r.task for r in experiment.runs} == {"trec", "mr"}
    assert {r.seed for r in experiment.runs} == {0, 42, 421} and {r.keep_count for r in experiment.runs} == {1, 2, 4, 8}
    # training the last 2 blocks of a 1-layer model is skipped when the grid is planned, not failed when run
    assert not any(r.keep_count == 1 and r.train_layers == "last:2" for r in experiment.runs)
    assert experiment.warnings == (
        "skipped 6 grid cell(s): train_layers: last:2 asks for more blocks than the 1 kept: "
        "choose N from 1 to 1, or all",
    )
