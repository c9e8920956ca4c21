"""docs/runbook.md read the way its tests need it: entries by anchor, sections, shell blocks."""

import re

# MkDocs makes anchors with this function; Markdown ships no type stubs.
from markdown.extensions.toc import slugify  # type: ignore[import-untyped]

from localcloud.template import PROJECT_ROOT
from rotation_core.runbook import RUNBOOK_PAGE

RUNBOOK = (PROJECT_ROOT / RUNBOOK_PAGE).read_text()
ENTRY_HEADING = re.compile(r"^### (?P<title>.+)$", re.MULTILINE)
SECTION_HEADING = re.compile(r"^## (?P<title>.+)$", re.MULTILINE)
SHELL_BLOCK = re.compile(r"^```sh\n(?P<lines>.*?)^```$", re.MULTILINE | re.DOTALL)


def entries() -> dict[str, str]:
    """Each entry (a ### heading) by its anchor, the heading's slug as MkDocs makes it, and its
    text up to the next heading."""
    return {slugify(title, "-"): body.split("\n## ")[0] for title, body in _titled(ENTRY_HEADING)}


def sections() -> dict[str, str]:
    """Each ## section by its title, with its entries."""
    return dict(_titled(SECTION_HEADING))


def shell_blocks(text: str = RUNBOOK) -> list[str]:
    return [block["lines"] for block in SHELL_BLOCK.finditer(text)]


def _titled(heading: re.Pattern[str]) -> list[tuple[str, str]]:
    headings = list(heading.finditer(RUNBOOK))
    ends = [following.start() for following in headings[1:]] + [len(RUNBOOK)]
    return [
        (found["title"], RUNBOOK[found.end() : end])
        for found, end in zip(headings, ends, strict=True)
    ]
