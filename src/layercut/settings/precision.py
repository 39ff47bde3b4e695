"""Which precision a run computes in: `--dtype auto|float32|bfloat16` resolved on this machine.

Mixed precision: with bfloat16 the forward and backward run under torch's bf16 autocast, while the
weights, their gradients, gradient accumulation and the optimizer's state stay float32, and label-word
logits and losses are computed in float32. `auto` picks bfloat16 where the hardware computes it natively
(a CUDA GPU that supports it; a CPU with AVX512-BF16 or AMX-BF16) and float32 elsewhere, where bf16
would be emulated and slower.

The resolution is part of a run's key (RunConfig.key), so it is torch-light: a CPU's flags come from
/proc/cpuinfo, and torch is imported only where an NVIDIA GPU may be present (or torch is loaded already).
`LAYERCUT_CPU_BF16=0|1` overrides what the CPU is taken to support (the test suite pins 0, so that its
float32 expectations do not depend on the machine it runs on).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

FLOAT32, BFLOAT16 = "float32", "bfloat16"
CPU_BF16_ENV = "LAYERCUT_CPU_BF16"
# /proc/cpuinfo flag -> what the record says
_CPU_BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


@dataclass(frozen=True)
class Precision:
    """What a run was asked (`asked`: the dtype setting), what the machine resolved it to (`resolved`: what
    the run's key hashes) and what it computed in (`used`: float32 where a family falls back), and why."""

    asked: str
    resolved: str
    reason: str
    used: str = ""
    gap_to_float32: float | None = None  # bf16 vs float32 scores on the run's check prompts (largest difference)

    def __post_init__(self) -> None:
        if not self.used:
            object.__setattr__(self, "used", self.resolved)

    @property
    def autocast(self):
        """The autocast dtype (torch.bfloat16), or None for float32."""
        import torch

        return torch.bfloat16 if self.used == BFLOAT16 else None

    def falling_back(self, why: str) -> "Precision":
        return Precision(self.asked, self.resolved, f"{self.reason}; float32 instead: {why}", FLOAT32)

    def checked(self, gap: float) -> "Precision":
        return dataclasses.replace(self, gap_to_float32=gap)

    def record(self) -> dict:
        record = {"asked": self.asked, "resolved": self.resolved, "used": self.used, "reason": self.reason}
        if self.gap_to_float32 is not None:
            record["gap_to_float32"] = self.gap_to_float32
        return record


@contextlib.contextmanager
def autocast_region(device, dtype):
    """The context a run's forward and backward passes compute in on `device` (a torch.device or its type): bf16
    autocast for dtype torch.bfloat16, nothing for None (float32). On a CPU, where gradients are taken, the attention
    itself stays float32: torch's CPU attention backward is slower in bf16 than in float32, and a 30-layer SmolLM2
    training step is 1.57x faster than float32's with float32 attention, 1.44x with bf16 attention (measured side by
    side, benchmarks/profile_precision_step.py). Evaluation keeps bf16 attention, as before."""
    import torch

    device_type = getattr(device, "type", device)
    with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
        if dtype is None or device_type != "cpu":
            yield
            return
        with _float32_sdpa_attention():
            yield


@contextlib.contextmanager
def _float32_sdpa_attention():
    """transformers' `sdpa` attention computed in float32, out of autocast, where gradients are taken, while the
    context lasts (every model looks its attention function up by name at each forward; the registration is restored
    on leaving)."""
    import torch
    from transformers import AttentionInterface

    sdpa = AttentionInterface()["sdpa"]

    def float32_sdpa(module, query, key, value, attention_mask, **kwargs):
        if query.device.type != "cpu" or not torch.is_autocast_enabled("cpu") or not torch.is_grad_enabled():
            return sdpa(module, query, key, value, attention_mask, **kwargs)
        with torch.autocast("cpu", enabled=False):
            return sdpa(module, query.float(), key.float(), value.float(), attention_mask, **kwargs)

    AttentionInterface.register("sdpa", float32_sdpa)
    try:
        yield
    finally:
        AttentionInterface.register("sdpa", sdpa)


def resolve_precision(dtype: str, device: str) -> Precision:
    """`dtype` (auto, float32, bfloat16) on `device` (auto, cpu, cuda; or a torch device's type)."""
    device = str(device).split(":")[0]
    if dtype == FLOAT32:
        return Precision(dtype, FLOAT32, "asked for float32")
    if device == "auto":
        device = "cuda" if _cuda_available() else "cpu"
    if device == "cuda":
        supported = _cuda_bf16_supported()
        if dtype == BFLOAT16:
            return Precision(dtype, BFLOAT16, "asked for bfloat16" + ("" if supported else " (the GPU lacks it)"))
        return (
            Precision(dtype, BFLOAT16, "the CUDA GPU supports bfloat16")
            if supported
            else Precision(dtype, FLOAT32, "the CUDA GPU does not support bfloat16")
        )
    native = cpu_bf16()
    if dtype == BFLOAT16:
        return Precision(
            dtype,
            BFLOAT16,
            "asked for bfloat16" + (f" (CPU has {native})" if native else " (emulated: this CPU has no native bf16)"),
        )
    if native:
        return Precision(dtype, BFLOAT16, f"CPU has {native}")
    return Precision(dtype, FLOAT32, _cpu_float32_reason())


@functools.lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_bf16() -> str | None:
    """The CPU's native bf16 instructions in words (e.g. 'AVX512-BF16'), or None (none, or not readable)."""
    override = os.environ.get(CPU_BF16_ENV)
    if override is not None and override.strip() in ("0", "1"):
        return f"{CPU_BF16_ENV}=1" if override.strip() == "1" else None
    flags = _cpu_flags() or frozenset()
    found = [name for flag, name in _CPU_BF16_FLAGS.items() if flag in flags]
    return " and ".join(found) or None


def _cpu_float32_reason() -> str:
    if os.environ.get(CPU_BF16_ENV, "").strip() == "0":
        return f"{CPU_BF16_ENV}=0: the CPU is taken to have no native bfloat16"
    if _cpu_flags() is None:
        return "the CPU's flags are not readable here (/proc/cpuinfo): float32"
    return "CPU has no native bfloat16 (AVX512-BF16 or AMX-BF16)"


def _cuda_available() -> bool:
    """As `torch.cuda.is_available()`, without importing torch where no NVIDIA GPU can be (torch not loaded yet
    and no driver device files)."""
    if "torch" not in sys.modules and not _nvidia_device_files():
        return False
    import torch

    return torch.cuda.is_available()


@functools.lru_cache(maxsize=None)
def _nvidia_device_files() -> bool:
    return any(Path(path).exists() for path in ("/dev/nvidia0", "/proc/driver/nvidia/gpus", "/dev/dxg"))


def _cuda_bf16_supported() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


# bf16 scores differ from float32's by rounding: up to ~1.1% of the largest |score| for SmolLM2-135M (1-30 layers),
# ~3% for tiny random models (adapt/prefix_sharing.py has the figures). Further than 2^-3 (12.5%) of the largest |score|
# (taken as at least 2^-5), or not finite, and the model misbehaves in bf16: it runs in float32.
BF16_MISBEHAVES = 2**-3


def bf16_misbehaves(name: str, reference, scores) -> str | None:
    """Why bf16 `scores` cannot stand in for the float32 `reference` (tensors of the same scores), or None."""
    import torch

    if not torch.isfinite(scores).all():
        return f"{name} gives non-finite scores in bfloat16"
    gap = (scores.float() - reference.float()).abs().max().item()
    allowed = BF16_MISBEHAVES * max(2**-5, reference.float().abs().max().item())
    if not gap <= allowed:
        return f"{name}'s bfloat16 scores differ from float32's by {gap:.2g} (allowed {allowed:.2g})"
    return None
