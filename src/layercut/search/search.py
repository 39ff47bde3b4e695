"""`search_depth`: the smallest first-k depth whose dev accuracy keeps `settings.keep` of the full model's.

1. References on the same splits as every probe: majority class, bag-of-words, in-context learning at every depth,
   and the full model trained at every rate of the grid (the rate picked on dev).
2. Depths probed by doubling, then bisection (`order.DepthOrder`), each at every rate (`probe.probe_depth`), on dev.
3. The answer (or full depth, when no depth below it keeps the share) and the full model on test over every seed.
4. The chosen depth trained again on its best-dev seed, saved with its vocabulary trimmed to the task.

Test labels are read only after step 2 has chosen. Every probe is an ordinary run of DIR/store: a search killed
and started again trains only what is missing, and runs of stores given to `reuse` are copied, not trained."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from layercut.adapt.metrics import Metrics
from layercut.atomic import write_json_atomic
from layercut.errors import LayercutError
from layercut.errors import setting as named
from layercut.settings.run_config import RunConfig
from layercut.settings.task import make_run_splits, resolve_task
from layercut.search.answer import best_dev_seed, confirm, save_answer
from layercut.search.clock import BudgetSpent, Clock
from layercut.search.order import DepthOrder
from layercut.search.probe import Probe, Runs, layers_for, probe_depth
from layercut.search.references import bag_of_words, in_context_curve
from layercut.search.report import SEARCH_RECORD, STORE_FOLDER, model_card_lines, write_search_report
from layercut.search.settings import SearchSettings
from layercut.sweep.backends import make_backend
from layercut.sweep.plan import duration, model_facts
from layercut.sweep.store import ResultStore


@dataclass(frozen=True)
class SearchRequest:
    """What the search's store is claimed for (as a sweep claims its folder): the same request resumes it, another
    one is refused."""

    base: RunConfig
    settings: SearchSettings
    source: str = "layercut search"
    runs: tuple = ()

    @property
    def text(self) -> str:
        return yaml.safe_dump({"search": self.identity()}, sort_keys=False)

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:16]

    def identity(self) -> dict:
        """The run settings and what is searched. The budget and the saved model change no run; where the runs
        compute (device, precision) is left to the runs' own keys, which say whether a stored run fits."""
        settings = {k: v for k, v in self.settings.to_dict().items() if k not in ("budget_seconds", "save_model")}
        base = {
            k: v
            for k, v in self.base.to_dict().items()
            if k not in ("layers", "seed", "learning_rate", "device", "dtype")
        }
        return {"run": base, **settings}


def check_request(base: RunConfig, settings: SearchSettings) -> int:
    """Everything a search can refuse before it trains: the model's depth, the method, the task and K at every
    seed. Returns the model's depth."""
    if not base.trains:
        raise LayercutError(f"the search trains every depth it probes: use {named('method', 'full')}, lora or prefix")
    if base.keep_strategy is not None:
        raise LayercutError(
            f"the search chooses the first k layers itself: drop {named('keep_strategy')} and {named('keep_count')}"
        )
    facts = model_facts(base.model)
    if facts is None:
        raise LayercutError(
            f"cannot read the config of '{base.model}' here (the Hub is unreachable?): download the "
            "model to a folder and pass its path"
        )
    spec = resolve_task(base)
    for seed in settings.seeds:
        make_run_splits(dataclasses.replace(base, seed=seed), spec)  # a task too small for K fails here
    return facts.depth


def plan_lines(base: RunConfig, settings: SearchSettings, depth: int, stores: list[ResultStore] = ()) -> list[str]:
    """What `--dry-run` prints: the probes the search may run and their compute (runs already in `stores` cost
    nothing), without running anything."""
    clock = Clock.for_device(settings.budget_seconds)
    stored = lambda config: any(store.is_done(config.key()) for store in stores)  # noqa: E731
    doubling = DepthOrder(depth).planned()
    bisections = max(0, (depth - 1).bit_length() - 1)
    rows = [
        ("full-depth reference", _probe_runs(base, settings, depth, depth)),
        *((f"depth {k}", _probe_runs(base, settings, k, depth)) for k in doubling),
    ]
    lines = []
    for name, configs in rows:
        new = [c for c in configs if not stored(c)]
        lines.append(
            f"{name}: {len(configs)} run(s) (rates {', '.join(f'{r:g}' for r in settings.rates)} x seeds "
            f"{', '.join(map(str, settings.probing))})"
            + (f", {len(configs) - len(new)} already stored" if len(new) < len(configs) else "")
            + f", ~{duration(clock.estimate(new))}"
        )
    worst = clock.estimate([c for _, configs in rows for c in configs if not stored(c)])
    lines += [
        f"then at most {bisections} bisection probe(s) between the last depth that fails and the first that "
        f"passes, {2 * (len(settings.seeds) - settings.probe_seeds)} confirmation run(s) on the other seeds, the "
        f"saved model's run, and up to {2 * 3} more runs per probe whose pick sits at an edge of the rates",
        f"estimated compute of the probes above: ~{duration(worst)} at "
        f"{clock.costs.assumed_flops_per_second / 1e12:g} TFLOP/s (the runs' whole step budgets; early stopping "
        "only shortens them)",
    ]
    if settings.budget_seconds is not None:
        lines.append(
            f"budget: {duration(settings.budget_seconds)}; probing stops when the next probe's estimate would pass it"
        )
    return lines


def _probe_runs(base: RunConfig, settings: SearchSettings, depth: int, source_depth: int) -> list[RunConfig]:
    """A probe's runs at the grid's rates (before any extension) on the probing seeds."""
    return [
        dataclasses.replace(base, layers=layers_for(depth, source_depth), learning_rate=rate, seed=seed)
        for rate in settings.rates
        for seed in settings.probing
    ]


def _left(order: DepthOrder, base: RunConfig, settings: SearchSettings, clock: Clock) -> str:
    """At most how long the rest of the search takes: the doubling's remaining depths, or the bisection's steps
    (at the deeper end of what is left), each at the grid's rates, and the confirmation."""
    if order.first_pass is None:
        depths = [k for k in order.planned() if k > order.last_fail]
    else:
        steps = max(0, (order.first_pass - order.last_fail - 1).bit_length())
        depths = [order.first_pass - 1] * steps
    configs = [c for k in depths for c in _probe_runs(base, settings, k, order.depth)]
    return duration(clock.estimate(configs))


def search_depth(
    base: RunConfig,
    settings: SearchSettings,
    out: str | Path,
    *,
    reuse: list[str | Path] = (),
    backend: str = "local",
    address: str | None = None,
    command: str = "",
    echo: Callable[[str], None] = print,
) -> dict:
    """Run (or resume) the search into `out`; returns what DIR/search.json records."""
    out = Path(out)
    source_depth = check_request(base, settings)
    executor = make_backend(backend, address)
    clock = Clock.for_device(settings.budget_seconds)
    clock.check_reference(_probe_runs(base, settings, source_depth, source_depth))
    stores = [ResultStore(path) for path in reuse]
    for store in stores:
        if not (store.root / "runs").is_dir():
            raise LayercutError(
                f"--reuse '{store.root}' holds no runs (no runs/ folder): give a sweep's or search's store"
            )
    store = ResultStore(out / STORE_FOLDER)
    with store.claim(SearchRequest(base, settings)):
        runs = Runs(store, stores, executor, clock, echo)
        result = _search(
            runs, base, settings, source_depth, out, echo, {"model": base.model, "task": base.task, "command": command}
        )
        result.update(reused_runs=runs.reused, trained_runs=runs.trained, seconds=round(clock.spent, 1))
        write_json_atomic(out / SEARCH_RECORD, result)

    write_search_report(out)
    return result


def _search(
    runs: Runs, base: RunConfig, settings: SearchSettings, source_depth: int, out: Path, echo, header: dict
) -> dict:
    probes: dict[int, Probe] = {}
    echo(
        f"search: the smallest first-k depth of {source_depth} keeping {100 * settings.keep:g}% of full-depth dev accuracy"
    )
    full = probes[source_depth] = probe_depth(runs, base, source_depth, source_depth, settings)
    target = settings.keep * full.dev
    echo(f"full depth: dev {100 * full.dev:.1f} at lr {full.picked:g}: a depth passes at dev >= {100 * target:.1f}")

    order = DepthOrder(source_depth)

    def passes(depth: int) -> bool:
        echo(
            f"probe {len(order.visited)}: depth {depth} (the rest of the search: at most ~"
            f"{_left(order, base, settings, runs.clock)} of probes, then confirmation)"
        )
        probes[depth] = probe = probe_depth(runs, base, depth, source_depth, settings, enough=target)
        verdict = probe.dev >= target
        echo(
            f"depth {depth}: dev {100 * probe.dev:.1f} at lr {probe.picked:g} "
            f"({100 * probe.dev / full.dev:.0f}% of full): {'passes' if verdict else 'fails'}"
        )
        return verdict

    stopped = None
    try:
        order.run(passes)
    except BudgetSpent as error:
        stopped = str(error)
        echo(f"budget: {stopped}; stopping with what is known")
    if order.first_pass is not None and not stopped:
        # The answer's rate bracketed: its grid widened past where passing stopped it (finished runs read back).
        try:
            probe = probes[order.first_pass] = probe_depth(runs, base, order.first_pass, source_depth, settings)
            echo(
                f"depth {probe.depth} chosen: its grid widened to the end, dev {100 * probe.dev:.1f} at lr "
                f"{probe.picked:g}" + (f" ({probe.at_edge})" if probe.at_edge else "")
            )
        except BudgetSpent as error:
            echo(f"budget: {error}; the chosen depth's rate stays where passing stopped its grid")
    chosen = probes[order.first_pass] if order.first_pass is not None else full
    # From here on test labels are read: the depth is chosen.
    answer = {
        "stopped": stopped,
        "untried": list(order.untried()) if stopped else [],
        "passed": order.first_pass is not None,
        "visited": order.visited,
    }
    try:
        confirmed = {"chosen": confirm(runs, base, chosen, settings), "full": confirm(runs, base, full, settings)}
    except BudgetSpent as error:
        confirmed, answer["stopped"] = None, f"{stopped or ''} confirmation: {error}".strip()
    for probe in probes.values():
        probe.test_by_seed = {seed: _test(runs, base, probe, seed) for seed in settings.probing}
    references = {
        "bag_of_words": bag_of_words(base, settings.seeds, out / STORE_FOLDER / "baselines"),
        "in_context": in_context_curve(runs, base, source_depth, settings.seeds[0], sorted(settings.rates)[0]),
    }
    result = {
        **header,
        "settings": settings.to_dict(),
        "run": base.to_dict(),
        "source_depth": source_depth,
        "target_dev": target,
        "probes": [probes[k].to_dict() for k in sorted(probes)],
        "answer": answer,
        "confirmed": confirmed,
        "references": references,
        "saved_model": None,
    }
    if confirmed and settings.save_model:
        echo(f"saving depth {chosen.depth} trained on its best-dev seed, vocabulary trimmed to the task")
        stored = runs.read(
            dataclasses.replace(
                base, layers=chosen.layers, learning_rate=chosen.picked, seed=best_dev_seed(confirmed["chosen"])
            )
        )
        result["saved_model"] = save_answer(base, confirmed["chosen"], out, stored, model_card_lines(result))
    return result


def _test(runs: Runs, base: RunConfig, probe: Probe, seed: int) -> float | None:
    record = runs.read(dataclasses.replace(base, layers=probe.layers, learning_rate=probe.picked, seed=seed))
    return Metrics.read(record).accuracy if record["status"] in ("complete", "diverged") else None
