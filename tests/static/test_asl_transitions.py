"""What each kind of execution costs in billed state transitions, and that every path is whole:
walked from statemachine/rotation.asl.json itself (tests/asl_paths.py). Step Functions Standard
bills every state entered; issue #12 asks for at most 16 per scheduled rotation (25 before).
tests/localcloud/test_execution_transitions.py counts the same executions in moto's histories."""

from typing import Any

import pytest

from tests.asl_paths import (
    BILLED_TRANSITIONS_LIMIT,
    MANUAL_TRANSITIONS,
    ROTATION_TOKEN,
    SCHEDULED_TRANSITIONS,
    SECRET_ARN,
    STEPS,
    VERSION,
    MissingPathError,
    Outcomes,
    describe_result,
    finish_result,
    scheduled_rotation,
    step_input,
    succeeding,
    transitions,
    walk,
)

STEP_STATES = {
    "createSecret": "CreateSecret",
    "setSecret": "SetSecret",
    "testSecret": "TestSecret",
    "finishSecret": "FinishSecret",
}
MANUAL = {"SecretId": SECRET_ARN}
MANUAL_PATH = [
    "ValidateAndRoute",
    "PrepareManualRotation",
    "ManualCreateSecret",
    "ManualSetSecret",
    "ManualTestSecret",
    "FinishSecret",
    "RecoveredNoticeDue",
    "ScheduleNextRotation",
]
NOTICE_AND_RETRY = ["DescribeFailure", "FailureNoticeDue", "NotifyFailure", "RetryDue"]


def test_a_scheduled_rotation_enters_ten_states_in_its_four_executions() -> None:
    walks = scheduled_rotation()

    assert [w.status for w in walks] == ["SUCCEEDED"] * 4
    assert [w.states for w in walks] == [
        ["ValidateAndRoute", "CreateSecret"],
        ["ValidateAndRoute", "SetSecret"],
        ["ValidateAndRoute", "TestSecret"],
        ["ValidateAndRoute", "FinishSecret", "RecoveredNoticeDue", "ScheduleNextRotation"],
    ]
    assert transitions(walks) == SCHEDULED_TRANSITIONS <= BILLED_TRANSITIONS_LIMIT


def test_a_manual_rotation_enters_eight_states() -> None:
    manual = walk(MANUAL, succeeding())

    assert manual.status == "SUCCEEDED"
    assert manual.states == MANUAL_PATH
    assert len(manual.states) == MANUAL_TRANSITIONS < SCHEDULED_TRANSITIONS


@pytest.mark.parametrize(
    ("outcomes", "tail"),
    [
        (succeeding(first_schedule=True), ["ScheduleNextRotation", "CreateNextRotationSchedule"]),
        (succeeding(notice=True), ["NotifyRecovered", "ScheduleNextRotation"]),
        (
            succeeding(notice=True, first_schedule=True),
            ["NotifyRecovered", "ScheduleNextRotation", "CreateNextRotationSchedule"],
        ),
    ],
    ids=["first-rotation", "recovered", "first-rotation-recovered"],
)
def test_the_first_schedule_and_a_recovered_notice_each_add_one_state(
    outcomes: Outcomes, tail: list[str]
) -> None:
    """The rare paths: the secret's first schedule is created after UpdateSchedule finds none; a
    rotation that ends a failure streak sends its one notice before the upsert (the rotation has
    succeeded, so nothing the upsert meets may hold its notice back)."""
    finish = walk(step_input("finishSecret"), outcomes)
    manual = walk(MANUAL, outcomes)

    assert finish.status == manual.status == "SUCCEEDED"
    assert finish.states == ["ValidateAndRoute", "FinishSecret", "RecoveredNoticeDue", *tail]
    assert manual.states == [*MANUAL_PATH[:-1], *tail]
    if "NotifyRecovered" in tail:
        assert finish.task_inputs["NotifyRecovered"]["Subject"].startswith(
            "Google token rotation recovered"
        )
    added = len(tail) - 1
    assert transitions(scheduled_rotation(outcomes)) == SCHEDULED_TRANSITIONS + added
    assert len(manual.states) == MANUAL_TRANSITIONS + added


def test_a_lost_recovered_notice_still_schedules_the_next_rotation() -> None:
    outcomes = succeeding(notice=True)
    outcomes.failures["NotifyRecovered"] = "SNS.AuthorizationErrorException"

    finish = walk(step_input("finishSecret"), outcomes)

    assert finish.status == "SUCCEEDED"
    assert finish.states[-2:] == ["NotifyRecovered", "ScheduleNextRotation"]


@pytest.mark.parametrize("notice", [False, True], ids=["plain", "recovered"])
def test_a_missing_schedule_group_sends_every_notice_and_ends_the_rotation_successfully(
    notice: bool,
) -> None:
    """The schedule group deleted: UpdateSchedule and CreateSchedule both find no group. The
    finishSecret notice has gone out already; DescribeFailure reports the missing schedule, and
    the execution succeeds (the token was promoted) without scheduling a retry."""
    outcomes = succeeding(notice=notice, first_schedule=True)
    outcomes.failures["CreateNextRotationSchedule"] = "Scheduler.ResourceNotFoundException"
    outcomes.results["DescribeFailure"] = describe_result(schedule=False)

    finish = walk(step_input("finishSecret"), outcomes)

    assert finish.status == "SUCCEEDED"
    assert finish.states == [
        "ValidateAndRoute",
        "FinishSecret",
        "RecoveredNoticeDue",
        *(["NotifyRecovered"] if notice else []),
        "ScheduleNextRotation",
        "CreateNextRotationSchedule",
        "NextRotationNotScheduled",
        "DescribeFailure",
        "FailureNoticeDue",
        "NotifyFailure",
        "RetryDue",
        "NextRotationNotScheduledEnd",
    ]
    assert finish.task_inputs["DescribeFailure"]["Payload"]["FailedStep"] == "scheduleNextRotation"


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("mode", ["step", "manual"])
def test_a_failed_step_notifies_once_schedules_its_retry_and_fails_with_its_error(
    step: str, mode: str
) -> None:
    state = STEP_STATES[step]
    failing = state if mode == "step" or step == "finishSecret" else f"Manual{state}"
    outcomes = Outcomes(
        {"FinishSecret": finish_result(), "DescribeFailure": describe_result()},
        {failing: "GoogleGrantRejectedError"},
    )

    failed = walk(step_input(step) if mode == "step" else MANUAL, outcomes)

    assert failed.status == "FAILED"
    assert failed.output["Error"] == "GoogleGrantRejectedError"
    tail = [failing, f"{state}Failed", *NOTICE_AND_RETRY, "ScheduleRetry", "RotationFailed"]
    assert failed.states[-len(tail) :] == tail
    # DescribeFailure names the request by its ids: never its RotationToken.
    payload = failed.task_inputs["DescribeFailure"]["Payload"]
    assert payload["FailedStep"] == step
    assert set(payload["Request"]) == {"SecretId", "ClientRequestToken"}
    assert payload["Request"]["SecretId"] == SECRET_ARN
    if mode == "step":
        assert payload["Request"]["ClientRequestToken"] == VERSION
        assert len(failed.states) == 9
    else:
        assert (
            payload["Request"]["ClientRequestToken"]
            == failed.task_inputs["ManualCreateSecret"]["Payload"]["ClientRequestToken"]
        )
    assert ROTATION_TOKEN not in str(payload)


@pytest.mark.parametrize("update", ["ScheduleNextRotation", "CreateNextRotationSchedule"])
def test_a_failed_upsert_of_the_next_schedule_is_reported_and_the_rotation_succeeds(
    update: str,
) -> None:
    outcomes = Outcomes(
        {"FinishSecret": finish_result(), "DescribeFailure": describe_result(schedule=False)},
        {"ScheduleNextRotation": "Scheduler.ResourceNotFoundException"}
        if update == "CreateNextRotationSchedule"
        else {},
    )
    outcomes.failures[update] = "Scheduler.ValidationException"

    for execution_input in (step_input("finishSecret", rotation_token=False), MANUAL):
        walked = walk(execution_input, outcomes)

        assert walked.status == "SUCCEEDED"
        assert walked.states[walked.states.index(update) + 1] == "NextRotationNotScheduled"
        payload = walked.task_inputs["DescribeFailure"]["Payload"]
        assert payload["FailedStep"] == "scheduleNextRotation"
        assert payload["Failure"]["Error"] == "Scheduler.ValidationException"
        assert "ScheduleRetry" not in walked.states


@pytest.mark.parametrize(
    ("execution_input", "route"),
    [
        ({"secretId": "misspelt"}, "InvalidInput"),
        ({"SecretId": 42}, "InvalidInput"),
        ({"SecretId": None, "Step": "createSecret"}, "InvalidInput"),
        (["not", "an", "object"], "InvalidInput"),
        ({"SecretId": SECRET_ARN, "Step": "createSecret"}, "InvalidInput"),
        ({"SecretId": SECRET_ARN, "Step": "setSecret", "ClientRequestToken": 42}, "InvalidInput"),
        ({"SecretId": SECRET_ARN, "Step": "rotate"}, "UnknownStep"),
        (
            {"SecretId": SECRET_ARN, "Step": "CreateSecret", "ClientRequestToken": VERSION},
            "UnknownStep",
        ),
        ({"SecretId": SECRET_ARN, "Step": 7, "ClientRequestToken": VERSION}, "UnknownStep"),
        ({"SecretId": SECRET_ARN, "Step": None}, "UnknownStep"),
        ({"SecretId": SECRET_ARN, "ClientRequestToken": "ignored"}, "PrepareManualRotation"),
        *[(step_input(step), STEP_STATES[step]) for step in STEPS],
        *[(step_input(step, rotation_token=False), STEP_STATES[step]) for step in STEPS],
    ],
)
def test_one_choice_validates_the_input_and_routes_it(execution_input: Any, route: str) -> None:
    """Bad input fails with one notice and no retry, and a misspelt step is never guessed."""
    outcomes = Outcomes(
        {"FinishSecret": finish_result(), "DescribeFailure": describe_result(schedule=False)}
    )

    walked = walk(execution_input, outcomes)

    assert walked.states[:2] == ["ValidateAndRoute", route]
    if route in {"InvalidInput", "UnknownStep"}:
        assert walked.states[2:] == [*NOTICE_AND_RETRY, "RotationFailed"]
        assert walked.status == "FAILED"
        expected = "InvalidExecutionInput" if route == "InvalidInput" else "UnknownRotationStep"
        assert walked.output["Error"] == expected
        # The input reaches DescribeFailure as it was given, copied nowhere else.
        assert walked.task_inputs["DescribeFailure"]["Payload"]["Request"] == execution_input
    else:
        assert walked.status == "SUCCEEDED"


@pytest.mark.parametrize("step", STEPS)
def test_a_steps_lambda_receives_the_execution_input_as_it_was_given(step: str) -> None:
    """The step request is the rotation event itself, RotationToken and all, as before."""
    walked = walk(step_input(step), succeeding())

    assert walked.task_inputs[STEP_STATES[step]]["Payload"] == step_input(step)


def test_the_manual_chain_sends_one_version_id_to_every_step() -> None:
    walked = walk(MANUAL, succeeding())

    payloads = [
        walked.task_inputs[name]["Payload"]
        for name in ("ManualCreateSecret", "ManualSetSecret", "ManualTestSecret", "FinishSecret")
    ]
    tokens = {payload["ClientRequestToken"] for payload in payloads}
    assert len(tokens) == 1
    for payload in payloads:
        assert payload["SecretId"] == SECRET_ARN
        assert payload["Manual"] is True
        assert "Step" not in payload
        assert "RotationToken" not in payload
    # The output keeps every step's outcome under its own name, as before.
    assert set(walked.output) >= {"CreateSecret", "SetSecret", "TestSecret", "FinishSecret"}


def test_the_walk_fails_like_step_functions_on_a_missing_path() -> None:
    """The walk's own check: a Task that reads a path the data lacks is States.Runtime."""
    with pytest.raises(MissingPathError):
        walk(step_input("finishSecret"), Outcomes())
