"""What a person does to the local cloud and reads back from it, for the demo, CLI and tests."""

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import urllib3

from localcloud.deployment import CURRENT, Clients, Deployment
from localcloud.lambda_runtime import InvocationResult

if TYPE_CHECKING:
    # Only for types: the commands that attach to a running `up` must not import moto.
    from localcloud.cloud import LocalCloud


@dataclass(frozen=True)
class ExecutionSummary:
    name: str
    arn: str
    status: str
    error: str | None
    """The execution's error name when it FAILED (from DescribeExecution)."""
    input: dict[str, Any]
    output: dict[str, Any] | None
    """The execution's output when it SUCCEEDED."""
    seconds: float
    states: list[tuple[str, float]]
    """(state name, seconds from entering to leaving it), in order."""
    task_attempts: dict[str, int]
    """Task state → how many times its Lambda was scheduled (1 means no retry)."""
    transitions: int
    history: list[dict[str, Any]]


def version_stages(cloud: Clients, secret_id: str) -> dict[str, list[str]]:
    answer = cloud.client("secretsmanager").describe_secret(SecretId=secret_id)
    return dict(answer.get("VersionIdsToStages", {}))


def current_value(cloud: Clients, secret_id: str) -> dict[str, Any]:
    answer = cloud.client("secretsmanager").get_secret_value(
        SecretId=secret_id, VersionStage=CURRENT
    )
    value: dict[str, Any] = json.loads(answer["SecretString"])
    return value


def token_info(cloud: "LocalCloud", access_token: str) -> dict[str, Any] | None:
    """Google's tokeninfo for a token over HTTP, as an application's first call would see it;
    None when Google refuses the token."""
    answer = urllib3.PoolManager().request(
        "POST",
        cloud.google.tokeninfo_url,
        fields={"access_token": access_token},
        encode_multipart=False,
    )
    if answer.status != 200:
        return None
    info: dict[str, Any] = json.loads(answer.data)
    return info


def mask(token: str) -> str:
    return f"{token[:8]}…({len(token)} chars)" if token else "(empty)"


def executions(cloud: Clients, state_machine_arn: str) -> list[ExecutionSummary]:
    return [summarize(cloud, arn) for arn in _execution_arns(cloud, state_machine_arn)]


def _execution_arns(cloud: Clients, state_machine_arn: str) -> list[str]:
    """Oldest first."""
    sfn = cloud.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=state_machine_arn)["executions"]
    return [item["executionArn"] for item in reversed(listed)]


def summarize(cloud: Clients, execution_arn: str) -> ExecutionSummary:
    sfn = cloud.client("stepfunctions")
    described = sfn.describe_execution(executionArn=execution_arn)
    history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    entered: dict[str, datetime] = {}
    states: list[tuple[str, float]] = []
    attempts: dict[str, int] = {}
    current = ""
    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            current = event["stateEnteredEventDetails"]["name"]
            entered[current] = event["timestamp"]
        elif kind.endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            states.append((name, (event["timestamp"] - entered[name]).total_seconds()))
        elif kind == "TaskScheduled":
            attempts[current] = attempts.get(current, 0) + 1
    stop = described.get("stopDate", described["startDate"])
    output = described.get("output")
    return ExecutionSummary(
        name=described["name"],
        arn=execution_arn,
        status=described["status"],
        error=described.get("error"),
        input=json.loads(described["input"]),
        output=None if output is None else json.loads(output),
        seconds=(stop - described["startDate"]).total_seconds(),
        states=states,
        task_attempts=attempts,
        transitions=sum(1 for event in history if event["type"].endswith("StateEntered")),
        history=history,
    )


def subscribe_queue(cloud: Clients, topic_arn: str, name: str = "rotation-notices") -> str:
    """An SQS queue on the failure topic, standing in for the e-mail inbox."""
    sqs = cloud.client("sqs")
    queue_url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    cloud.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return queue_url


def drain_notices(cloud: Clients, queue_url: str) -> list[dict[str, Any]]:
    """Every notice waiting in the queue: SNS envelope fields Subject and Message (parsed)."""
    sqs = cloud.client("sqs")
    notices: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return notices
        for message in messages:
            envelope = json.loads(message["Body"])
            notices.append(
                {"Subject": envelope.get("Subject"), "Message": json.loads(envelope["Message"])}
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def rotate_on_schedule(cloud: Clients, deployment: Deployment) -> list[ExecutionSummary]:
    """RotateSecret as the schedule calls it; returns the executions it caused, oldest first."""
    before = set(_execution_arns(cloud, deployment.state_machine_arn))
    cloud.client("secretsmanager").rotate_secret(SecretId=deployment.token_secret_arn)
    return [
        summarize(cloud, arn)
        for arn in _execution_arns(cloud, deployment.state_machine_arn)
        if arn not in before
    ]


def start_manual(
    cloud: Clients, deployment: Deployment, execution_input: dict[str, Any] | None = None
) -> ExecutionSummary:
    """A console run: input {"SecretId": ...} runs the whole chain; waits for the end."""
    sfn = cloud.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=deployment.state_machine_arn,
        name=f"manual-{time.time_ns()}",
        input=json.dumps(execution_input or {"SecretId": deployment.token_secret_arn}),
    )["executionArn"]
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        time.sleep(0.05)
    return summarize(cloud, arn)


def local_event(event: Any, deployment: Deployment) -> Any:
    """Sample events name the secret by an example ARN from another account; point any ARN or
    name of the token secret at the one deployed here, as `sam local invoke` users edit by hand."""
    if not isinstance(event, dict) or "SecretId" not in event:
        return event
    name = re.sub(r"^arn:aws[^:]*:secretsmanager:[^:]*:\d+:secret:", "", event["SecretId"])
    deployed_name = re.sub(r"-[A-Za-z0-9]{6}$", "", deployment.token_secret_arn.rsplit(":", 1)[1])
    if re.sub(r"-[A-Za-z0-9]{6}$", "", name) == deployed_name:
        return {**event, "SecretId": deployment.token_secret_arn}
    return event


def invoke_function(
    cloud: "LocalCloud",
    deployment: Deployment,
    logical_id: str,
    event: Any,
    *,
    begin_rotation: bool = False,
) -> InvocationResult:
    """One direct invocation of a deployed function (like `sam local invoke`) with a sample
    event made local; `begin_rotation` first makes the empty AWSPENDING version that Secrets
    Manager creates before it calls createSecret."""
    event = local_event(event, deployment)
    if begin_rotation:
        cloud.begin_rotation(event["SecretId"], event["ClientRequestToken"])
    return cloud.runtime.worker(deployment.functions[logical_id]).invoke(event)
