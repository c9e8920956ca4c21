"""The Node.js minimum is stated in one place, `engines` of examples/node/package.json: every
other "Node.js N or later" in the repository says the same N, the lock file agrees, and every
package the lock pins runs on that version."""

import json
import operator
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from localcloud.template import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "examples" / "node"
_COMPARISONS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
MENTIONS = re.compile(r"Node(?:\.js)?\s+(\d+)\s+or\s+later")
"""How a minimum is written in prose, a message or a comment."""


def declared_minimum() -> int:
    engines = json.loads((EXAMPLE / "package.json").read_text())["engines"]["node"]
    match = re.fullmatch(r">=(\d+)", engines)
    assert match, f'engines.node of package.json must read ">=N", not {engines!r}'
    return int(match.group(1))


def documents() -> list[Path]:
    """Where a reader or a user meets the minimum: docs, READMEs, the Makefile's messages and
    the tests' messages."""
    found = [
        PROJECT_ROOT / "Makefile",
        *PROJECT_ROOT.glob("*.md"),
        *PROJECT_ROOT.glob("docs/**/*.md"),
        *PROJECT_ROOT.glob("client/*.md"),
        *PROJECT_ROOT.glob("examples/**/*.md"),
        *PROJECT_ROOT.glob("tests/**/*.py"),
    ]
    return [path for path in found if "node_modules" not in path.parts]


def satisfies(version: tuple[int, int, int], engines: str) -> bool:
    """Whether `version` is in an npm `engines` range of the forms the lock holds: alternatives
    joined by `||`, each a set of comparators (>=, >, <=, <, ^, a bare version, *)."""
    for alternative in engines.split("||"):
        comparators = re.findall(r"(>=|<=|>|<|\^)?\s*(\d+(?:\.\d+){0,2}|\*)", alternative)
        if all(_holds(version, comparator, bound) for comparator, bound in comparators):
            return True
    return False


def _holds(version: tuple[int, int, int], comparator: str, bound: str) -> bool:
    if bound == "*":
        return True
    given = [int(part) for part in bound.split(".")]
    floor = (*given, *[0] * (3 - len(given)))
    if comparator in _COMPARISONS:
        return _COMPARISONS[comparator](version, floor)
    if comparator == "^":
        return version[0] == floor[0] and version >= floor
    return list(version[: len(given)]) == given  # a bare 14 or 14.17: that release line


def test_every_mention_of_the_minimum_is_the_one_package_json_states() -> None:
    minimum = declared_minimum()
    wrong = [
        f"{path.relative_to(PROJECT_ROOT)}: Node.js {stated} or later"
        for path in documents()
        for stated in MENTIONS.findall(path.read_text())
        if int(stated) != minimum
    ]
    assert wrong == [], f"package.json's engines say Node.js {minimum} or later"


def test_the_lock_file_records_the_same_engines() -> None:
    lock = json.loads((EXAMPLE / "package-lock.json").read_text())
    manifest = json.loads((EXAMPLE / "package.json").read_text())

    assert lock["packages"][""]["engines"] == manifest["engines"]


def test_every_locked_package_runs_on_the_minimum() -> None:
    minimum = (declared_minimum(), 0, 0)
    lock = json.loads((EXAMPLE / "package-lock.json").read_text())
    refusing = {
        name: package["engines"]["node"]
        for name, package in lock["packages"].items()
        if "node" in package.get("engines", {})
        and not satisfies(minimum, package["engines"]["node"])
    }

    assert refusing == {}


@pytest.mark.parametrize(
    ("engines", "expected"),
    [
        (">=18.0.0", True),
        (">=20.0.0", True),
        (">=22", False),
        (">=16 || 14 >=14.17", True),
        ("^12.20 || >= 14.13", True),
        ("^18.0.0", False),
        ("*", True),
    ],
)
def test_the_range_check_reads_npm_ranges(engines: str, expected: bool) -> None:
    assert satisfies((20, 0, 0), engines) is expected
