"""A sweep's untrained first-k runs of several depths, scored by one pass instead of one pass each.

Runs that differ only in how many first blocks they keep (same model, task, seed, prompts, ...)
form a group; each group is profiled once, and every run still gets its own complete record from
`run()` (same fields as a separately scored run), with `scored_by` saying where its scores came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Iterator

from layercut.errors import LayercutError
from layercut.settings.run_config import RunConfig
from layercut.run.pipeline import ScoredElsewhere, execute, prepare
from layercut.run.record import RunRecord
from layercut.slim.profile import first_k_depth, one_pass_problem, profile_depths

ONE_PASS = "one-pass depth profile"


@dataclass
class OnePassGroup:
    configs: list[RunConfig]
    depths: list[int]  # configs[i] keeps the first depths[i] blocks


def split_one_pass_runs(configs: Iterable[RunConfig]) -> tuple[list[OnePassGroup], list[RunConfig]]:
    """The groups one pass can score (two depths or more), and the runs left to run one by one."""
    groups: dict[str, OnePassGroup] = {}
    rest = []
    for config in configs:
        depth = None if one_pass_problem(config) else _first_k_depth_or_none(config)
        if not depth:  # None, or 0: depth 0 has no block to hook in the pass, and alone costs only embedding and head
            rest.append(config)
            continue
        shared = json.dumps({**config.to_dict(), "layers": None}, sort_keys=True, default=str)
        group = groups.setdefault(shared, OnePassGroup([], []))
        group.configs.append(config)
        group.depths.append(depth)
    one_pass = []
    for group in groups.values():
        if len(set(group.depths)) > 1:
            one_pass.append(group)
        else:
            rest.extend(group.configs)
    return one_pass, rest


def one_pass_records(groups: list[OnePassGroup]) -> Iterator[RunRecord]:
    """Each run's record, as `run()` writes it (each run prepared and executed with the pass's test scores); a group
    that fails gives every run a `failed` record."""
    for group in groups:
        try:
            profile = profile_depths(group.configs[0], group.depths)
        except Exception as error:  # like execute_run: one bad cell does not end the sweep
            yield from (RunRecord.failed(config, error) for config in group.configs)
            continue
        # The pass scored every depth at once: no per-depth speed was measured. Its time is split evenly over the
        # group's runs, so a report's total compute counts it once.
        scored_by = {
            "method": ONE_PASS,
            "depths": profile.depths,
            "pass_seconds": profile.seconds,
            "note": "timing.eval_seconds is an even share of the one pass over all depths; "
            "memory.peak_bytes covers this run's own set-up only",
        }
        for config, depth in zip(group.configs, group.depths):
            scored = ScoredElsewhere(profile.scores[depth], profile.seconds / len(group.configs), scored_by)
            try:
                yield execute(prepare(config, profile.precision), show_progress=False, scored_elsewhere=scored)
            except Exception as error:
                yield RunRecord.failed(config, error)


def _first_k_depth_or_none(config: RunConfig) -> int | None:
    try:
        return first_k_depth(config)
    except LayercutError:  # an unreadable model or layer choice: its own run reports the problem
        return None
