"""The entry Lambda against moto's Step Functions over real HTTP: start, attach, reuse, retry
attempts, races, deadline, throttling, statuses moto cannot reach, validation and the handler."""

import importlib
import io
import json
import logging
import math
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
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.config import Config
from botocore.exceptions import ClientError

import lambda_adapter
import rotation_entry
from rotation_core.errors import InvalidRequestError
from rotation_core.rotation_request import RotationRequest
from step_execution import (
    EntrySettings,
    ExecutionStillRunningError,
    StepExecutionFailedError,
    StepExecutionResult,
    execution_input,
    run_step_execution,
)
from tests.support import wait_until_closed

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

ROLE = "arn:aws:iam::123456789012:role/rotation-state-machine"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:google/access-token-AbCdEf"
ROTATION_TOKEN = "d7c1e2f3-rotation-token-from-secrets-manager"
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
# Fails when its input has "Fail" and waits for a minute when it has "Wait": that lets a test
# leave a failed (or, once stopped, aborted) attempt behind by starting it with another input,
# while the entry Lambda's own input succeeds.
FAIL_ON_REQUEST = {
    "StartAt": "Choose",
    "States": {
        "Choose": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.Fail", "IsPresent": True, "Next": "Fail"},
                {"Variable": "$.Wait", "IsPresent": True, "Next": "Wait"},
            ],
            "Default": "Done",
        },
        "Fail": {"Type": "Fail", "Error": "Earlier", "Cause": "an earlier attempt failed"},
        "Wait": {"Type": "Wait", "Seconds": 60, "Next": "Done"},
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


@pytest.fixture
def rival(moto_endpoint: str) -> "SFNClient":
    """Another client on the same account: what a concurrent invocation or a person does."""
    return boto3.client("stepfunctions", endpoint_url=moto_endpoint)


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
        RotationRequest.from_rotation_event(event),
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


def api_calls(sfn: "SFNClient") -> list[str]:
    """The DescribeExecution and StartExecution calls this client makes, in order."""
    calls: list[str] = []
    for operation in ("DescribeExecution", "StartExecution"):

        def record(operation: str = operation, **_: object) -> None:
            calls.append(operation)

        sfn.meta.events.register(f"before-parameter-build.sfn.{operation}", record)
    return calls


def leave_failed_attempts(
    sfn: "SFNClient", machine: str, event: dict[str, str], count: int
) -> None:
    """Attempts 1..count of the event's step, each ended FAILED, as earlier invocations leave
    them behind while the cause (a disabled account, a missing key) is not yet fixed."""
    arns = [
        sfn.start_execution(
            stateMachineArn=machine, name=name_of(event, attempt), input='{"Fail": true}'
        )["executionArn"]
        for attempt in range(1, count + 1)
    ]
    assert [wait_until_closed(sfn, arn) for arn in arns] == ["FAILED"] * count


class _Raw:
    """The raw stream botocore reads an injected response's body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._body


def crafted_response(
    request: AWSPreparedRequest, status_code: int, body: Mapping[str, object]
) -> AWSResponse:
    """An answer as Step Functions would send it, for what moto cannot produce."""
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    headers["x-amzn-RequestId"] = f"crafted-{uuid.uuid4()}"
    return AWSResponse(request.url, status_code, headers, _Raw(json.dumps(body).encode()))


def answer(sfn: "SFNClient", operation: str, hook: Callable[..., AWSResponse | None]) -> None:
    """A before-send hook answers the operation instead of moto whenever it returns a response."""
    # The stubs type every hook as returning None; a before-send hook may return the response.
    sfn.meta.events.register(f"before-send.sfn.{operation}", cast("Callable[..., None]", hook))


def describe_as(sfn: "SFNClient", status_of: Callable[[str], str | None]) -> None:
    """DescribeExecution answers with the status `status_of` gives the execution's ARN (moto's
    own answer when it gives None): TIMED_OUT, PENDING_REDRIVE and unknown statuses, which
    moto never reports."""

    def describe(request: AWSPreparedRequest, **_: object) -> AWSResponse | None:
        arn = json.loads(cast(bytes, request.body))["executionArn"]
        status = status_of(arn)
        if status is None:
            return None
        machine, name = arn.replace(":execution:", ":stateMachine:").rsplit(":", 1)
        body: dict[str, object] = {
            "executionArn": arn,
            "stateMachineArn": machine,
            "name": name,
            "status": status,
            "startDate": time.time() - 60,
            "input": "{}",
        }
        if status not in {"RUNNING", "PENDING_REDRIVE"}:
            body.update(
                stopDate=time.time(), error="States.Timeout", cause=f"crafted {status} ending"
            )
        return crafted_response(request, 200, body)

    answer(sfn, "DescribeExecution", describe)


def refuse(sfn: "SFNClient", operation: str, code: str) -> None:
    """Every call of the operation fails with that error code, as AWS would answer it."""

    def refused(request: AWSPreparedRequest, **_: object) -> AWSResponse:
        return crafted_response(request, 400, {"__type": code, "message": f"crafted {code}"})

    answer(sfn, operation, refused)


def test_a_step_runs_as_one_execution_that_succeeds(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, PASS)
    event = rotation_event()

    result = run(sfn, machine, event)

    assert result.status == "SUCCEEDED"
    assert result.execution_arn == arn_of(machine, event)
    assert (result.attempt, result.started, result.throttled_calls) == (1, True, 0)
    assert result.describe_calls >= 1  # at least one poll
    assert execution_names(sfn, machine) == [name_of(event)]


def test_a_first_invocation_starts_attempt_1_before_any_describe(sfn: "SFNClient") -> None:
    """DescribeExecution's quota is the one that binds first: a step's first invocation, the
    common case, costs it no search, only the polls that wait for the end."""
    machine = state_machine(sfn, PASS)
    event = rotation_event("testSecret")
    starts = start_calls(sfn)
    calls = api_calls(sfn)

    result = run(sfn, machine, event)

    assert (result.status, result.attempt, result.started) == ("SUCCEEDED", 1, True)
    assert calls[0] == "StartExecution"
    assert calls.count("StartExecution") == 1
    assert [call["name"] for call in starts] == [name_of(event)]
    assert result.describe_calls == calls.count("DescribeExecution") >= 1


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
    """StartExecution with the same name and input as a RUNNING execution answers with that
    execution (idempotent on Standard workflows): the repeated invocation waits on it, starts
    no other and makes no DescribeExecution before it."""
    machine = state_machine(sfn, wait_state(1))
    event = rotation_event("setSecret")
    running = sfn.start_execution(
        stateMachineArn=machine,
        name=name_of(event),
        input=execution_input(RotationRequest.from_rotation_event(event)),
    )
    starts = start_calls(sfn)
    calls = api_calls(sfn)

    result = run(sfn, machine, event)

    assert (result.status, result.attempt) == ("SUCCEEDED", 1)
    assert result.execution_arn == running["executionArn"]
    assert [call["name"] for call in starts] == [name_of(event)]
    assert calls[0] == "StartExecution"
    assert execution_names(sfn, machine) == [name_of(event)]
    first = sfn.describe_execution(executionArn=running["executionArn"])
    assert first["startDate"] == running["startDate"]


def test_attempt_1_running_with_another_input_is_found_and_attached(sfn: "SFNClient") -> None:
    """The same name RUNNING with another input (a retry whose event differs): StartExecution
    refuses with ExecutionAlreadyExists, the search finds attempt 1 running and the invocation
    waits on it, here until its deadline, without starting attempt 2."""
    machine = state_machine(sfn, FAIL_ON_REQUEST)
    event = rotation_event()
    other = sfn.start_execution(stateMachineArn=machine, name=name_of(event), input='{"Wait": 1}')
    starts = start_calls(sfn)

    try:
        with pytest.raises(ExecutionStillRunningError) as raised:
            run(sfn, machine, event, remaining=3.0, clock=FakeClock())
    finally:
        sfn.stop_execution(executionArn=other["executionArn"])

    assert raised.value.execution_arn == other["executionArn"]
    assert [call["name"] for call in starts] == [name_of(event)]
    assert execution_names(sfn, machine) == [name_of(event)]


def test_a_succeeded_execution_is_reused_without_starting_another(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, PASS)
    event = rotation_event("finishSecret")
    first = run(sfn, machine, event)
    starts = start_calls(sfn)

    again = run(sfn, machine, event)

    # StartExecution of attempt 1 is refused (it closed); two describes: attempt 1 exists,
    # attempt 2 does not.
    assert (again.status, again.started, again.describe_calls) == ("SUCCEEDED", False, 2)
    assert again.execution_arn == first.execution_arn
    assert [call["name"] for call in starts] == [name_of(event)]
    assert execution_names(sfn, machine) == [name_of(event)]


def test_a_failed_attempt_is_followed_by_a_fresh_one(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, FAIL_ON_REQUEST)
    event = rotation_event()
    leave_failed_attempts(sfn, machine, event, 1)

    result = run(sfn, machine, event)

    assert (result.status, result.attempt, result.started) == ("SUCCEEDED", 2, True)
    assert result.execution_arn.endswith(f"{event['ClientRequestToken']}-2")
    assert execution_names(sfn, machine) == [name_of(event, 1), name_of(event, 2)]


@pytest.mark.parametrize("failed", [12, 16, 40])
def test_many_failed_attempts_never_lock_the_rotation(sfn: "SFNClient", failed: int) -> None:
    machine = state_machine(sfn, FAIL_ON_REQUEST)
    event = rotation_event()
    leave_failed_attempts(sfn, machine, event, failed)
    calls = api_calls(sfn)

    result = run(sfn, machine, event)

    assert (result.status, result.attempt, result.started) == ("SUCCEEDED", failed + 1, True)
    # Attempt 1's start, refused, then the start of the new attempt.
    assert calls.count("StartExecution") == 2
    assert calls[0] == "StartExecution"
    # Finding the newest attempt costs O(log n) describes (8, 10 and 12 here), not n + 1.
    search = calls.index("StartExecution", 1) - 1
    assert search <= 2 * math.log2(failed) + 3
    assert len(execution_names(sfn, machine)) == failed + 1


class FailedAttempts:
    """Step Functions answered as it stands after attempts 1..n of a step ended FAILED, without
    running them: DescribeExecution knows exactly those (and what the client starts, which
    succeeds at once); StartExecution refuses a taken name with ExecutionAlreadyExists."""

    def __init__(self, sfn: "SFNClient") -> None:
        self.statuses: dict[int, str] = {}
        self.started: list[str] = []
        answer(sfn, "DescribeExecution", self._describe)
        answer(sfn, "StartExecution", self._start)

    def leave(self, failed: int) -> None:
        self.statuses = dict.fromkeys(range(1, failed + 1), "FAILED")
        self.started = []

    def _describe(self, request: AWSPreparedRequest, **_: object) -> AWSResponse:
        arn = json.loads(cast(bytes, request.body))["executionArn"]
        machine, name = arn.replace(":execution:", ":stateMachine:").rsplit(":", 1)
        status = self.statuses.get(_attempt(name))
        if status is None:
            return crafted_response(
                request, 400, {"__type": "ExecutionDoesNotExist", "message": f"no {arn}"}
            )
        body = {
            "executionArn": arn,
            "stateMachineArn": machine,
            "name": name,
            "status": status,
            "startDate": time.time() - 60,
            "stopDate": time.time(),
            "input": "{}",
        }
        return crafted_response(request, 200, body)

    def _start(self, request: AWSPreparedRequest, **_: object) -> AWSResponse:
        parameters = json.loads(cast(bytes, request.body))
        name = parameters["name"]
        self.started.append(name)
        if _attempt(name) in self.statuses:
            return crafted_response(
                request, 400, {"__type": "ExecutionAlreadyExists", "message": f"{name} exists"}
            )
        self.statuses[_attempt(name)] = "SUCCEEDED"
        arn = f"{parameters['stateMachineArn'].replace(':stateMachine:', ':execution:')}:{name}"
        return crafted_response(request, 200, {"executionArn": arn, "startDate": time.time()})


def _attempt(execution_name: str) -> int:
    return int(execution_name.rsplit("-", 1)[1])


def test_the_newest_attempt_is_found_after_any_number_of_failed_ones(sfn: "SFNClient") -> None:
    """Every count from 1 to 40, odd ones included: a search that stops one step early lands
    on an older attempt for some counts, and then starts attempts that already exist. The only
    starts are attempt 1's, refused before the search, and the new attempt's."""
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:rotation-attempts"
    attempts = FailedAttempts(sfn)
    wrong: dict[int, tuple[int, list[str]]] = {}

    for failed in range(1, 41):
        attempts.leave(failed)
        event = rotation_event()
        result = run(sfn, machine, event, clock=FakeClock())
        assert result.status == "SUCCEEDED"
        expected = [name_of(event, 1), name_of(event, failed + 1)]
        if (result.attempt, attempts.started) != (failed + 1, expected):
            wrong[failed] = (result.attempt, attempts.started)

    assert wrong == {}


@pytest.mark.parametrize("failed", [1, 5, 7])
def test_the_newest_attempt_s_success_is_reported_without_starting_another(
    sfn: "SFNClient", failed: int
) -> None:
    machine = state_machine(sfn, FAIL_ON_REQUEST)
    event = rotation_event()
    leave_failed_attempts(sfn, machine, event, failed)
    newest = sfn.start_execution(
        stateMachineArn=machine,
        name=name_of(event, failed + 1),
        input=execution_input(RotationRequest.from_rotation_event(event)),
    )
    assert wait_until_closed(sfn, newest["executionArn"]) == "SUCCEEDED"
    starts = start_calls(sfn)

    result = run(sfn, machine, event)

    assert (result.status, result.attempt, result.started) == ("SUCCEEDED", failed + 1, False)
    assert result.execution_arn == newest["executionArn"]
    assert [call["name"] for call in starts] == [name_of(event)]


def test_a_newest_attempt_that_was_aborted_is_followed_by_a_fresh_one(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, FAIL_ON_REQUEST)
    event = rotation_event()
    aborted = sfn.start_execution(stateMachineArn=machine, name=name_of(event), input='{"Wait": 1}')
    sfn.stop_execution(executionArn=aborted["executionArn"])
    assert wait_until_closed(sfn, aborted["executionArn"]) == "ABORTED"
    starts = start_calls(sfn)

    result = run(sfn, machine, event)

    assert (result.status, result.attempt, result.started) == ("SUCCEEDED", 2, True)
    assert [call["name"] for call in starts] == [name_of(event, 1), name_of(event, 2)]


def test_a_newest_attempt_that_timed_out_is_followed_by_a_fresh_one(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, FAIL_ON_REQUEST)
    event = rotation_event()
    leave_failed_attempts(sfn, machine, event, 1)
    describe_as(sfn, lambda arn: "TIMED_OUT" if arn == arn_of(machine, event, 1) else None)
    starts = start_calls(sfn)

    result = run(sfn, machine, event)

    assert (result.status, result.attempt, result.started) == ("SUCCEEDED", 2, True)
    assert [call["name"] for call in starts] == [name_of(event, 1), name_of(event, 2)]


def test_an_execution_that_times_out_while_waited_on_raises_naming_the_status(
    sfn: "SFNClient",
) -> None:
    machine = state_machine(sfn, PASS)
    event = rotation_event("setSecret")
    starts = start_calls(sfn)
    describe_as(sfn, lambda arn: "TIMED_OUT" if starts else None)

    with pytest.raises(StepExecutionFailedError) as raised:
        run(sfn, machine, event)

    assert (raised.value.status, raised.value.execution_arn) == (
        "TIMED_OUT",
        arn_of(machine, event),
    )
    assert f"execution {arn_of(machine, event)} ended TIMED_OUT" in str(raised.value)
    assert len(starts) == 1


def test_an_execution_aborted_while_waited_on_raises_naming_the_status(
    sfn: "SFNClient", rival: "SFNClient"
) -> None:
    machine = state_machine(sfn, wait_state(60))
    event = rotation_event("testSecret")

    def stop_it(parsed: dict[str, Any], **_: object) -> None:
        rival.stop_execution(executionArn=parsed["executionArn"])

    sfn.meta.events.register("after-call.sfn.StartExecution", stop_it)

    with pytest.raises(StepExecutionFailedError) as raised:
        run(sfn, machine, event)

    assert (raised.value.status, raised.value.execution_arn) == ("ABORTED", arn_of(machine, event))
    assert f"execution {arn_of(machine, event)} ended ABORTED" in str(raised.value)


def test_a_newest_attempt_pending_redrive_is_waited_on_not_replaced(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, PASS)
    event = rotation_event("finishSecret")
    redriven = sfn.start_execution(
        stateMachineArn=machine,
        name=name_of(event),
        input=execution_input(RotationRequest.from_rotation_event(event)),
    )
    assert wait_until_closed(sfn, redriven["executionArn"]) == "SUCCEEDED"
    # The search and the first poll see it waiting for its redrive; then it has succeeded.
    answered: list[str] = []

    def pending_twice(arn: str) -> str | None:
        if arn != redriven["executionArn"] or len(answered) == 2:
            return None
        answered.append(arn)
        return "PENDING_REDRIVE"

    describe_as(sfn, pending_twice)
    starts = start_calls(sfn)

    result = run(sfn, machine, event)

    assert (result.status, result.attempt, result.started) == ("SUCCEEDED", 1, False)
    assert len(answered) == 2
    assert [call["name"] for call in starts] == [name_of(event)]


def test_an_unknown_status_is_reported_not_taken_for_a_failed_attempt(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, FAIL_ON_REQUEST)
    event = rotation_event()
    leave_failed_attempts(sfn, machine, event, 1)
    describe_as(sfn, lambda arn: "PAUSED" if arn == arn_of(machine, event, 1) else None)
    starts = start_calls(sfn)

    with pytest.raises(StepExecutionFailedError) as raised:
        run(sfn, machine, event)

    assert (raised.value.status, raised.value.execution_arn) == ("PAUSED", arn_of(machine, event))
    assert "ended PAUSED" in str(raised.value)
    assert [call["name"] for call in starts] == [name_of(event)]
    assert execution_names(sfn, machine) == [name_of(event)]


@pytest.mark.parametrize(
    "code", ["StateMachineDoesNotExist", "AccessDeniedException", "InvalidExecutionInput"]
)
def test_a_refused_start_raises_its_error(sfn: "SFNClient", code: str) -> None:
    machine = state_machine(sfn, PASS)
    event = rotation_event()
    if code == "StateMachineDoesNotExist":
        sfn.delete_state_machine(stateMachineArn=machine)
    else:
        refuse(sfn, "StartExecution", code)

    with pytest.raises(ClientError) as raised:
        run(sfn, machine, event)

    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.operation_name == "StartExecution"


@pytest.mark.parametrize("failed", [0, 1])
def test_a_refused_describe_raises_and_starts_no_further_attempt(
    sfn: "SFNClient", failed: int
) -> None:
    """Attempt 1's start comes first; a DescribeExecution refused after it (in the poll, or in
    the search when attempt 1 has failed) raises, and no attempt is started blind."""
    machine = state_machine(sfn, FAIL_ON_REQUEST)
    event = rotation_event()
    leave_failed_attempts(sfn, machine, event, failed)
    refuse(sfn, "DescribeExecution", "AccessDeniedException")
    starts = start_calls(sfn)

    with pytest.raises(ClientError) as raised:
        run(sfn, machine, event)

    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"
    assert raised.value.operation_name == "DescribeExecution"
    assert [call["name"] for call in starts] == [name_of(event)]


def test_a_request_without_a_step_starts_nothing(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, PASS)
    # What a manual chain's payload parses to: each step Lambda knows its step, the entry does not.
    request = RotationRequest(SECRET, str(uuid.uuid4()))
    settings = EntrySettings.from_environment({"STATE_MACHINE_ARN": machine})

    with pytest.raises(InvalidRequestError, match="'Step'"):
        run_step_execution(sfn, settings, request, remaining_seconds=lambda: 30.0)

    assert execution_names(sfn, machine) == []


@pytest.mark.parametrize("failed", [0, 1], ids=["attempt-1", "after-the-search"])
@pytest.mark.parametrize(
    ("rival_input", "later", "started"),
    [
        pytest.param(None, 1, False, id="rival-succeeded"),
        pytest.param('{"Fail": true}', 2, True, id="rival-failed"),
    ],
)
def test_a_rival_start_just_before_ours_is_handled(
    sfn: "SFNClient",
    rival: "SFNClient",
    failed: int,
    rival_input: str | None,
    later: int,
    started: bool,
) -> None:
    """A concurrent invocation starts the attempt this one is about to start: attempt 1 (the
    start before any search) or, once attempt 1 has failed, the attempt after the search."""
    machine = state_machine(sfn, FAIL_ON_REQUEST)
    event = rotation_event()
    leave_failed_attempts(sfn, machine, event, failed)
    attempt = failed + later
    answers: list[str] = []

    def rival_starts_first(params: dict[str, Any], **_: object) -> None:
        if not answers and params["name"] == name_of(event, failed + 1):
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

    # The retry's start of attempt 1 answers with the running execution (or, had it ended,
    # is refused and the search finds it): either way the same execution, waited on.
    assert (retry.status, retry.attempt, retry.execution_arn) == (
        "SUCCEEDED",
        1,
        arn_of(machine, event),
    )
    assert {call["name"] for call in starts} == {name_of(event)}
    assert execution_names(sfn, machine) == [name_of(event)]


def test_throttling_backs_off_with_jitter_then_succeeds(sfn: "SFNClient") -> None:
    machine = state_machine(sfn, PASS)
    event = rotation_event()
    throttled: list[str] = []

    def throttle_three_times(request: AWSPreparedRequest, **_: object) -> AWSResponse | None:
        if len(throttled) >= 3:
            return None
        throttled.append(request.url)
        body = {"__type": "ThrottlingException", "message": "Rate exceeded"}
        return crafted_response(request, 400, body)

    answer(sfn, "DescribeExecution", throttle_three_times)
    bounds: list[float] = []

    def uniform(low: float, high: float) -> float:
        assert low == 0.0
        bounds.append(high)
        return random.uniform(low, high)

    clock = FakeClock()

    result = run(sfn, machine, event, clock=clock, uniform=uniform)

    assert result.status == "SUCCEEDED"
    assert (result.throttled_calls, len(throttled)) == (3, 3)
    assert result.describe_calls >= 4  # three throttled, then the poll that saw the end
    # The interval grows by half after every throttled call (0.05, 0.075, 0.1125); each bound is
    # twice the interval, capped at POLL_MAX_INTERVAL_SECONDS (0.2).
    assert bounds == pytest.approx([0.1, 0.15, 0.2])
    # The first poll's pause (the first interval), then the three backoffs.
    assert clock.sleeps[0] == pytest.approx(0.05)
    backoffs = clock.sleeps[1:4]
    assert all(0.0 <= pause <= bound for pause, bound in zip(backoffs, bounds, strict=True))


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


def invoke(event: object) -> dict[str, object]:
    return rotation_entry.lambda_handler(event, cast(LambdaContext, FakeLambdaContext()))


@pytest.mark.parametrize(
    ("event", "field"),
    [
        pytest.param(rotation_event("create_secret"), "'Step'", id="snake-case-step"),
        pytest.param(
            {"Step": "createSecret", "ClientRequestToken": str(uuid.uuid4())},
            "'SecretId'",
            id="no-id",
        ),
        pytest.param(
            {"Step": "setSecret", "SecretId": SECRET}, "'ClientRequestToken'", id="no-token"
        ),
        pytest.param(
            rotation_event(ClientRequestToken="short"), "'ClientRequestToken'", id="short-token"
        ),
        pytest.param(
            rotation_event(RotationToken="not a token"), "'RotationToken'", id="bad-rotation-token"
        ),
        pytest.param({**rotation_event(), "Manual": True}, "'Manual'", id="manual"),
    ],
)
def test_an_invalid_event_starts_nothing(
    handler_environment: tuple["SFNClient", str], event: dict[str, Any], field: str
) -> None:
    sfn, machine = handler_environment

    with pytest.raises(InvalidRequestError, match=field):
        invoke(event)

    assert execution_names(sfn, machine) == []


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        pytest.param(None, "nothing", id="null"),
        pytest.param([rotation_event()], "an array", id="list"),
        pytest.param(json.dumps(rotation_event()), "a string", id="string"),
        pytest.param(42, "a number", id="number"),
    ],
)
def test_an_event_that_is_no_object_is_refused_clearly(
    handler_environment: tuple["SFNClient", str],
    entry_log: io.StringIO,
    event: object,
    kind: str,
) -> None:
    sfn, machine = handler_environment

    with pytest.raises(InvalidRequestError, match="must be a JSON object") as raised:
        invoke(event)

    assert f"got {kind}" in str(raised.value)
    assert execution_names(sfn, machine) == []
    refused = json.loads(entry_log.getvalue().splitlines()[-1])
    assert refused["error_type"] == "InvalidRequestError"


@pytest.mark.parametrize("rotation_token", [ROTATION_TOKEN, None])
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


@pytest.mark.parametrize("length", [2048, 100_000])
def test_the_log_keys_hold_at_most_256_characters_of_a_field(
    handler_environment: tuple["SFNClient", str], entry_log: io.StringIO, length: int
) -> None:
    event = rotation_event("setSecret")
    event["SecretId"] = SECRET + "x" * (length - len(SECRET))

    if length > 2048:
        with pytest.raises(InvalidRequestError, match=f"'SecretId' is {length} characters"):
            invoke(event)
    else:
        invoke(event)

    records = [json.loads(line) for line in entry_log.getvalue().splitlines()]
    assert records
    assert {record["secret_id"] for record in records} == {event["SecretId"][:256]}
    assert event["SecretId"] not in entry_log.getvalue()


@pytest.fixture
def event_logging_requested(
    handler_environment: tuple["SFNClient", str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The entry Lambda as imported where POWERTOOLS_LOGGER_LOG_EVENT=true (powertools reads it
    when the handler is decorated, so the module is imported again)."""
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    importlib.reload(rotation_entry)
    yield
    monkeypatch.delenv("POWERTOOLS_LOGGER_LOG_EVENT")
    importlib.reload(rotation_entry)


@pytest.mark.parametrize("valid", [True, False], ids=["valid", "invalid"])
@pytest.mark.usefixtures("event_logging_requested")
def test_the_rotation_token_reaches_no_log_even_when_event_logging_is_requested(
    entry_log: io.StringIO,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    valid: bool,
) -> None:
    event = rotation_event("createSecret", RotationToken=ROTATION_TOKEN)

    if valid:
        invoke(event)
    else:
        event["Step"] = "create_secret"
        with pytest.raises(InvalidRequestError):
            invoke(event)

    captured = capsys.readouterr()
    logged = [entry_log.getvalue(), captured.out, captured.err, caplog.text]
    assert event["ClientRequestToken"] in entry_log.getvalue()  # the log was captured
    assert not [text for text in logged if ROTATION_TOKEN in text]
