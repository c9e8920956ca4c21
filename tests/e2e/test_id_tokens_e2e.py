"""ID-token secrets end to end on the local cloud, for each credential source: the schedule's
RotateSecret, a manual execution and the refresh schedule each put an ID token in AWSCURRENT
that the emulator's Cloud Run service accepts, and that a service of another audience refuses."""

import json
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import urllib3

from localcloud.cloud import Deployment, LocalCloud
from localcloud.deployment import ACCOUNT_ID
from localcloud.operations import current_value, executions, rotate_on_schedule, start_manual
from localcloud.scheduler import LocalScheduler
from localcloud.template import PROJECT_ROOT
from tests.doc_blocks import doc_block
from tests.e2e.stacks import PARAMETERS

POOL_PROVIDER = (
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/aws-pool/"
    "providers/aws-provider"
)
LEAD = timedelta(seconds=900)
Deploy = Callable[..., tuple[Deployment, str]]


def call(url: str, token: str) -> int:
    answer = urllib3.request("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    return answer.status


@pytest.fixture
def deploy_id_token_stack(cloud: LocalCloud) -> Iterator[Deploy]:
    """deploy(source, audience): a stack whose IdTokenAudiences lists `audience` and whose token
    secret is tagged an ID-token secret for it, with the Google side of `source` set up (the
    OpenID token-creator role where the source needs it). Returns it and the minting account."""
    cloud.google.reset()
    deployed: list[Deployment] = []

    def deploy(source: str, audience: str, stack_name: str | None = None) -> tuple[Deployment, str]:
        suffix = uuid.uuid4().hex[:8]
        parameters = {
            **PARAMETERS,
            "TokenSecretName": f"e2e/{suffix}/id-token",
            "CredentialSource": source,
            "IdTokenAudiences": audience,
        }
        target = f"invoker-{suffix}@demo-project.iam.gserviceaccount.com"
        if source != "service-account-key":
            cloud.google.create_keyless_service_account(target)
            parameters["GoogleServiceAccount"] = target
        if source == "workload-identity-federation":
            cloud.google.register_workload_identity_provider(POOL_PROVIDER, ACCOUNT_ID)
            parameters["WorkloadIdentityAudience"] = POOL_PROVIDER
            caller = cloud.client("sts").get_caller_identity()["Arn"]
            cloud.google.grant_open_id_token_creator(target, caller)
        deployment = cloud.deploy(parameters, stack_name=stack_name or f"e2e-id-{suffix}")
        deployed.append(deployment)
        if source != "workload-identity-federation":
            key = cloud.google.create_service_account()
            cloud.store_service_account_key(key)
            if source == "impersonation":
                cloud.google.grant_open_id_token_creator(target, key.client_email)
            else:
                target = key.client_email
        cloud.client("secretsmanager").tag_resource(
            SecretId=deployment.token_secret_arn,
            Tags=[
                {"Key": "token-rotation:token-kind", "Value": "id-token"},
                {"Key": "token-rotation:audience", "Value": audience},
            ],
        )
        return deployment, target

    yield deploy

    for deployment in deployed:
        for name in deployment.functions.values():
            cloud.runtime.worker(name).stop()
        cloud.client("secretsmanager").delete_secret(
            SecretId=deployment.token_secret_arn, ForceDeleteWithoutRecovery=True
        )


@pytest.mark.parametrize(
    "source", ["service-account-key", "impersonation", "workload-identity-federation"]
)
def test_scheduled_manual_and_refresh_rotations_keep_an_id_token_cloud_run_accepts(
    source: str, cloud: LocalCloud, deploy_id_token_stack: Deploy
) -> None:
    suffix = uuid.uuid4().hex[:8]
    reports = cloud.google.deploy_cloud_run(f"reports-{suffix}")
    deployment, account = deploy_id_token_stack(source, reports)
    cloud.google.grant_run_invoker(f"reports-{suffix}", account)
    # The same account may invoke this one too: only the token's audience keeps it out.
    payments = cloud.google.deploy_cloud_run(f"payments-{suffix}", invokers=[account])
    tokens: list[str] = []

    def current_token() -> str:
        value = current_value(cloud, deployment.token_secret_arn)
        assert set(value) == {
            "GOOGLE_ID_TOKEN",
            "audience",
            "expires_at",
            "issued_at",
            "service_account",
        }
        assert (value["audience"], value["service_account"]) == (reports, account)
        token = str(value["GOOGLE_ID_TOKEN"])
        assert call(reports, token) == 200
        assert call(payments, token) == 401
        tokens.append(token)
        return token

    scheduled = rotate_on_schedule(cloud, deployment)
    assert [e.status for e in scheduled] == ["SUCCEEDED"] * 4
    current_token()

    assert start_manual(cloud, deployment).status == "SUCCEEDED"
    current_token()

    # expires_at drives the refresh: the secret's schedule fires a lead before the expiry.
    def expires_at() -> datetime:
        value = current_value(cloud, deployment.token_secret_arn)
        return datetime.fromisoformat(value["expires_at"])

    expires = expires_at()
    cloud.clock.advance((expires - LEAD).timestamp() - cloud.clock.now() + 1)
    scheduler = LocalScheduler(cloud, group=deployment.refs["RefreshScheduleGroup"])
    assert len(scheduler.fire_due()) == 1
    current_token()
    assert len(set(tokens)) == 3
    assert expires_at() > expires

    histories = [
        json.dumps([e.input, e.output, e.history], default=str)
        for e in executions(cloud, deployment.state_machine_arn)
    ]
    logs = "\n".join(line for _, line in cloud.logs.lines)
    for token in tokens:
        assert all(token not in history for history in histories)
        assert token not in logs


def test_an_audience_outside_the_stacks_ceiling_fails_the_rotation_naming_the_tag(
    cloud: LocalCloud, deploy_id_token_stack: Deploy
) -> None:
    reports = cloud.google.deploy_cloud_run(f"reports-{uuid.uuid4().hex[:8]}")
    deployment, _ = deploy_id_token_stack("service-account-key", reports)
    cloud.client("secretsmanager").tag_resource(
        SecretId=deployment.token_secret_arn,
        Tags=[{"Key": "token-rotation:audience", "Value": "https://elsewhere-abc-ew.a.run.app"}],
    )

    manual = start_manual(cloud, deployment)

    assert (manual.status, manual.error) == ("FAILED", "ConfigurationError")
    history = json.dumps(manual.history, default=str)
    assert "token-rotation:audience" in history
    assert reports in history  # the ceiling
    assert current_value(cloud, deployment.token_secret_arn) == {"GOOGLE_ACCESS_TOKEN": ""}


def test_the_pages_add_token_secret_line_adds_an_id_token_secret_cloud_run_accepts(
    cloud: LocalCloud, deploy_id_token_stack: Deploy
) -> None:
    [line] = doc_block("docs/id-tokens.md", "sh", "--id-token-audience").commands()
    words = shlex.split(line)
    audience = words[words.index("--id-token-audience") + 1]
    name = words[words.index("--name") + 1]
    assert words[words.index("--managed-by") + 1] == "<StackName>"
    # The page's placeholder, as a reader fills it: a name of this test's own, so that no other
    # test's stack of the default name meets this one in moto's process-wide state.
    stack_name = f"id-docs-{uuid.uuid4().hex[:8]}"
    # A Cloud Run service whose custom audience is the page's URL, as Cloud Run allows.
    service = cloud.google.deploy_cloud_run(
        f"reports-{uuid.uuid4().hex[:8]}", custom_audiences=[audience]
    )
    deployment, account = deploy_id_token_stack("service-account-key", audience, stack_name)
    cloud.google.grant_run_invoker(service.rsplit("/", 1)[-1], account)
    environment = {key: value for key, value in os.environ.items() if key != "AWS_PROFILE"}
    environment.update(
        cloud.client_environment(),
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', os.defpath)}",
    )
    entry_function = deployment.attributes[("RotationEntryFunction", "Arn")]

    try:
        added = subprocess.run(
            [
                "bash",
                "-c",
                line.replace("<RotationEntryFunctionArn>", entry_function).replace(
                    "<StackName>", stack_name
                ),
            ],
            cwd=PROJECT_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert added.returncode == 0, added.stderr
        value = current_value(cloud, name)
    finally:
        cloud.client("secretsmanager").delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)

    assert (value["audience"], value["service_account"]) == (audience, account)
    assert "token-rotation:token-kind=id-token" in added.stdout
    assert value["GOOGLE_ID_TOKEN"] not in added.stdout + added.stderr
    assert call(service, value["GOOGLE_ID_TOKEN"]) == 200
