"""Following a rotation that runs after RotateSecret has answered, as on AWS (the local cloud runs
it inside the call): scripted Secrets Manager and Step Functions answers over real HTTP, and a
simulated clock for the waits."""

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from stacktools.post_deploy_check import CheckSettings, follow_rotation
from tests.scripted_aws import ScriptedAws, json_answer, scripted_aws

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:RotationStateMachine"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:google/token-AbCdEf"
CURRENT = "AWSCURRENT"
VERSION = "0b5e2c6a-1111-4c3b-9d7e-2a1b3c4d5e6f"


def _stages(*labels: str) -> tuple[int, bytes]:
    return json_answer({"ARN": SECRET, "VersionIdsToStages": {VERSION: list(labels)}})


def _execution(step: str, status: str, attempt: int = 1) -> dict[str, Any]:
    name = f"{step}-{VERSION}-{attempt}"
    return {
        "executionArn": f"{MACHINE.replace(':stateMachine:', ':execution:')}:{name}",
        "stateMachineArn": MACHINE,
        "name": name,
        "status": status,
        "startDate": 1_700_000_000 + attempt,
    }


def _executions(*statuses: str) -> tuple[int, bytes]:
    steps = ["createSecret", "setSecret", "testSecret", "finishSecret"]
    listed = [_execution(step, status) for step, status in zip(steps, statuses, strict=False)]
    return json_answer({"executions": listed})


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1


@pytest.fixture
def aws() -> Iterator[dict[str, ScriptedAws]]:
    with scripted_aws() as secretsmanager, scripted_aws() as stepfunctions:
        yield {"secretsmanager": secretsmanager, "stepfunctions": stepfunctions}


def _follow(aws: dict[str, ScriptedAws], clock: _Clock, timeout: float) -> Any:
    # boto3's overloads want a literal service name; these are chosen at run time.
    create: Any = boto3.client

    def client(service: str) -> Any:
        return create(
            service,
            endpoint_url=aws[service].endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="scripted",
            aws_secret_access_key="scripted",
        )

    settings = CheckSettings(
        timeout_seconds=timeout, sleep=clock.sleep, monotonic=lambda: clock.now
    )
    return follow_rotation(client, MACHINE, SECRET, VERSION, settings)


def test_a_rotation_that_ends_after_the_call_is_waited_for(aws: dict[str, ScriptedAws]) -> None:
    aws["stepfunctions"].play(
        _executions("RUNNING"),
        _executions("SUCCEEDED", "RUNNING"),
        _executions("SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED"),
    )
    aws["secretsmanager"].play(_stages("AWSPENDING"), _stages("AWSPENDING"), _stages(CURRENT))
    clock = _Clock()

    result = _follow(aws, clock, timeout=600)

    assert result.ok
    assert result.detail == f"version {VERSION} is AWSCURRENT after 4 step executions"
    assert clock.sleeps == 2


def test_a_rotation_still_running_at_the_timeout_fails_with_where_to_follow_it(
    aws: dict[str, ScriptedAws],
) -> None:
    aws["stepfunctions"].play(_executions("SUCCEEDED", "RUNNING"))
    aws["secretsmanager"].play(_stages("AWSPENDING"))
    clock = _Clock()

    result = _follow(aws, clock, timeout=30)

    assert not result.ok
    assert result.detail == (
        f"version {VERSION} is not AWSCURRENT after 30 s (1 step executions still running)"
    )
    assert result.fix.startswith(f"follow the executions of {MACHINE} in the Step Functions")
    assert clock.sleeps == 10


def test_a_failed_attempt_that_a_retry_follows_is_not_the_end(
    aws: dict[str, ScriptedAws],
) -> None:
    failed, retry = _execution("createSecret", "FAILED"), _execution("createSecret", "RUNNING", 2)
    aws["stepfunctions"].play(
        json_answer({"executions": [failed, retry]}),
        json_answer({"executions": [failed, {**retry, "status": "SUCCEEDED"}]}),
    )
    aws["secretsmanager"].play(_stages("AWSPENDING"), _stages(CURRENT))
    clock = _Clock()

    result = _follow(aws, clock, timeout=600)

    assert result.ok
    assert clock.sleeps == 1


def test_the_executions_still_running_after_the_promotion_are_waited_for(
    aws: dict[str, ScriptedAws],
) -> None:
    aws["stepfunctions"].play(
        _executions("SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "RUNNING"),
        _executions("SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED"),
    )
    aws["secretsmanager"].play(_stages(CURRENT))
    clock = _Clock()

    result = _follow(aws, clock, timeout=600)

    assert result.ok
    assert clock.sleeps == 1
