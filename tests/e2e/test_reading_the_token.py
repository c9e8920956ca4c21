"""docs/reading-the-token.md as written: its Node.js and shell blocks run against a stack on the
local cloud (the Python block runs in a clean venv in test_client_install.py), its error table
names every error the Python package raises, and the AWS CLI messages it quotes are the CLI's."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import google_token_secret
from localcloud.operations import rotate_on_schedule
from localcloud.template import PROJECT_ROOT
from tests.doc_blocks import doc_block
from tests.e2e.stacks import Stack, StackFactory
from tests.e2e.test_node_example import node
from tests.support import unconfigured_aws

READING = "docs/reading-the-token.md"
PAGE = (PROJECT_ROOT / READING).read_text()
GOOGLE = "https://www.googleapis.com/"
DEFAULT_TOKEN_SECRET = "google/access-token"
TOOLS = f"{Path(sys.executable).parent}:/usr/bin:/bin"
"""The project's venv first, for `aws` and `python3`, as a developer's PATH has them."""


@pytest.fixture
def stack(deploy_stack: StackFactory) -> Stack:
    """A stack under the examples' secret name, rotated, with the account's own calendar."""
    stack = deploy_stack(token_secret_name=DEFAULT_TOKEN_SECRET)
    rotate_on_schedule(stack.cloud, stack.deployment)
    stack.cloud.google.add_calendar(stack.account.client_email, readers=[])
    return stack


def calendar_bearers(stack: Stack) -> list[str | None]:
    return [r.bearer for r in stack.cloud.google.requests if r.path.startswith("/calendar/")]


def test_the_node_block_reads_the_token_and_google_accepts_it(stack: Stack, tmp_path: Path) -> None:
    block = doc_block(READING, "js", "secretAccessToken").text
    (tmp_path / "token.mjs").symlink_to(PROJECT_ROOT / "examples" / "node" / "token.mjs")
    (tmp_path / "app.mjs").write_text(block.replace(GOOGLE, stack.cloud.google.api_root_url))

    ran = subprocess.run(
        [node(), "app.mjs"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), **stack.cloud.client_environment()},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert (ran.returncode, ran.stderr) == (0, "")
    assert ran.stdout == f"200 {stack.current()['expires_at']}\n"
    assert calendar_bearers(stack) == [stack.current()["GOOGLE_ACCESS_TOKEN"]]


def test_the_shell_block_calls_google_with_the_token_and_never_prints_it(stack: Stack) -> None:
    block = doc_block(READING, "sh", "aws secretsmanager get-secret-value").text

    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.replace(GOOGLE, stack.cloud.google.api_root_url)],
        env={"PATH": TOOLS, **stack.cloud.client_environment()},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["kind"] == "calendar#events"
    token = stack.current()["GOOGLE_ACCESS_TOKEN"]
    assert calendar_bearers(stack) == [token]
    assert token not in ran.stdout + ran.stderr


def test_the_error_table_names_every_error_the_package_raises() -> None:
    table = PAGE[PAGE.index("## Errors, and what to do") :]
    named = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    exported = {
        name
        for name in google_token_secret.__all__
        if name.endswith("Error") and name != "TokenSecretError"
    }

    assert named == exported


@pytest.mark.parametrize(
    ("environment", "quoted"),
    [
        ({"AWS_REGION": "us-east-1"}, "You must specify a region"),  # version 1 ignores it
        ({"AWS_DEFAULT_REGION": "us-east-1"}, "Unable to locate credentials"),
    ],
)
def test_the_aws_cli_messages_quoted_are_the_clis(
    tmp_path: Path, environment: dict[str, str], quoted: str
) -> None:
    assert f"`{quoted}`" in PAGE

    ran = subprocess.run(
        ["aws", "secretsmanager", "get-secret-value", "--secret-id", DEFAULT_TOKEN_SECRET],
        env={
            "PATH": TOOLS,
            **unconfigured_aws(tmp_path),
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            **environment,
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert ran.returncode != 0
    assert quoted in ran.stderr
