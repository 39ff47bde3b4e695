"""What each adaptation method is, in one place: whether it trains, which settings groups it reads beyond the
ones every run reads, and its name in reports. The run setup, the sweep's expansion, the dry run's cost and the
report ask here instead of comparing method names (settings.run_config.ignored_settings: what a method never reads)."""

from __future__ import annotations

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
