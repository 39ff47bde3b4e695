"""What the source's docstrings and comments point the reader at exists: files of the package, documents of the
repository, and `layercut.` names."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "layercut"
SOURCES = sorted(PACKAGE.rglob("*.py"))
# Files the package writes, not documents it points at.
WRITTEN_NAMES = {"report.md", "README.md"}
_FILE = re.compile(r"\b(?:[a-z_]+/)+[a-z_]+\.py\b")
_DOCUMENT = re.compile(r"\b[\w.-]+\.md\b")
_NAME = re.compile(r"`(layercut(?:\.\w+)+)`")


def _pointers(pattern: re.Pattern) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in SOURCES:
        for match in pattern.findall(path.read_text(encoding="utf-8")):
            found.setdefault(match, []).append(str(path.relative_to(PACKAGE)))
    return found


def test_the_walk_reads_the_package():
    assert len(SOURCES) > 100 and _pointers(_FILE)


def test_every_package_file_cited_exists():
    missing = {
        cited: where
        for cited, where in _pointers(_FILE).items()
        if not (PACKAGE / cited).is_file() and not (ROOT / cited).is_file()
    }
    assert missing == {}


def test_every_document_cited_is_in_the_repository():
    documents = {path.name for path in ROOT.rglob("*.md") if ".venv" not in path.parts}
    missing = {cited: where for cited, where in _pointers(_DOCUMENT).items() if cited not in documents | WRITTEN_NAMES}
    assert missing == {}


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for name in parts[split:]:
                target = getattr(target, name)
        except AttributeError:
            return False
        return True
    return False


def test_every_layercut_name_cited_resolves():
    names = {cited: where for cited, where in _pointers(_NAME).items() if not cited.endswith(".json")}  # a file name
    missing = {cited: where for cited, where in names.items() if not _resolves(cited)}
    assert missing == {}
    assert not _resolves("layercut.adapt.heads.restricted_lm_logits")  # the check can fail


# Relative links in the README and the guides: [text](path) or [text](path#anchor), where path is not a URL.
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _documents() -> list[Path]:
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    # Reports that sweeps write into their stores link their own plots; they are checked as written, not here.
    return [path for path in found if "store" not in path.parts and path.name != "report.md"]


def _broken_links(documents: list[Path]) -> list[str]:
    broken = []
    for document in documents:
        for target in _LINK.findall(document.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):
                continue  # a URL
            path_text, _, anchor = target.partition("#")
            path = (document.parent / path_text).resolve() if path_text else document
            if not path.exists():
                broken.append(f"{document.name}: {target}")
            elif anchor and path.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{document.name}: {target} (no such heading)")
    return broken


def test_every_relative_link_of_the_readme_and_the_docs_resolves():
    assert len(_documents()) > 10
    assert _broken_links(_documents()) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "guide.md").write_text("# Cut and choose\n")
    page = tmp_path / "page.md"
    page.write_text("[a](guide.md#cut-and-choose) [b](gone.md) [c](guide.md#heal) [d](https://example.org/x)\n")
    assert _broken_links([page]) == ["page.md: gone.md", "page.md: guide.md#heal (no such heading)"]
