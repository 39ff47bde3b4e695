"""Parameter and size accounting, for a loaded model or for a configuration alone.

Counts follow `model.num_parameters()`: a tied LM head is counted once (the paper's figures).
For a configuration the model is built on the meta device, so full-size shapes cost no memory.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from layercut.errors import LayercutError, first_line
from layercut.model.blocks import set_config_depth
from layercut.model.layers import check_keep_count


@dataclass(frozen=True)
class SizeReport:
    depth: int
    hidden_size: int
    vocab_size: int
    parameters: int
    non_embedding_parameters: int
    fp32_bytes: int
    bf16_bytes: int
    percent_of_full: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def size_report(model: nn.Module, full_parameters: int | None = None) -> SizeReport:
    config = model.config
    parameters = model.num_parameters()
    return SizeReport(
        depth=config.num_hidden_layers,
        hidden_size=_hidden_size(config),
        vocab_size=config.vocab_size,
        parameters=parameters,
        non_embedding_parameters=model.num_parameters(exclude_embeddings=True),
        fp32_bytes=parameters * 4,
        bf16_bytes=parameters * 2,
        percent_of_full=round(100.0 * parameters / full_parameters, 2) if full_parameters else None,
    )


def config_size_reports(config, depths: list[int]) -> list[SizeReport]:
    """One report per depth (keeping the first k blocks), computed without weights."""
    full = _meta_model(config)
    full_parameters = full.num_parameters()
    reports = []
    for depth in depths:
        check_keep_count(depth, config.num_hidden_layers, least=0)  # 0: embedding, final norm and head
        reports.append(size_report(_meta_model(config, depth), full_parameters))
    return reports


def count_config_parameters(config, depth: int | None = None) -> int:
    return _meta_model(config, depth).num_parameters()


def known_config(model_id: str):
    """A stored copy of a paper model's config, for planning and accounting when the Hub is unreachable."""
    from transformers import AutoConfig

    name = model_id.replace("/", "--") + ".json"
    resource = resources.files("layercut.model") / "known_configs" / name
    if not resource.is_file():
        return None
    data = json.loads(resource.read_text())
    return AutoConfig.for_model(data.pop("model_type"), **data)


def config_from_file(path: str | Path):
    from transformers import CONFIG_MAPPING, AutoConfig

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        model_type = data.get("model_type") if isinstance(data, dict) else None
        if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
            # Said here: transformers' own error lists every model type it knows, some 6,000 characters.
            raise LayercutError(
                f"'{path}' has model type {model_type!r}, which this transformers does not know: "
                "give the config.json of a supported decoder-only model (see README), or upgrade transformers"
            )
        return AutoConfig.for_model(data.pop("model_type"), **data)
    except (OSError, ValueError, TypeError) as error:
        raise LayercutError(
            f"'{path}' is not a readable model config.json ({first_line(error)}): give a Hugging Face config file"
        ) from None


def _meta_model(config, depth: int | None = None) -> nn.Module:
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(config)
    if depth is not None and depth != config.num_hidden_layers:
        set_config_depth(config, list(range(depth)), config.num_hidden_layers)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def _hidden_size(config) -> int:
    return getattr(config, "hidden_size", None) or getattr(config, "n_embd")
