"""What every output records about how it was made: package versions and the platform."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

_PACKAGES = ("layercut", "torch", "transformers", "safetensors", "datasets", "peft", "accelerate", "gguf")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
