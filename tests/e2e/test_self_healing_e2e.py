"""Rotations that heal themselves on the whole local cloud: time passes between attempts, the
first deploy fails before the key is stored, the entry's attempts pile up, and a manual run
names a secret this stack does not manage. No human removes a label in any of them."""

import json
import uuid
from typing import Any

from localcloud.operations import rotate_on_schedule, start_manual, token_info
from tests.e2e.stacks import Stack, StackFactory
from tests.support import tokens_minted

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


def in_progress(stack: Stack) -> bool:
    """What makes AWS refuse RotateSecret ("a previous rotation isn't complete")."""
    return any(
        "AWSPENDING" in labels and "AWSCURRENT" not in labels for labels in stack.stages().values()
    )


def assert_google_accepts_current(stack: Stack) -> None:
    info = token_info(stack.cloud, stack.current()["GOOGLE_ACCESS_TOKEN"])
    assert info is not None, "Google's tokeninfo refused the current token"
    assert int(info["expires_in"]) > 900


def errors_of(notices: list[dict[str, Any]]) -> list[str]:
    return [str(notice["Message"]["Error"]) for notice in notices]


def test_rotation_stuck_after_create_heals_on_its_reattempt_50_minutes_later(
    stack: Stack,
) -> None:
    # A healthy token in use, then tokeninfo unreachable past the state machine's retry budget:
    # testSecret fails (no unverified promotion while the token in use is healthy).
    assert [e.status for e in rotate_on_schedule(stack.cloud, stack.deployment)] == [
        "SUCCEEDED"
    ] * 4
    stack.cloud.google.fail_next("/tokeninfo", status=503, count=50)
    failed = rotate_on_schedule(stack.cloud, stack.deployment)
    assert [e.status for e in failed] == ["SUCCEEDED", "SUCCEEDED", "FAILED"]
    stuck = failed[0].input["ClientRequestToken"]
    assert in_progress(stack)
    assert errors_of(stack.notices()) == ["GoogleUnavailableError"]
    stack.cloud.google.reset()

    # ~50 minutes later Secrets Manager re-attempts the same rotation: the stored token now has
    # ten minutes left, less than the minimum remaining life (RefreshLeadSeconds).
    stack.cloud.google.clock_offset_seconds = 50 * 60
    entry = stack.worker("RotationEntryFunction")
    event = {**failed[0].input}
    results = [entry.invoke({**event, "Step": step}) for step in STEPS[:3]]

    assert [r.error and r.error["errorType"] for r in results] == [
        None,
        None,
        "StepExecutionFailedError",
    ]
    # The streak was notified within the hour: this failure is held back (no notice storm).
    assert stack.notices() == []
    assert stack.tags()["token-rotation-status:failed-attempts"] == "2"
    assert stack.stages().get(stuck, []) == []
    assert not in_progress(stack)

    # The next rotation (the schedule, RotateSecret) starts fresh, succeeds and says so once.
    healed = rotate_on_schedule(stack.cloud, stack.deployment)
    assert [e.status for e in healed] == ["SUCCEEDED"] * 4
    assert stack.current_version() == healed[0].input["ClientRequestToken"]
    assert_google_accepts_current(stack)
    [recovered] = stack.notices()
    assert recovered["Message"]["FailedAttempts"] == 2
    assert "token-rotation-status:failed-attempts" not in stack.tags()


def test_first_deploy_fails_before_the_key_is_stored_then_a_manual_run_promotes(
    stack: Stack,
) -> None:
    keys = stack.cloud.client("secretsmanager")
    key_file = keys.get_secret_value(SecretId=stack.deployment.key_secret_arn)["SecretString"]
    keys.put_secret_value(SecretId=stack.deployment.key_secret_arn, SecretString="{}")
    [first] = rotate_on_schedule(stack.cloud, stack.deployment)
    assert (first.status, first.error) == ("FAILED", "InvalidServiceAccountKeyError")
    assert in_progress(stack)
    keys.put_secret_value(SecretId=stack.deployment.key_secret_arn, SecretString=key_file)

    manual = start_manual(stack.cloud, stack.deployment)

    assert manual.status == "SUCCEEDED", manual.error
    assert manual.output is not None
    created = manual.output["CreateSecret"]["Outcome"]
    assert created["SupersededVersionId"] == first.input["ClientRequestToken"]
    assert stack.current_version() == created["VersionId"]
    assert not in_progress(stack)
    assert_google_accepts_current(stack)


def test_manual_run_refuses_while_a_live_rotation_holds_a_fresh_pending_token(
    stack: Stack,
) -> None:
    token = str(uuid.uuid4())
    stack.cloud.begin_rotation(stack.secret_arn, token)
    entry = stack.worker("RotationEntryFunction")
    event = {"Step": "createSecret", "SecretId": stack.secret_arn, "ClientRequestToken": token}
    assert entry.invoke(event).error is None

    manual = start_manual(stack.cloud, stack.deployment)

    assert (manual.status, manual.error) == ("FAILED", "RotationInProgressError")
    assert stack.stages()[token] == ["AWSPENDING"]
    # ... and the live rotation goes on to promote its token.
    for step in STEPS[1:]:
        assert entry.invoke({**event, "Step": step}).error is None
    assert stack.current_version() == token


def test_a_rotation_a_manual_run_superseded_and_promoted_ends_without_notice_or_retry(
    stack: Stack,
) -> None:
    """RotateSecret and a manual run at once: the manual run takes over the empty pending
    version and promotes its own; the rotation's late createSecret finds its version gone."""
    token = str(uuid.uuid4())
    stack.cloud.begin_rotation(stack.secret_arn, token)
    manual = start_manual(stack.cloud, stack.deployment)
    assert manual.status == "SUCCEEDED", manual.error
    assert manual.output is not None
    assert manual.output["CreateSecret"]["Outcome"]["SupersededVersionId"] == token
    scheduler = stack.cloud.client("scheduler")
    where = {"GroupName": stack.deployment.refs["RefreshScheduleGroup"]}
    [schedule] = scheduler.list_schedules(**where)["Schedules"]
    where["Name"] = schedule["Name"]
    planned = scheduler.get_schedule(**where)["ScheduleExpression"]
    entry = stack.worker("RotationEntryFunction")

    late = entry.invoke(
        {"Step": "createSecret", "SecretId": stack.secret_arn, "ClientRequestToken": token}
    )

    assert late.error is not None
    assert late.error["errorType"] == "StepExecutionFailedError"
    [lost] = [e for e in stack.executions() if e.input.get("ClientRequestToken") == token]
    assert lost.error == "UnknownRotationTokenError"
    visited = [name for name, _ in lost.states]
    assert "DescribeFailure" in visited
    assert not {"NotifyFailure", "ScheduleRetry", "CreateRetrySchedule"} & set(visited)
    assert stack.notices() == []
    assert scheduler.get_schedule(**where)["ScheduleExpression"] == planned
    assert not [key for key in stack.tags() if key.startswith("token-rotation-status:fail")]
    assert stack.current_version() == manual.output["CreateSecret"]["Outcome"]["VersionId"]


def test_twelve_failed_attempts_do_not_lock_the_step_once_the_cause_is_fixed(
    stack: Stack,
) -> None:
    keys = stack.cloud.client("secretsmanager")
    key_file = keys.get_secret_value(SecretId=stack.deployment.key_secret_arn)["SecretString"]
    keys.put_secret_value(SecretId=stack.deployment.key_secret_arn, SecretString="{}")
    token = str(uuid.uuid4())
    stack.cloud.begin_rotation(stack.secret_arn, token)
    entry = stack.worker("RotationEntryFunction")
    event = {"Step": "createSecret", "SecretId": stack.secret_arn, "ClientRequestToken": token}

    failures = [entry.invoke(event) for _ in range(12)]
    assert {r.error and r.error["errorType"] for r in failures} == {"StepExecutionFailedError"}
    keys.put_secret_value(SecretId=stack.deployment.key_secret_arn, SecretString=key_file)

    fixed = entry.invoke(event)

    assert fixed.error is None, fixed.error
    assert isinstance(fixed.payload, dict)
    assert fixed.payload["Attempt"] == 13
    assert tokens_minted(stack.cloud.google) == 1


def test_manual_run_on_a_key_secret_that_does_not_renew_itself_is_refused_and_changes_nothing(
    deploy_stack: StackFactory,
) -> None:
    """With KeyRotationDays 0 the key secret is no secret the steps act on (with the key
    renewing itself, a manual run is a key rotation: test_key_rotation_e2e)."""
    stack = deploy_stack(parameters={"KeyRotationDays": "0"})
    keys = stack.cloud.client("secretsmanager")
    key_secret = stack.deployment.key_secret_arn
    before = keys.describe_secret(SecretId=key_secret)["VersionIdsToStages"]
    key_file = keys.get_secret_value(SecretId=key_secret)["SecretString"]

    manual = start_manual(stack.cloud, stack.deployment, {"SecretId": key_secret})

    assert (manual.status, manual.error) == ("FAILED", "UnmanagedSecretError")
    assert keys.describe_secret(SecretId=key_secret)["VersionIdsToStages"] == before
    assert keys.get_secret_value(SecretId=key_secret)["SecretString"] == key_file
    assert json.loads(key_file)["type"] == "service_account"
    assert tokens_minted(stack.cloud.google) == 0


def test_rotate_immediately_false_is_a_configuration_test_that_leaves_no_lock(
    stack: Stack,
) -> None:
    version = stack.current_version()
    secrets = stack.cloud.client("secretsmanager")

    secrets.rotate_secret(SecretId=stack.secret_arn, RotateImmediately=False)

    [tested] = stack.executions()
    assert tested.name.startswith("testSecret-")
    assert tested.status == "SUCCEEDED", tested.error
    assert tested.output is not None
    assert tested.output["TestSecret"]["Outcome"]["Action"] == "configuration-checked"
    assert tokens_minted(stack.cloud.google) == 0
    assert not in_progress(stack)
    assert stack.current_version() == version

    healed = rotate_on_schedule(stack.cloud, stack.deployment)
    assert [e.status for e in healed] == ["SUCCEEDED"] * 4
