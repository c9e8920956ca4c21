"""Fenced blocks of README.md and the docs pages, found by what they hold: tests run what the
documentation shows, as written, and tests/static/test_doc_commands.py checks that every block a
reader would run is claimed by some test through `doc_block`."""

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a reader runs or pastes: every block in these languages must be claimed by a test.
RUNNABLE_LANGUAGES = ("sh", "python", "js")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<language>[\w-]*)[^\n`]*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its page (relative to the project root), language, first line and text
    (dedented as far as its fence is indented)."""

    page: str
    language: str
    line: int
    text: str

    def commands(self) -> list[str]:
        """The block's commands as a reader pastes them: lines ending in a backslash joined to
        the next, comments after two spaces and a `#` cut, blank lines skipped."""
        joined = self.text.replace("\\\n", " ")
        return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def pages() -> list[str]:
    """Every page a reader meets: the README and the documentation site's pages."""
    site = sorted(str(page.relative_to(ROOT)) for page in (ROOT / "docs").rglob("*.md"))
    return ["README.md", *site]


def blocks(page: str) -> list[Block]:
    """Every fenced block of a page, in order."""
    found: list[Block] = []
    lines = (ROOT / page).read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent = opening["indent"]
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        assert end < len(lines), f"{page}:{index + 1}: a fenced block is never closed"
        body = [line.removeprefix(indent) for line in lines[index + 1 : end]]
        text = "\n".join(body) + "\n"
        found.append(Block(page, opening["language"], index + 1, text))
        index = end + 1
    return found


def doc_block(page: str, language: str, containing: str) -> Block:
    """The one block of `page` in `language` that holds `containing`. Call it with literal
    arguments: the static check reads the calls to know which blocks the tests claim."""
    matching = [
        block for block in blocks(page) if block.language == language and containing in block.text
    ]
    assert len(matching) == 1, (
        f"{page}: expected one {language} block holding {containing!r}, found {len(matching)}"
    )
    return matching[0]
