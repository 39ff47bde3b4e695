"""Where runs execute: in this process (`local`) or as one Ray task per run (`ray`).

Both call the same `execute_run` and hand its record back to the sweep, which alone writes the
store; so the same experiment gives the same results, and a Ray cluster needs no shared disk.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from layercut.atomic import temporary_directory
from layercut.errors import LayercutError
from layercut.settings.run_config import RunConfig
from layercut.run.record import RunRecord
from layercut.run_files import RESULT_NAME

BACKENDS = ("local", "ray")
# Ray forwards workers' output to the driver: keep library progress bars and chatter off it,
# as the command line does in its own process; the sweep prints one line per run.
_QUIET_WORKERS = {
    "env_vars": {
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "TOKENIZERS_PARALLELISM": "false",
    }
}


def execute_run(config: RunConfig) -> RunRecord:
    """One run's record; a run that raises becomes a `failed` record, so one bad cell
    does not end the sweep (KeyboardInterrupt still does)."""
    from layercut.run.pipeline import run  # torch: `layercut --help` imports this module for BACKENDS

    with temporary_directory("layercut-run") as folder:
        try:
            return run(config, folder, show_progress=False)
        except Exception as error:
            written = RunRecord.read(folder / RESULT_NAME)
            if written is not None:  # diverged: run() wrote its record before raising
                return written
            return RunRecord.failed(config, error)


class LocalBackend:
    name = "local"

    def execute(self, configs: Iterable[RunConfig]) -> Iterator[RunRecord]:
        for config in configs:
            yield execute_run(config)


class RayBackend:
    """Each run is a Ray task asking for one GPU where the cluster has GPUs, else one CPU.
    Without `address`, a local Ray instance is started (and stopped) for the sweep."""

    name = "ray"

    def __init__(self, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise LayercutError(
                "--backend ray needs Ray: run `pip install 'layercut[ray]'`, or use --backend local"
            ) from None
        self.ray, self.address = ray, address

    def execute(self, configs: Iterable[RunConfig]) -> Iterator[RunRecord]:
        configs = list(configs)
        if not configs:  # nothing left to run: do not start Ray for it
            return
        ray = self.ray
        started = not ray.is_initialized()
        if started:  # a running Ray (ray.init in the caller's code) is used as it is
            ray.init(address=self.address, include_dashboard=False)
        try:
            resources = {"num_gpus": 1} if ray.cluster_resources().get("GPU", 0) > 0 else {"num_cpus": 1}
            task = ray.remote(runtime_env=_QUIET_WORKERS, **resources)(execute_run)
            pending = [task.remote(config) for config in configs]
            while pending:  # hand back each record as soon as its run ends, so a kill loses only runs in flight
                ready, pending = ray.wait(pending, num_returns=1)
                yield ray.get(ready[0])
        finally:
            if started:
                ray.shutdown()


def make_backend(name: str, address: str | None = None):
    if name not in BACKENDS:
        raise LayercutError(f"unknown backend '{name}': use one of {', '.join(BACKENDS)}")
    if address is not None and name != "ray":
        raise LayercutError("--address is the Ray cluster to use: add --backend ray, or leave --address out")
    return RayBackend(address) if name == "ray" else LocalBackend()
