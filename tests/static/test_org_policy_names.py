"""The organization policies a user meets are named in one form, constraints/iam.<name>, wherever
a user reads them: the docs, the README, the functions' errors and the operator tools."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICIES = (
    "iam.disableServiceAccountKeyCreation",
    "iam.allowServiceAccountCredentialLifetimeExtension",
    "iam.serviceAccountKeyExpiryHours",
)
# template.yaml is left to its owner until its parameter descriptions settle.
READ_BY_USERS = ("README.md", "docs", "functions", "stacktools", "localcloud")


def _files() -> list[Path]:
    found: list[Path] = []
    for entry in READ_BY_USERS:
        path = ROOT / entry
        found += (
            [path] if path.is_file() else sorted(path.rglob("*.md")) + sorted(path.rglob("*.py"))
        )
    return found


def test_every_mention_of_an_org_policy_names_it_constraints_slash_iam() -> None:
    bare = re.compile(rf"(?<!constraints/)({'|'.join(re.escape(p) for p in POLICIES)})")

    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _files()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if bare.search(line)
    ]

    assert found == []
