"""The README's examples run as written against the local cloud: what it shows a newcomer works."""

import json
import os
import re
import subprocess
import sys
from datetime import datetime

from localcloud.operations import rotate_on_schedule
from localcloud.template import PROJECT_ROOT
from tests.e2e.stacks import Stack, StackFactory

README = (PROJECT_ROOT / "README.md").read_text()
# The README's examples name the template's default token secret.
DEFAULT_TOKEN_SECRET = "google/access-token"


def fenced_block(language: str, after: str) -> str:
    """The first ```language block after the line that starts with `after`."""
    start = README.index(after)
    match = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(README, start)
    assert match is not None, f"no {language} block after {after!r}"
    return match.group(1)


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
    example = fenced_block("python", "**Python**")

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
    example = fenced_block("python", "**Python: the `google-token-secret` package**").replace(
        "https://www.googleapis.com/", google.api_root_url
    )

    answer = run_against(stack, example)

    status, expiry = answer.split(maxsplit=1)
    assert status == "200"
    expires_at = datetime.fromisoformat(stack.current()["expires_at"])
    assert datetime.fromisoformat(expiry.strip()) == expires_at.replace(tzinfo=None)


def test_the_iam_policy_example_is_valid_json_naming_one_action() -> None:
    policy = json.loads(fenced_block("json", "**The application's IAM policy**"))
    [statement] = policy["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Condition"]["StringEquals"]["secretsmanager:VersionStage"] == "AWSCURRENT"
