"""lm-evaluation-harness on a model in memory: the tasks every depth-pruning paper reports.

lm-eval is an optional extra (`pip install 'layercut[eval]'`). Its `HFLM` wraps the cut model as
it is, so nothing is saved first. Besides lm-eval's own tasks (PIQA, HellaSwag, ... read from the
Hub), layercut ships offline ones over its built-in data (`layercut_trec`, `layercut_mr`,
`layercut_bbc`, tag `layercut`), and `include` adds a folder of the user's own task YAMLs.
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import importlib.util
import logging
from pathlib import Path

from layercut.errors import LayercutError
from layercut.tasks.tables import first_line

SHIPPED_TASKS = Path(__file__).parent / "tasks"
# The metric a task's summary shows (the first of these it has); accuracies are what papers compare.
PREFERRED_METRICS = ("acc", "acc_norm", "exact_match", "word_perplexity")


def require_lm_eval() -> None:
    if importlib.util.find_spec("lm_eval") is None:
        raise LayercutError(
            "lm-eval tasks need the lm-eval package, which is not installed: "
            "run `pip install 'layercut[eval]'` (or `pip install lm-eval`)"
        )


def task_manager(include: str | Path | None = None):
    """lm-eval's task index: its own tasks, layercut's shipped ones, and the YAMLs under `include`."""
    require_lm_eval()
    return _task_manager(tuple(include_paths(include)))


@functools.cache
def _task_manager(paths: tuple[str, ...]):
    """Indexing lm-eval's 14,000 task files takes seconds: once per process (a sweep evaluates many depths)."""
    _quiet_lm_eval()
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(paths))


def include_paths(include: str | Path | None) -> list[str]:
    """The task folders lm-eval indexes besides its own: layercut's shipped tasks, then `include`."""
    if include is None:
        return [str(SHIPPED_TASKS)]
    folder = Path(include).expanduser()
    if not folder.is_dir():
        raise LayercutError(
            f"--include '{include}' is not a folder: give the folder that holds your lm-eval task YAMLs"
        )
    return [str(SHIPPED_TASKS), str(folder.resolve())]


def check_task_names(manager, names: list[str] | tuple[str, ...]) -> None:
    """Refuse a name lm-eval does not know (before any model loads, or any sweep run starts)."""
    for name in names:
        if name not in manager.all_tasks:
            close = difflib.get_close_matches(name, manager.all_tasks, n=3)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise LayercutError(
                f"unknown lm-eval task '{name}': {hint}`lm-eval ls tasks` lists them; "
                "for your own task YAMLs add --include DIR"
            )


def load_tasks(manager, names: list[str]) -> list:
    """lm-eval's task (or group) objects, data loaded; a task whose data cannot be read is named."""
    check_task_names(manager, names)
    objects = []
    for name in names:
        try:
            loaded = manager.load([name])
        except ConnectionError as error:  # datasets' error for an unreachable Hub (or HF_DATASETS_OFFLINE)
            raise LayercutError(
                f"lm-eval task '{name}' reads its data from the Hugging Face Hub, which is unreachable ({first_line(error)}): "
                "run where the Hub is reachable, use an offline task (layercut_trec, layercut_mr, layercut_bbc), or copy "
                "the task's YAML into a folder, point it at local files (dataset_path: json, dataset_kwargs: "
                "{data_files: {test: FILE.jsonl}}) and pass that folder with --include"
            ) from None
        except (OSError, ValueError) as error:
            raise LayercutError(
                f"cannot load lm-eval task '{name}' ({first_line(error)}): check its YAML and that its data files exist"
            ) from None
        group = loaded["groups"].get(name)
        objects += [group] if group is not None else list(loaded["tasks"].values())
    return objects


def run_lm_eval(
    model,
    tokenizer,
    tasks: list[str],
    *,
    num_fewshot: int | None = None,
    limit: int | None = None,
    include: str | Path | None = None,
    batch_size: int = 8,
) -> dict:
    """Evaluate `model` (in memory) on lm-eval `tasks`; lm-eval's results, as its own CLI writes them."""
    manager = task_manager(include)
    objects = load_tasks(manager, tasks)
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    output = simple_evaluate(
        model=lm, tasks=objects, task_manager=manager, num_fewshot=num_fewshot, limit=limit, log_samples=False
    )
    kept = ("results", "groups", "group_subtasks", "n-shot", "n-samples", "higher_is_better", "versions")
    return {key: output[key] for key in kept if key in output} | {
        "settings": {
            "tasks": tasks,
            "num_fewshot": num_fewshot,
            "limit": limit,
            "batch_size": batch_size,
            "include": str(include) if include else None,
        },
        "lm_eval_version": importlib.metadata.version("lm_eval"),
    }


def summary(lm_eval_output: dict) -> dict[str, dict]:
    """Per task: its main metric, value, standard error and the examples scored (for tables and sweeps)."""
    rows = {}
    for task, metrics in lm_eval_output["results"].items():
        names = {key.split(",")[0]: key for key in metrics if "," in key and "_stderr," not in key}
        metric = next((m for m in PREFERRED_METRICS if m in names), next(iter(names), None))
        if metric is None:
            continue
        key = names[metric]
        stderr = metrics.get(key.replace(",", "_stderr,", 1))
        rows[task] = {
            "metric": metric,
            "value": metrics[key],
            "stderr": stderr if isinstance(stderr, float) else None,
            "examples": (lm_eval_output.get("n-samples", {}).get(task) or {}).get("effective"),
        }
    return rows


def lm_eval_table(lm_eval_output: dict) -> str:
    """lm-eval's own table (as its CLI prints it)."""
    from lm_eval.utils import make_table

    table = make_table(lm_eval_output)
    return table + ("\n" + make_table(lm_eval_output, "groups") if lm_eval_output.get("groups") else "")


def _quiet_lm_eval() -> None:
    """lm-eval logs every default it fills in at WARNING; keep its errors only."""
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
