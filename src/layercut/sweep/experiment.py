"""An experiment file: a list per dimension, expanded into one `RunConfig` per combination.

    description: what the sweep asks
    models: [smollm2-135m]          # or {name: gpt2-xl, layers: [1, 2, 12, 24, 48]}: its own depths
    layers: [1, 2, all]             # a number K means first:K (the paper's top-layer removal)
    strategies: [bi, greedy]        # optional: choose keep_counts layers by importance instead
    keep_counts: [2, 4]
    tasks: [trec, mr]               # or {name: reviews, data: reviews.jsonl, template: ..., label_words: ...}
    heads: [lm, cls]
    methods: [full, icl]
    demos: [fixed]
    shots: [16]
    seeds: [0, 42, 421]
    arms:                           # optional: named variants, each run of the grid once per arm
      plain: {}
      bridge: {bridge: lstsq}         # settings, method or keep_strategy that the arm fixes
    settings:                       # any other RunConfig field, shared by every run
      epochs: 3
      learning_rate: [5.0e-5, 1.0e-4]   # a list is tried in full; the report picks per cell on dev accuracy
    evaluations:                    # optional: lm-eval tasks, perplexity... per depth (see layercut.evaluate.per_depth)
      - {lm_eval: [layercut_trec], limit: 100}

A missing dimension takes RunConfig's default. Relative paths (models, task files, data files) are
relative to the experiment file. A value wrong on its own (an unknown head, a task typo, `first:0`)
is an error. A combination that cannot run (head cls with method icl, first:48 of a 24-layer model)
is skipped with a warning, so one file can span models and methods.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from layercut.errors import LayercutError
from layercut.evaluate.per_depth import parse_evaluations
from layercut.importance.strategies import check_strategy
from layercut.model.layers import LayerSelection, parse_index_spec
from layercut.model.sources import Trust, check_model_source, context_length, load_tokenizer, resolve_source
from layercut.prompting.label_words import resolve_label_words
from layercut.settings.declare import coerce
from layercut.settings.run_config import DEMO_POLICIES, RunConfig, ignored_settings
from layercut.settings.task import resolve_task
from layercut.sweep.grid import DIMENSIONS, SETTINGS
from layercut.sweep.plan import model_facts
from layercut.tasks import load_examples, make_splits
from layercut.tasks.options import TASK_OPTION_NAMES
from layercut.tasks.splits import ALL
from layercut.text_files import read_utf8

KEYS = ("description", *DIMENSIONS, "arms", "settings", "evaluations")
_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


@dataclass(frozen=True)
class Experiment:
    runs: tuple[RunConfig, ...]
    warnings: tuple[str, ...]  # the skipped cells, one line per reason
    text: str  # the file as written, stored next to its results
    source: str
    evaluations: tuple = ()  # `EvaluationRequest`s, run per depth after the runs (not part of the key)

    @property
    def key(self) -> str:
        """The experiment's identity: its set of runs (comments, order and spelling do not matter)."""
        return hashlib.sha256("\n".join(sorted(r.key() for r in self.runs)).encode()).hexdigest()[:16]


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    try:
        text = read_utf8(path, "experiment file")
    except OSError as error:
        raise LayercutError(f"cannot read experiment file '{path}' ({error.strerror}): check the path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise LayercutError(f"'{path}' is not valid YAML ({problem}{at}): fix the syntax") from None
    runs, warnings = expand(data, path.parent.resolve(), str(path))
    evaluations = parse_evaluations(data.get("evaluations"), path.parent.resolve(), str(path))
    _check_evaluation_windows(evaluations, runs, str(path))
    return Experiment(tuple(runs), tuple(warnings), text, str(path), evaluations)


def expand(data, base: Path, where: str) -> tuple[list[RunConfig], list[str]]:
    """All runs of the grid, without duplicates, and a warning per reason cells were skipped."""
    if not isinstance(data, dict) or not data:
        raise LayercutError(f"{where}: expected a mapping of lists (models, layers, tasks, ...): see configs/demo.yaml")
    unknown = sorted(set(data) - set(KEYS), key=str)
    if unknown:
        raise LayercutError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(KEYS)}")
    settings = _settings_grid(data.get("settings"), where)
    arms = _arms(data.get("arms"), where)
    models = [_model(entry, base, where) for entry in _values(data, "models", where)]
    default_layers = [] if "strategies" in data and "layers" not in data else _values(data, "layers", where)
    strategy_choices = _strategy_choices(data, where)
    tasks = [_task(entry, base, where) for entry in _values(data, "tasks", where)]
    heads, methods, demos, shots, seeds = (
        _checked(data, key, where) for key in ("heads", "methods", "demos", "shots", "seeds")
    )
    if ALL in shots and not all(setting.get("dev_size") or setting.get("dev_shots") for setting in settings):
        raise LayercutError(
            f"{where}: shots 'all' trains on every training example: set the dev set apart under settings (dev_size: N)"
        )

    skipped: Counter[str] = Counter()
    runs: dict[str, RunConfig] = {}
    trust = Trust(remote_code=any(setting.get("trust_remote_code") for setting in settings))
    for model, model_layers in models:
        for selection in _selections(
            model, default_layers if model_layers is None else model_layers, strategy_choices, where, skipped, trust
        ):
            for (task, options), head, method, demo, shot, seed, setting, arm in itertools.product(
                tasks, heads, methods, demos, shots, seeds, settings, arms
            ):
                try:
                    fields = dict(
                        model=model,
                        task=task,
                        task_options=options,
                        head=head,
                        method=arm.get("method", method),
                        demos=demo,
                        shots=shot,
                        seed=seed,
                        **selection,
                    )
                    fields.update(_relevant(setting, settings[0], fields["method"]), **arm)
                    config = RunConfig(**fields)
                except LayercutError as error:
                    skipped[str(error)] += 1
                    continue
                runs.setdefault(config.key(), config)
    warnings = [f"skipped {n} grid cell(s): {reason}" for reason, n in skipped.items()]
    if not runs:
        reason = f": {warnings[0]}" if warnings else ""
        raise LayercutError(f"{where}: the grid is empty{reason}; list values every run can use")
    _check_runs_can_start(list(runs.values()), where)
    return list(runs.values()), warnings


def _check_runs_can_start(runs: list[RunConfig], where: str) -> None:
    """What would otherwise fail only when a run starts: its model's files (pickle, remote code, no
    weights), its teacher's, its task's label words on its tokenizer, and its splits (K, dev and test
    sizes the task's data cannot hold; Hub data is read only by the run)."""
    for model, pickle, remote_code in sorted({(r.model, r.allow_pickle, r.trust_remote_code) for r in runs}):
        check_model_source(model, Trust(pickle=pickle, remote_code=remote_code))
    from layercut.healing.distill import check_teacher  # torch

    for teacher in sorted({r.teacher for r in runs if r.teacher}):
        with _prefixed(where):
            check_teacher(teacher)
    specs, data, tokenizers, words = {}, {}, {}, set()
    for run in runs:
        task = (run.task, json.dumps(run.task_options, sort_keys=True))
        if task not in specs:
            specs[task] = resolve_task(run)
            data[task] = None if specs[task].source == "hub" else load_examples(specs[task])
        if (run.model, task, run.label_word_policy) not in words:
            words.add((run.model, task, run.label_word_policy))
            if (run.model, run.trust_remote_code) not in tokenizers:
                tokenizers[run.model, run.trust_remote_code] = _tokenizer(run)
            tokenizer = tokenizers[run.model, run.trust_remote_code]
            if tokenizer is not None:
                with _prefixed(f"{where}: task '{specs[task].name}' on {run.model}"):
                    resolve_label_words(tokenizer, specs[task].label_words, run.label_word_policy)
        if data[task] is None:
            continue
        with _prefixed(where):
            make_splits(
                data[task], run.shots, run.seed, dev_shots=run.dev_shots, dev_size=run.dev_size, test_size=run.test_size
            )


def _tokenizer(run: RunConfig):
    """The run's tokenizer (no weights load); None for a Hub model unreadable here, which the run itself reports."""
    try:
        return load_tokenizer(run.model, Trust(pickle=run.allow_pickle, remote_code=run.trust_remote_code))
    except LayercutError:
        if resolve_source(run.model).kind == "hub":
            return None
        raise


def _check_evaluation_windows(evaluations: tuple, runs: list[RunConfig], where: str) -> None:
    """A perplexity window or stride a model cannot take fails now, not after the runs (its config says its context)."""
    for model, remote_code in sorted({(r.model, r.trust_remote_code) for r in runs}):
        facts = model_facts(model, Trust(remote_code=remote_code))
        for request in evaluations if facts is not None else ():
            if request.perplexity is not None:
                with _prefixed(f"{where}: evaluations"):
                    request.windows(context_length(facts.config), model)


@contextlib.contextmanager
def _prefixed(where: str):
    try:
        yield
    except LayercutError as error:
        raise LayercutError(f"{where}: {error}") from None


def _values(data: dict, key: str, where: str) -> list:
    """A dimension's values: a list, a single value, or (when absent) RunConfig's default."""
    if key not in data:
        return [getattr(RunConfig(), DIMENSIONS[key])]
    values = data[key] if isinstance(data[key], list) else [data[key]]
    if not values:
        raise LayercutError(f"{where}: '{key}' is empty: list at least one value, or leave it out for the default")
    return values


def _checked(data: dict, key: str, where: str) -> list:
    """Values of a plain dimension, each checked alone, so that a typo is an error rather than a skipped cell."""
    field = DIMENSIONS[key]
    values = [_coerce(field, value, f"{where}: {key}") for value in _values(data, key, where)]
    for value in values:
        if value != ALL:  # shots: all needs the dev set's size, a setting: checked with the settings in expand()
            RunConfig(**{field: value})
        if field == "demos":
            if value not in DEMO_POLICIES:
                raise LayercutError(
                    f"{where}: unknown demonstration policy '{value}'; use one of {', '.join(DEMO_POLICIES)}"
                )
    return values


def _strategy_choices(data: dict, where: str) -> list[dict]:
    """strategies x keep_counts: layers chosen by importance (see `layercut rank`)."""
    if ("strategies" in data) != ("keep_counts" in data):
        raise LayercutError(f"{where}: 'strategies' and 'keep_counts' go together: give both (or use 'layers')")
    if "strategies" not in data:
        return []
    strategies = [check_strategy(str(s)) for s in _values(data, "strategies", where)]
    counts = [_coerce("keep_count", c, f"{where}: keep_counts") for c in _values(data, "keep_counts", where)]
    return [{"keep_strategy": s, "keep_count": k} for s in strategies for k in counts]


def _selections(
    model: str, layers: list, strategy_choices: list[dict], where: str, skipped: Counter, trust: Trust
) -> list[dict]:
    """The layer choices for one model: its `layers` entries, then the strategy choices; those the
    model's depth cannot hold are skipped (its depth is read from its config, without weights)."""
    choices = []
    for entry in layers:
        is_count = isinstance(entry, int) and not isinstance(entry, bool)
        text = f"first:{entry}" if is_count else _coerce("layers", entry, f"{where}: layers")
        _check_layers(text, where)
        choices.append({"layers": text})
    choices += strategy_choices
    facts = model_facts(model, trust)  # a missing local model or an alias typo is an error here
    if facts is None:  # not readable here (an unknown Hub id offline): the run itself will say
        return choices
    kept = []
    for choice in choices:
        try:
            facts.kept_count(RunConfig(**choice))
            kept.append(choice)
        except LayercutError as error:
            skipped[f"{model}: {error}"] += 1
    return kept


def _check_layers(text: str, where: str) -> None:
    """A layer choice no model can hold (malformed, or keeping no layer) is an error, not a skipped cell."""
    selection = LayerSelection.parse(text)
    least = 0 if selection.mode == "first" else 1  # first:0 (a count of 0) is depth 0, the curve's floor
    if selection.mode in ("first", "last") and selection.count < least:
        raise LayercutError(f"{where}: layers '{text}' keeps no layer: write {selection.mode}:K with K >= {least}")
    if selection.mode in ("keep", "drop"):
        parse_index_spec(selection.spec)


def _model(entry, base: Path, where: str) -> tuple[str, list | None]:
    if isinstance(entry, dict):
        unknown = sorted(set(entry) - {"name", "layers"})
        if "name" not in entry or unknown:
            raise LayercutError(f"{where}: a model entry takes 'name' and optionally 'layers', got {sorted(entry)}")
        layers = entry.get("layers")
        layers = layers if isinstance(layers, list) or layers is None else [layers]
        if layers == []:
            raise LayercutError(f"{where}: model '{entry['name']}' has an empty 'layers' list: list at least one")
        return _local_path(str(entry["name"]), base), layers
    return _local_path(_coerce("model", entry, f"{where}: models"), base), None


def _task(entry, base: Path, where: str) -> tuple[str, dict]:
    """A task name or YAML file, or a data-file task: {name, data, template, label_words, ...}."""
    if isinstance(entry, dict):
        options = {k: v for k, v in entry.items() if k != "name"}
        unknown = sorted(set(options) - set(TASK_OPTION_NAMES))
        if "name" not in entry or unknown:
            raise LayercutError(
                f"{where}: a task entry takes 'name' and task options ({', '.join(TASK_OPTION_NAMES)}), "
                f"got {sorted(entry)}"
            )
        for key in ("data", "test_data"):
            if options.get(key):
                options[key] = str((base / Path(options[key]).expanduser()).resolve())
        name = str(entry["name"])
    else:
        name, options = _coerce("task", entry, f"{where}: tasks"), {}
        if name.endswith((".yaml", ".yml")):
            name = str((base / Path(name).expanduser()).resolve())
    resolve_task(RunConfig(task=name, task_options=options))  # an unknown task or unreadable data file: an error now
    return name, options


def _local_path(spec: str, base: Path) -> str:
    """A model given as a path relative to the experiment file; anything else (alias, Hub id) as is."""
    candidate = base / Path(spec).expanduser()
    return str(candidate.resolve()) if spec.startswith((".", "/", "~")) or candidate.exists() else spec


ARM_FIELDS = ("method", "keep_strategy")  # besides the settings, what an arm may fix


def _arms(arms, where: str) -> list[dict]:
    """The arms' fixed values ([{}] without arms): a mapping of arm name -> {field: value}."""
    if arms is None:
        return [{}]
    if not isinstance(arms, dict) or not arms or not all(isinstance(a, dict) for a in arms.values()):
        raise LayercutError(
            f"{where}: 'arms' must map arm names to settings, e.g. {{plain: {{}}, bridge: {{bridge: lstsq}}}}"
        )
    checked = []
    for name, values in arms.items():
        unknown = sorted(set(values) - set(SETTINGS) - set(ARM_FIELDS), key=str)
        if unknown:
            raise LayercutError(
                f"{where}: arm '{name}' sets unknown field(s) {', '.join(map(str, unknown))}; "
                f"allowed: {', '.join(ARM_FIELDS + SETTINGS)}"
            )
        checked.append(
            {
                field: value if field in ARM_FIELDS else _coerce(field, value, f"{where}: arms")
                for field, value in values.items()
            }
        )
    return checked


def _settings_grid(settings, where: str) -> list[dict]:
    """Every combination of the settings given as lists (the others are shared by all)."""
    if settings is None:
        return [{}]
    if not isinstance(settings, dict):
        raise LayercutError(f"{where}: 'settings' must be a mapping of RunConfig fields, e.g. {{epochs: 3}}")
    unknown = sorted(set(settings) - set(SETTINGS), key=str)
    if unknown:
        raise LayercutError(
            f"{where}: unknown setting(s) {', '.join(map(str, unknown))}; allowed: {', '.join(SETTINGS)}"
        )
    lists = {}
    for name, value in settings.items():
        values = value if isinstance(value, list) else [value]
        if not values:
            raise LayercutError(f"{where}: setting '{name}' is an empty list: give a value or a list of values to try")
        lists[name] = [_coerce(name, v, f"{where}: settings") for v in values]
    grid = [dict(zip(lists, combination)) for combination in itertools.product(*lists.values())]
    for setting in grid:
        try:
            RunConfig(**setting)  # e.g. a negative learning rate: an error for the whole file
        except LayercutError as error:
            raise LayercutError(f"{where}: settings {setting}: {error}") from None
    return grid


def _relevant(setting: dict, first: dict, method: str) -> dict:
    ignored = ignored_settings(method)
    return {name: first[name] if name in ignored else value for name, value in setting.items()}


def _coerce(field: str, value, where: str):
    return coerce(_FIELDS[field], value, where)
