"""Constants and helpers the tests share (fixtures live in conftest.py)."""

import uuid

from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.google_emulator import GoogleEmulator

REGION = "us-east-1"
SCOPE = "https://www.googleapis.com/auth/calendar.readonly"
KEY_SECRET = "google/service-account-key"
TOKEN_SECRET = "google/access-token"
ROTATION_FUNCTIONS: dict[str, str] = {}
"""Token secret ARN → the placeholder rotation function moto invokes for it."""


def begin_rotation(secretsmanager: SecretsManagerClient, secret_id: str) -> str:
    """Secrets Manager's own start of a rotation: rotation enabled and an empty AWSPENDING version.
    The placeholder function moto then invokes does nothing, so the steps are ours to run."""
    token = str(uuid.uuid4())
    arn = secretsmanager.describe_secret(SecretId=secret_id)["ARN"]
    secretsmanager.rotate_secret(
        SecretId=secret_id,
        ClientRequestToken=token,
        RotationLambdaARN=ROTATION_FUNCTIONS[arn],
        RotationRules={"AutomaticallyAfterDays": 1},
    )
    return token


def stages(secretsmanager: SecretsManagerClient, secret_id: str) -> dict[str, list[str]]:
    return secretsmanager.describe_secret(SecretId=secret_id)["VersionIdsToStages"]


def tokens_minted(google: GoogleEmulator) -> int:
    """Tokens the emulator issued during this test (its issued-token list spans the session)."""
    return sum(r.path == "/token" and r.status == 200 for r in google.requests)
