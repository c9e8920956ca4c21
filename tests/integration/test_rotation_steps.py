"""The four steps against moto (real HTTP) and the Google emulator: happy paths, idempotency,
and the contract's preconditions."""

import json
import uuid

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.faults import concurrent_pending_write
from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from rotation_core.errors import (
    NotPendingVersionError,
    RotationInProgressError,
    RotationNotEnabledError,
    SecretNotFoundError,
    UnknownRotationTokenError,
)
from rotation_core.rotation import Rotation
from rotation_core.rotation_request import RotationRequest
from rotation_core.steps import Step
from rotation_core.token_secret import TokenSecretValue
from tests.support import (
    SCOPE,
    TOKEN_SECRET,
    begin_rotation,
    current_value,
    run_all,
    stages,
    tokens_minted,
)


def pending_value(secretsmanager: SecretsManagerClient, token: str) -> TokenSecretValue:
    answer = secretsmanager.get_secret_value(
        SecretId=TOKEN_SECRET, VersionId=token, VersionStage="AWSPENDING"
    )
    return TokenSecretValue.from_secret_string(answer["SecretString"])


def test_full_rotation_promotes_a_token_google_accepts(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
) -> None:
    token = begin_rotation(token_secret_arn)
    actions = run_all(rotation, RotationRequest(token_secret_arn, token))

    assert actions == ["created", "checked", "verified", "promoted"]
    assert "AWSCURRENT" in stages(secretsmanager, TOKEN_SECRET)[token]
    current = current_value(secretsmanager)
    assert current.access_token == google.issued_tokens()[-1].access_token
    assert current.metadata.scopes == (SCOPE,)
    assert current.metadata.service_account == service_account.client_email
    lifetime = current.metadata.expires_at - current.metadata.issued_at
    assert 3590 <= lifetime.total_seconds() <= 3610


def test_create_secret_stores_the_schema_applications_read(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    token = begin_rotation(token_secret_arn)
    rotation.create_secret(
        RotationRequest(
            token_secret_arn, token, rotation_token="b1e2c3d4-rotation-token-from-secrets-manager"
        )
    )

    stored = json.loads(
        secretsmanager.get_secret_value(
            SecretId=TOKEN_SECRET, VersionId=token, VersionStage="AWSPENDING"
        )["SecretString"]
    )
    assert set(stored) == {
        "GOOGLE_ACCESS_TOKEN",
        "token_type",
        "expires_at",
        "issued_at",
        "scopes",
        "service_account",
        "service_account_client_id",
    }
    assert stored["GOOGLE_ACCESS_TOKEN"].startswith("ya29.")
    assert stored["token_type"] == "Bearer"
    assert stored["expires_at"].endswith("Z")


def test_step_outputs_carry_metadata_but_never_the_token(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    token = begin_rotation(token_secret_arn)
    payloads = [
        rotation.run(step, RotationRequest(TOKEN_SECRET, token)).as_payload() for step in Step
    ]

    issued = google.issued_tokens()[-1].access_token
    assert all(issued not in json.dumps(payload) for payload in payloads)
    assert payloads[0]["VersionId"] == token
    assert payloads[0]["SecretArn"] == token_secret_arn
    assert payloads[0]["Scopes"] == [SCOPE]
    assert payloads[3]["PreviousVersionId"] in stages(secretsmanager, TOKEN_SECRET)


@pytest.mark.parametrize("secret_id_kind", ["name", "arn"])
def test_secret_may_be_named_by_name_or_arn(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    secret_id_kind: str,
) -> None:
    secret_id = TOKEN_SECRET if secret_id_kind == "name" else token_secret_arn
    token = begin_rotation(secret_id)
    assert run_all(rotation, RotationRequest(secret_id, token))[-1] == "promoted"


def test_every_step_run_twice_ends_in_the_same_state(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    token = begin_rotation(token_secret_arn)
    request = RotationRequest(token_secret_arn, token)
    actions = []
    for step in Step:
        actions += [rotation.run(step, request).action, rotation.run(step, request).action]

    assert actions == [
        "created",
        "already-created",
        "checked",
        "checked",
        "verified",
        "verified",
        "promoted",
        "already-current",
    ]
    assert tokens_minted(google) == 1


def test_create_secret_retried_after_its_write_mints_nothing_more(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    token = begin_rotation(token_secret_arn)
    first = rotation.create_secret(RotationRequest(token_secret_arn, token))
    versions_after_first = stages(secretsmanager, TOKEN_SECRET)
    token_requests = sum(r.path == "/token" for r in google.requests)

    again = rotation.create_secret(RotationRequest(token_secret_arn, token))

    assert again.action == "already-created"
    assert again.metadata == first.metadata
    assert sum(r.path == "/token" for r in google.requests) == token_requests
    assert stages(secretsmanager, TOKEN_SECRET) == versions_after_first


def test_create_secret_keeps_the_value_a_concurrent_attempt_wrote_first(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
) -> None:
    other = RotationRequest(token_secret_arn, str(uuid.uuid4()), manual=True)
    winner = TokenSecretValue.from_secret_string(
        _minted_elsewhere(rotation, secretsmanager, other, token_secret_arn)
    )
    token = begin_rotation(token_secret_arn)

    with concurrent_pending_write(token_secret_arn, winner.to_secret_string()) as race:
        outcome = rotation.create_secret(RotationRequest(token_secret_arn, token))

    assert race.fired
    assert outcome.action == "already-created"
    assert outcome.metadata == winner.metadata
    assert pending_value(secretsmanager, token) == winner


def _minted_elsewhere(
    rotation: Rotation, secretsmanager: SecretsManagerClient, request: RotationRequest, arn: str
) -> str:
    """A genuine token value another createSecret could have written (from a manual run)."""
    rotation.create_secret(request)
    value = secretsmanager.get_secret_value(
        SecretId=arn, VersionId=request.token, VersionStage="AWSPENDING"
    )["SecretString"]
    secretsmanager.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=request.token
    )
    return value


def test_already_current_version_is_a_no_op_for_every_step(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    token = begin_rotation(token_secret_arn)
    run_all(rotation, RotationRequest(token_secret_arn, token))
    before = stages(secretsmanager, TOKEN_SECRET)

    assert run_all(rotation, RotationRequest(token_secret_arn, token)) == ["already-current"] * 4
    assert stages(secretsmanager, TOKEN_SECRET) == before


@pytest.mark.parametrize("step", list(Step))
def test_unknown_token_is_refused(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str, step: Step
) -> None:
    begin_rotation(token_secret_arn)
    with pytest.raises(UnknownRotationTokenError, match="has no stage for rotation"):
        rotation.run(step, RotationRequest(token_secret_arn, str(uuid.uuid4())))


@pytest.mark.parametrize("step", list(Step))
def test_token_without_awspending_is_refused(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str, step: Step
) -> None:
    first = begin_rotation(token_secret_arn)
    run_all(rotation, RotationRequest(token_secret_arn, first))
    second = begin_rotation(token_secret_arn)
    run_all(rotation, RotationRequest(token_secret_arn, second))  # first is now AWSPREVIOUS

    with pytest.raises(NotPendingVersionError, match="is not AWSPENDING"):
        rotation.run(step, RotationRequest(token_secret_arn, first))


@pytest.mark.parametrize("step", list(Step))
def test_rotation_disabled_is_refused_when_secrets_manager_drives(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str, step: Step
) -> None:
    token = begin_rotation(token_secret_arn)
    secretsmanager.cancel_rotate_secret(SecretId=token_secret_arn)
    secretsmanager.update_secret_version_stage(
        SecretId=token_secret_arn, VersionStage="AWSPENDING", MoveToVersionId=token
    )

    with pytest.raises(RotationNotEnabledError, match="rotation is not enabled"):
        rotation.run(step, RotationRequest(token_secret_arn, token))


@pytest.mark.parametrize("step", list(Step))
def test_missing_secret_is_a_clear_error(
    rotation: Rotation, secretsmanager: SecretsManagerClient, step: Step
) -> None:
    with pytest.raises(SecretNotFoundError, match="'google/nope' was not found"):
        rotation.run(step, RotationRequest("google/nope", str(uuid.uuid4())))


def test_manual_rotation_runs_without_rotation_enabled(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    request = RotationRequest(token_secret_arn, str(uuid.uuid4()), manual=True)

    assert run_all(rotation, request) == ["created", "checked", "verified", "promoted"]
    assert run_all(rotation, request) == ["already-current"] * 4
    assert "AWSCURRENT" in stages(secretsmanager, TOKEN_SECRET)[request.token]


def test_manual_rotation_is_refused_while_another_rotation_is_pending(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    scheduled = begin_rotation(token_secret_arn)
    rotation.create_secret(RotationRequest(token_secret_arn, scheduled))

    with pytest.raises(RotationInProgressError, match=f"pending version {scheduled} holds a"):
        rotation.create_secret(RotationRequest(token_secret_arn, str(uuid.uuid4()), manual=True))
    assert tokens_minted(google) == 1
    assert "AWSPENDING" in stages(secretsmanager, TOKEN_SECRET)[scheduled]


def test_manual_rotation_after_a_finished_one_is_allowed(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    scheduled = begin_rotation(token_secret_arn)
    run_all(rotation, RotationRequest(token_secret_arn, scheduled))  # AWSPENDING stays on current

    manual = RotationRequest(token_secret_arn, str(uuid.uuid4()), manual=True)
    assert run_all(rotation, manual)[-1] == "promoted"
    assert stages(secretsmanager, TOKEN_SECRET)[scheduled] == ["AWSPREVIOUS"]
