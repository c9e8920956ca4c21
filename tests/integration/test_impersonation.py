"""The impersonation source: the key's account mints another account's token through IAM
Credentials generateAccessToken, up to 12 hours, and Google's refusals say what fixes them."""

from datetime import UTC, datetime, timedelta

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from rotation_core.errors import (
    GoogleGrantRejectedError,
    GoogleUnavailableError,
    SecretNotFoundError,
)
from rotation_core.refresh import CURRENT_EXPIRES_AT_TAG
from rotation_core.rotation_request import RotationRequest
from rotation_core.steps import Step
from tests.minting_sources import impersonating, impersonation_target
from tests.support import begin_rotation, current_value, run_all, stages


@pytest.fixture
def target(google: GoogleEmulator, service_account: ServiceAccountKey) -> str:
    return impersonation_target(google, service_account)


def test_an_impersonated_token_belongs_to_the_target_and_google_accepts_it(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
    target: str,
    token_secret_arn: str,
) -> None:
    rotation = impersonating(secretsmanager, environment, google, target)

    actions = run_all(rotation, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn)))

    assert actions == ["created", "checked", "verified", "promoted"]
    stored = current_value(secretsmanager)
    assert stored.metadata.service_account == target != service_account.client_email
    info = google.token_info(stored.access_token)
    assert info is not None
    assert info["azp"] == stored.metadata.service_account_client_id
    lifetime = stored.metadata.expires_at - stored.metadata.issued_at
    assert abs(lifetime - timedelta(hours=1)) < timedelta(seconds=5)


def test_twelve_hours_with_the_org_policy_and_the_next_refresh_follows_the_real_expiry(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    target: str,
    token_secret_arn: str,
) -> None:
    google.allow_lifetime_extension(target)
    rotation = impersonating(
        secretsmanager, environment, google, target, TOKEN_LIFETIME_SECONDS="43200"
    )
    # A secret that held a token before (a first token's successor comes at its own moment).
    secretsmanager.tag_resource(
        SecretId=token_secret_arn,
        Tags=[{"Key": CURRENT_EXPIRES_AT_TAG, "Value": "2026-01-01T00:00:00Z"}],
    )
    token = begin_rotation(token_secret_arn)
    request = RotationRequest(token_secret_arn, token)
    for step in (Step.CREATE, Step.SET, Step.TEST):
        rotation.run(step, request)

    finished = rotation.run(Step.FINISH, request)

    stored = current_value(secretsmanager)
    assert stored.metadata.expires_at - datetime.now(UTC) > timedelta(hours=11, minutes=59)
    assert finished.follow_up is not None
    assert finished.follow_up.schedule is not None
    # The refresh adapts to the real expiry: 11 h 45 min from now, not 45 minutes.
    assert finished.follow_up.schedule.due == stored.metadata.expires_at - timedelta(seconds=900)


def test_twelve_hours_without_the_org_policy_is_refused_saying_how_to_fix_it(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    target: str,
    token_secret_arn: str,
) -> None:
    rotation = impersonating(
        secretsmanager, environment, google, target, TOKEN_LIFETIME_SECONDS="43200"
    )
    token = begin_rotation(token_secret_arn)

    with pytest.raises(GoogleGrantRejectedError) as refused:
        rotation.run(Step.CREATE, RotationRequest(token_secret_arn, token))

    message = str(refused.value)
    assert "iam.allowServiceAccountCredentialLifetimeExtension" in message
    assert target in message
    assert "3600" in message
    # Nothing was stored: the pending version is still Secrets Manager's empty placeholder.
    assert stages(secretsmanager, token_secret_arn)[token] == ["AWSPENDING"]
    with pytest.raises(SecretNotFoundError, match="has no value"):
        rotation.run(Step.SET, RotationRequest(token_secret_arn, token))


def test_without_the_token_creator_role_the_error_names_the_role_and_the_command(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
    target: str,
    token_secret_arn: str,
) -> None:
    google.revoke_token_creator(target, service_account.client_email)
    rotation = impersonating(secretsmanager, environment, google, target)

    with pytest.raises(GoogleGrantRejectedError) as refused:
        rotation.run(
            Step.CREATE, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
        )

    message = str(refused.value)
    assert "roles/iam.serviceAccountTokenCreator" in message
    assert f"gcloud iam service-accounts add-iam-policy-binding {target}" in message
    assert "PERMISSION_DENIED" in message


def test_an_iam_credentials_outage_is_transient_for_the_state_machine_to_retry(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    target: str,
    token_secret_arn: str,
) -> None:
    google.fail_next("/generateAccessToken", status=503)
    rotation = impersonating(secretsmanager, environment, google, target)
    token = begin_rotation(token_secret_arn)

    with pytest.raises(GoogleUnavailableError, match="IAM Credentials endpoint answered HTTP 503"):
        rotation.run(Step.CREATE, RotationRequest(token_secret_arn, token))

    # The retry the state machine makes goes through.
    assert rotation.run(Step.CREATE, RotationRequest(token_secret_arn, token)).action == "created"


def test_a_disabled_key_is_the_token_endpoints_refusal_not_iams(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
    target: str,
    token_secret_arn: str,
) -> None:
    google.disable_key(service_account.private_key_id)
    rotation = impersonating(secretsmanager, environment, google, target)

    with pytest.raises(GoogleGrantRejectedError, match="invalid_grant") as refused:
        rotation.run(
            Step.CREATE, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
        )

    assert "service-account key is current and enabled" in str(refused.value)
