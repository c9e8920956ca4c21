"""The entry Lambda against moto's Step Functions over real HTTP: start, attach, reuse, retry
attempts, races, deadline, throttling, validation and the handler itself."""

import io
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
import urllib3
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.config import Config

import lambda_adapter
import rotation_entry
from step_execution import (
    EntrySettings,
    ExecutionAttemptsExhaustedError,
    ExecutionStillRunningError,
    InvalidRotationEventError,
    RotationEvent,
    StepExecutionFailedError,
    StepExecutionResult,
    run_step_execution,
)

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

ROLE = "arn:aws:iam::123456789012:role/rotation-state-machine"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:google/access-token-AbCdEf"
PASS = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
FAIL = {
    "StartAt": "Fail",
    "States": {
        "Fail": {
            "Type": "Fail",
            "Error": "GoogleGrantRejectedError",
            "Cause": "invalid_grant: the service account is disabled",
        }
    },
}
# Fails when its input has "Fail": that lets a test leave a failed attempt behind by starting
# it with another input, while the entry Lambda's own input succeeds.
FAIL_ON_REQUEST = {
    "StartAt": "Choose",
    "States": {
        "Choose": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.Fail", "IsPresent": True, "Next": "Fail"}],
            "Default": "Done",
        },
        "Fail": {"Type": "Fail", "Error": "Earlier", "Cause": "an earlier attempt failed"},
        "Done": {"Type": "Pass", "End": True},
    },
}
FAST_POLLING = {
    "POLL_FIRST_INTERVAL_SECONDS": "0.05",
    "POLL_MAX_INTERVAL_SECONDS": "0.2",
    "DEADLINE_MARGIN_SECONDS": "1",
}


def wait_state(seconds: int) -> dict[str, object]:
    return {
        "StartAt": "Wait",
        "States": {"Wait": {"Type": "Wait", "Seconds": seconds, "End": True}},
    }


@pytest.fixture
def sfn(moto_endpoint: str) -> "SFNClient":
    """A fresh moto account with execution on. The client makes one attempt per call (botocore's
    `max_attempts` counts retries, `total_max_attempts` counts calls), so that injected throttling
    reaches the code under test instead of botocore's own retry."""
    http = urllib3.PoolManager()
    http.request("POST", f"{moto_endpoint}/moto-api/reset")
    # moto keeps this flag in process-wide config that a reset leaves alone (and GET
    # /moto-api/config does not show it); setting it here keeps the file order-independent.
    http.request(
        "POST",
        f"{moto_endpoint}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
    )
    return boto3.client(
        "stepfunctions",
        endpoint_url=moto_endpoint,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def state_machine(sfn: "SFNClient", definition: Mapping[str, object]) -> str:
    name = f"rotation-{uuid.uuid4().hex[:8]}"
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]


def rotation_event(step: str = "createSecret", **extra: str) -> dict[str, str]:
    return {"Step": step, "SecretId": SECRET, "ClientRequestToken": str(uuid.uuid4()), **extra}


@dataclass
class FakeClock:
    """Time that passes only when the code under test sleeps; records every sleep."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def run(
    sfn: "SFNClient",
    machine: str,
    event: dict[str, str],
    *,
    remaining: float = 30.0,
    clock: FakeClock | None = None,
    uniform: Callable[[float, float], float] = random.uniform,
    **environment: str,
) -> StepExecutionResult:
    settings = EntrySettings.from_environment(
        {"STATE_MACHINE_ARN": machine, **FAST_POLLING, **environment}
    )
    timing: dict[str, Any] = {}
    if clock is not None:
        timing = {"sleep": clock.sleep, "monotonic": clock.monotonic}
    return run_step_execution(
        sfn,
        settings,
        RotationEvent.from_event(event),
        remaining_seconds=lambda: remaining,
        uniform=uniform,
        **timing,
    )


def name_of(event: dict[str, str], attempt: int = 1) -> str:
    return f"{event['Step']}-{event['ClientRequestToken']}-{attempt}"


def arn_of(machine: str, event: dict[str, str], attempt: int = 1) -> str:
    return f"{machine.replace(':stateMachine:', ':execution:')}:{name_of(event, attempt)}"


def execution_names(sfn: "SFNClient", machine: str) -> list[str]:
    return sorted(e["name"] for e in sfn.list_executions(stateMachineArn=machine)["executions"])


def start_calls(sfn: "SFNClient") -> list[dict[str, Any]]:
    """Every StartExecution this client makes (moto answers a repeated start of a RUNNING
    execution with the same one, so list_executions alone cannot tell)."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: object) -> None:
        calls.append(params)

    sfn.meta.events.register("before-parameter-build.sfn.StartExecution", record)
    return calls


def wait_until_closed(sfn: "SFNClient", arn: str) -> str:
    for _ in range(100):
        status = sfn.describe_execution(executionArn=arn)["status"]
        if status != "RUNNING":
            return status
        time.sleep(0.05)
    raise AssertionError(f"{arn} did not end")


def test_a_step_runs_as_one_execution_that_succeeds(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, PASS)
    event = rotation_event()

    result = run(sfn, machine, event)

    assert result.status == "SUCCEEDED"
    assert result.execution_arn == arn_of(machine, event)
    assert (result.attempt, result.started, result.throttled_calls) == (1, True, 0)
    assert result.describe_calls >= 2  # the existence check, then at least one poll
    assert execution_names(sfn, machine) == [name_of(event)]


def test_a_failed_execution_raises_with_its_error_and_cause(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, FAIL)
    event = rotation_event("testSecret")

    with pytest.raises(StepExecutionFailedError) as raised:
        run(sfn, machine, event)

    message = str(raised.value)
    for part in (
        "testSecret",
        SECRET,
        arn_of(machine, event),
        "FAILED",
        "GoogleGrantRejectedError",
        "invalid_grant: the service account is disabled",
    ):
        assert part in message
    assert (raised.value.error, raised.value.status) == ("GoogleGrantRejectedError", "FAILED")


def test_a_repeated_invocation_attaches_to_the_running_execution(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, wait_state(1))
    event = rotation_event("setSecret")
    sfn.start_execution(
        stateMachineArn=machine,
        name=name_of(event),
        input=RotationEvent.from_event(event).execution_input(),
    )
    starts = start_calls(sfn)

    result = run(sfn, machine, event)

    assert (result.status, result.started, result.attempt) == ("SUCCEEDED", False, 1)
    assert starts == []
    assert execution_names(sfn, machine) == [name_of(event)]


def test_a_succeeded_execution_is_reused_without_starting_anything(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, PASS)
    event = rotation_event("finishSecret")
    first = run(sfn, machine, event)
    starts = start_calls(sfn)

    again = run(sfn, machine, event)

    assert (again.status, again.started, again.describe_calls) == ("SUCCEEDED", False, 1)
    assert again.execution_arn == first.execution_arn
    assert starts == []
    assert execution_names(sfn, machine) == [name_of(event)]


def test_a_failed_attempt_is_followed_by_a_fresh_one(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, FAIL_ON_REQUEST)
    event = rotation_event()
    failed = sfn.start_execution(stateMachineArn=machine, name=name_of(event), input='{"Fail":1}')
    assert wait_until_closed(sfn, failed["executionArn"]) == "FAILED"

    result = run(sfn, machine, event)

    assert (result.status, result.attempt, result.started) == ("SUCCEEDED", 2, True)
    assert result.execution_arn.endswith(f"{event['ClientRequestToken']}-2")
    assert execution_names(sfn, machine) == [name_of(event, 1), name_of(event, 2)]


def test_no_attempt_is_started_beyond_the_maximum(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, FAIL_ON_REQUEST)
    event = rotation_event()
    for attempt in (1, 2):
        failed = sfn.start_execution(
            stateMachineArn=machine, name=name_of(event, attempt), input='{"Fail":1}'
        )
        wait_until_closed(sfn, failed["executionArn"])
    starts = start_calls(sfn)

    with pytest.raises(ExecutionAttemptsExhaustedError) as raised:
        run(sfn, machine, event, MAX_EXECUTION_ATTEMPTS="2")

    message = str(raised.value)
    assert "all 2 attempts of createSecret" in message
    assert "MAX_EXECUTION_ATTEMPTS" in message
    assert arn_of(machine, event, 2) in message
    assert "'Earlier'" in message
    assert starts == []


@pytest.mark.parametrize(
    ("rival_input", "attempt", "started"),
    [
        pytest.param(None, 1, False, id="rival-succeeded"),
        pytest.param('{"Fail": true}', 2, True, id="rival-failed"),
    ],
)
def test_a_rival_start_between_describe_and_start_is_handled(
    moto_endpoint: str, sfn: "SFNClient", rival_input: str | None, attempt: int, started: bool
) -> None:
    machine = state_machine(sfn, FAIL_ON_REQUEST)
    event = rotation_event()
    rival = boto3.client("stepfunctions", endpoint_url=moto_endpoint)
    answers: list[str] = []

    def rival_starts_first(params: dict[str, Any], **_: object) -> None:
        if not answers:
            answer = rival.start_execution(
                stateMachineArn=machine,
                name=params["name"],
                input=rival_input or params["input"],
            )
            answers.append(wait_until_closed(rival, answer["executionArn"]))

    sfn.meta.events.register("before-parameter-build.sfn.StartExecution", rival_starts_first)

    result = run(sfn, machine, event)

    assert (result.status, result.attempt, result.started) == ("SUCCEEDED", attempt, started)
    assert execution_names(sfn, machine) == [name_of(event, n) for n in range(1, attempt + 1)]


def test_the_deadline_raises_still_running_and_the_retry_attaches(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, wait_state(2))
    event = rotation_event("testSecret")
    starts = start_calls(sfn)
    clock = FakeClock()

    with pytest.raises(ExecutionStillRunningError) as raised:
        run(sfn, machine, event, remaining=4.0, clock=clock)

    message = str(raised.value)
    assert f"execution {arn_of(machine, event)} for testSecret of {SECRET!r} is still running" in (
        message
    )
    assert "Secrets Manager will retry" in message
    # 4 s left minus the 1 s margin: it slept exactly up to the deadline, never past it.
    assert sum(clock.sleeps) == pytest.approx(3.0)
    assert max(clock.sleeps) <= 0.2

    retry = run(sfn, machine, event)

    assert (retry.status, retry.started, retry.attempt) == ("SUCCEEDED", False, 1)
    assert len(starts) == 1
    assert execution_names(sfn, machine) == [name_of(event)]


def test_throttling_backs_off_with_jitter_then_succeeds(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, PASS)
    event = rotation_event()
    throttled: list[str] = []

    def throttle_three_times(request: Any, **_: object) -> AWSResponse | None:
        if len(throttled) >= 3:
            return None
        throttled.append(request.url)
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        headers["x-amzn-RequestId"] = f"throttled-{len(throttled)}"
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
        return AWSResponse(request.url, 400, headers, _Raw(body.encode()))

    # The stubs type every hook as returning None; a before-send hook may return the response.
    sfn.meta.events.register(
        "before-send.sfn.DescribeExecution", cast("Callable[..., None]", throttle_three_times)
    )
    bounds: list[float] = []

    def uniform(low: float, high: float) -> float:
        assert low == 0.0
        bounds.append(high)
        return random.uniform(low, high)

    clock = FakeClock()

    result = run(sfn, machine, event, clock=clock, uniform=uniform)

    assert result.status == "SUCCEEDED"
    assert (result.throttled_calls, len(throttled)) == (3, 3)
    assert result.describe_calls >= 5  # three throttled, the existence check, one poll
    # The interval grows by half after every throttled call (0.05, 0.075, 0.1125); each bound is
    # twice the interval, capped at POLL_MAX_INTERVAL_SECONDS (0.2).
    assert bounds == pytest.approx([0.1, 0.15, 0.2])
    backoffs = clock.sleeps[:3]
    assert all(0.0 <= pause <= bound for pause, bound in zip(backoffs, bounds, strict=True))


class _Raw:
    """The raw stream botocore reads an injected response's body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._body


@pytest.fixture
def handler_environment(
    sfn: "SFNClient", monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple["SFNClient", str]]:
    machine = state_machine(sfn, PASS)
    monkeypatch.setenv("STATE_MACHINE_ARN", machine)
    for variable, value in FAST_POLLING.items():
        monkeypatch.setenv(variable, value)
    rotation_entry._sfn_client.cache_clear()
    yield sfn, machine
    rotation_entry._sfn_client.cache_clear()


@dataclass
class FakeLambdaContext:
    function_name: str = "google-token-rotation-entry"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:google-token-rotation-entry"
    )
    aws_request_id: str = "4d6f0a1c-entry-request"
    remaining_millis: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


def invoke(event: dict[str, Any]) -> dict[str, object]:
    return rotation_entry.lambda_handler(event, cast(LambdaContext, FakeLambdaContext()))


@pytest.mark.parametrize(
    ("event", "field"),
    [
        pytest.param(rotation_event("create_secret"), "'Step'", id="snake-case-step"),
        pytest.param({"Step": "createSecret", "ClientRequestToken": "t"}, "'SecretId'", id="no-id"),
        pytest.param(
            {"Step": "setSecret", "SecretId": SECRET}, "'ClientRequestToken'", id="no-token"
        ),
    ],
)
def test_an_invalid_event_starts_nothing(
    handler_environment: tuple["SFNClient", str], event: dict[str, Any], field: str
) -> None:
    sfn, machine = handler_environment

    with pytest.raises(InvalidRotationEventError, match=field):
        invoke(event)

    assert execution_names(sfn, machine) == []


@pytest.mark.parametrize("rotation_token", ["d7c1e2f3-rotation-token-from-secrets-manager", None])
def test_the_rotation_token_is_forwarded_only_when_present(
    handler_environment: tuple["SFNClient", str], rotation_token: str | None
) -> None:
    sfn, _ = handler_environment
    event = rotation_event()
    if rotation_token is not None:
        event["RotationToken"] = rotation_token

    result = invoke(event)

    execution_input = json.loads(
        sfn.describe_execution(executionArn=str(result["ExecutionArn"]))["input"]
    )
    assert execution_input == event


@pytest.fixture
def entry_log() -> Iterator[io.StringIO]:
    """The entry Lambda's JSON log lines. powertools bound its handler to the stdout of import
    time, before capsys could replace it, so the handler's stream is swapped instead."""
    handler = lambda_adapter.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def test_the_handler_reports_the_execution_and_logs_its_keys(
    handler_environment: tuple["SFNClient", str], entry_log: io.StringIO
) -> None:
    _, machine = handler_environment
    event = rotation_event("finishSecret")

    result = invoke(event)

    assert result == {
        "Step": "finishSecret",
        "ExecutionArn": arn_of(machine, event),
        "Status": "SUCCEEDED",
        "Attempt": 1,
        "Started": True,
        "DescribeCalls": result["DescribeCalls"],
    }
    records = [json.loads(line) for line in entry_log.getvalue().splitlines()]
    done = next(r for r in records if r["message"] == "finishSecret succeeded")
    assert done["step"] == "finishSecret"
    assert done["client_request_token"] == event["ClientRequestToken"]
    assert done["secret_id"] == SECRET
    assert done["function_name"] == "google-token-rotation-entry"
