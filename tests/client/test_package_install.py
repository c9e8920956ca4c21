"""`pip install ./client` in a clean virtual environment (offline, from a wheelhouse of the
project's venv): the package builds, brings only its declared dependencies (no `requests` without
the extra), and reads a token secret with nothing of this repository on the path."""

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.template import PROJECT_ROOT
from rotation_core.token_secret import TokenMetadata, TokenSecretValue
from tests.clean_venv import clean_venv, dependency_wheelhouse, offline_pip_environment
from tests.support import REGION, SCOPE, TOKEN_SECRET

READ_THE_SECRET = """
import json, sys
from google_token_secret import SecretCredentials
credentials = SecretCredentials(sys.argv[1])
print(json.dumps({"expiry": credentials.expiry.isoformat(), "valid": credentials.valid,
                  "modules": sorted(m.split(".")[0] for m in sys.modules)}))
"""


def test_pip_installs_the_client_into_a_clean_venv_and_it_reads_the_secret(
    tmp_path: Path, secretsmanager: SecretsManagerClient, moto_endpoint: str
) -> None:
    expires_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    token = TokenSecretValue(
        access_token="ya29.installed-client-test",
        metadata=TokenMetadata(
            token_type="Bearer",
            expires_at=expires_at,
            issued_at=expires_at - timedelta(hours=1),
            scopes=(SCOPE,),
            service_account="rotator@demo-project.iam.gserviceaccount.com",
            service_account_client_id="104234567890123456789",
        ),
    )
    secretsmanager.create_secret(Name=TOKEN_SECRET, SecretString=token.to_secret_string())
    bin_folder = clean_venv(tmp_path / "venv")
    python = bin_folder / "python"
    wheelhouse = dependency_wheelhouse(tmp_path / "wheelhouse")

    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(PROJECT_ROOT / "client")],
        env=offline_pip_environment(bin_folder, wheelhouse),
        check=True,
        timeout=300,
    )
    installed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        check=True,
        capture_output=True,
        text=True,
    )
    read = subprocess.run(
        [python, "-c", READ_THE_SECRET, TOKEN_SECRET],
        env={
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
    )
    assert read.returncode == 0, read.stderr

    names = {package["name"].lower() for package in json.loads(installed.stdout)}
    assert {"google-token-secret", "boto3", "google-auth"} <= names
    assert not names & {"moto", "aws-lambda-powertools", "google-api-python-client", "requests"}
    answer = json.loads(read.stdout)
    assert answer["expiry"] == expires_at.replace(tzinfo=None).isoformat()
    assert answer["valid"] is True
    assert "rotation_core" not in answer["modules"]
