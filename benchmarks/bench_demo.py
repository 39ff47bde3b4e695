"""`configs/demo.yaml` as it was before shared prefixes (commit 3a0b9c0), run by that commit's code and by this
checkout's, one after the other: wall times, each run's training and evaluation seconds, and how many test
predictions differ. Run it on an idle machine (pause other jobs: the ratio is only as good as the idleness).
Usage: git worktree add /tmp/layercut-old 3a0b9c0 --detach
       python benchmarks/bench_demo.py --old /tmp/layercut-old   (writes benchmarks/results/demo_before_after.json)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "demo_before_after.json"
OLD_COMMIT = "3a0b9c0"


def sweep(source: Path, experiment: Path, out: Path) -> float:
    """Wall seconds of `layercut sweep` with the code under `source`/src."""
    env = {**os.environ, "PYTHONPATH": str(source / "src"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "layercut", "sweep", str(experiment), "--out", str(out)],
        cwd=source,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def runs(out: Path) -> dict[str, dict]:
    cells = {}
    for path in sorted((out / "runs").glob("*/result.json")):
        record = json.loads(path.read_text())
        config = record["config"]
        cells[f"{config['layers']} {config['head']} {config['method']}"] = record
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help=f"a checkout of {OLD_COMMIT} (git worktree add ...)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        experiment = Path(tmp) / "demo-before.yaml"
        experiment.write_text(
            subprocess.run(
                ["git", "show", f"{OLD_COMMIT}:configs/demo.yaml"], cwd=ROOT, check=True, capture_output=True, text=True
            ).stdout
        )
        sides = {"before": args.old.resolve(), "now": ROOT}
        walls = {name: sweep(source, experiment, Path(tmp) / name) for name, source in sides.items()}
        before, now = (runs(Path(tmp) / name) for name in sides)
    results = {
        "experiment": f"{OLD_COMMIT}:configs/demo.yaml",
        "wall_seconds": walls,
        "speedup": walls["before"] / walls["now"],
        "runs": {},
    }
    differing = 0
    for cell, old in before.items():
        new = now[cell]
        assert old["predictions"]["uids"] == new["predictions"]["uids"], cell
        differ = sum(a != b for a, b in zip(old["predictions"]["predicted"], new["predictions"]["predicted"]))
        differing += differ
        results["runs"][cell] = {
            side: {
                "train_seconds": r["timing"]["train_seconds"],
                "eval_seconds": r["timing"]["eval_seconds"],
                "accuracy": r["metrics"]["accuracy"],
            }
            for side, r in (("before", old), ("now", new))
        }
        results["runs"][cell]["predictions_differing"] = differ
        print(
            f"{cell:>20}: train {old['timing']['train_seconds']:.1f} -> {new['timing']['train_seconds']:.1f} s, "
            f"accuracy {100 * old['metrics']['accuracy']:.1f} -> {100 * new['metrics']['accuracy']:.1f}, "
            f"{differ} of {len(old['predictions']['predicted'])} predictions differ"
        )
    results["predictions_differing"] = differing
    results["predictions"] = sum(len(r["predictions"]["predicted"]) for r in before.values())
    print(
        f"wall {walls['before']:.1f} -> {walls['now']:.1f} s: {results['speedup']:.2f}x; "
        f"{differing} of {results['predictions']} predictions differ"
    )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
