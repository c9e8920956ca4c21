"""Domain-wide delegation: the key's own tokens acting for one Google Workspace user (the JWT
grant's sub), verified by tokeninfo as far as Google shows it."""

import json

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from rotation_core.config import DELEGATED_SUBJECT, GoogleEndpoints
from rotation_core.errors import ConfigurationError, GoogleGrantRejectedError
from rotation_core.google_client import GoogleClient
from rotation_core.rotation import Rotation
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import SecretsGateway
from rotation_core.steps import Step
from tests.support import (
    TOKEN_SECRET,
    begin_rotation,
    current_value,
    run_all,
    stages,
    tokens_minted,
)

USER = "calendar-owner@example.com"
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"


def delegating(
    secretsmanager: SecretsManagerClient, environment: dict[str, str], **settings: str
) -> Rotation:
    env = {**environment, "DELEGATED_SUBJECT": USER, **settings}
    client = GoogleClient(GoogleEndpoints.from_environment(env))
    return Rotation(SecretsGateway(secretsmanager), client, env)


@pytest.mark.parametrize("scopes", ["calendar", "calendar and email"])
def test_a_delegated_token_acts_for_the_subject_and_says_so(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
    token_secret_arn: str,
    scopes: str,
) -> None:
    google.allow_domain_wide_delegation(service_account.client_email)
    extra = (
        {}
        if scopes == "calendar"
        else {"GOOGLE_SCOPES": f"{environment['GOOGLE_SCOPES']} {EMAIL_SCOPE}"}
    )
    rotation = delegating(secretsmanager, environment, **extra)

    actions = run_all(rotation, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn)))

    assert actions == ["created", "checked", "verified", "promoted"]
    stored = current_value(secretsmanager)
    assert stored.metadata.subject == USER
    assert stored.metadata.service_account == service_account.client_email
    document = json.loads(secretsmanager.get_secret_value(SecretId=TOKEN_SECRET)["SecretString"])
    assert document["subject"] == USER
    [issued] = [t for t in google.issued_tokens() if t.access_token == stored.access_token]
    assert issued.subject == USER


def test_without_delegation_allowed_the_error_says_where_to_allow_it(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    token_secret_arn: str,
) -> None:
    rotation = delegating(secretsmanager, environment)

    with pytest.raises(GoogleGrantRejectedError, match="unauthorized_client") as refused:
        rotation.run(
            Step.CREATE, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
        )

    assert "Domain-wide delegation" in str(refused.value)


def test_a_tag_may_name_only_a_subject_the_deployer_allows(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
    token_secret_arn: str,
) -> None:
    google.allow_domain_wide_delegation(service_account.client_email)
    secretsmanager.tag_resource(
        SecretId=token_secret_arn, Tags=[{"Key": DELEGATED_SUBJECT.tag, "Value": "ceo@example.com"}]
    )
    rotation = delegating(secretsmanager, environment)

    with pytest.raises(ConfigurationError, match="outside the deployer's ceiling"):
        rotation.run(
            Step.CREATE, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
        )
    assert google.issued_tokens() == [] or all(
        t.subject != "ceo@example.com" for t in google.issued_tokens()
    )


def test_a_subject_tag_is_refused_when_the_deployer_configured_no_delegation(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
    token_secret_arn: str,
) -> None:
    """Neither DELEGATED_SUBJECT nor ALLOWED_DELEGATED_SUBJECTS is set: an empty allow-list
    must never mean "any subject". Google would grant it, so only the ceiling stops it."""
    google.allow_domain_wide_delegation(service_account.client_email)
    assert "DELEGATED_SUBJECT" not in environment
    assert "ALLOWED_DELEGATED_SUBJECTS" not in environment
    secretsmanager.tag_resource(
        SecretId=token_secret_arn, Tags=[{"Key": DELEGATED_SUBJECT.tag, "Value": "ceo@example.com"}]
    )
    rotation = Rotation(
        SecretsGateway(secretsmanager),
        GoogleClient(GoogleEndpoints.from_environment(environment)),
        environment,
    )
    token = begin_rotation(token_secret_arn)

    with pytest.raises(ConfigurationError, match="outside the deployer's ceiling") as refused:
        rotation.run(Step.CREATE, RotationRequest(token_secret_arn, token))

    assert "names ceo@example.com" in str(refused.value)
    assert "the allowed values (none;" in str(refused.value)
    assert tokens_minted(google) == 0
    assert stages(secretsmanager, TOKEN_SECRET)[token] == ["AWSPENDING"]
