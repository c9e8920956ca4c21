"""Exactly one notice per failed execution, and a true one: the whole system on the local cloud
while SNS throttles or the input is huge; none when a step Lambda died after its change landed
and ran again."""

import json
from typing import Any

from localcloud.faults import crash_after_update_secret_version_stage, sns_publish_refused
from localcloud.operations import ExecutionSummary, rotate_on_schedule, start_manual
from localcloud.template import PROJECT_ROOT
from tests.e2e.stacks import SecretMaterial, Stack

ASL = json.loads((PROJECT_ROOT / "statemachine" / "rotation.asl.json").read_text())
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
NOTICE_BYTES = 8000
"""Far above what a notice holds (every field is bounded), far below anything caller-sized."""


def step_of(execution: ExecutionSummary) -> str:
    return execution.name.split("-", 1)[0]


def only_notice(stack: Stack) -> dict[str, Any]:
    notices = stack.notices()
    assert len(notices) == 1, notices
    notice: dict[str, Any] = notices[0]
    subject = notice["Subject"]
    assert 0 < len(subject) <= 100
    assert subject.isascii()
    assert subject.isprintable()
    assert len(json.dumps(notice, ensure_ascii=False).encode()) < NOTICE_BYTES
    return notice


def test_sns_throttled_three_times_still_delivers_exactly_one_notice(
    stack: Stack, secret_material: SecretMaterial
) -> None:
    retry = ASL["States"]["NotifyFailure"]["Retry"][0]
    stack.cloud.google.revoke_key(stack.account.private_key_id)

    with sns_publish_refused(stack.deployment.topic_arn, times=3) as refusals:
        found = rotate_on_schedule(stack.cloud, stack.deployment)

    [failed] = found
    assert (step_of(failed), failed.status, failed.error) == (
        "createSecret",
        "FAILED",
        "GoogleGrantRejectedError",
    )
    # The secret's first failure: its retry schedule does not exist yet, so it is created.
    assert failed.task_attempts == {
        "CreateSecret": 1,
        "DescribeFailure": 1,
        "NotifyFailure": 4,
        "ScheduleRetry": 1,
        "CreateRetrySchedule": 1,
    }
    assert (refusals.refused, refusals.delivered) == (3, 1)
    throttles = [
        e["taskFailedEventDetails"]["error"] for e in failed.history if e["type"] == "TaskFailed"
    ]
    assert throttles == [
        "GoogleGrantRejectedError",
        *["SNS.ThrottledException"] * 3,
        "Scheduler.ResourceNotFoundException",
    ]
    waits = stack.cloud.corrections.retry_waits
    bounds = [retry["IntervalSeconds"] * retry["BackoffRate"] ** n for n in range(3)]
    assert len(waits) == 3
    assert all(0 <= wait <= bound for wait, bound in zip(waits, bounds, strict=True))

    notice = only_notice(stack)
    assert notice["Subject"].startswith("Google token rotation failed at createSecret (")
    message = notice["Message"]
    assert (message["Step"], message["Error"]) == ("createSecret", "GoogleGrantRejectedError")
    assert "invalid_grant" in message["Cause"]
    assert message["ExecutionArn"] == failed.arn
    version = failed.input["ClientRequestToken"]
    assert f"not on this rotation's version {version}" in message["Stages"]
    assert f"AWSPENDING is on version {version}, this rotation's version." in message["Stages"]
    assert not secret_material.found_in(json.dumps(notice))


def test_a_crash_after_finish_secret_moved_the_label_is_run_again_and_sends_no_notice(
    stack: Stack,
) -> None:
    """The label moved before the function died: the step runs again at once, finds its version
    current, plans the next rotation, and nothing failed that a notice should report."""
    previous = stack.current_version()

    with crash_after_update_secret_version_stage(
        stack.worker("FinishSecretFunction"), stack.secret_arn
    ) as crash:
        found = rotate_on_schedule(stack.cloud, stack.deployment)

    assert crash.fired
    assert [(step_of(e), e.status) for e in found] == [(step, "SUCCEEDED") for step in STEPS]
    finished = found[-1]
    assert finished.task_attempts["FinishSecret"] == 2
    assert finished.output is not None
    assert finished.output["FinishSecret"]["Outcome"]["Action"] == "already-current"
    assert finished.task_attempts["ScheduleNextRotation"] == 1
    version = finished.input["ClientRequestToken"]
    assert crash.version_id == version
    assert stack.current_version() == version
    assert stack.stages()[previous] == ["AWSPREVIOUS"]
    assert stack.notices() == []


def test_a_manual_execution_with_a_100_kb_secret_id_sends_one_bounded_notice(
    stack: Stack,
) -> None:
    huge = "x" * 100_000
    version, value = stack.current_version(), stack.current()

    execution = start_manual(stack.cloud, stack.deployment, {"SecretId": huge})

    assert execution.status == "FAILED"
    assert execution.error == "InvalidRequestError"
    assert execution.task_attempts == {
        "ManualCreateSecret": 1,
        "DescribeFailure": 1,
        "NotifyFailure": 1,
    }
    notice = only_notice(stack)
    assert notice["Subject"] == "Google token rotation failed at createSecret"
    message = notice["Message"]
    assert message["SecretId"] == "a string of 100000 characters"
    assert message["Stages"].startswith("Not checked:")
    assert message["ExecutionArn"] == execution.arn
    assert "x" * 100 not in json.dumps(notice)
    # No state held the id more than once (the request as given), so no payload limit was near.
    copies = [json.dumps(event, default=str).count(huge) for event in execution.history]
    assert max(copies) == 1
    assert (stack.current_version(), stack.current()) == (version, value)
