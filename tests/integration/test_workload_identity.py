"""Keyless: the function's own AWS identity is exchanged at Google's STS (google-auth's
aws.Credentials signs a GetCallerIdentity that Google sends to AWS), and the federated token
impersonates the target account. No key is read, or needed, anywhere."""

from datetime import timedelta

import boto3
import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.google_emulator import GoogleEmulator
from rotation_core.errors import (
    ConfigurationError,
    GoogleGrantRejectedError,
    GoogleUnavailableError,
)
from rotation_core.rotation_request import RotationRequest
from rotation_core.steps import Step
from tests.minting_sources import AUDIENCE, federated_target, keyless
from tests.support import KEY_SECRET, REGION, begin_rotation, current_value, run_all


@pytest.fixture
def federated(google: GoogleEmulator, moto_endpoint: str) -> str:
    return federated_target(google, moto_endpoint)


def test_a_keyless_rotation_promotes_the_targets_token_without_any_key(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    federated: str,
    token_secret_arn: str,
) -> None:
    # No key anywhere: reading one would fail.
    secretsmanager.delete_secret(SecretId=KEY_SECRET, ForceDeleteWithoutRecovery=True)
    rotation = keyless(secretsmanager, environment, google, federated)

    actions = run_all(rotation, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn)))

    assert actions == ["created", "checked", "verified", "promoted"]
    stored = current_value(secretsmanager)
    assert stored.metadata.service_account == federated
    assert google.token_info(stored.access_token) is not None
    lifetime = stored.metadata.expires_at - stored.metadata.issued_at
    assert abs(lifetime - timedelta(hours=1)) < timedelta(seconds=5)
    sts = [r for r in google.requests if r.path.endswith("/v1/token")]
    assert [r.status for r in sts] == [200]


def test_an_audience_google_does_not_know_is_refused_naming_what_to_check(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    federated: str,
    token_secret_arn: str,
) -> None:
    unknown = AUDIENCE.replace("aws-provider", "other-provider")
    rotation = keyless(secretsmanager, environment, google, federated, unknown)

    with pytest.raises(GoogleGrantRejectedError, match="Google's STS refused") as refused:
        rotation.run(
            Step.CREATE, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
        )

    assert "WorkloadIdentityAudience" in str(refused.value)


def test_without_the_role_on_the_target_the_error_names_it(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    federated: str,
    token_secret_arn: str,
    moto_endpoint: str,
) -> None:
    caller = boto3.client("sts", region_name=REGION, endpoint_url=moto_endpoint)
    google.revoke_token_creator(federated, caller.get_caller_identity()["Arn"])
    rotation = keyless(secretsmanager, environment, google, federated)

    with pytest.raises(GoogleGrantRejectedError, match=r"roles/iam\.serviceAccountTokenCreator"):
        rotation.run(
            Step.CREATE, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
        )


def test_a_malformed_audience_is_a_configuration_error_before_any_call(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    federated: str,
    token_secret_arn: str,
) -> None:
    rotation = keyless(secretsmanager, environment, google, federated, "aws-provider")

    with pytest.raises(ConfigurationError, match="WORKLOAD_IDENTITY_AUDIENCE"):
        rotation.run(
            Step.CREATE, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
        )
    assert google.requests == []


def test_an_sts_outage_is_transient_for_the_state_machine_to_retry(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    federated: str,
    token_secret_arn: str,
) -> None:
    google.fail_next("/sts", status=503)
    rotation = keyless(secretsmanager, environment, google, federated)
    token = begin_rotation(token_secret_arn)

    with pytest.raises(GoogleUnavailableError, match="Google's STS answered HTTP 503"):
        rotation.run(Step.CREATE, RotationRequest(token_secret_arn, token))

    assert rotation.run(Step.CREATE, RotationRequest(token_secret_arn, token)).action == "created"
