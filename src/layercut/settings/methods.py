"""What each adaptation method is, in one place: whether it trains, which settings groups it reads beyond the
ones every run reads, and its name in reports. The run setup, the sweep's expansion, the dry run's cost and the
report ask here instead of comparing method names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str
    trains: bool
    groups: tuple[str, ...]  # settings groups only this method's runs read (training, lora, prefix)
    report_name: str


REGISTRY = {
    method.name: method
    for method in (
        Method("full", True, ("training",), "full fine-tuning"),
        Method("lora", True, ("training", "lora"), "LoRA"),
        Method("prefix", True, ("training", "prefix"), "prefix tuning"),
        Method("icl", False, (), "in-context learning (no training)"),
    )
}
_METHOD_GROUPS = frozenset(group for method in REGISTRY.values() for group in method.groups)


def ignored_settings(method: str) -> frozenset[str]:
    """The settings a run of `method` never reads (a sweep keeps their first value there, so that sweeping them does
    not repeat identical runs)."""
    from layercut.settings.run_config import RunConfig  # which declares its method choices from REGISTRY

    unread = _METHOD_GROUPS - set(REGISTRY[method].groups)
    return frozenset(f.name for f in dataclasses.fields(RunConfig) if f.metadata["group"] in unread)
