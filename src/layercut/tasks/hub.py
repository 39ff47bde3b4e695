"""Tasks read from the Hugging Face Hub through `datasets` (the paper's SST-2, AGNews, TREC, EmoC)."""

from __future__ import annotations

from layercut.errors import LayercutError, first_line
from layercut.tasks.spec import Example, TaskSpec
from layercut.tasks.tables import to_examples


def read_hub(spec: TaskSpec) -> tuple[list[Example], list[Example]]:
    """The train and test pools of a Hub task; an unreachable Hub names the offline analogue."""
    import datasets

    try:
        splits = datasets.load_dataset(spec.path, spec.config)
    except ConnectionError:  # datasets' own error for an unreachable Hub or offline mode
        analogue = (
            f"use the offline task '{spec.offline_analogue}' instead"
            if spec.offline_analogue
            else "use a local data file (--data FILE)"
        )
        raise LayercutError(
            f"task '{spec.name}' reads '{spec.path}' from the Hugging Face Hub, which is unreachable: "
            f"{analogue}, or run where the Hub is reachable"
        ) from None
    except (OSError, ValueError) as error:  # unknown dataset id or configuration
        raise LayercutError(
            f"cannot load Hub dataset '{spec.path}' ({spec.config}) for task '{spec.name}': {first_line(error)}; "
            "check the dataset id and configuration"
        ) from None
    pools = []
    for split in (spec.train_split, spec.test_split):
        if split not in splits:
            raise LayercutError(
                f"Hub dataset '{spec.path}' has no split '{split}' (splits: {', '.join(splits)}); fix the task's YAML"
            )
        feature = splits[split].features.get(spec.label_column)
        if hasattr(feature, "names") and len(feature.names) != spec.num_classes:
            raise LayercutError(
                f"task '{spec.name}': the Hub data has {len(feature.names)} classes ({', '.join(feature.names)}), "
                f"label_names has {spec.num_classes}; fix label_names in the task's YAML"
            )
        pools.append(
            to_examples(splits[split], spec, uid_prefix=split, where=f"task '{spec.name}' ({spec.path}, {split})")
        )
    return pools[0], pools[1]
