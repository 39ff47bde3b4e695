"""The settings floor: declared once, below every stage that reads them, and the run flags made from them."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from layercut.cli.main import build_parser
from layercut.cli.run import config_from_args
from layercut.errors import LayercutError
from layercut.settings.declare import GROUPS, coerce
from layercut.settings.methods import REGISTRY
from layercut.settings.run_config import METHODS, RunConfig, ignored_settings

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "layercut"
# The stages a run is made of, and the floors under them: none may reach up into the run (layercut.run).
LOWER_STAGES = ("settings", "tasks", "model", "prompting", "adapt", "importance", "healing", "evaluate", "baselines")
FIELDS = [f for f in dataclasses.fields(RunConfig) if f.metadata["flag"]]


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _lower_stage_files() -> list[Path]:
    files = [path for stage in LOWER_STAGES for path in sorted((PACKAGE / stage).rglob("*.py"))]
    return files + [path for path in sorted(PACKAGE.glob("*.py")) if path.name not in ("__init__.py", "__main__.py")]


def test_no_lower_stage_imports_the_run_package():
    files = _lower_stage_files()
    assert len(files) > 40  # the walk found the stages
    offending = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in _imported_modules(path) if name == "layercut.run" or name.startswith("layercut.run.")
        )
        for path in files
    }
    assert {path: names for path, names in offending.items() if names} == {}


def test_the_import_walk_sees_an_import_of_the_run_package(tmp_path):
    """The check above can fail: a function-level import of the run package is found."""
    source = tmp_path / "stage.py"
    source.write_text("def f():\n    from layercut.run.pipeline import run\n    return run\n")
    assert "layercut.run.pipeline" in _imported_modules(source)


def _run_parser():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return subparsers.choices["run"]


def test_every_setting_has_its_flag_with_help_and_no_flag_is_listed_by_hand():
    actions = {action.dest: action for action in _run_parser()._actions}
    for declared in FIELDS:
        action = actions[declared.name]
        dashed = declared.name.replace("_", "-")
        assert f"--{dashed}" in action.option_strings or f"--no-{dashed}" in action.option_strings, declared.name
        assert action.help, declared.name
        if declared.metadata["choices"]:
            assert tuple(action.choices) == declared.metadata["choices"]
    source = (PACKAGE / "cli" / "run.py").read_text(encoding="utf-8")
    hand_listed = [
        f.name
        for f in dataclasses.fields(RunConfig)
        if f'"--{f.name.replace("_", "-")}"' in source or f"'--{f.name.replace('_', '-')}'" in source
    ]
    assert hand_listed == []


def test_an_error_names_a_setting_as_python_and_files_write_it_and_the_command_line_as_its_flag():
    """The run settings' errors name them with `setting()`: str() gives the field (and `field: value`), the CLI's
    spelling the flag that `layercut run` really has (`--field-name value`)."""
    from layercut.errors import as_flag, as_name

    with pytest.raises(LayercutError) as raised:
        RunConfig(learning_rate=0.0)
    assert str(raised.value) == "learning_rate must be > 0 and finite, got 0.0: e.g. learning_rate: 5e-5"
    assert raised.value.spelled(as_flag) == "--learning-rate must be > 0 and finite, got 0.0: e.g. --learning-rate 5e-5"
    assert (
        as_flag("allow_pickle", "true") == "--allow-pickle" and as_name("allow_pickle", "true") == "allow_pickle: true"
    )
    options = {option for action in _run_parser()._actions for option in action.option_strings}
    for bad in (dict(keep_strategy="first"), dict(method="lora", train_layers="last:1"), dict(weight_decay=-1.0)):
        with pytest.raises(LayercutError) as raised:
            RunConfig(**bad)
        flags = [word.rstrip(":,)") for word in raised.value.spelled(as_flag).split() if word.startswith("--")]
        assert flags and set(flags) <= options, flags


def test_a_flag_given_becomes_the_setting_and_one_not_given_keeps_the_default():
    args = _run_parser().parse_args(
        [
            "--out",
            "x",
            "--lr",
            "1e-4",
            "--shots",
            "all",
            "--dev-size",
            "50",
            "--no-share-prefix",
            "--freeze-embeddings",
            "--layers",
            "first:2",
        ]
    )
    config = config_from_args(args)
    assert (config.learning_rate, config.shots, config.dev_size, config.share_prefix) == (1e-4, "all", 50, False)
    assert config.freeze_embeddings and config.layers == "first:2"
    untouched = {f.name for f in dataclasses.fields(RunConfig)} - {
        "learning_rate",
        "shots",
        "dev_size",
        "share_prefix",
        "freeze_embeddings",
        "layers",
    }
    assert {name: getattr(config, name) for name in untouched} == {
        name: getattr(RunConfig(), name) for name in untouched
    }
    assert config_from_args(_run_parser().parse_args(["--out", "x", "--learning-rate", "2e-4"])).learning_rate == 2e-4


def test_every_setting_belongs_to_a_declared_group_and_the_method_registry_names_every_method():
    assert {f.metadata["group"] for f in dataclasses.fields(RunConfig)} <= set(GROUPS)
    assert METHODS == tuple(REGISTRY)
    assert {name for name in METHODS if RunConfig(method=name).trains} == {"full", "lora", "prefix"}
    assert "learning_rate" in ignored_settings("icl") and "lora_rank" in ignored_settings("icl")
    assert "lora_rank" in ignored_settings("full") and "learning_rate" not in ignored_settings("full")
    assert ignored_settings("lora").isdisjoint({"learning_rate", "lora_rank", "lora_alpha"})
    assert "method" not in set().union(*(ignored_settings(name) for name in METHODS))


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("learning_rate", "5e-5", 5e-5),
        ("learning_rate", 1, 1.0),
        ("epochs", 3, 3),
        ("dev_size", None, None),
        ("shots", "all", "all"),
        ("shots", 8, 8),
        ("share_prefix", False, False),
        ("layers", 4, "4"),
    ],
)
def test_yaml_values_become_the_settings_type(name, value, expected):
    declared = RunConfig.__dataclass_fields__[name]
    assert coerce(declared, value, "exp.yaml") == expected


@pytest.mark.parametrize(
    "name, value",
    [("epochs", 2.5), ("learning_rate", "fast"), ("share_prefix", "yes"), ("epochs", None), ("epochs", True)],
)
def test_a_yaml_value_of_the_wrong_type_is_one_line_naming_the_setting(name, value):
    with pytest.raises(LayercutError, match=rf"^exp.yaml: {name} .* is not .*: write e.g. "):
        coerce(RunConfig.__dataclass_fields__[name], value, "exp.yaml")
