"""The examples the README and the reading page show run as written against the local cloud:
what they show a newcomer works."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from localcloud.operations import rotate_on_schedule
from localcloud.template import PROJECT_ROOT
from tests.doc_blocks import doc_block
from tests.e2e.stacks import Stack, StackFactory

# The examples name the template's default token secret.
DEFAULT_TOKEN_SECRET = "google/access-token"
READING = "docs/reading-the-token.md"


def run_against(stack: Stack, example: str) -> str:
    """Runs a README block as an application would, against the stack's local cloud: its
    standard output."""
    answer = subprocess.run(
        [sys.executable, "-c", example],
        env={**os.environ, **stack.cloud.client_environment()},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert answer.returncode == 0, answer.stderr
    return answer.stdout


def test_the_python_example_reads_a_token_google_auth_accepts(
    deploy_stack: StackFactory,
) -> None:
    stack = deploy_stack(token_secret_name=DEFAULT_TOKEN_SECRET)
    assert [e.status for e in rotate_on_schedule(stack.cloud, stack.deployment)] == [
        "SUCCEEDED"
    ] * 4
    example = doc_block(READING, "python", "from google.oauth2.credentials import").text

    answer = run_against(stack, example)

    valid, expires_at = answer.split()
    assert valid == "True"
    assert expires_at == stack.current()["expires_at"]


def test_the_client_package_example_lists_a_calendar_with_the_rotated_token(
    deploy_stack: StackFactory,
) -> None:
    stack = deploy_stack(token_secret_name=DEFAULT_TOKEN_SECRET)
    rotate_on_schedule(stack.cloud, stack.deployment)
    google = stack.cloud.google
    google.add_calendar(stack.account.client_email, readers=[])  # the account's "primary"
    # As written, but Google's address is the emulator's.
    example = doc_block("README.md", "python", "SecretCredentials(").text.replace(
        "https://www.googleapis.com/", google.api_root_url
    )

    answer = run_against(stack, example)

    status, expiry = answer.split(maxsplit=1)
    assert status == "200"
    expires_at = datetime.fromisoformat(stack.current()["expires_at"])
    assert datetime.fromisoformat(expiry.strip()) == expires_at.replace(tzinfo=None)


def test_the_iam_policy_example_is_valid_json_naming_one_action() -> None:
    policy = json.loads(doc_block(READING, "json", '"secretsmanager:GetSecretValue"').text)
    [statement] = policy["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Condition"]["StringEquals"]["secretsmanager:VersionStage"] == "AWSCURRENT"


# Imports the README's module as written and prints a digest of the token it returns, never the
# token itself.
NODE_DRIVER = """
import { createHash } from "node:crypto";
import { googleAccessToken } from "./readme.mjs";

const token = await googleAccessToken(process.env.TOKEN_SECRET_ID);
const again = await googleAccessToken(process.env.TOKEN_SECRET_ID);
console.log(createHash("sha256").update(token).digest("hex"), token === again);
"""


def test_the_node_example_reads_the_current_token(
    deploy_stack: StackFactory, tmp_path: Path
) -> None:
    stack = deploy_stack(token_secret_name=DEFAULT_TOKEN_SECRET)
    rotate_on_schedule(stack.cloud, stack.deployment)
    node = shutil.which("node")
    assert node is not None, "node not found: install Node.js to test the README's example"
    # The example's own packages, as `npm ci` installed them for examples/node.
    (tmp_path / "node_modules").symlink_to(PROJECT_ROOT / "examples" / "node" / "node_modules")
    (tmp_path / "readme.mjs").write_text(doc_block("README.md", "js", "googleAccessToken").text)
    (tmp_path / "driver.mjs").write_text(NODE_DRIVER)

    answer = subprocess.run(
        [node, "driver.mjs"],
        cwd=tmp_path,
        env={
            "PATH": os.environ.get("PATH", ""),
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **stack.cloud.client_environment(),
            "TOKEN_SECRET_ID": DEFAULT_TOKEN_SECRET,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert answer.returncode == 0, answer.stderr
    digest, same = answer.stdout.split()
    token = stack.current()["GOOGLE_ACCESS_TOKEN"]
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert same == "true"
