"""Every "README, <section>" a script, an error message or a requirement file cites names a heading that exists,
so a reader sent there finds it (a heading renamed or moved breaks this test, not the reader's search)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import REPO_ROOT

# `scripts/rl/README.md, "Where the proxy runs"`, `README, "Image size"`, `README: "GPU set-up"`, `(README, GPU set-up)`
REFERENCE = re.compile(r'(?P<doc>(?:[\w./-]+/)?README(?:\.md)?)[,:] ?(?:"(?P<quoted>[^"]+)"|(?P<bare>[A-Z][\w -]+))')
SOURCES = ("src", "scripts", "verl", "proxy", "eval", "data_prep", "ms_swift", "benchmarks", "requirements")


def cited() -> list[tuple[Path, int, Path, str]]:
    """(citing file, line, cited document, cited heading) for every reference in the repository's code."""
    files = [path for top in SOURCES for path in (REPO_ROOT / top).rglob("*") if path.is_file()
             and path.suffix in {".py", ".sh", ".txt", ".md"} and "egg-info" not in str(path)]
    files += sorted(REPO_ROOT.glob("requirements*.txt"))
    found = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in REFERENCE.finditer(line):
                doc = match["doc"] if match["doc"].endswith(".md") else match["doc"] + ".md"
                found.append((path, number, REPO_ROOT / doc, (match["quoted"] or match["bare"]).strip()))
    return found


def headings(doc: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in doc.read_text().splitlines() if line.startswith("#")]


def test_references_are_found() -> None:
    docs = {doc.relative_to(REPO_ROOT).as_posix() for _, _, doc, _ in cited()}
    assert {"README.md", "scripts/rl/README.md"} <= docs and len(cited()) >= 15


@pytest.mark.parametrize(("source", "line", "doc", "heading"), cited(),
                         ids=lambda value: value.name if isinstance(value, Path) else str(value))
def test_each_cited_heading_exists(source: Path, line: int, doc: Path, heading: str) -> None:
    assert doc.is_file(), f"{source}:{line} cites {doc}, which does not exist"
    assert any(title.startswith(heading) for title in headings(doc)), (
        f"{source}:{line} cites {doc.relative_to(REPO_ROOT)}, \"{heading}\": no such heading")
