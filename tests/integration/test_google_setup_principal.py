"""The binding google-setup prints for a keyless stack is the one Google's pool needs: a
createSecret that calls as the stack's role (assumed, as Lambda does) mints through it, and a
binding of another role does not let it."""

import re
import uuid

import boto3
import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.google_emulator import GoogleEmulator
from rotation_core.errors import GoogleGrantRejectedError
from rotation_core.rotation_request import RotationRequest
from rotation_core.steps import Step
from stacktools.google_setup import google_setup
from stacktools.stack import DeployedStack
from tests.minting_sources import AUDIENCE, keyless
from tests.support import ACCOUNT_ID, KEY_SECRET, REGION, begin_rotation

TRUST_LAMBDA = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": '
    '{"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'
)


def _keyless_stack(role_arn: str, target: str) -> DeployedStack:
    return DeployedStack(
        name="tokens",
        region=REGION,
        partition="aws",
        account_id=ACCOUNT_ID,
        parameters={
            "CredentialSource": "workload-identity-federation",
            "GoogleScopes": "https://www.googleapis.com/auth/calendar.readonly",
            "ImpersonatedServiceAccount": target,
            "WorkloadIdentityAudience": AUDIENCE,
            "TokenLifetimeSeconds": "3600",
        },
        outputs={"CreateSecretRoleArn": role_arn},
    )


def _printed_member(stack: DeployedStack) -> str:
    found = re.search(r"--member=(\S+) --role=roles/iam\.workloadIdentityUser", google_setup(stack))
    assert found is not None
    return found.group(1)


def _call_as_a_new_role(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A role like SAM's for createSecret, and this process's AWS identity its Lambda session."""
    name = f"tokens-CreateSecretFunctionRole-{uuid.uuid4().hex[:12].upper()}"
    iam = boto3.client("iam", region_name=REGION, endpoint_url=moto_endpoint)
    role_arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST_LAMBDA)["Role"][
        "Arn"
    ]
    sts = boto3.client("sts", region_name=REGION, endpoint_url=moto_endpoint)
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="tokens-CreateSecretFunction")[
        "Credentials"
    ]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    return role_arn


@pytest.fixture
def target(google: GoogleEmulator, moto_endpoint: str) -> str:
    google.aws_endpoint_url = moto_endpoint
    google.register_workload_identity_provider(AUDIENCE, ACCOUNT_ID)
    email = f"reader-{uuid.uuid4().hex[:8]}@demo-project.iam.gserviceaccount.com"
    google.create_keyless_service_account(email)
    return email


def test_the_printed_binding_lets_the_stacks_role_mint_the_targets_token(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    moto_endpoint: str,
    target: str,
    token_secret_arn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secretsmanager.delete_secret(SecretId=KEY_SECRET, ForceDeleteWithoutRecovery=True)
    role_arn = _call_as_a_new_role(moto_endpoint, monkeypatch)
    google.grant_token_creator(target, _printed_member(_keyless_stack(role_arn, target)))
    rotation = keyless(secretsmanager, environment, google, target)

    outcome = rotation.run(
        Step.CREATE, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    )

    assert outcome.action == "created"


def test_a_binding_of_another_role_does_not(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    moto_endpoint: str,
    target: str,
    token_secret_arn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    role_arn = _call_as_a_new_role(moto_endpoint, monkeypatch)
    other = role_arn.replace("CreateSecretFunctionRole", "SetSecretFunctionRole")
    google.grant_token_creator(target, _printed_member(_keyless_stack(other, target)))
    rotation = keyless(secretsmanager, environment, google, target)

    with pytest.raises(GoogleGrantRejectedError):
        rotation.run(
            Step.CREATE, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
        )
