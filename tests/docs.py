"""The documents the tests read: README.md and docs/*.md, their fenced blocks, links and headings.

Just enough Markdown for the checks in ``tests/unit/test_docs.py`` and
``tests/unit/test_docs_commands.py``: fenced code blocks (with their info string and the line
they start on), inline links outside code, and the anchors GitHub gives headings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ROOT", "Block", "anchors", "documents", "fenced_blocks", "links", "prose"]

ROOT = Path(__file__).resolve().parents[1]

_FENCE = re.compile(r"^(?P<indent> {0,3}|\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_HEADING = re.compile(r"^#{1,6}\s+(?P<text>.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Block:
    """A fenced code block: ``info`` is its info string, ``line`` the line of its first content line."""

    path: Path
    line: int
    info: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    """README.md, then every Markdown file under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _split(path: Path) -> tuple[list[Block], list[tuple[int, str]]]:
    """The fenced blocks of ``path``, and its other lines numbered from 1."""
    blocks: list[Block] = []
    outside: list[tuple[int, str]] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            outside.append((i + 1, lines[i]))
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.fullmatch(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*", lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j].lstrip())
            j += 1
        blocks.append(Block(path, i + 2, opening["info"].strip(), "\n".join(body) + "\n"))
        i = j + 1
    return blocks, outside


def fenced_blocks(path: Path) -> list[Block]:
    return _split(path)[0]


def prose(path: Path) -> list[tuple[int, str]]:
    """The lines outside fenced blocks, with inline code spans blanked out."""
    return [(number, _CODE_SPAN.sub("``", line)) for number, line in _split(path)[1]]


def links(path: Path) -> list[tuple[int, str]]:
    """Every inline link target outside code: (line, target)."""
    return [(number, match["target"]) for number, line in prose(path) for match in _LINK.finditer(line)]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays, its target goes
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading in ``path`` (repeats get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _split(path)[1]:
        match = _HEADING.match(line)
        if not match:
            continue
        slug = _slug(match["text"])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found
