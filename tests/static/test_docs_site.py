"""The documentation site builds with --strict, and every page under docs/ is in its navigation."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


class _ConfigLoader(yaml.SafeLoader):
    """mkdocs.yml names Python objects (`!!python/name:` for the Mermaid fence); reading the nav
    needs none of them, so a tagged value is read as its plain text."""


_ConfigLoader.add_multi_constructor(
    "tag:yaml.org,2002:python/", lambda loader, _suffix, node: loader.construct_scalar(node)
)


def _nav_pages(entries: list[Any]) -> Iterator[str]:
    for entry in entries:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            if isinstance(value, list):
                yield from _nav_pages(value)
            else:
                yield str(value)


def test_the_site_builds_strictly_without_a_broken_link(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "index.html").is_file()


def test_every_page_is_in_the_navigation_and_every_entry_is_a_page() -> None:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_ConfigLoader)  # noqa: S506
    listed = sorted(_nav_pages(config["nav"]))
    pages = sorted(str(page.relative_to(ROOT / "docs")) for page in (ROOT / "docs").rglob("*.md"))
    assert listed == pages
