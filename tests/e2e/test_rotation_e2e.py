"""The whole system on the local cloud: template.yaml deployed, the real state machine, the real
handlers in Lambda worker processes, real HTTP to the Google emulator. Secrets Manager drives
rotations through RotateSecret (or, for retries, by invoking the entry function as it would)."""

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime
from typing import Any
from unittest.mock import ANY

from localcloud.cloud import LocalCloud
from localcloud.faults import crash_after_put_secret_value
from localcloud.google_emulator import GoogleEmulator
from localcloud.operations import (
    ExecutionSummary,
    invoke_function,
    local_event,
    rotate_on_schedule,
    start_manual,
    token_info,
)
from localcloud.template import PROJECT_ROOT, load_template
from tests.e2e.stacks import GOOGLE_TIMEOUT_SECONDS, SCOPE, SecretMaterial, Stack, StackFactory
from tests.support import step_attempts, tokens_minted

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
STEP_FUNCTIONS = {
    "createSecret": "CreateSecretFunction",
    "setSecret": "SetSecretFunction",
    "testSecret": "TestSecretFunction",
    "finishSecret": "FinishSecretFunction",
}
EVENT_FILES = {
    "createSecret": "create_secret",
    "setSecret": "set_secret",
    "testSecret": "test_secret",
    "finishSecret": "finish_secret",
}
TASK_STATES = ("CreateSecret", "SetSecret", "TestSecret", "FinishSecret")
# A manual execution runs the twins of the first three (identical but for Next); the outcomes
# keep the step's name (ResultPath $.CreateSecret, ...).
MANUAL_TASK_STATES = ("ManualCreateSecret", "ManualSetSecret", "ManualTestSecret", "FinishSecret")
EVENTS = PROJECT_ROOT / "events"
ASL = json.loads((PROJECT_ROOT / "statemachine" / "rotation.asl.json").read_text())
# What a step may report: ids and non-secret metadata, never a token.
OUTCOME_FIELDS = {
    "FollowUp",
    "Step",
    "SecretArn",
    "VersionId",
    "Action",
    "ExpiresAt",
    "IssuedAt",
    "Scopes",
    "ServiceAccount",
    "PreviousVersionId",
}


def issued(cloud: LocalCloud) -> set[str]:
    return {token.access_token for token in cloud.google.issued_tokens()}


def step_of(execution: ExecutionSummary) -> str:
    return execution.name.split("-", 1)[0]


def assert_valid_at_google(stack: Stack, access_token: str) -> None:
    info = token_info(stack.cloud, access_token)
    assert info is not None, "Google's tokeninfo refused the token"
    assert SCOPE in info["scope"].split()
    assert info["azp"] == stack.account.client_id


def only_notice(stack: Stack, step: str, error: str, execution: ExecutionSummary) -> str:
    """The one notice the failed execution sent, checked field by field; returns its text."""
    notices = stack.notices()
    assert len(notices) == 1, notices
    [notice] = notices
    assert step in notice["Subject"]
    message = notice["Message"]
    assert message["SecretId"] == stack.secret_arn
    assert message["Step"] == step
    assert message["Error"] == error
    assert message["Cause"]
    assert message["ExecutionArn"] == execution.arn
    assert message["ConsoleUrl"].startswith("https://us-east-1.console.aws.amazon.com/states/")
    assert message["ConsoleUrl"].endswith(execution.arn)
    return json.dumps(notice)


def entry_log(cloud: LocalCloud, request_id: str) -> list[str]:
    """The messages a function logged during one invocation (powertools JSON lines)."""
    messages: list[str] = []
    for _, line in list(cloud.logs.lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("function_request_id") == request_id:
            messages.append(str(record.get("message")))
    return messages


def retry_gaps(history: list[dict[str, Any]]) -> list[float]:
    """Seconds between each failed task attempt and the retry the state machine scheduled."""
    gaps: list[float] = []
    failed_at: datetime | None = None
    for event in history:
        if event["type"] == "TaskFailed":
            failed_at = event["timestamp"]
        elif event["type"] == "TaskScheduled" and failed_at is not None:
            gaps.append((event["timestamp"] - failed_at).total_seconds())
            failed_at = None
    return gaps


# 1-3: rotations that succeed.


def test_scheduled_rotation_promotes_a_token_google_accepts(stack: Stack) -> None:
    previous = stack.current_version()

    found = rotate_on_schedule(stack.cloud, stack.deployment)

    current = stack.current_version()
    assert current != previous
    assert [(e.name, e.status) for e in found] == [
        (f"{step}-{current}-1", "SUCCEEDED") for step in STEPS
    ]
    value = stack.current()
    assert value["GOOGLE_ACCESS_TOKEN"] in issued(stack.cloud)
    assert value["scopes"] == [SCOPE]
    assert value["service_account"] == stack.account.client_email
    assert_valid_at_google(stack, value["GOOGLE_ACCESS_TOKEN"])
    assert stack.stages()[previous] == ["AWSPREVIOUS"]


def test_manual_execution_runs_the_whole_chain_and_reports_metadata_only(stack: Stack) -> None:
    previous = stack.current_version()

    manual = start_manual(stack.cloud, stack.deployment, {"SecretId": stack.secret_arn})

    assert manual.status == "SUCCEEDED"
    assert step_attempts(manual.task_attempts) == dict.fromkeys(MANUAL_TASK_STATES, 1)
    assert manual.task_attempts["ScheduleNextRotation"] == 1
    assert manual.output is not None
    outcomes = [manual.output[state]["Outcome"] for state in TASK_STATES]
    assert [o["Action"] for o in outcomes] == ["created", "checked", "verified", "promoted"]
    assert all(set(outcome) <= OUTCOME_FIELDS for outcome in outcomes)
    version = outcomes[0]["VersionId"]
    assert stack.current_version() == version
    assert outcomes[3]["PreviousVersionId"] == previous
    token = stack.current()["GOOGLE_ACCESS_TOKEN"]
    assert token in issued(stack.cloud)
    assert_valid_at_google(stack, token)
    record = json.dumps([manual.input, manual.output, manual.history], default=str)
    assert token not in record
    assert "GOOGLE_ACCESS_TOKEN" not in record


def test_two_scheduled_rotations_in_a_row_both_succeed(stack: Stack) -> None:
    first = rotate_on_schedule(stack.cloud, stack.deployment)
    first_version = stack.current_version()
    first_token = stack.current()["GOOGLE_ACCESS_TOKEN"]

    second = rotate_on_schedule(stack.cloud, stack.deployment)

    assert [e.status for e in first + second] == ["SUCCEEDED"] * 8
    second_version = stack.current_version()
    assert second_version != first_version
    assert [e.name for e in second] == [f"{step}-{second_version}-1" for step in STEPS]
    second_token = stack.current()["GOOGLE_ACCESS_TOKEN"]
    assert second_token != first_token
    assert {first_token, second_token} <= issued(stack.cloud)
    assert_valid_at_google(stack, second_token)
    assert stack.stages()[first_version] == ["AWSPREVIOUS"]


# 4: Google fails for a while, then answers.


def test_google_503s_are_absorbed_by_google_auth_within_one_lambda_call(stack: Stack) -> None:
    stack.cloud.google.fail_next("/token", status=503, count=2)

    found = rotate_on_schedule(stack.cloud, stack.deployment)

    assert [e.status for e in found] == ["SUCCEEDED"] * 4
    assert found[0].task_attempts == {"CreateSecret": 1}
    statuses = [r.status for r in stack.cloud.google.requests if r.path == "/token"]
    assert statuses == [503, 503, 200]
    assert stack.cloud.corrections.retry_waits == []
    assert_valid_at_google(stack, stack.current()["GOOGLE_ACCESS_TOKEN"])


def test_google_502s_are_retried_by_the_state_machine_with_bounded_backoff(stack: Stack) -> None:
    # google-auth does not retry 502, and the body is not JSON: GoogleUnavailableError.
    stack.cloud.google.fail_next("/token", status=502, body="<html>Bad Gateway</html>", count=2)

    found = rotate_on_schedule(stack.cloud, stack.deployment)

    assert [e.status for e in found] == ["SUCCEEDED"] * 4
    create = found[0]
    assert create.task_attempts == {"CreateSecret": 3}
    failures = [e for e in create.history if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failures] == [
        "GoogleUnavailableError"
    ] * 2
    retry = next(
        r
        for r in ASL["States"]["CreateSecret"]["Retry"]
        if "GoogleUnavailableError" in r["ErrorEquals"]
    )
    bounds = [
        min(retry["IntervalSeconds"] * retry["BackoffRate"] ** n, retry["MaxDelaySeconds"])
        for n in range(2)
    ]
    waits = stack.cloud.corrections.retry_waits
    assert len(waits) == 2
    assert all(0 <= wait <= bound for wait, bound in zip(waits, bounds, strict=True))
    # Recorded, not slept: each retry followed its failure sooner than its wait would allow.
    assert stack.cloud.corrections.sleep_retries is False
    gaps = retry_gaps(create.history)
    assert len(gaps) == 2
    assert all(gap < wait for gap, wait in zip(gaps, waits, strict=True) if wait > 0.25)
    statuses = [r.status for r in stack.cloud.google.requests if r.path == "/token"]
    assert statuses == [502, 502, 200]
    assert_valid_at_google(stack, stack.current()["GOOGLE_ACCESS_TOKEN"])


# 5-6: permanent failures fail fast, notify once and leave AWSCURRENT alone.


def test_invalid_grant_fails_fast_notifies_once_and_keeps_the_current_token(
    stack: Stack, secret_material: SecretMaterial
) -> None:
    rotate_on_schedule(stack.cloud, stack.deployment)
    before = stack.current()
    stack.cloud.google.revoke_key(stack.account.private_key_id)

    found = rotate_on_schedule(stack.cloud, stack.deployment)

    assert [(step_of(e), e.status) for e in found] == [("createSecret", "FAILED")]
    [failed] = found
    assert step_attempts(failed.task_attempts) == {
        "CreateSecret": 1,
        "DescribeFailure": 1,
        "NotifyFailure": 1,
    }
    assert failed.task_attempts["ScheduleRetry"] == 1
    assert failed.error == "GoogleGrantRejectedError"
    notice = only_notice(stack, "createSecret", "GoogleGrantRejectedError", failed)
    assert "invalid_grant" in notice
    assert not secret_material.found_in(notice)
    assert stack.current() == before
    assert_valid_at_google(stack, before["GOOGLE_ACCESS_TOKEN"])
    # As on AWS, the failed rotation's version keeps AWSPENDING for Secrets Manager's retry.
    assert stack.stages()[failed.input["ClientRequestToken"]] == ["AWSPENDING"]


def test_malformed_key_fails_clearly_without_echoing_the_key(
    stack: Stack, secret_material: SecretMaterial
) -> None:
    key_file = stack.account.key_file(GoogleEmulator.GOOGLE_TOKEN_AUDIENCE)
    truncated = key_file["private_key"][: len(key_file["private_key"]) // 2]
    secret_material.add_key(truncated)
    stack.cloud.client("secretsmanager").put_secret_value(
        SecretId=stack.deployment.key_secret_arn,
        SecretString=json.dumps({**key_file, "private_key": truncated}),
    )
    version, value = stack.current_version(), stack.current()

    found = rotate_on_schedule(stack.cloud, stack.deployment)

    assert [(step_of(e), e.status) for e in found] == [("createSecret", "FAILED")]
    [failed] = found
    assert failed.error == "InvalidServiceAccountKeyError"
    assert step_attempts(failed.task_attempts) == {
        "CreateSecret": 1,
        "DescribeFailure": 1,
        "NotifyFailure": 1,
    }
    assert failed.task_attempts["ScheduleRetry"] == 1
    notice = only_notice(stack, "createSecret", "InvalidServiceAccountKeyError", failed)
    assert not secret_material.found_in(notice)
    assert "private_key" in notice  # names the field
    assert (stack.current_version(), stack.current()) == (version, value)
    assert tokens_minted(stack.cloud.google) == 0
    # The function logs are checked for both keys' material by the deploy_stack fixture.


# 7-8: crashes and deadlines, then Secrets Manager's retry.


def test_a_crash_after_the_write_runs_the_step_again_and_promotes_the_written_token(
    stack: Stack,
) -> None:
    """Issue #21, item 4: a crash used to fail the step and wait out the streak's backoff (15
    minutes after an outage); every step is idempotent, so the execution runs it again at once."""
    with crash_after_put_secret_value(
        stack.worker("CreateSecretFunction"), stack.secret_arn
    ) as crash:
        found = rotate_on_schedule(stack.cloud, stack.deployment)

    assert crash.fired
    assert [(step_of(e), e.status) for e in found] == [(step, "SUCCEEDED") for step in STEPS]
    created = found[0]
    # The first attempt died after its write; the second found the written token and kept it.
    assert step_attempts(created.task_attempts) == {"CreateSecret": 2}
    assert created.output is not None
    assert created.output["CreateSecret"]["Outcome"]["Action"] == "already-created"
    version = created.input["ClientRequestToken"]
    assert crash.version_id == version
    assert stack.current_version() == version
    assert tokens_minted(stack.cloud.google) == 1
    assert_valid_at_google(stack, stack.current()["GOOGLE_ACCESS_TOKEN"])
    assert stack.notices() == []


def test_entry_deadline_raises_still_running_and_the_retry_attaches(
    deploy_stack: StackFactory,
) -> None:
    timeout = load_template().functions()["RotationEntryFunction"].timeout_seconds
    window = 1.0  # how long the entry waits before giving up
    stack = deploy_stack(
        environment_overrides={
            "RotationEntryFunction": {"DEADLINE_MARGIN_SECONDS": str(timeout - window)}
        }
    )
    cloud = stack.cloud
    token = str(uuid.uuid4())
    cloud.begin_rotation(stack.secret_arn, token)
    event = {"Step": "createSecret", "SecretId": stack.secret_arn, "ClientRequestToken": token}
    # Two Google timeouts, each retried by the state machine: the execution lasts at least
    # twice the Google timeout, well beyond the entry's window.
    cloud.google.fail_next("/token", hang_seconds=GOOGLE_TIMEOUT_SECONDS + 1, count=2)
    entry = stack.worker("RotationEntryFunction")

    first = entry.invoke(event)

    assert first.error is not None
    assert first.error["errorType"] == "ExecutionStillRunningError"
    [running] = stack.executions()
    assert (running.name, running.status) == (f"createSecret-{token}-1", "RUNNING")

    # Secrets Manager retries with the same event until the step succeeds; each retry attaches.
    retries = [entry.invoke(event)]
    while retries[-1].error is not None and len(retries) < 5:
        assert retries[-1].error["errorType"] == "ExecutionStillRunningError"
        retries.append(entry.invoke(event))

    assert retries[-1].error is None, retries[-1].error
    assert retries[-1].payload == {
        "Step": "createSecret",
        "ExecutionArn": running.arn,
        "Status": "SUCCEEDED",
        "Attempt": 1,
        # True when the execution still ran at that retry's StartExecution (which then answers
        # with it), False when it had ended and the search found it.
        "Started": ANY,
        "DescribeCalls": ANY,
    }
    # The first retry came while the execution ran (it outlives two entry windows): its start of
    # attempt 1 answered with the running execution, the one it waited on (the only one).
    assert "execution started, or already running with this input" in entry_log(
        cloud, retries[0].request_id
    )
    [done] = stack.executions()
    assert (done.arn, done.status) == (running.arn, "SUCCEEDED")
    assert done.task_attempts == {"CreateSecret": 3}
    assert len(cloud.corrections.retry_waits) == 2
    assert tokens_minted(cloud.google) == 1


# 9: a manual run while Secrets Manager's rotation is pending: tests/e2e/test_self_healing_e2e.py.


# 11: every sample event runs against the local cloud.


def sample_events(folder: str) -> list[dict[str, Any]]:
    """The folder's events, one file per step (create_secret.json ...), in rotation order."""
    files = {path.stem: path for path in (EVENTS / folder).glob("*.json")}
    assert sorted(files) == sorted(EVENT_FILES.values()), f"unexpected files in events/{folder}"
    return [json.loads(files[EVENT_FILES[step]].read_text()) for step in STEPS]


def test_step_events_and_manual_input_run_through_the_functions(
    deploy_stack: StackFactory,
) -> None:
    # The sample events name the template's default secret; this stack deploys under that name.
    stack = deploy_stack(token_secret_name="google/access-token")
    events = sample_events("steps")
    token = events[0]["ClientRequestToken"]

    results = [
        invoke_function(
            stack.cloud,
            stack.deployment,
            STEP_FUNCTIONS[step],
            event,
            begin_rotation=step == "createSecret",
        )
        for step, event in zip(STEPS, events, strict=True)
    ]

    assert [r.error for r in results] == [None] * 4
    assert [r.payload["Action"] for r in results] == [  # type: ignore[index]
        "created",
        "checked",
        "verified",
        "promoted",
    ]
    assert stack.current_version() == token
    assert_valid_at_google(stack, stack.current()["GOOGLE_ACCESS_TOKEN"])

    manual_input = json.loads((EVENTS / "statemachine" / "manual_rotation.json").read_text())
    manual = start_manual(
        stack.cloud, stack.deployment, local_event(manual_input, stack.deployment)
    )

    assert manual.status == "SUCCEEDED"
    assert stack.current_version() not in {token, None}
    assert stack.stages()[token] == ["AWSPREVIOUS"]


def test_entry_events_run_each_step_as_one_execution(deploy_stack: StackFactory) -> None:
    stack = deploy_stack(token_secret_name="google/access-token")
    events = sample_events("rotation_entry")
    assert [event["Step"] for event in events] == list(STEPS)
    token = events[0]["ClientRequestToken"]

    results = [
        invoke_function(
            stack.cloud,
            stack.deployment,
            "RotationEntryFunction",
            event,
            begin_rotation=event["Step"] == "createSecret",
        )
        for event in events
    ]

    assert [r.error for r in results] == [None] * 4
    assert [r.payload["Status"] for r in results] == ["SUCCEEDED"] * 4  # type: ignore[index]
    assert [(e.name, e.status) for e in stack.executions()] == [
        (f"{step}-{token}-1", "SUCCEEDED") for step in STEPS
    ]
    assert stack.current_version() == token
    assert_valid_at_google(stack, stack.current()["GOOGLE_ACCESS_TOKEN"])


def test_cli_invokes_create_secret_with_a_sample_event() -> None:
    """`python -m localcloud invoke` runs its own local cloud in its own process."""
    event_path = EVENTS / "steps" / "create_secret.json"
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_") and name != "MOTO_PORT"
    }

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "localcloud",
            "invoke",
            "CreateSecretFunction",
            "-e",
            str(event_path.relative_to(PROJECT_ROOT)),
            "--begin-rotation",
            "--fresh",  # never the developer's running `up`
        ],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome = json.loads(completed.stdout)
    assert outcome["Step"] == "createSecret"
    assert outcome["Action"] == "created"
    assert outcome["VersionId"] == json.loads(event_path.read_text())["ClientRequestToken"]
    assert set(outcome) <= OUTCOME_FIELDS
    assert "ya29." not in completed.stdout
