"""Time and peak memory to get a k-layer SmolLM2 from the cache: cut at load time vs load all, then cut.

Each measurement runs in a fresh subprocess so that its peak RSS is its own.
Usage: python benchmarks/bench_load.py  (writes benchmarks/results/load_smollm2.json)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DEPTHS = (1, 2, 8, 30)
RESULTS = Path(__file__).parent / "results" / "load_smollm2.json"

CHILD = """
import json, resource, sys, time
import torch
from transformers import AutoModelForCausalLM
from layercut.model.load import cut_layers
from layercut.model.sources import resolve_source
folder = resolve_source("smollm2-135m").location
k, how = int(sys.argv[1]), sys.argv[2]
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if how == "load_time_cut":  # what layercut.load_model does for first:k, without its bookkeeping
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, num_hidden_layers=k)
else:
    model = cut_layers(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), list(range(k)))
# Safetensors are memory-mapped: read every kept weight once so that it is resident, as in use.
with torch.no_grad():
    checksum = sum(float(p.sum()) for p in model.parameters())
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak / 1024, "baseline_rss_mb": baseline / 1024,
                  "parameters": model.num_parameters()}))
"""


def measure(k: int, how: str) -> dict:
    output = subprocess.run([sys.executable, "-c", CHILD, str(k), how], capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    from layercut.model.sources import resolve_source

    resolve_source("smollm2-135m")  # convert once, outside the timings
    rows = []
    print(f"{'k':>3} {'method':>16} {'seconds':>8} {'peak MB':>8} {'params':>8}")
    for k in DEPTHS:
        for how in ("load_time_cut", "load_all_then_cut"):
            row = {"k": k, "method": how, **measure(k, how)}
            rows.append(row)
            print(
                f"{k:>3} {how:>16} {row['seconds']:>8.2f} {row['peak_rss_mb']:>8.0f} {row['parameters'] / 1e6:>7.1f}M"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    note = (
        "peak RSS includes the Python+torch baseline; weights are memory-mapped, so only pages read are resident: "
        "each kept weight is read once after loading"
    )
    RESULTS.write_text(json.dumps({"rows": rows, "note": note}, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
