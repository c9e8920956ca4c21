"""The impersonation and keyless sources set up on the Google emulator, shared by the tests of
each source and by those of a tokeninfo outage."""

import uuid

import boto3
from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from rotation_core.config import GoogleEndpoints
from rotation_core.google_client import GoogleClient
from rotation_core.rotation import Rotation
from rotation_core.secrets import SecretsGateway
from tests.support import ACCOUNT_ID, REGION

AUDIENCE = (
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/aws-pool/"
    "providers/aws-provider"
)


def impersonation_target(google: GoogleEmulator, service_account: ServiceAccountKey) -> str:
    """A keyless account whose tokens the key's account may mint (the token-creator role)."""
    email = f"reader-{uuid.uuid4().hex[:8]}@demo-project.iam.gserviceaccount.com"
    google.create_keyless_service_account(email)
    google.grant_token_creator(email, service_account.client_email)
    return email


def impersonating(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    target: str,
    **settings: str,
) -> Rotation:
    env = {
        **environment,
        "CREDENTIAL_SOURCE": "impersonation",
        "IMPERSONATED_SERVICE_ACCOUNT": target,
        "GOOGLE_IAM_CREDENTIALS_URL": google.generate_access_token_url("{}"),
        **settings,
    }
    return Rotation(
        SecretsGateway(secretsmanager), GoogleClient(GoogleEndpoints.from_environment(env)), env
    )


def federated_target(google: GoogleEmulator, moto_endpoint: str) -> str:
    """A keyless target account that this AWS identity may impersonate through the pool."""
    google.aws_endpoint_url = moto_endpoint
    google.register_workload_identity_provider(AUDIENCE, ACCOUNT_ID)
    target = f"reader-{uuid.uuid4().hex[:8]}@demo-project.iam.gserviceaccount.com"
    google.create_keyless_service_account(target)
    caller = boto3.client("sts", region_name=REGION, endpoint_url=moto_endpoint)
    google.grant_token_creator(target, caller.get_caller_identity()["Arn"])
    return target


def keyless(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    target: str,
    audience: str = AUDIENCE,
) -> Rotation:
    env = {
        **{k: v for k, v in environment.items() if k != "SERVICE_ACCOUNT_KEY_SECRET_ID"},
        "CREDENTIAL_SOURCE": "workload-identity-federation",
        "WORKLOAD_IDENTITY_AUDIENCE": audience,
        "IMPERSONATED_SERVICE_ACCOUNT": target,
        "GOOGLE_STS_URL": google.sts_url,
        "GOOGLE_IAM_CREDENTIALS_URL": google.generate_access_token_url("{}"),
    }
    client = GoogleClient(GoogleEndpoints.from_environment(env))
    return Rotation(SecretsGateway(secretsmanager), client, env)
