"""Every command docs/google-setup.md and docs/post-deploy-check.md tell a user to run, run as
written in a shell whose exports point at the local cloud, on a stack deployed as a user's."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from localcloud.cloud import LocalCloud
from localcloud.demo import DEMO_PARAMETERS
from localcloud.operations import rotate_on_schedule
from tests.doc_blocks import doc_block

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "rotator@demo-project.iam.gserviceaccount.com"


DOCUMENTED = [
    (block.page, command)
    for block in (
        doc_block("docs/google-setup.md", "sh", "make google-setup\n"),
        doc_block("docs/google-setup.md", "sh", "google-setup --stack-name"),
        doc_block("docs/post-deploy-check.md", "sh", "make post-deploy-check\n"),
        doc_block("docs/post-deploy-check.md", "sh", "check --no-rotate"),
    )
    for command in block.commands()
]


def test_the_pages_tell_only_stacktools_commands() -> None:
    assert len(DOCUMENTED) == 4
    assert all(
        command.startswith((".venv/bin/python -m stacktools ", "make google-setup", "make post"))
        for _, command in DOCUMENTED
    )


@pytest.fixture(scope="module")
def shell_environment(cloud: LocalCloud) -> dict[str, str]:
    """A user's deploy (the default stack name, an GoogleServiceAccount), its key stored, and
    the exports `localcloud up` prints; `python` is this virtual environment's."""
    cloud.deploy({**DEMO_PARAMETERS, "GoogleServiceAccount": ACCOUNT})
    cloud.store_service_account_key(cloud.google.create_service_account(ACCOUNT))
    return {
        **os.environ,
        **cloud.client_environment(),
        "GOOGLE_TOKENINFO_URL": cloud.google.tokeninfo_url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        # A shell of its own, not a recipe of the `make test` that runs this.
        "MAKEFLAGS": "",
        "MAKELEVEL": "",
    }


@pytest.mark.parametrize(("page", "command"), DOCUMENTED)
def test_each_documented_command_runs_as_written(
    cloud: LocalCloud, shell_environment: dict[str, str], page: str, command: str
) -> None:
    if "--no-rotate" in command and cloud.deployment is not None:
        # As on the page, after a rotation (`make post-deploy-check` may run on another worker).
        rotate_on_schedule(cloud, cloud.deployment)
    completed = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=shell_environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stderr == ""
    if "google-setup" in command:
        assert f"--iam-account={ACCOUNT}" in completed.stdout
    else:
        assert completed.stdout.endswith(" ok: all checks passed\n")
        token = cloud.client("secretsmanager").get_secret_value(SecretId="google/access-token")
        assert token["SecretString"].split('"')[3] not in completed.stdout
