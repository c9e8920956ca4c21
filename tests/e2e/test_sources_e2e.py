"""Credential sources end to end on the local cloud: 12-hour impersonated tokens, and the template
refusing what a source cannot do."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from localcloud.cloud import LocalCloud
from localcloud.deployment import ACCOUNT_ID
from localcloud.intrinsics import TemplateError
from localcloud.operations import current_value, rotate_on_schedule, start_manual
from rotation_core.refresh import schedule_name
from tests.e2e.stacks import PARAMETERS, StackFactory

TWELVE_HOURS = 43200


def test_twelve_hour_impersonated_tokens_rotate_and_refresh_11_hours_45_later(
    cloud: LocalCloud, deploy_stack: StackFactory
) -> None:
    target = f"reader-{uuid.uuid4().hex[:8]}@demo-project.iam.gserviceaccount.com"
    cloud.google.create_keyless_service_account(target)
    cloud.google.allow_lifetime_extension(target)
    stack = deploy_stack(
        parameters={
            "CredentialSource": "impersonation",
            "GoogleServiceAccount": target,
            "TokenLifetimeSeconds": str(TWELVE_HOURS),
        }
    )
    cloud.google.grant_token_creator(target, stack.account.client_email)

    found = rotate_on_schedule(cloud, stack.deployment)

    assert [e.status for e in found] == ["SUCCEEDED"] * 4
    assert start_manual(cloud, stack.deployment).status == "SUCCEEDED"
    value = stack.current()
    assert value["service_account"] == target
    expires = datetime.fromisoformat(value["expires_at"])
    now = datetime.fromtimestamp(cloud.clock.now(), UTC)
    assert expires - now > timedelta(hours=11, minutes=59)
    assert cloud.google.token_info(value["GOOGLE_ACCESS_TOKEN"]) is not None
    schedule = cloud.client("scheduler").get_schedule(
        GroupName=stack.deployment.refs["RefreshScheduleGroup"],
        Name=schedule_name(stack.secret_arn),
    )
    due = expires - timedelta(seconds=900)
    assert schedule["ScheduleExpression"] == f"at({due:%Y-%m-%dT%H:%M:%S})"


AUDIENCE = (
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/aws-pool/"
    "providers/aws-provider"
)


def test_keyless_federation_rotates_with_no_key_in_aws(cloud: LocalCloud) -> None:
    """The recommended source: no key secret exists, no function may read one, and createSecret's
    own AWS identity (the local cloud's credentials) is what Google's STS verifies."""
    target = f"reader-{uuid.uuid4().hex[:8]}@demo-project.iam.gserviceaccount.com"
    cloud.google.create_keyless_service_account(target)
    cloud.google.register_workload_identity_provider(AUDIENCE, ACCOUNT_ID)
    caller = cloud.client("sts").get_caller_identity()["Arn"]
    cloud.google.grant_token_creator(target, caller)
    suffix = uuid.uuid4().hex[:8]
    deployment = cloud.deploy(
        {
            **PARAMETERS,
            "TokenSecretName": f"e2e/{suffix}/keyless",
            "CredentialSource": "workload-identity-federation",
            "WorkloadIdentityAudience": AUDIENCE,
            "GoogleServiceAccount": target,
        },
        stack_name=f"e2e-keyless-{suffix}",
    )

    found = rotate_on_schedule(cloud, deployment)

    assert [e.status for e in found] == ["SUCCEEDED"] * 4
    manual = start_manual(cloud, deployment)
    assert manual.status == "SUCCEEDED"
    assert "ServiceAccountKeySecret" not in deployment.refs
    create = cloud.runtime.worker(deployment.functions["CreateSecretFunction"])
    assert create.environment["SERVICE_ACCOUNT_KEY_SECRET_ID"] == ""
    value = current_value(cloud, deployment.token_secret_arn)
    assert value["service_account"] == target
    assert cloud.google.token_info(str(value["GOOGLE_ACCESS_TOKEN"])) is not None


@pytest.mark.parametrize(
    ("parameters", "rule"),
    [
        ({"TokenLifetimeSeconds": "43200"}, "TokenLifetimeFitsTheSource"),
        ({"CredentialSource": "impersonation"}, "TokenLifetimeFitsTheSource"),
        (
            {
                "CredentialSource": "workload-identity-federation",
                "GoogleServiceAccount": "a@b.c",
            },
            "TokenLifetimeFitsTheSource",
        ),
    ],
    ids=["key-with-12-hours", "impersonation-without-a-target", "federation-without-audience"],
)
def test_the_template_refuses_what_a_source_cannot_do(
    cloud: LocalCloud, parameters: dict[str, str], rule: str
) -> None:
    with pytest.raises(TemplateError, match=f"rule {rule}"):
        cloud.deploy({**PARAMETERS, **parameters}, stack_name=f"e2e-refused-{uuid.uuid4().hex[:8]}")
