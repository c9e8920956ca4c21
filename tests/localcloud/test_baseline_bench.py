"""The side-by-side benchmark, short: one stack and the single-Lambda baseline deployed into it on
a local cloud of the module's own, one counted scheduled rotation each, and the table `make bench`
prints from them. What it asserts is behaviour (both rotate, who ran, how many transitions), never
speed."""

import dataclasses
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from benchmarks import baseline, cost
from benchmarks.baseline import BASELINE_CODE, BASELINE_FUNCTION, BASELINE_HANDLER, Comparison
from localcloud.cloud import Deployment, LocalCloud
from localcloud.deployment import CURRENT
from localcloud.operations import token_info, version_stages
from localcloud.template import load_template
from tests.support import local_cloud_of_its_own

SCOPE = "https://www.googleapis.com/auth/calendar.readonly"


@dataclass(frozen=True)
class Bench:
    cloud: LocalCloud
    deployment: Deployment
    comparison: Comparison
    baseline_secret_arn: str


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    """One stack with its key stored, measured as `make bench` measures it but with one counted
    rotation per shape. Starting a local cloud sets MOTO_PORT, the Lambda dispatcher and the
    retry clock for the whole process: they are put back after."""
    suffix = uuid.uuid4().hex[:12]
    with local_cloud_of_its_own() as cloud:
        deployment = cloud.deploy(
            {"GoogleScopes": SCOPE, "TokenSecretName": f"bench/{suffix}/token"},
            stack_name=f"bench-{suffix}",
        )
        cloud.store_service_account_key(cloud.google.create_service_account())
        assert cloud.prewarm() == {}
        measured = cost.measure(cloud, deployment, rotations=1)
        comparison = baseline.compare(cloud, deployment, measured, rotations=1)
        (baseline_secret,) = [
            secret["ARN"]
            for secret in cloud.client("secretsmanager").list_secrets()["SecretList"]
            if secret["Name"] == f"bench/{suffix}/token-baseline"
        ]
        yield Bench(cloud, deployment, comparison, baseline_secret)


def _current_token(bench: Bench, secret_arn: str) -> str:
    answer = bench.cloud.client("secretsmanager").get_secret_value(
        SecretId=secret_arn, VersionStage=CURRENT
    )
    token: str = json.loads(answer["SecretString"])["GOOGLE_ACCESS_TOKEN"]
    return token


def _current_version(bench: Bench, secret_arn: str) -> str:
    stages = version_stages(bench.cloud, secret_arn)
    return next(version for version, labels in stages.items() if CURRENT in labels)


def test_both_shapes_leave_a_token_google_accepts(bench: Bench) -> None:
    for secret_arn in (bench.deployment.token_secret_arn, bench.baseline_secret_arn):
        info = token_info(bench.cloud, _current_token(bench, secret_arn))
        assert info is not None
        assert info["scope"] == SCOPE
    (usage,) = bench.comparison.orchestrated.measured.usage
    assert usage.failed_executions == ()


def test_the_baseline_runs_every_step_in_its_one_function_without_step_functions(
    bench: Bench,
) -> None:
    (usage,) = bench.comparison.baseline.measured.usage
    (orchestrated,) = bench.comparison.orchestrated.measured.usage

    assert usage.invocations == {BASELINE_FUNCTION: 4}
    assert usage.transitions == 0
    assert {service for service, _ in usage.api_calls} == {"secretsmanager"}
    # The same core: the same Google requests and Secrets Manager calls as the stack's steps.
    assert usage.google_requests == orchestrated.google_requests == {"/token": 1, "/tokeninfo": 1}
    assert usage.api_calls == {
        call: count for call, count in orchestrated.api_calls.items() if call[0] == "secretsmanager"
    }


def test_the_stacks_transitions_are_its_executions_success_paths(bench: Bench) -> None:
    """The counted rotation made the AWSCURRENT version: its executions, one per step, are named
    after it; their histories say how many states they entered."""
    version = _current_version(bench, bench.deployment.token_secret_arn)
    sfn = bench.cloud.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=bench.deployment.state_machine_arn)["executions"]
    executions = [item for item in listed if version in item["name"]]
    histories = [
        sfn.get_execution_history(executionArn=item["executionArn"], maxResults=1000)["events"]
        for item in executions
    ]
    entered = [
        event["stateEnteredEventDetails"]["name"]
        for history in histories
        for event in history
        if event["type"].endswith("StateEntered")
    ]

    assert sorted(item["name"].split("-")[0] for item in executions) == sorted(
        ["createSecret", "setSecret", "testSecret", "finishSecret"]
    )
    assert {item["status"] for item in executions} == {"SUCCEEDED"}
    assert "DescribeFailure" not in entered
    (usage,) = bench.comparison.orchestrated.measured.usage
    assert usage.transitions == len(entered)


def test_the_baseline_function_is_deployed_as_the_step_functions_are(bench: Bench) -> None:
    functions = bench.cloud.client("lambda")
    name = bench.deployment.functions[BASELINE_FUNCTION]
    ours = functions.get_function_configuration(FunctionName=name)
    step = functions.get_function_configuration(
        FunctionName=bench.deployment.functions["CreateSecretFunction"]
    )

    assert name == f"{bench.deployment.stack_name}-{BASELINE_FUNCTION}"
    assert ours["Handler"] == BASELINE_HANDLER
    assert ours["Environment"] == step["Environment"]
    for setting in ("Runtime", "MemorySize", "Timeout"):
        assert ours[setting] == step[setting]
    worker = bench.cloud.runtime.worker(name).environment
    step_worker = bench.cloud.runtime.worker(step["FunctionName"]).environment
    own_code, *layers = worker["PYTHONPATH"].split(os.pathsep)
    assert own_code == str(BASELINE_CODE)
    # The rotation-core layer, as the step functions have it.
    assert layers == step_worker["PYTHONPATH"].split(os.pathsep)[1:]
    assert worker["AWS_LAMBDA_FUNCTION_NAME"] == name


def test_an_extra_function_is_deployed_once_and_into_a_stack_of_this_cloud(bench: Bench) -> None:
    spec = baseline.baseline_spec(load_template())

    with pytest.raises(ValueError, match=f"has a {BASELINE_FUNCTION} already"):
        bench.cloud.deploy_extra_function(bench.deployment, spec)
    elsewhere = dataclasses.replace(bench.deployment, functions={})
    with pytest.raises(ValueError, match="was not deployed on this cloud"):
        bench.cloud.deploy_extra_function(elsewhere, spec)
    with pytest.raises(ValueError, match="was not deployed on this cloud"):
        bench.cloud.deploy_extra_function(Deployment("another-stack", {}, {}), spec)


def test_the_side_by_side_table_has_a_row_for_each_figure(bench: Bench) -> None:
    lines = baseline.report(bench.comparison)
    (usage,) = bench.comparison.orchestrated.measured.usage

    labels = [line.split(" | ")[0] for line in lines if line.startswith("| ")]
    for label in (
        "| wall time (RotateSecret until the rotation ended)",
        "| Lambda invocations",
        "| billed GB-s (duration rounded up to 1 ms x memory)",
        "| Step Functions state transitions",
        "| AWS API secretsmanager:RotateSecret",
        "| AWS API stepfunctions:StartExecution (the entry Lambda's; no charge)",
        "| AWS API scheduler:UpdateSchedule (the state machine's; no charge)",
        "| EventBridge Scheduler invocations (the refresh schedule's RotateSecret)",
        "| Google /token",
        "| Google /tokeninfo",
        "| **$ per rotation**",
        "| fixed per secret: Secrets Manager secrets",
        "| fixed per stack: CloudWatch alarm metrics",
        "| freshness sweep per stack, 2,500 secrets",
    ):
        assert label in labels
    assert f"| Step Functions state transitions | {usage.transitions} | 0 |" in lines
    assert any(line.startswith("| Lambda invocations | 8: ") for line in lines)
    assert any(line.endswith("| 4: BaselineRotationFunction 4 |") for line in lines)
    ratios = [line for line in lines if line.startswith(("| 1-hour token |", "| 12-hour token |"))]
    assert len(ratios) == 2 * len(baseline.SECRETS_PER_STACK)
    assert all(line.endswith("x** |") for line in ratios)
