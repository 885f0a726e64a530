"""Every "README, <section>" or "docs/<page>.md, <section>" a script, an error message or a requirement file
cites names a heading that exists, so a reader sent there finds it (a heading renamed or moved breaks this
test, not the reader's search); and every relative link in README.md and docs/*.md points at a file (and, with
an anchor, a heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import REPO_ROOT

# `docs/grpo.md, "Where the proxy runs"`, `README, "Image size"`, `README: "GPU set-up"`, `(README, GPU set-up)`,
# `(docs/install.md, "GPU set-up")`
REFERENCE = re.compile(r'(?P<doc>(?:[\w./-]+/)?README(?:\.md)?|(?:[\w./-]+/)?docs/[\w.-]+\.md)[,:] ?'
                       r'(?:"(?P<quoted>[^"]+)"|(?P<bare>[A-Z][\w -]+))')
SOURCES = ("src", "scripts", "verl", "proxy", "eval", "data_prep", "ms_swift", "benchmarks", "requirements")
# The pages the code cites today; a citation moved away from one of them should be a deliberate change here.
CITED_PAGES = {"docs/install.md", "docs/data.md", "docs/grpo.md", "docs/toy.md", "docs/reward.md"}

# [text](target) outside code; images too. A target is a path, a path#anchor or #anchor.
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


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
    text = FENCE.sub("", doc.read_text())
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings: lower case, punctuation dropped, spaces to hyphens,
    a repeated anchor numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    out = set()
    for title in headings(doc):
        slug = re.sub(r"[^\w\- ]", "", title.replace("`", "").lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def markdown_pages() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def links() -> list[tuple[Path, str]]:
    """(page, target) for every relative link in README.md and docs/*.md, code blocks and inline code left out."""
    found = []
    for page in markdown_pages():
        text = INLINE_CODE.sub("", FENCE.sub("", page.read_text()))
        for match in LINK.finditer(text):
            target = match["target"]
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                found.append((page, target))
    return found


def test_references_are_found() -> None:
    docs = {doc.relative_to(REPO_ROOT).as_posix() for _, _, doc, _ in cited()}
    assert CITED_PAGES <= docs and len(cited()) >= 15


@pytest.mark.parametrize(("source", "line", "doc", "heading"), cited(),
                         ids=lambda value: value.name if isinstance(value, Path) else str(value))
def test_each_cited_heading_exists(source: Path, line: int, doc: Path, heading: str) -> None:
    assert doc.is_file(), f"{source}:{line} cites {doc}, which does not exist"
    assert any(title.startswith(heading) for title in headings(doc)), (
        f"{source}:{line} cites {doc.relative_to(REPO_ROOT)}, \"{heading}\": no such heading")


def test_markdown_links_resolve() -> None:
    found = links()
    assert len(found) >= 20, "the link scan found almost no links: is the pattern still right?"
    broken = []
    for page, target in found:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(REPO_ROOT)} -> {target}"
        if not file.exists():
            broken.append(f"{where}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{where}: no heading with that anchor")
    assert not broken, "\n".join(broken)


def test_anchor_rule_matches_githubs() -> None:
    page = REPO_ROOT / "docs" / "grpo.md"
    assert {"where-the-proxy-runs-proxy_modeservice-or-pool", "two-grpo-trainers-for-stage-c2",
            "one-gpu-policy-and-proxy-on-the-same-card"} <= anchors(page)
