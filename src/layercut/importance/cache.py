"""Rankings kept on disk, so that runs sharing a model and calibration text rank it once.

A strategy sweep fine-tunes the same model on the same training texts at every layer count, and
the greedy order alone is hundreds of forward passes. Rankings are deterministic, so a ranking is
stored under `$LAYERCUT_CACHE/rankings/` by a hash of everything it depends on: the model's files,
the texts, the calibration settings, the measures, and the layercut and torch versions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from layercut.importance.ranking import LayerRanking, rank_layers
from layercut.model.sources import cache_root, resolve_source
from layercut.provenance import package_versions


def rank_layers_cached(
    model,
    tokenizer,
    texts: list[str],
    *,
    model_id: str,
    measures: tuple[str, ...],
    samples: int,
    max_length: int,
    packed: bool = True,
    source: str = "",
    progress: bool = True,
) -> LayerRanking:
    """`rank_layers` of `model` (loaded whole from `model_id`), read from the cache when computed before.

    `source` only labels the ranking: the texts themselves are the key.
    """
    settings = {"samples": samples, "max_length": max_length, "packed": packed, "measures": sorted(measures)}
    return cached_ranking(
        ranking_key(model_id, texts, settings),
        lambda: rank_layers(
            model,
            tokenizer,
            texts,
            samples=samples,
            max_length=max_length,
            measures=measures,
            packed=packed,
            model_id=model_id,
            source=source,
            progress=progress,
        ),
    )


def cached_ranking(key: str, compute: Callable[[], LayerRanking]) -> LayerRanking:
    """The ranking stored under `key`, or `compute()`'s, stored there."""
    path = cache_root() / "rankings" / f"{key}.json"
    if path.is_file():
        return LayerRanking.load(path)
    ranking = compute()
    ranking.save(path)
    return ranking


def ranking_key(model_id: str, texts: list[str], settings: dict) -> str:
    versions = package_versions()
    identity = {
        "model": model_files_fingerprint(model_id),
        "texts": hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest(),
        "settings": settings,
        "versions": {name: versions.get(name) for name in ("layercut", "torch", "transformers")},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()[:24]


def model_files_fingerprint(model_id: str) -> list | str:
    """Name, size and modification time of every file of a local model; a Hub id stands for itself."""
    source = resolve_source(model_id)
    folder = Path(source.location)
    if source.kind == "hub" or not folder.is_dir():
        return source.location
    return [
        [str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]
