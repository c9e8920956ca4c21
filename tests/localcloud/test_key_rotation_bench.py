"""The key-rotation benchmark, short: a key-source stack on a local cloud of the module's own, its
key secret rotated as `make bench` rotates it (the first rotation, then one counted), and the
section `make bench` prints from it. What it asserts is what the design says a key rotation does
(who calls Google for what, how often), never speed."""

import dataclasses
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from benchmarks import cost, key_rotation
from benchmarks.key_rotation import KEY_SECRET, KeyRotationMeasurement
from localcloud.cloud import Deployment, LocalCloud
from localcloud.demo import DEMO_PARAMETERS
from localcloud.deployment import CURRENT, PREVIOUS
from localcloud.google_emulator import ServiceAccountKey
from localcloud.operations import executions, version_stages
from tests.conftest import SECRET_MATERIAL
from tests.support import local_cloud_of_its_own

STEP_FUNCTIONS = {
    "RotationEntryFunction": 4,
    "CreateSecretFunction": 1,
    "SetSecretFunction": 1,
    "TestSecretFunction": 1,
    "FinishSecretFunction": 1,
}
"""Each step its own execution, started by the entry Lambda that Secrets Manager invokes."""
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
GOOGLE_CALLS = {
    # createSecret authenticates to IAM with a token of the key in use, lists the keys (the
    # 10-key check) and creates the new one.
    ("createSecret", "/token"): 1,
    ("createSecret", "keys.list"): 1,
    ("createSecret", "keys.create"): 1,
    # testSecret mints with the new key and asks tokeninfo whose token it is.
    ("testSecret", "/token"): 1,
    ("testSecret", "/tokeninfo"): 1,
    # finishSecret reads the new key's expiry from keys.list, with a token of the new key.
    ("finishSecret", "/token"): 1,
    ("finishSecret", "keys.list"): 1,
}
"""The first rotation after a key was put by hand."""
LATER_GOOGLE_CALLS = {
    **GOOGLE_CALLS,
    # From the second rotation on, createSecret also deletes the standby key; its one keys.list
    # serves the 10-key check and the search for a last keys.create's key no version holds.
    ("createSecret", "keys.delete"): 1,
}


@dataclass(frozen=True)
class Bench:
    cloud: LocalCloud
    deployment: Deployment
    account: ServiceAccountKey
    measured: KeyRotationMeasurement


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    """A stack with the template's default KeyRotationDays (30), its key put by hand, measured
    as `make bench` measures it but with one counted rotation after the first and no slow key
    (its Retry waits would be slept for real)."""
    suffix = uuid.uuid4().hex[:12]
    with local_cloud_of_its_own() as cloud:
        deployment = cloud.deploy(
            {**DEMO_PARAMETERS, "TokenSecretName": f"keybench/{suffix}/token"},
            stack_name=f"keybench-{suffix}",
        )
        account = cloud.google.create_service_account(
            f"keybench-{suffix}@demo-project.iam.gserviceaccount.com"
        )
        SECRET_MATERIAL.add_key(account)
        cloud.store_service_account_key(account)
        assert cloud.prewarm() == {}
        measured = key_rotation.measure(cloud, deployment, rotations=1, slow_key=False)
        yield Bench(cloud, deployment, account, measured)


def _key_id(bench: Bench, stage: str) -> str:
    answer = bench.cloud.client("secretsmanager").get_secret_value(
        SecretId=bench.deployment.key_secret_arn, VersionStage=stage
    )
    key_id: str = json.loads(answer["SecretString"])["private_key_id"]
    return key_id


def test_each_rotation_makes_the_google_calls_the_design_names_by_step(bench: Bench) -> None:
    (later,) = bench.measured.later

    assert bench.measured.first.google == GOOGLE_CALLS
    assert later.google == LATER_GOOGLE_CALLS
    assert later.usage.google_requests == {
        "/token": 3,
        "/tokeninfo": 1,
        "keys.list": 2,
        "keys.create": 1,
        "keys.delete": 1,
    }


def test_the_second_rotation_deletes_the_key_put_by_hand_and_two_keys_remain(
    bench: Bench,
) -> None:
    deleted = [
        call.key_id for call in bench.cloud.google.key_api_calls() if call.action == "delete"
    ]
    remaining = {
        key.key_id for key in bench.cloud.google.user_managed_keys(bench.account.client_email)
    }

    assert deleted == [bench.account.private_key_id]
    assert remaining == {_key_id(bench, CURRENT), _key_id(bench, PREVIOUS)}
    assert bench.account.private_key_id not in remaining


def test_a_key_rotation_runs_four_step_executions_that_all_succeed(bench: Bench) -> None:
    """The two measured rotations made the key secret's AWSPREVIOUS and AWSCURRENT versions:
    their executions, one per step, are named after them."""
    (later,) = bench.measured.later
    ran = executions(bench.cloud, bench.deployment.state_machine_arn)
    stages = version_stages(bench.cloud, bench.deployment.key_secret_arn)
    version = {stage: v for v, labels in stages.items() for stage in labels}

    for usage, stage in ((bench.measured.first.usage, PREVIOUS), (later.usage, CURRENT)):
        mine = [execution for execution in ran if version[stage] in execution.name]
        assert sorted(execution.name.split("-")[0] for execution in mine) == sorted(STEPS)
        assert {execution.status for execution in mine} == {"SUCCEEDED"}
        assert usage.transitions == sum(execution.transitions for execution in mine)
        assert usage.invocations == STEP_FUNCTIONS
        assert usage.failed_executions == ()
        assert usage.api_calls[("secretsmanager", "RotateSecret")] == 1
        assert usage.api_calls[("secretsmanager", "PutSecretValue")] == 1
        assert usage.api_calls[("stepfunctions", "StartExecution")] == 4
    # The first rotation creates the key secret's refresh schedule, the second updates it.
    assert bench.measured.first.usage.api_calls[("scheduler", "CreateSchedule")] == 1
    assert ("scheduler", "CreateSchedule") not in later.usage.api_calls
    assert later.usage.api_calls[("scheduler", "UpdateSchedule")] == 1


def test_the_section_prints_the_counts_and_the_cost_at_30_and_1_days(bench: Bench) -> None:
    lines = key_rotation.report(bench.measured)
    items = cost.line_items(bench.measured.priced)
    per_rotation = cost.variable_dollars(items, 1)

    assert lines[0] == "## Key rotation"
    labels = [line.split(" | ")[0] for line in lines if line.startswith("| ")]
    for label in (
        "| wall time (RotateSecret until the rotation ended)",
        "| Step Functions state transitions (billed: each Retry too)",
        "| Lambda TestSecretFunction: invocations, billed duration",
        "| Secrets Manager GetSecretValue",
        "| EventBridge Scheduler UpdateSchedule (the state machine's; no charge)",
        "| Google token mints (/token), by step",
        "| Google IAM keys.delete, by step",
        "| **$ per rotation**",
        "| **key rotation**",
    ):
        assert label in labels
    assert "| Google IAM keys.delete, by step | 0 | 1 (createSecret 1) |" in lines
    assert (
        "| Google token mints (/token), by step | 3 (createSecret 1, testSecret 1, finishSecret 1)"
        " | 3 (createSecret 1, testSecret 1, finishSecret 1) |"
    ) in lines
    (total,) = [line for line in lines if line.startswith("| **key rotation**")]
    monthly = [per_rotation * key_rotation.rotations_per_month(d) for d in (30, 1)]
    assert total == (
        f"| **key rotation** |  | **{key_rotation.dollars(per_rotation)}** | "
        + " | ".join(f"**{key_rotation.dollars(m)}**" for m in monthly)
        + " |"
    )
    assert key_rotation.rotations_per_month(1) == pytest.approx(30.4)
    # Watching the key: the sweep's ServiceAccountKeyDaysLeft, the key's alarm on it, and the
    # sweep's DescribeSecret of the key secret every run.
    watching = (
        cost.CLOUDWATCH_PER_CUSTOM_METRIC_MONTH
        + cost.CLOUDWATCH_PER_ALARM_METRIC_MONTH
        + cost.sweep_runs_per_month() * cost.SECRETS_MANAGER_PER_API_CALL
    )
    assert f"| **watching the key** | **{key_rotation.dollars(watching)}** |" in lines


def test_no_key_or_token_reaches_the_section_or_the_functions_logs(bench: Bench) -> None:
    secrets = bench.cloud.client("secretsmanager")
    material = {token.access_token for token in bench.cloud.google.issued_tokens()}
    for stage in (CURRENT, PREVIOUS):
        key_file = secrets.get_secret_value(
            SecretId=bench.deployment.key_secret_arn, VersionStage=stage
        )["SecretString"]
        body = "".join(json.loads(key_file)["private_key"].splitlines()[1:-1])
        material |= {body[100:160], body[-120:-60]}
    SECRET_MATERIAL.values.update(material)
    texts = ["\n".join(key_rotation.report(bench.measured)), bench.cloud.logs.text()]

    leaked = [value for value in material if any(value in text for text in texts)]

    assert len(material) > 4
    assert not leaked, f"{len(leaked)} keys or tokens reached the section or the logs"


def test_a_stack_whose_key_does_not_rotate_is_refused(bench: Bench) -> None:
    keyless = dataclasses.replace(
        bench.deployment,
        refs={name: ref for name, ref in bench.deployment.refs.items() if name != KEY_SECRET},
    )

    with pytest.raises(ValueError, match="does not rotate its key: deploy it with a key"):
        key_rotation.measure(bench.cloud, keyless, rotations=1, slow_key=False)
