"""The refresh chain on the local cloud, across simulated time: every rotation schedules the next
a lead before its token expires, a failure schedules its own retry, the chain heals, and the
freshness sweep repairs a lost schedule."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from benchmarks.cost import embedded_metrics
from localcloud.operations import rotate_on_schedule
from localcloud.scheduler import LocalScheduler
from rotation_core.refresh import (
    CURRENT_EXPIRES_AT_TAG,
    FAILED_ATTEMPTS_TAG,
    STREAK_TAGS,
    UNVERIFIED_VERSION_TAG,
    first_refresh_spread,
    next_refresh_at,
    schedule_name,
)
from rotation_core.sweep import SCHEDULE_GRACE, Reason
from tests.e2e.stacks import Stack

LEAD = timedelta(seconds=900)


def schedule_of(stack: Stack) -> dict[str, Any]:
    answer: dict[str, Any] = stack.cloud.client("scheduler").get_schedule(
        GroupName=stack.deployment.refs["RefreshScheduleGroup"],
        Name=schedule_name(stack.secret_arn),
    )
    return answer


def due_of(schedule: dict[str, Any]) -> datetime:
    expression = schedule["ScheduleExpression"]
    return datetime.strptime(expression, "at(%Y-%m-%dT%H:%M:%S)").replace(tzinfo=UTC)


def expiry_of(stack: Stack) -> datetime:
    return datetime.fromisoformat(stack.current()["expires_at"])


def first_refresh_of(stack: Stack) -> datetime:
    """When the secret's first token is refreshed: its own moment between 10 minutes after the
    mint and a lead before the expiry (rotation_core.refresh.first_refresh_spread)."""
    issued = datetime.fromisoformat(stack.current()["issued_at"])
    spread = first_refresh_spread(stack.secret_arn)
    return next_refresh_at(issued, expiry_of(stack), int(LEAD.total_seconds()), issued, spread)


def scheduler_of(stack: Stack) -> LocalScheduler:
    return LocalScheduler(stack.cloud, group=stack.deployment.refs["RefreshScheduleGroup"])


def advance_to(stack: Stack, moment: datetime) -> None:
    ahead = moment.timestamp() - stack.cloud.clock.now()
    if ahead > 0:
        stack.cloud.clock.advance(ahead)


def test_each_rotation_schedules_the_next_a_lead_before_its_token_expires(stack: Stack) -> None:
    assert [e.status for e in rotate_on_schedule(stack.cloud, stack.deployment)] == [
        "SUCCEEDED"
    ] * 4
    first_version, first_expiry = stack.current_version(), expiry_of(stack)
    schedule = schedule_of(stack)

    # The first token's successor comes at the secret's own moment, before the lead.
    assert due_of(schedule) == first_refresh_of(stack) <= first_expiry - LEAD
    target = schedule["Target"]
    assert target["Arn"] == "arn:aws:scheduler:::aws-sdk:secretsmanager:rotateSecret"
    assert target["RoleArn"] == stack.deployment.attributes[("RefreshSchedulerRole", "Arn")]
    assert json.loads(target["Input"]) == {"SecretId": stack.secret_arn}
    assert stack.tags()[CURRENT_EXPIRES_AT_TAG] == stack.current()["expires_at"]
    scheduler = scheduler_of(stack)

    # A minute before it is due nothing fires; when it is due, RotateSecret runs the rotation.
    advance_to(stack, due_of(schedule) - timedelta(minutes=1))
    assert scheduler.fire_due() == []
    assert stack.current_version() == first_version
    advance_to(stack, due_of(schedule))
    [firing] = scheduler.fire_due()

    assert (firing.target, firing.error_code) == ("secretsmanager:rotateSecret", None)
    assert stack.current_version() != first_version
    second_expiry = expiry_of(stack)
    assert second_expiry - due_of(schedule) >= timedelta(seconds=3600)
    # A token that had a predecessor: its successor exactly a lead before it expires.
    assert due_of(schedule_of(stack)) == second_expiry - LEAD
    assert stack.notices() == []


def test_a_failed_rotation_schedules_its_own_retry_until_the_chain_heals(stack: Stack) -> None:
    rotate_on_schedule(stack.cloud, stack.deployment)
    version = stack.current_version()
    scheduler = scheduler_of(stack)
    advance_to(stack, due_of(schedule_of(stack)))
    stack.cloud.google.disable_key(stack.account.private_key_id)

    # The scheduled rotation fails at createSecret: one notice, and a retry a minute later.
    before = stack.cloud.clock.now()
    [firing] = scheduler.fire_due()
    after = stack.cloud.clock.now()
    [notice] = stack.notices()
    assert notice["Subject"].startswith("Google token rotation failed at createSecret (")
    assert notice["Message"]["Error"] == "GoogleGrantRejectedError"
    retry = due_of(schedule_of(stack))
    # A minute after the failure, which came between `before` and `after` (whole seconds, up).
    assert before + 60 <= retry.timestamp() <= after + 61

    # Its retry fails too: held back (the streak was notified within the hour), next in 2 min.
    advance_to(stack, retry)
    before = stack.cloud.clock.now()
    scheduler.fire_due()
    after = stack.cloud.clock.now()
    assert stack.notices() == []
    assert stack.tags()[FAILED_ATTEMPTS_TAG] == "2"
    second_retry = due_of(schedule_of(stack))
    assert before + 120 <= second_retry.timestamp() <= after + 121

    # The key works again: the next retry rotates, and one notice says it recovered.
    stack.cloud.google.enable_key(stack.account.private_key_id)
    advance_to(stack, second_retry)
    scheduler.fire_due()
    assert stack.current_version() != version
    [recovered] = stack.notices()
    assert recovered["Subject"].startswith("Google token rotation recovered (")
    assert recovered["Message"]["FailedAttempts"] == 2
    assert FAILED_ATTEMPTS_TAG not in stack.tags()
    assert due_of(schedule_of(stack)) == expiry_of(stack) - LEAD
    assert firing.error_code is None, "RotateSecret itself was accepted each time"


def test_a_deleted_schedule_group_loses_no_notice_and_fails_no_rotation(stack: Stack) -> None:
    """The refresh schedule group deleted while a failure streak runs: the rotation that ends the
    streak still says it recovered, says once that its next refresh could not be scheduled, and
    succeeds (Secrets Manager sees a completed rotation); the rotations the sweep starts
    meanwhile send nothing more within the hour, and once the group is back the next rotation
    schedules its successor again."""
    rotate_on_schedule(stack.cloud, stack.deployment)
    group = stack.deployment.refs["RefreshScheduleGroup"]
    scheduler = stack.cloud.client("scheduler")
    stack.cloud.google.disable_key(stack.account.private_key_id)
    advance_to(stack, due_of(schedule_of(stack)))
    scheduler_of(stack).fire_due()
    [failed] = stack.notices()
    assert failed["Subject"].startswith("Google token rotation failed at createSecret (")

    scheduler.delete_schedule_group(Name=group)
    stack.cloud.google.enable_key(stack.account.private_key_id)
    stack.cloud.clock.advance(60)
    before = len(stack.executions())
    # The failed rotation still holds AWSPENDING: Secrets Manager re-attempts it (as the sweep's
    # RotateSecret would) and refuses to begin another.
    with pytest.raises(ClientError, match="previous rotation isn't complete"):
        stack.cloud.client("secretsmanager").rotate_secret(SecretId=stack.secret_arn)

    assert {e.status for e in stack.executions()[before:]} == {"SUCCEEDED"}
    recovered, unscheduled = stack.notices()
    assert recovered["Subject"].startswith("Google token rotation recovered (")
    assert unscheduled["Subject"].startswith("Google token rotated, next refresh not scheduled (")
    assert unscheduled["Message"]["Error"] == "Scheduler.ResourceNotFoundException"
    assert not set(STREAK_TAGS) & stack.tags().keys()
    token = stack.current()["GOOGLE_ACCESS_TOKEN"]
    assert stack.cloud.google.token_info(token) is not None

    stack.cloud.clock.advance(45 * 60)
    again = rotate_on_schedule(stack.cloud, stack.deployment)
    assert {e.status for e in again} == {"SUCCEEDED"}
    assert stack.notices() == []

    scheduler.create_schedule_group(Name=group)
    stack.cloud.clock.advance(15 * 60)
    rotate_on_schedule(stack.cloud, stack.deployment)
    assert stack.notices() == []
    assert due_of(schedule_of(stack)) == expiry_of(stack) - LEAD


def unverified_promotions(stack: Stack, since_line: int) -> int:
    return sum(
        metric == "UnverifiedPromotions"
        for _, line in stack.cloud.logs.lines[since_line:]
        for _, metric, _ in embedded_metrics(line)
    )


def google_accepts_current(stack: Stack) -> bool:
    """Google's verdict on the token applications read now (in-process: no injected failure)."""
    return stack.cloud.google.token_info(stack.current()["GOOGLE_ACCESS_TOKEN"]) is not None


def test_a_tokeninfo_outage_keeps_the_token_valid_by_promoting_unverified(stack: Stack) -> None:
    """tokeninfo unreachable for hours while the token endpoint mints: the refresh fails while
    the token in use is healthy; its retry, once that token is within a third of the lead of
    its expiry, promotes the fresh mint unverified (one notice, one metric). (That some retry
    always lands in that window: tests/unit/test_unverified.py.)"""
    cloud, first_line = stack.cloud, len(stack.cloud.logs.lines)
    rotate_on_schedule(cloud, stack.deployment)
    first_version, first_expiry = stack.current_version(), expiry_of(stack)
    cloud.google.fail_during("/tokeninfo", cloud.google.now() + 3 * 3600, status=503)
    scheduler = scheduler_of(stack)

    advance_to(stack, due_of(schedule_of(stack)))
    scheduler.fire_due()
    [failed] = stack.notices()
    assert (failed["Message"]["Step"], failed["Message"]["Error"]) == (
        "testSecret",
        "GoogleUnavailableError",
    )
    assert stack.current_version() == first_version
    assert google_accepts_current(stack)

    advance_to(stack, first_expiry - LEAD / 3)
    [retry] = scheduler.fire_due()

    assert retry.error_code == "InvalidRequestException", "RotateSecret re-attempts the rotation"
    assert stack.current_version() != first_version
    assert google_accepts_current(stack)
    [notice] = stack.notices()
    assert notice["Subject"].startswith("Google token rotation promoted an unverified token (")
    assert notice["Message"]["PromotedVersionId"] == stack.current_version()
    assert notice["Message"]["FailedAttempts"] == 1
    assert not {*STREAK_TAGS, UNVERIFIED_VERSION_TAG} & stack.tags().keys()
    assert unverified_promotions(stack, first_line) == 1


def test_a_deleted_refresh_schedule_is_repaired_by_the_deployed_sweep(stack: Stack) -> None:
    """With the secret's refresh schedule deleted and the clock past its due moment and the
    grace, one invocation of the deployed FreshnessSweepFunction replaces the token."""
    assert {e.status for e in rotate_on_schedule(stack.cloud, stack.deployment)} == {"SUCCEEDED"}
    first_version = stack.current_version()
    expires = datetime.fromisoformat(stack.current()["expires_at"])
    stack.cloud.client("scheduler").delete_schedule(
        GroupName=stack.deployment.refs["RefreshScheduleGroup"],
        Name=schedule_name(stack.secret_arn),
    )
    stack.cloud.clock.advance_to((expires - LEAD + SCHEDULE_GRACE).timestamp())

    answer = stack.cloud.client("lambda").invoke(
        FunctionName=stack.deployment.functions["FreshnessSweepFunction"], Payload=b"{}"
    )

    assert "FunctionError" not in answer
    summary = json.loads(answer["Payload"].read())
    assert summary["Actions"] == {"rotate": 1}
    assert summary["RotationsStarted"] == 1
    assert stack.current_version() != first_version
    new = stack.current()
    assert datetime.fromisoformat(new["expires_at"]) > expires
    assert stack.cloud.google.token_info(new["GOOGLE_ACCESS_TOKEN"]) is not None
    now = datetime.fromtimestamp(stack.cloud.clock.now(), UTC)
    assert datetime.fromisoformat(new["issued_at"]) >= now - timedelta(minutes=1)
    # The run's freshness metric, per stack: what the stack's alarm watches.
    published = {
        (namespace, metric, dimensions)
        for _, line in stack.cloud.logs.lines
        for namespace, metric, dimensions in embedded_metrics(line)
    }
    stack_name = stack.deployment.stack_name
    dimensions = (("Stack", stack_name), ("service", "google-token-rotation"))
    assert ("GoogleTokenRotation", "LeastSecondsLeft", dimensions) in published
    # The stack's key renews itself (KeyRotationDays' default): its key, put by hand at deploy,
    # is due within 6 hours (its expiry is unread), and the alarm's metric goes out with the
    # same dimensions.
    assert (summary["ServiceAccountKey"]["Action"], summary["ServiceAccountKey"]["Reason"]) == (
        "nothing",
        Reason.KEY_NOT_DUE,
    )
    assert 0 < summary["ServiceAccountKey"]["DaysLeft"] <= 6 / 24
    assert ("GoogleTokenRotation", "ServiceAccountKeyDaysLeft", dimensions) in published
