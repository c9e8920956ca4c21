"""A tag does not make a token secret. A secret that carries this stack's managed-by tag but holds a
value the rotation never wrote is refused by createSecret before anything is written, and what
follows the failure neither tags it nor schedules its rotation (moto over HTTP, Google emulator)."""

import json
import traceback
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.google_emulator import GoogleEmulator
from rotation_core.errors import UnmanagedSecretError
from rotation_core.failure_notice import FailureReport
from rotation_core.follow_up import FollowUps
from rotation_core.rotation import Rotation
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import SecretsGateway
from rotation_core.steps import Step
from rotation_core.token_secret import PLACEHOLDER
from tests.support import (
    MANAGED_TAG,
    MANAGING_STACK,
    begin_rotation,
    run_all,
    stages,
    tokens_minted,
)

FOREIGN = "s3cr3t-of-another-team-4711"
"""Part of every foreign value below: it must reach no error, notice or log line."""
FOREIGN_VALUES: dict[str, dict[str, Any]] = {
    "plain-text": {"SecretString": FOREIGN},
    "credentials": {"SecretString": json.dumps({"username": "app", "password": FOREIGN})},
    "token-by-hand": {"SecretString": json.dumps({"GOOGLE_ACCESS_TOKEN": FOREIGN})},
    "placeholder-and-more": {
        "SecretString": json.dumps({"GOOGLE_ACCESS_TOKEN": "", "password": FOREIGN})
    },
    "binary": {"SecretBinary": FOREIGN.encode()},
    "no-value": {},
}


def foreign_secret(secretsmanager: SecretsManagerClient, value: dict[str, Any]) -> str:
    """Another team's secret, tagged as this stack's by someone who may tag but not write it."""
    arn = secretsmanager.create_secret(Name=f"app/{uuid.uuid4().hex[:8]}", **value)["ARN"]
    secretsmanager.tag_resource(SecretId=arn, Tags=[MANAGED_TAG])
    return arn


def versions(secretsmanager: SecretsManagerClient, secret_id: str) -> list[dict[str, Any]]:
    """Every version, unlabelled ones included, with its value: what a write would change."""
    listed = secretsmanager.list_secret_version_ids(SecretId=secret_id, IncludeDeprecated=True)
    found = []
    for version in listed["Versions"]:
        answer: Mapping[str, object]
        try:
            answer = secretsmanager.get_secret_value(
                SecretId=secret_id, VersionId=version["VersionId"]
            )
        except secretsmanager.exceptions.ResourceNotFoundException:
            answer = {}  # Secrets Manager's AWSPENDING version before createSecret fills it
        found.append(
            {
                "id": version["VersionId"],
                "stages": sorted(version.get("VersionStages", [])),
                "string": answer.get("SecretString"),
                "binary": answer.get("SecretBinary"),
            }
        )
    return sorted(found, key=lambda version: version["id"])


@pytest.mark.parametrize("manual", [False, True], ids=["secrets-manager-drives", "manual"])
@pytest.mark.parametrize("value", sorted(FOREIGN_VALUES))
def test_create_secret_refuses_a_tagged_secret_that_holds_a_foreign_value(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    caplog: pytest.LogCaptureFixture,
    value: str,
    manual: bool,
) -> None:
    secret_arn = foreign_secret(secretsmanager, FOREIGN_VALUES[value])
    # Secrets Manager's own start of a rotation (an empty AWSPENDING version); a manual run
    # names a version of its own.
    token = str(uuid.uuid4()) if manual else begin_rotation(secret_arn)
    before = versions(secretsmanager, secret_arn)

    with pytest.raises(UnmanagedSecretError) as refused:
        rotation.create_secret(RotationRequest(secret_arn, token, manual=manual))

    message = str(refused.value)
    assert "is not a token secret" in message
    assert f"token-rotation:managed-by={MANAGING_STACK}" in message
    assert f"nor the placeholder {PLACEHOLDER}" in message
    assert "Nothing was written" in message
    assert "(docs/many-secrets.md)" in message
    assert "remove its token-rotation:managed-by tag" in message
    assert versions(secretsmanager, secret_arn) == before
    assert tokens_minted(google) == 0
    shown = [message, *traceback.format_exception(refused.value), caplog.text]
    assert not any(FOREIGN in text for text in shown)


def test_a_foreign_rotation_in_progress_is_neither_superseded_nor_abandoned(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    """The other team's own rotation holds AWSPENDING: a manual run would supersede an empty
    pending version of a token secret, and a stale one would be abandoned; not here."""
    secret_arn = foreign_secret(secretsmanager, FOREIGN_VALUES["credentials"])
    theirs = secretsmanager.put_secret_value(
        SecretId=secret_arn,
        SecretString=json.dumps({"username": "app", "password": FOREIGN + "-next"}),
        VersionStages=["AWSPENDING"],
    )["VersionId"]
    before = versions(secretsmanager, secret_arn)

    for request in (
        RotationRequest(secret_arn, str(uuid.uuid4()), manual=True),
        RotationRequest(secret_arn, theirs, manual=True),
    ):
        with pytest.raises(UnmanagedSecretError, match="is not a token secret"):
            rotation.create_secret(request)

    assert versions(secretsmanager, secret_arn) == before
    assert stages(secretsmanager, secret_arn)[theirs] == ["AWSPENDING"]
    assert tokens_minted(google) == 0


def test_a_token_secret_created_with_the_placeholder_in_any_spelling_rotates_again_and_again(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    """The guard lets through both values a token secret ever holds: the placeholder (here as a
    tool that writes compact JSON would store it) and the rotation's own previous token."""
    secret_arn = secretsmanager.create_secret(
        Name="google/compact-token", SecretString='{"GOOGLE_ACCESS_TOKEN":""}', Tags=[MANAGED_TAG]
    )["ARN"]

    first = run_all(rotation, RotationRequest(secret_arn, begin_rotation(secret_arn)))
    second = run_all(rotation, RotationRequest(secret_arn, str(uuid.uuid4()), manual=True))

    assert first == second == ["created", "checked", "verified", "promoted"]
    current = secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"]
    assert json.loads(current)["GOOGLE_ACCESS_TOKEN"].startswith("ya29.")


def test_after_the_refusal_nothing_tags_the_foreign_secret_or_schedules_its_rotation(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    environment: dict[str, str],
) -> None:
    """DescribeFailure would otherwise start a failure streak on the secret (status tags) and
    schedule a retry, whose RotateSecret runs whatever rotation the secret is configured with."""
    secret_arn = foreign_secret(secretsmanager, FOREIGN_VALUES["credentials"])
    token = begin_rotation(secret_arn)
    with pytest.raises(UnmanagedSecretError) as refused:
        rotation.create_secret(RotationRequest(secret_arn, token))
    gateway = SecretsGateway(secretsmanager)
    tags_before = gateway.describe(secret_arn).tags
    report = FailureReport.from_payload(
        {
            "Request": {
                "SecretId": secret_arn,
                "ClientRequestToken": token,
                "Step": "createSecret",
            },
            "FailedStep": Step.CREATE.value,
            "Failure": {
                "Error": type(refused.value).__name__,
                "Cause": json.dumps({"errorMessage": str(refused.value)}),
            },
            "ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:rotation:x",
        }
    )

    follow_up = FollowUps(gateway, environment, lambda: datetime.now(UTC)).after_failure(
        report, gateway.describe(secret_arn)
    )

    assert follow_up.schedule is None
    assert follow_up.notice is not None
    assert "is not a token secret" in follow_up.notice.message
    assert FOREIGN not in follow_up.notice.message
    assert gateway.describe(secret_arn).tags == tags_before == {MANAGED_TAG["Key"]: MANAGING_STACK}
