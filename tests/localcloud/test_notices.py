"""The state machine's failure paths on the local cloud: every failed execution sends exactly one
notice (or, when SNS refuses beyond every retry, none) and ends with the step's own error.

template.yaml is deployed once for the module; no key is stored, because none of these paths
reaches Google: they fail on the input, or the notice machinery itself is made to fail."""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from moto.awslambda.models import LambdaFunction

from localcloud import fidelity
from localcloud.cloud import Deployment, LocalCloud
from localcloud.faults import sns_publish_refused
from localcloud.operations import (
    ExecutionSummary,
    drain_notices,
    start_manual,
    subscribe_queue,
    version_stages,
)
from localcloud.template import PROJECT_ROOT
from tests.support import local_cloud_of_its_own

PARAMETERS = {"GoogleScopes": "https://www.googleapis.com/auth/calendar.readonly"}
ASL = json.loads((PROJECT_ROOT / "statemachine" / "rotation.asl.json").read_text())


@dataclass
class Local:
    cloud: LocalCloud
    deployment: Deployment
    queue_url: str

    @property
    def secret_arn(self) -> str:
        return self.deployment.token_secret_arn

    def run(self, execution_input: dict[str, Any]) -> ExecutionSummary:
        return start_manual(self.cloud, self.deployment, execution_input)

    def notices(self) -> list[dict[str, Any]]:
        return drain_notices(self.cloud, self.queue_url)

    def current_version(self) -> str:
        stages = version_stages(self.cloud, self.secret_arn)
        return next(v for v, labels in stages.items() if "AWSCURRENT" in labels)


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    """One deployment for the module, on a local cloud of its own. Starting one sets MOTO_PORT,
    the Lambda dispatcher and the retry clock for the whole process: they are put back after."""
    suffix = uuid.uuid4().hex[:12]
    with local_cloud_of_its_own() as cloud:
        deployment = cloud.deploy(
            {**PARAMETERS, "TokenSecretName": f"notices/{suffix}/token"},
            stack_name=f"notices-{suffix}",
        )
        for name in deployment.functions.values():
            assert cloud.runtime.worker(name).prewarm() is None
        queue_url = subscribe_queue(cloud, deployment.topic_arn, name=f"notices-{suffix}")
        yield Local(cloud, deployment, queue_url)
        cloud.client("secretsmanager").delete_secret(
            SecretId=deployment.token_secret_arn, ForceDeleteWithoutRecovery=True
        )


@pytest.fixture
def fresh(local: Local) -> Local:
    """No notice or recorded retry wait left over from an earlier test."""
    local.notices()
    local.cloud.corrections.retry_waits.clear()
    return local


def visited(execution: ExecutionSummary) -> list[str]:
    """The states an execution entered, in order (a Fail state is entered but never exited)."""
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in execution.history
        if event["type"].endswith("StateEntered")
    ]


def ending(execution: ExecutionSummary) -> tuple[str, str]:
    [failed] = [e for e in execution.history if e["type"] == "ExecutionFailed"]
    details = failed["executionFailedEventDetails"]
    return details["error"], details["cause"]


def assert_sns_subject(subject: str) -> None:
    assert 0 < len(subject) <= fidelity.SNS_SUBJECT_LIMIT
    assert subject.isascii()
    assert subject.isprintable()


NOTICE_PATH = ["DescribeFailure", "FailureNoticeDue", "NotifyFailure", "RetryDue", "RotationFailed"]
"""A failure that is no rotation of a managed secret (bad input): a notice, and no retry."""


@pytest.mark.parametrize(
    ("execution_input", "shown"),
    [
        ({"secretId": "misspelt"}, "(none given)"),
        ({"SecretId": 42}, "a number"),
        ({"SecretId": ["a", "list"], "Step": "createSecret"}, "an array"),
    ],
    ids=["no-secret-id", "secret-id-number", "secret-id-array"],
)
def test_input_without_a_secret_id_fails_with_one_notice_and_starts_nothing(
    fresh: Local, execution_input: dict[str, Any], shown: str
) -> None:
    execution = fresh.run(execution_input)

    assert execution.status == "FAILED"
    assert execution.error == "InvalidExecutionInput"
    assert visited(execution) == ["ValidateAndRoute", "InvalidInput", *NOTICE_PATH]
    assert execution.task_attempts == {"DescribeFailure": 1, "NotifyFailure": 1}
    [notice] = fresh.notices()
    assert notice["Subject"] == "Google token rotation failed: input validation"
    message = notice["Message"]
    assert message["Step"] == "input validation"
    assert message["Error"] == "InvalidExecutionInput"
    assert message["Cause"].startswith("The execution input needs a SecretId")
    assert message["SecretId"] == shown
    assert message["Stages"].startswith("Not checked:")
    assert message["ExecutionArn"] == execution.arn
    assert message["ConsoleUrl"].endswith(execution.arn)
    assert ending(execution) == (
        "InvalidExecutionInput",
        ASL["States"]["InvalidInput"]["Parameters"]["Failure"]["Cause"],
    )


@pytest.mark.parametrize(
    ("step", "described"),
    [("x" * 200, "a string of 200 characters"), ("créer\nSecret", "a string of 12 characters")],
    ids=["200-characters", "non-ascii-and-newline"],
)
def test_an_unknown_step_fails_with_one_notice_that_never_copies_it(
    fresh: Local, step: str, described: str
) -> None:
    token = str(uuid.uuid4())
    current = fresh.current_version()

    execution = fresh.run({"SecretId": fresh.secret_arn, "Step": step, "ClientRequestToken": token})

    assert execution.status == "FAILED"
    assert execution.error == "UnknownRotationStep"
    assert visited(execution) == ["ValidateAndRoute", "UnknownStep", *NOTICE_PATH]
    [notice] = fresh.notices()
    assert_sns_subject(notice["Subject"])
    assert notice["Subject"].startswith("Google token rotation failed: unknown step (")
    message = notice["Message"]
    assert message["Step"] == "unknown step"
    assert message["GivenStep"] == described
    assert message["SecretId"] == fresh.secret_arn
    assert message["Stages"] == (
        "Checked with DescribeSecret when this notice was composed: AWSCURRENT is on version "
        f"{current}; this rotation's version {token} carries neither AWSCURRENT nor AWSPENDING. "
        "No version carries AWSPENDING."
    )
    assert message["NextSteps"].startswith("Nothing was started.")
    assert step not in json.dumps(notice, ensure_ascii=False)
    error, cause = ending(execution)
    assert error == "UnknownRotationStep"
    assert step not in cause
    # The Step is never copied: no state's data holds it more than once (a long run of the same
    # character is counted without overlaps, so the 200 x's are found once per copy).
    copies = [json.dumps(event, default=str).count("x" * 200) for event in execution.history]
    assert max(copies) == (1 if step == "x" * 200 else 0)


@pytest.mark.parametrize(
    "token",
    [None, 42, ["a", "list"]],
    ids=["no-token", "token-number", "token-array"],
)
def test_a_step_without_a_string_client_request_token_fails_as_invalid_input(
    fresh: Local, token: Any
) -> None:
    """The routing Choice refuses a step whose version id is missing or not text before any step
    runs: the failure path names the rotation's version by it, and the step would refuse it."""
    execution_input: dict[str, Any] = {"SecretId": fresh.secret_arn, "Step": "createSecret"}
    if token is not None:
        execution_input["ClientRequestToken"] = token
    stages = version_stages(fresh.cloud, fresh.secret_arn)

    execution = fresh.run(execution_input)

    assert execution.status == "FAILED"
    assert visited(execution) == ["ValidateAndRoute", "InvalidInput", *NOTICE_PATH]
    assert execution.task_attempts == {"DescribeFailure": 1, "NotifyFailure": 1}
    [notice] = fresh.notices()
    message = notice["Message"]
    assert message["Step"] == "input validation"
    assert message["Error"] == "InvalidExecutionInput"
    assert "ClientRequestToken" in message["Cause"]
    assert message["SecretId"] == fresh.secret_arn
    assert message["NextSteps"].startswith("Nothing was started.")
    assert ending(execution)[0] == "InvalidExecutionInput"
    assert version_stages(fresh.cloud, fresh.secret_arn) == stages


def test_sns_failing_beyond_every_retry_ends_with_the_steps_error_and_no_notice(
    fresh: Local,
) -> None:
    retry = ASL["States"]["NotifyFailure"]["Retry"][0]

    with sns_publish_refused(fresh.deployment.topic_arn, times=1000) as refusals:
        execution = fresh.run({"SecretId": fresh.secret_arn, "Step": "rotate"})

    assert execution.status == "FAILED"
    assert execution.task_attempts == {
        "DescribeFailure": 1,
        "NotifyFailure": retry["MaxAttempts"] + 1,
    }
    assert refusals.refused == retry["MaxAttempts"] + 1
    assert refusals.delivered == 0
    assert fresh.notices() == []
    failures = [
        e["taskFailedEventDetails"]["error"] for e in execution.history if e["type"] == "TaskFailed"
    ]
    assert failures == ["SNS.ThrottledException"] * (retry["MaxAttempts"] + 1)
    # The execution ends with the step's own error and cause, not SNS's.
    error, cause = ending(execution)
    assert error == "UnknownRotationStep"
    assert cause == ASL["States"]["UnknownStep"]["Parameters"]["Failure"]["Cause"]
    # Backoff with full jitter, capped: recorded, not slept.
    waits = fresh.cloud.corrections.retry_waits
    bounds = [
        min(retry["IntervalSeconds"] * retry["BackoffRate"] ** n, retry["MaxDelaySeconds"])
        for n in range(retry["MaxAttempts"])
    ]
    assert len(waits) == len(bounds)
    assert all(0 <= wait <= bound for wait, bound in zip(waits, bounds, strict=True))


@pytest.mark.parametrize(
    ("error_type", "attempts"),
    [("Sandbox.Timedout", 1), ("Runtime.ExitError", 1), ("Lambda.ServiceException", 3)],
)
def test_describe_failure_failing_falls_back_to_a_fixed_notice(
    fresh: Local, monkeypatch: pytest.MonkeyPatch, error_type: str, attempts: int
) -> None:
    describer = fresh.deployment.functions["DescribeFailureFunction"]
    dispatch = fresh.cloud.corrections.dispatch
    assert dispatch is not None

    def failing_describer(function: LambdaFunction, payload: Any) -> tuple[bytes, str | None]:
        if function.function_name == describer:
            error = {"errorType": error_type, "errorMessage": "it broke", "stackTrace": []}
            return json.dumps(error).encode(), error_type
        return dispatch(function, payload)

    monkeypatch.setattr(fresh.cloud.corrections, "dispatch", failing_describer)

    execution = fresh.run({"SecretId": fresh.secret_arn, "Step": "x" * 200})

    assert execution.status == "FAILED"
    assert visited(execution)[-6:] == [
        "DescribeFailure",
        "DescribeFailureFallback",
        "FallbackNotice",
        "NotifyFailure",
        "RetryDue",
        "RotationFailed",
    ]
    assert execution.task_attempts == {"DescribeFailure": attempts, "NotifyFailure": 1}
    [notice] = fresh.notices()
    assert notice["Subject"] == ASL["States"]["FallbackNotice"]["Parameters"]["Notice"]["Subject"]
    assert_sns_subject(notice["Subject"])
    message = notice["Message"]
    assert "could not be composed" in message["Summary"]
    assert message["Step"] == "unknown step"
    assert message["Error"] == "UnknownRotationStep"
    assert message["ExecutionArn"] == execution.arn
    assert message["ConsoleUrl"] == (
        "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1"
        f"#/v2/executions/details/{execution.arn}"
    )
    assert "x" * 50 not in json.dumps(notice)
    assert ending(execution)[0] == "UnknownRotationStep"


def test_stages_that_cannot_be_read_are_reported_as_not_checked(fresh: Local) -> None:
    """DescribeSecret fails (no such secret): the notice says so and how to look, and claims
    nothing about AWSCURRENT."""
    missing = f"notices/{uuid.uuid4().hex[:8]}/no-such-secret"

    execution = fresh.run({"SecretId": missing, "Step": "rotate"})

    assert execution.error == "UnknownRotationStep"
    [notice] = fresh.notices()
    message = notice["Message"]
    assert message["SecretId"] == missing
    assert message["Stages"].startswith(
        "Could not be checked (DescribeSecret failed with SecretNotFoundError: "
    )
    assert message["Stages"].endswith(f"aws secretsmanager describe-secret --secret-id {missing}")
    assert "AWSCURRENT is on" not in json.dumps(message)
    assert notice["Subject"] == f"Google token rotation failed: unknown step ({missing})"
