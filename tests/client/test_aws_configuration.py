"""An application started without an AWS region or AWS credentials gets one line saying what to
set, not a botocore traceback. Each case runs a fresh Python process, as an application starts,
through real botocore: an environment with no AWS variables of whoever runs the tests, empty AWS
config and credentials files, and the EC2 metadata service turned off. Last, a process whose
role credentials stop renewing keeps the token it holds while that token lives."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import botocore.session
import pytest
import time_machine
from botocore.credentials import CredentialProvider, RefreshableCredentials
from botocore.exceptions import CredentialRetrievalError
from mypy_boto3_secretsmanager import SecretsManagerClient

from google_token_secret import AWSConfigurationError, SecretCredentials
from localcloud.template import PROJECT_ROOT
from rotation_core.token_secret import TokenMetadata, TokenSecretValue
from tests.support import REGION, SCOPE, TOKEN_SECRET, unconfigured_aws

READ_THE_TOKEN = """
import sys
from google_token_secret import SecretCredentials
credentials = SecretCredentials(sys.argv[1], **dict(a.split("=", 1) for a in sys.argv[2:]))
print(credentials.expiry.isoformat())
"""
ERROR_LINE = "google_token_secret.errors.AWSConfigurationError: "
NOWHERE = "http://127.0.0.1:9"
"""An endpoint nothing answers on: were a request sent, it would fail as unreachable instead."""
HELD_TOKEN = "ya29.configuration-test"
STORED_EXPIRY = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)


def read_the_token(
    tmp_path: Path, secret_id: str, environment: dict[str, str], *arguments: str
) -> subprocess.CompletedProcess[str]:
    """`SecretCredentials(secret_id, arguments...).expiry` in a new process whose AWS settings
    are `environment` alone; this checkout's client package comes first on its path."""
    return subprocess.run(
        [sys.executable, "-c", READ_THE_TOKEN, secret_id, *arguments],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(PROJECT_ROOT / "client" / "src"),
            **unconfigured_aws(tmp_path),
            **environment,
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def the_error(read: subprocess.CompletedProcess[str]) -> str:
    """The message of the AWSConfigurationError the process ended with, after checking that it
    is the last line and that no botocore exception is chained to it."""
    assert read.returncode == 1, read.stdout
    last = read.stderr.splitlines()[-1]
    assert last.startswith(ERROR_LINE), read.stderr
    assert "botocore.exceptions" not in read.stderr
    return last.removeprefix(ERROR_LINE)


def store_token(secretsmanager: SecretsManagerClient, expires_at: datetime = STORED_EXPIRY) -> str:
    """A token secret in moto, as the rotation writes it; its ARN."""
    value = TokenSecretValue(
        access_token=HELD_TOKEN,
        metadata=TokenMetadata(
            token_type="Bearer",
            expires_at=expires_at,
            issued_at=expires_at - timedelta(hours=1),
            scopes=(SCOPE,),
            service_account="rotator@demo-project.iam.gserviceaccount.com",
            service_account_client_id="104234567890123456789",
        ),
    )
    created = secretsmanager.create_secret(Name=TOKEN_SECRET, SecretString=value.to_secret_string())
    return created["ARN"]


def test_no_region_says_to_set_one(tmp_path: Path) -> None:
    read = read_the_token(tmp_path, TOKEN_SECRET, {"AWS_ENDPOINT_URL": NOWHERE})

    assert the_error(read) == (
        f"No AWS region to read the token secret {TOKEN_SECRET} in: set AWS_REGION or "
        "AWS_DEFAULT_REGION (or region in the AWS profile), pass "
        "SecretCredentials(..., region_name=...), or give the secret's ARN (the stack's "
        "TokenSecretArn output), which names its region"
    )


@pytest.mark.parametrize(
    ("by_arn", "environment", "arguments"),
    [
        (False, {"AWS_REGION": REGION}, []),  # boto3 alone reads only AWS_DEFAULT_REGION
        (False, {"AWS_DEFAULT_REGION": REGION}, []),
        (False, {}, [f"region_name={REGION}"]),
        (True, {}, []),
        (True, {"AWS_DEFAULT_REGION": "eu-west-1"}, []),  # the ARN says where the secret is
    ],
    ids=["AWS_REGION", "AWS_DEFAULT_REGION", "region_name", "arn", "arn-over-configured"],
)
def test_each_way_of_naming_the_region_reads_the_token(
    tmp_path: Path,
    secretsmanager: SecretsManagerClient,
    moto_endpoint: str,
    by_arn: bool,
    environment: dict[str, str],
    arguments: list[str],
) -> None:
    arn = store_token(secretsmanager)
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

    read = read_the_token(
        tmp_path,
        arn if by_arn else TOKEN_SECRET,
        {"AWS_ENDPOINT_URL": moto_endpoint, **credentials, **environment},
        *arguments,
    )

    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == STORED_EXPIRY.replace(tzinfo=None).isoformat()


def test_no_credentials_says_what_to_set_not_to_check_the_network(tmp_path: Path) -> None:
    read = read_the_token(
        tmp_path, TOKEN_SECRET, {"AWS_REGION": REGION, "AWS_ENDPOINT_URL": NOWHERE}
    )

    assert the_error(read) == (
        f"No usable AWS credentials to read the token secret {TOKEN_SECRET} with (Unable to "
        "locate credentials): run the application with an IAM role (Lambda or ECS task role, "
        "EC2 instance profile), or set AWS_PROFILE to a profile in ~/.aws/config, or set "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )
    assert "network" not in read.stderr


def test_half_the_credentials_say_which_half_is_missing(tmp_path: Path) -> None:
    read = read_the_token(
        tmp_path,
        TOKEN_SECRET,
        {"AWS_REGION": REGION, "AWS_ENDPOINT_URL": NOWHERE, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"},
    )

    message = the_error(read)
    assert message.startswith(f"No usable AWS credentials to read the token secret {TOKEN_SECRET}")
    assert "(Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY)" in message


def test_a_profile_that_does_not_exist_is_named(tmp_path: Path) -> None:
    read = read_the_token(
        tmp_path,
        TOKEN_SECRET,
        {"AWS_REGION": REGION, "AWS_ENDPOINT_URL": NOWHERE, "AWS_PROFILE": "prodution"},
    )

    assert the_error(read) == (
        "The AWS profile 'prodution' (from AWS_PROFILE) is not in the AWS config or credentials "
        "file: set AWS_PROFILE to a profile that exists there (see `aws configure "
        "list-profiles`), or unset it to use the role or the credentials this process is given"
    )


class _ExpiringRole(CredentialProvider):
    """Credentials as a role gives them: valid 20 minutes, renewed by botocore before they
    expire, by a call that can be made to fail."""

    METHOD = "expiring-role"

    def __init__(self) -> None:
        super().__init__()
        self.renewing = True

    def load(self) -> RefreshableCredentials:
        return RefreshableCredentials.create_from_metadata(
            self._issue(), refresh_using=self._issue, method=self.METHOD
        )

    def _issue(self) -> dict[str, str]:
        if not self.renewing:
            raise CredentialRetrievalError(
                provider=self.METHOD, error_msg="the role session could not be renewed"
            )
        expiry = datetime.now(UTC) + timedelta(minutes=20)
        return {
            "access_key": "testing",
            "secret_key": "testing",
            "token": "testing",
            "expiry_time": expiry.isoformat(),
        }


def test_credentials_that_stop_renewing_keep_the_held_token_while_it_lives(
    secretsmanager: SecretsManagerClient, moto_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    start = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    role = _ExpiringRole()
    session = botocore.session.get_session()
    session.get_component("credential_provider").insert_before("env", role)
    with time_machine.travel(start, tick=False) as clock:
        store_token(secretsmanager, expires_at=start + timedelta(hours=1))
        client = boto3.Session(botocore_session=session).client(
            "secretsmanager", region_name=REGION, endpoint_url=moto_endpoint
        )
        credentials = SecretCredentials(TOKEN_SECRET, client=client)
        assert credentials.token == HELD_TOKEN
        role.renewing = False

        clock.shift(timedelta(minutes=56))  # inside the margin, the role's credentials expired
        assert credentials.token == HELD_TOKEN
        assert "No usable AWS credentials to read the token secret" in caplog.text
        assert "using the token held, which expires in 240 s" in caplog.text
        clock.shift(timedelta(minutes=4))
        with pytest.raises(AWSConfigurationError, match="the role session could not be renewed"):
            _ = credentials.token
