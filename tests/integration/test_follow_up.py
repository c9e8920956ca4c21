"""What follows each execution (schedule, status tags, notice), on moto and the Google emulator."""

import importlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from moto.secretsmanager.exceptions import SecretsManagerClientError
from moto.secretsmanager.models import SecretsManagerBackend
from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.faults import SecretsManagerThrottledError, secrets_manager_throttled
from localcloud.google_emulator import GoogleEmulator
from rotation_core.config import GoogleEndpoints
from rotation_core.errors import UnknownRotationTokenError
from rotation_core.failure_notice import FailureReport, StagesUnreadable
from rotation_core.follow_up import FollowUp, FollowUps
from rotation_core.google_client import GoogleClient
from rotation_core.refresh import (
    CURRENT_EXPIRES_AT_TAG,
    FAILED_ATTEMPTS_TAG,
    FAILING_SINCE_TAG,
    MIN_VERSION_INTERVAL,
    NOTIFIED_AT_TAG,
    STATUS_TAG_PREFIX,
    STREAK_TAGS,
    UNSCHEDULED_NOTIFIED_AT_TAG,
    RotationSchedule,
    first_refresh_spread,
)
from rotation_core.rotation import Rotation
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import SecretDescription, SecretsGateway
from rotation_core.step_outcome import StepOutcome
from rotation_core.steps import Step
from rotation_core.token_secret import TokenMetadata
from tests.support import (
    KEY_SECRET,
    MANAGED_TAG,
    MANAGING_STACK,
    SCOPE,
    TOKEN_SECRET,
    begin_rotation,
    current_value,
    lambda_context,
)

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:rotation:createSecret-x-1"
LEAD = timedelta(seconds=900)
RotationAt = Callable[..., Rotation]
Fail = Callable[..., FollowUp]
THROTTLED = 100
"""More refused writes than any client retries: the write fails."""


def iso(moment: datetime) -> str:
    """How the status tags write a moment (whole seconds, UTC, Z)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_second_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def tags_of(secretsmanager: SecretsManagerClient, secret_id: str) -> dict[str, str]:
    described = secretsmanager.describe_secret(SecretId=secret_id)
    return {tag["Key"]: tag["Value"] for tag in described.get("Tags", [])}


def status_tags(secretsmanager: SecretsManagerClient, secret_id: str) -> dict[str, str]:
    return {
        key: value
        for key, value in tags_of(secretsmanager, secret_id).items()
        if key.startswith(STATUS_TAG_PREFIX)
    }


def put_tags(secretsmanager: SecretsManagerClient, secret_id: str, tags: dict[str, str]) -> None:
    secretsmanager.tag_resource(
        SecretId=secret_id, Tags=[{"Key": key, "Value": value} for key, value in tags.items()]
    )


def target_of(schedule: RotationSchedule | None) -> dict[str, Any]:
    """What the schedule's target is called with."""
    assert schedule is not None
    return cast(dict[str, Any], json.loads(schedule.as_payload()["TargetInput"]))


def message_of(follow_up: FollowUp) -> dict[str, Any]:
    assert follow_up.notice is not None
    return cast(dict[str, Any], json.loads(follow_up.notice.message))


def rotate(rotation: Rotation, secret_arn: str) -> StepOutcome:
    """A whole rotation as Secrets Manager drives it; finishSecret's outcome."""
    request = RotationRequest(secret_arn, begin_rotation(secret_arn))
    outcomes = [rotation.run(step, request) for step in Step]
    assert [outcome.action for outcome in outcomes] == [
        "created",
        "checked",
        "verified",
        "promoted",
    ]
    return outcomes[-1]


def schedule_of(outcome: StepOutcome) -> RotationSchedule:
    assert outcome.follow_up is not None
    assert outcome.follow_up.schedule is not None
    return outcome.follow_up.schedule


@pytest.fixture
def rotation_at(secretsmanager: SecretsManagerClient, environment: dict[str, str]) -> RotationAt:
    """The rotation with its clock stopped at `moment` (and, if given, another environment)."""

    def at(moment: datetime, env: dict[str, str] | None = None) -> Rotation:
        settings = environment if env is None else env
        google_client = GoogleClient(GoogleEndpoints.from_environment(settings))
        return Rotation(
            SecretsGateway(secretsmanager), google_client, settings, clock=lambda: moment
        )

    return at


def failure_event(
    secret_id: object, step: str = "createSecret", cause: str = "invalid_grant: key deleted"
) -> dict[str, Any]:
    """The DescribeFailure task's input after `step` failed."""
    request: dict[str, Any] = {"SecretId": secret_id, "ClientRequestToken": str(uuid.uuid4())}
    if step in {"createSecret", "setSecret", "testSecret", "finishSecret"}:
        request["Step"] = step
    return {
        "Request": request,
        "FailedStep": step,
        "Failure": {"Error": "GoogleGrantRejectedError", "Cause": cause},
        "ExecutionArn": EXECUTION,
    }


@pytest.fixture
def fail(secretsmanager: SecretsManagerClient, environment: dict[str, str]) -> Fail:
    """DescribeFailure's core at `moment`: read the secret as it is now, decide what follows."""

    def at(
        moment: datetime,
        event: dict[str, Any],
        env: dict[str, str] | None = None,
        reading: SecretDescription | StagesUnreadable | None = None,
    ) -> FollowUp:
        gateway = SecretsGateway(secretsmanager)
        report = FailureReport.from_payload(event)
        if reading is None and report.secret_id is not None:
            reading = gateway.describe(report.secret_id)
        follow_ups = FollowUps(gateway, environment if env is None else env, lambda: moment)
        return follow_ups.after_failure(report, reading)

    return at


# After a success: the next rotation a lead before expiry, the expiry recorded, streaks ended.


def test_a_first_token_is_refreshed_at_the_secrets_own_moment_before_its_lead(
    rotation_at: RotationAt, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    """No expiry was recorded before it: its successor comes `first_refresh_spread` of the way
    from 10 minutes after the mint to the lead before expiry, so secrets created together
    spread out."""
    moment = datetime.now(UTC)

    finish = rotate(rotation_at(moment), token_secret_arn)

    metadata = current_value(secretsmanager).metadata
    window = metadata.expires_at - LEAD - (metadata.issued_at + MIN_VERSION_INTERVAL)
    offset = window * first_refresh_spread(token_secret_arn)
    expected = metadata.issued_at + MIN_VERSION_INTERVAL + offset
    assert timedelta(0) <= schedule_of(finish).due - expected < timedelta(seconds=1)
    assert schedule_of(finish).due < metadata.expires_at - LEAD
    assert status_tags(secretsmanager, token_secret_arn).keys() == {CURRENT_EXPIRES_AT_TAG}


def test_a_promotion_schedules_the_next_rotation_900_s_before_the_minted_token_expires(
    rotation_at: RotationAt,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    moment = datetime.now(UTC)
    rotate(rotation_at(moment), token_secret_arn)

    finish = rotate(rotation_at(moment), token_secret_arn)

    stored = json.loads(
        secretsmanager.get_secret_value(SecretId=TOKEN_SECRET, VersionStage="AWSCURRENT")[
            "SecretString"
        ]
    )
    assert stored["GOOGLE_ACCESS_TOKEN"] == google.issued_tokens()[-1].access_token
    expires = datetime.fromisoformat(stored["expires_at"])
    assert abs(expires - (moment + timedelta(hours=1))) < timedelta(seconds=10)
    assert finish.follow_up is not None
    assert finish.follow_up.notice is None
    schedule = schedule_of(finish)
    assert schedule.due == expires - LEAD
    assert schedule.as_payload()["ScheduleExpression"] == f"at({expires - LEAD:%Y-%m-%dT%H:%M:%S})"
    assert target_of(schedule) == {"SecretId": token_secret_arn}
    assert status_tags(secretsmanager, token_secret_arn) == {
        CURRENT_EXPIRES_AT_TAG: stored["expires_at"]
    }
    payload = cast(dict[str, Any], finish.as_payload()["FollowUp"])
    assert payload["Notice"] is None
    assert payload["Schedule"]["ScheduleExpression"] == f"at({expires - LEAD:%Y-%m-%dT%H:%M:%S})"


def test_a_secrets_lead_tag_moves_its_next_rotation_earlier(
    rotation_at: RotationAt, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    put_tags(secretsmanager, token_secret_arn, {"token-rotation:refresh-lead-seconds": "1800"})
    rotate(rotation_at(datetime.now(UTC)), token_secret_arn)

    finish = rotate(rotation_at(datetime.now(UTC)), token_secret_arn)

    expires = current_value(secretsmanager).metadata.expires_at
    assert schedule_of(finish).due == expires - timedelta(seconds=1800)


def test_the_success_that_ends_a_streak_untags_it_and_says_recovered_once(
    rotation_at: RotationAt, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    moment = whole_second_now()
    since = moment - timedelta(minutes=47, seconds=30)
    put_tags(
        secretsmanager,
        token_secret_arn,
        {
            CURRENT_EXPIRES_AT_TAG: iso(since + timedelta(minutes=15)),
            FAILING_SINCE_TAG: iso(since),
            FAILED_ATTEMPTS_TAG: "5",
            NOTIFIED_AT_TAG: iso(moment - timedelta(minutes=20)),
        },
    )

    finish = rotate(rotation_at(moment), token_secret_arn)

    assert finish.follow_up is not None
    notice = finish.follow_up.notice
    assert notice is not None
    assert notice.subject == "Google token rotation recovered (google/access-token)"
    message = message_of(finish.follow_up)
    assert message["Summary"].endswith("after 5 failed attempts over 47 minutes.")
    assert message["FailedAttempts"] == 5
    assert message["FailingSince"] == iso(since)
    expires = current_value(secretsmanager).metadata.expires_at
    assert message["NextRefreshAt"] == iso(expires - LEAD)
    tags = tags_of(secretsmanager, token_secret_arn)
    assert not set(STREAK_TAGS) & tags.keys()
    assert tags[CURRENT_EXPIRES_AT_TAG] == iso(expires)
    assert tags[MANAGED_TAG["Key"]] == MANAGING_STACK

    again = rotate(rotation_at(moment + timedelta(minutes=1)), token_secret_arn)

    assert again.follow_up is not None
    assert again.follow_up.notice is None
    assert again.follow_up.schedule is not None


def test_edited_streak_tags_are_cleared_by_a_success_without_a_recovered_notice(
    rotation_at: RotationAt, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    put_tags(
        secretsmanager,
        token_secret_arn,
        {FAILING_SINCE_TAG: "last tuesday", FAILED_ATTEMPTS_TAG: "many"},
    )

    finish = rotate(rotation_at(datetime.now(UTC)), token_secret_arn)

    assert finish.follow_up is not None
    assert finish.follow_up.notice is None
    assert status_tags(secretsmanager, token_secret_arn).keys() == {CURRENT_EXPIRES_AT_TAG}


def test_a_rerun_finish_on_the_current_version_still_returns_the_schedule_from_awscurrent(
    rotation_at: RotationAt, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    """Secrets Manager retries finishSecret after a lost answer, and the state machine's upsert
    may have been lost with it: the retry plans the same next rotation again."""
    moment = datetime.now(UTC)
    request = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    finished = [rotation_at(moment).run(step, request) for step in Step][-1]
    secretsmanager.untag_resource(SecretId=token_secret_arn, TagKeys=[CURRENT_EXPIRES_AT_TAG])
    expires = current_value(secretsmanager).metadata.expires_at

    # Within 10 minutes of the mint: before any moment its successor may be due.
    again = rotation_at(moment + timedelta(minutes=5)).finish_secret(request)

    assert again.action == "already-current"
    assert again.follow_up is not None
    assert again.follow_up.notice is None
    assert schedule_of(again).due == schedule_of(finished).due < expires - LEAD
    assert isinstance(again.metadata, TokenMetadata)
    assert again.metadata.expires_at == expires
    assert status_tags(secretsmanager, token_secret_arn) == {CURRENT_EXPIRES_AT_TAG: iso(expires)}

    # Re-run past the planned moment: the next rotation comes a minute from then, not never.
    late = expires - timedelta(minutes=5)
    assert schedule_of(rotation_at(late).finish_secret(request)).due == late + timedelta(minutes=1)


# After a failure: a retry on a capped backoff, and notices by the streak rules.


def test_failures_of_a_managed_secret_notify_first_then_hold_back_then_remind_hourly(
    fail: Fail, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    t0 = whole_second_now()
    event = failure_event(token_secret_arn)

    first = fail(t0, event)

    assert first.notice is not None
    assert first.notice.subject == (
        "Google token rotation failed at createSecret (google/access-token)"
    )
    assert message_of(first)["Streak"].startswith("The first failure since")
    assert first.schedule is not None
    assert first.schedule.due == t0 + timedelta(minutes=1)
    assert target_of(first.schedule) == {"SecretId": token_secret_arn}
    assert status_tags(secretsmanager, token_secret_arn) == {
        FAILING_SINCE_TAG: iso(t0),
        FAILED_ATTEMPTS_TAG: "1",
        NOTIFIED_AT_TAG: iso(t0),
    }

    second = fail(t0 + timedelta(minutes=5), event)

    assert second.notice is None
    assert second.schedule is not None
    assert second.schedule.due == t0 + timedelta(minutes=5 + 2)
    assert second.schedule.due - (t0 + timedelta(minutes=5)) > first.schedule.due - t0
    assert status_tags(secretsmanager, token_secret_arn) == {
        FAILING_SINCE_TAG: iso(t0),
        FAILED_ATTEMPTS_TAG: "2",
        NOTIFIED_AT_TAG: iso(t0),
    }

    third = fail(t0 + timedelta(minutes=61), event)

    assert third.notice is not None
    assert third.notice.subject == (
        "Google token rotation still failing at createSecret (google/access-token)"
    )
    message = message_of(third)
    assert message["Streak"].startswith(f"Still failing: 3 failed attempts since {iso(t0)}.")
    assert iso(t0 + timedelta(minutes=61 + 4)) in message["NextAttempt"]
    assert status_tags(secretsmanager, token_secret_arn) == {
        FAILING_SINCE_TAG: iso(t0),
        FAILED_ATTEMPTS_TAG: "3",
        NOTIFIED_AT_TAG: iso(t0 + timedelta(minutes=61)),
    }

    # The reminder moved the hour on: a failure a minute later is held back again.
    assert fail(t0 + timedelta(minutes=62), event).notice is None


def unscheduled_event(secret_id: str, version_id: str) -> dict[str, Any]:
    """DescribeFailure's input after the upsert of the next refresh's schedule failed."""
    return {
        "Request": {"SecretId": secret_id, "ClientRequestToken": version_id},
        "FailedStep": "scheduleNextRotation",
        "Failure": {
            "Error": "Scheduler.ResourceNotFoundException",
            "Cause": "Schedule group google-token-rotation-refresh does not exist.",
        },
        "ExecutionArn": EXECUTION,
    }


def test_rotations_that_cannot_schedule_their_successor_notify_hourly_and_keep_the_streak_ended(
    rotation_at: RotationAt,
    fail: Fail,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
) -> None:
    """The schedule group deleted while a streak ends: the rotation's "recovered" notice is its
    own (finishSecret's); the missing schedule is told once, with the command that recreates the
    group, then at most hourly while every rotation (the sweep's, meanwhile) meets it again, and
    it neither opens a failure streak nor schedules a retry."""
    t0 = whole_second_now()
    put_tags(
        secretsmanager,
        token_secret_arn,
        {FAILING_SINCE_TAG: iso(t0 - timedelta(minutes=30)), FAILED_ATTEMPTS_TAG: "3"},
    )
    finish = rotate(rotation_at(t0), token_secret_arn)
    assert finish.follow_up is not None
    assert finish.follow_up.notice is not None
    assert finish.follow_up.notice.subject.startswith("Google token rotation recovered")
    current = secretsmanager.describe_secret(SecretId=token_secret_arn)
    [version] = [v for v, stages in current["VersionIdsToStages"].items() if "AWSCURRENT" in stages]

    first = fail(t0, unscheduled_event(token_secret_arn, version))

    assert first.schedule is None
    assert first.notice is not None
    assert first.notice.subject == (
        "Google token rotated, next refresh not scheduled (google/access-token)"
    )
    message = message_of(first)
    assert message["Error"] == "Scheduler.ResourceNotFoundException"
    assert "aws scheduler create-schedule-group --name" in message["NextSteps"]
    assert "this rotation's version: the new token is in use" in message["Stages"]
    assert status_tags(secretsmanager, token_secret_arn) == {
        CURRENT_EXPIRES_AT_TAG: iso(current_value(secretsmanager).metadata.expires_at),
        UNSCHEDULED_NOTIFIED_AT_TAG: iso(t0),
    }

    # The sweep's next rotation, 45 minutes on, meets the missing group again: held back.
    later = t0 + timedelta(minutes=45)
    rotate(rotation_at(later), token_secret_arn)
    held = fail(later, unscheduled_event(token_secret_arn, version))
    assert held.notice is None
    assert held.schedule is None
    assert not set(STREAK_TAGS) & tags_of(secretsmanager, token_secret_arn).keys()

    reminder = fail(t0 + timedelta(minutes=61), unscheduled_event(token_secret_arn, version))
    assert reminder.notice is not None
    assert status_tags(secretsmanager, token_secret_arn)[UNSCHEDULED_NOTIFIED_AT_TAG] == iso(
        t0 + timedelta(minutes=61)
    )


def test_success_and_failure_upsert_the_one_schedule_of_the_secret_whatever_id_was_given(
    rotation_at: RotationAt, fail: Fail, token_secret_arn: str
) -> None:
    """A manual execution may name the secret, Secrets Manager gives its ARN: both paths must
    update the same schedule, never leave a second one behind."""
    moment = whole_second_now()

    failed = fail(moment, failure_event(TOKEN_SECRET))
    finished = rotate(rotation_at(moment), token_secret_arn)

    assert failed.schedule is not None
    success = schedule_of(finished).as_payload()
    retry = failed.schedule.as_payload()
    assert retry["Name"] == success["Name"]
    assert target_of(failed.schedule) == {"SecretId": token_secret_arn}


def test_a_retry_never_waits_past_half_the_life_of_the_token_in_use(
    rotation_at: RotationAt,
    fail: Fail,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
) -> None:
    moment = whole_second_now()
    rotate(rotation_at(moment), token_secret_arn)
    expires = current_value(secretsmanager).metadata.expires_at
    put_tags(
        secretsmanager,
        token_secret_arn,
        {FAILING_SINCE_TAG: iso(moment), FAILED_ATTEMPTS_TAG: "3", NOTIFIED_AT_TAG: iso(moment)},
    )
    near = expires - timedelta(minutes=4)

    # The 4th attempt would wait 8 minutes; the token in use has 4 left, so 2.
    capped = fail(near, failure_event(token_secret_arn))
    # Once it has expired, the plain backoff again (the 5th attempt: 15 minutes).
    expired = fail(expires + timedelta(minutes=1), failure_event(token_secret_arn))

    assert capped.schedule is not None
    assert capped.schedule.due == near + timedelta(minutes=2)
    assert expired.schedule is not None
    assert expired.schedule.due == expires + timedelta(minutes=1 + 15)


def superseded_rotation(rotation: Rotation, secret_arn: str) -> tuple[str, str]:
    """Secrets Manager begins a rotation; before its createSecret runs, a manual run supersedes
    its empty pending version and promotes its own. Returns (the loser's, the winner's) versions."""
    loser = begin_rotation(secret_arn)
    winner = str(uuid.uuid4())
    manual = RotationRequest(secret_arn, winner, manual=True)
    outcomes = [rotation.run(step, manual) for step in Step]
    assert outcomes[0].superseded_version_id == loser
    assert outcomes[-1].action == "promoted"
    return loser, winner


def test_a_rotation_superseded_by_one_that_succeeded_sends_nothing_and_schedules_nothing(
    rotation_at: RotationAt,
    fail: Fail,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
) -> None:
    moment = whole_second_now()
    loser, winner = superseded_rotation(rotation_at(moment), token_secret_arn)
    tags_before = tags_of(secretsmanager, token_secret_arn)
    with pytest.raises(UnknownRotationTokenError):
        rotation_at(moment).create_secret(RotationRequest(token_secret_arn, loser))
    event = failure_event(token_secret_arn)
    event["Request"]["ClientRequestToken"] = loser
    event["Failure"]["Error"] = UnknownRotationTokenError.__name__

    follow_up = fail(moment + timedelta(seconds=1), event)

    assert follow_up == FollowUp(None, None)
    assert follow_up.as_payload() == {"Notice": None, "Schedule": None}
    assert tags_of(secretsmanager, token_secret_arn) == tags_before
    assert not set(STREAK_TAGS) & tags_before.keys()
    stages = SecretsGateway(secretsmanager).describe(token_secret_arn).version_stages
    assert set(stages[winner]) == {"AWSCURRENT", "AWSPENDING"}


def test_a_rotation_that_lost_its_label_to_one_still_running_is_still_a_failure(
    fail: Fail, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    """Until the winner promotes, nobody knows it will: the loser's failure keeps the chain."""
    loser = begin_rotation(token_secret_arn)
    secretsmanager.update_secret_version_stage(
        SecretId=token_secret_arn, VersionStage="AWSPENDING", RemoveFromVersionId=loser
    )
    begin_rotation(token_secret_arn)
    event = failure_event(token_secret_arn, step="setSecret")
    event["Request"]["ClientRequestToken"] = loser

    follow_up = fail(whole_second_now(), event)

    assert follow_up.notice is not None
    assert follow_up.schedule is not None
    assert FAILING_SINCE_TAG in status_tags(secretsmanager, token_secret_arn)


def assert_notice_without_schedule_or_tags(
    follow_up: FollowUp,
    secretsmanager: SecretsManagerClient,
    secret_id: str,
    tags_before: dict[str, str],
) -> dict[str, Any]:
    assert follow_up.notice is not None
    assert follow_up.schedule is None
    assert tags_of(secretsmanager, secret_id) == tags_before
    assert follow_up.as_payload()["Schedule"] is None
    return message_of(follow_up)


@pytest.mark.parametrize(
    "owner_tags",
    [[], [{"Key": "token-rotation:managed-by", "Value": "another-stack"}]],
    ids=["untagged", "another-stacks"],
)
def test_a_failure_on_a_secret_not_managed_here_notifies_schedules_nothing_writes_nothing(
    fail: Fail,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    owner_tags: list[Any],
) -> None:
    other = secretsmanager.create_secret(
        Name="google/other-token", SecretString="{}", Tags=[{"Key": "team", "Value": "x"}]
    )["ARN"]
    if owner_tags:
        secretsmanager.tag_resource(SecretId=other, Tags=owner_tags)
    before = tags_of(secretsmanager, other)

    follow_up = fail(whole_second_now(), failure_event(other))

    message = assert_notice_without_schedule_or_tags(follow_up, secretsmanager, other, before)
    assert "Streak" not in message
    assert follow_up.notice is not None
    assert follow_up.notice.subject.startswith("Google token rotation failed at createSecret")


def test_a_failure_naming_the_key_secret_never_tags_it_even_when_it_looks_managed(
    fail: Fail, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    secretsmanager.tag_resource(SecretId=KEY_SECRET, Tags=[MANAGED_TAG])
    before = tags_of(secretsmanager, KEY_SECRET)

    follow_up = fail(whole_second_now(), failure_event(KEY_SECRET))

    assert_notice_without_schedule_or_tags(follow_up, secretsmanager, KEY_SECRET, before)


@pytest.mark.parametrize("label", ["input validation", "unknown step"])
def test_a_refused_execution_notifies_every_time_and_schedules_nothing(
    fail: Fail, secretsmanager: SecretsManagerClient, token_secret_arn: str, label: str
) -> None:
    before = tags_of(secretsmanager, token_secret_arn)
    event = failure_event(token_secret_arn, step=label)
    t0 = whole_second_now()

    follow_ups = [fail(t0, event), fail(t0 + timedelta(minutes=1), event)]

    for follow_up in follow_ups:
        assert_notice_without_schedule_or_tags(follow_up, secretsmanager, token_secret_arn, before)


def test_a_failure_whose_stages_could_not_be_read_notifies_and_schedules_nothing(
    fail: Fail, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    before = tags_of(secretsmanager, token_secret_arn)

    follow_up = fail(
        whole_second_now(),
        failure_event(token_secret_arn),
        reading=StagesUnreadable("AwsUnavailableError", "Secrets Manager is busy"),
    )

    assert_notice_without_schedule_or_tags(follow_up, secretsmanager, token_secret_arn, before)


def test_a_secret_deleted_before_its_streak_is_tagged_still_gets_its_notice(
    fail: Fail, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    reading = SecretsGateway(secretsmanager).describe(token_secret_arn)
    secretsmanager.delete_secret(SecretId=token_secret_arn, ForceDeleteWithoutRecovery=True)

    follow_up = fail(whole_second_now(), failure_event(token_secret_arn), reading=reading)

    assert follow_up.notice is not None
    assert follow_up.notice.subject.startswith("Google token rotation failed at createSecret")
    assert "could not be recorded" in message_of(follow_up)["Streak"]


def deny_tag_resource(patch: pytest.MonkeyPatch) -> None:
    """TagResource refused (moto's own error over HTTP), as when the role lost the permission."""

    def denied(self: SecretsManagerBackend, arn: str, tags: dict[str, str]) -> None:
        raise SecretsManagerClientError(
            "AccessDeniedException", "not authorized to perform: secretsmanager:TagResource"
        )

    patch.setattr(SecretsManagerBackend, "tag_resource", denied)


def throttle_tag_resource(patch: pytest.MonkeyPatch) -> None:
    """TagResource refused as over Secrets Manager's rate, however often it is tried."""

    def throttled(self: SecretsManagerBackend, arn: str, tags: dict[str, str]) -> None:
        raise SecretsManagerThrottledError()

    patch.setattr(SecretsManagerBackend, "tag_resource", throttled)


def test_a_failure_that_would_be_held_back_speaks_when_its_streak_cannot_be_recorded(
    fail: Fail, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    t0 = whole_second_now()
    first = fail(t0, failure_event(token_secret_arn))
    assert first.notice is not None
    recorded = status_tags(secretsmanager, token_secret_arn)

    with pytest.MonkeyPatch.context() as patch:
        deny_tag_resource(patch)
        second = fail(t0 + timedelta(minutes=5), failure_event(token_secret_arn))

    assert second.notice is not None
    assert second.notice.subject.startswith("Google token rotation still failing at createSecret")
    streak = message_of(second)["Streak"]
    assert streak.startswith("Still failing: 2 failed attempts")
    assert "could not be recorded" in streak
    assert second.schedule is not None
    assert second.schedule.due == t0 + timedelta(minutes=5 + 2)
    assert status_tags(secretsmanager, token_secret_arn) == recorded


def test_failures_while_aws_throttles_the_streak_write_never_notify_more_than_the_rules_say(
    fail: Fail, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    """Issue #21, item 3: a held-back failure whose write was throttled used to speak, so every
    retry during the throttling reminded. The record on the secret still holds the last notice:
    the next failure decides on it again."""
    t0 = whole_second_now()
    assert fail(t0, failure_event(token_secret_arn)).notice is not None
    recorded = status_tags(secretsmanager, token_secret_arn)

    with secrets_manager_throttled(token_secret_arn, times=THROTTLED) as refusals:
        throttled = [
            fail(t0 + timedelta(minutes=minutes), failure_event(token_secret_arn))
            for minutes in (1, 3, 7)
        ]

    assert refusals.refused > 3
    assert [follow_up.notice for follow_up in throttled] == [None, None, None]
    assert all(follow_up.schedule is not None for follow_up in throttled)
    assert status_tags(secretsmanager, token_secret_arn) == recorded
    assert fail(t0 + timedelta(minutes=22), failure_event(token_secret_arn)).notice is None
    reminder = fail(t0 + timedelta(minutes=61), failure_event(token_secret_arn))
    assert reminder.notice is not None
    assert reminder.notice.subject.startswith("Google token rotation still failing")


def test_a_first_notice_whose_streak_write_is_throttled_goes_out_with_the_next_failure(
    fail: Fail, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    """Sent unrecorded, it would go out again with the next failure: two "failed" notices."""
    t0 = whole_second_now()

    with secrets_manager_throttled(token_secret_arn, times=THROTTLED):
        deferred = fail(t0, failure_event(token_secret_arn))

    assert deferred.notice is None
    assert deferred.schedule is not None
    assert deferred.schedule.due == t0 + timedelta(minutes=1)
    assert not set(STREAK_TAGS) & status_tags(secretsmanager, token_secret_arn).keys()
    first = fail(t0 + timedelta(minutes=1), failure_event(token_secret_arn))
    assert first.notice is not None
    assert first.notice.subject.startswith("Google token rotation failed at createSecret")
    assert "could not be recorded" not in message_of(first)["Streak"]
    assert fail(t0 + timedelta(minutes=3), failure_event(token_secret_arn)).notice is None


def test_a_success_ends_the_streak_even_when_its_expiry_tag_is_throttled(
    rotation_at: RotationAt,
    fail: Fail,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
) -> None:
    """Left on record, the ended streak would make the next failure "still failing"."""
    t0 = whole_second_now()
    fail(t0, failure_event(token_secret_arn))
    request = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    rotation = rotation_at(t0 + timedelta(minutes=1))
    for step in (Step.CREATE, Step.SET, Step.TEST):
        rotation.run(step, request)

    with pytest.MonkeyPatch.context() as patch:
        throttle_tag_resource(patch)
        finish = rotation.finish_secret(request)

    assert finish.action == "promoted"
    assert finish.follow_up is not None
    assert finish.follow_up.notice is not None
    assert not set(STREAK_TAGS) & status_tags(secretsmanager, token_secret_arn).keys()
    later = fail(t0 + timedelta(hours=2), failure_event(token_secret_arn))
    assert later.notice is not None
    assert later.notice.subject.startswith("Google token rotation failed at createSecret")


def test_the_rotation_writes_only_status_tags_and_leaves_the_deployers_tags_alone(
    rotation_at: RotationAt,
    fail: Fail,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put_tags(
        secretsmanager,
        token_secret_arn,
        {
            "token-rotation:refresh-lead-seconds": "1200",
            "token-rotation:min-remaining-seconds": "900",
            "token-rotation:scopes": SCOPE,
            "team": "payments",
        },
    )
    before = tags_of(secretsmanager, token_secret_arn)
    written: list[str] = []
    tag_resource = SecretsManagerBackend.tag_resource
    untag_resource = SecretsManagerBackend.untag_resource

    def tag_spy(self: SecretsManagerBackend, arn: str, tags: dict[str, str]) -> None:
        written.extend(tags)
        tag_resource(self, arn, tags)

    def untag_spy(self: SecretsManagerBackend, arn: str, tag_keys: list[str]) -> None:
        written.extend(tag_keys)
        untag_resource(self, arn, tag_keys)

    monkeypatch.setattr(SecretsManagerBackend, "tag_resource", tag_spy)
    monkeypatch.setattr(SecretsManagerBackend, "untag_resource", untag_spy)
    t0 = whole_second_now()

    fail(t0, failure_event(token_secret_arn))
    fail(t0 + timedelta(minutes=2), failure_event(token_secret_arn, step="testSecret"))
    finish = rotate(rotation_at(t0 + timedelta(minutes=3)), token_secret_arn)

    assert finish.follow_up is not None
    assert finish.follow_up.notice is not None  # the streak ended: all three kinds of write ran
    assert set(written) == {*STREAK_TAGS, CURRENT_EXPIRES_AT_TAG}
    assert all(key.startswith(STATUS_TAG_PREFIX) for key in written)
    after = tags_of(secretsmanager, token_secret_arn)
    assert {k: v for k, v in after.items() if not k.startswith(STATUS_TAG_PREFIX)} == before


# The Lambda handlers: DescribeFailure's payload, finishSecret's token-life metric.


def describe_failure(event: object) -> dict[str, Any]:
    handler = importlib.import_module("describe_failure").lambda_handler
    return cast(dict[str, Any], handler(event, lambda_context()))


def test_describe_failure_always_returns_both_the_notice_and_the_schedule_key(
    lambda_environment: dict[str, str],
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    rotate(rotation, token_secret_arn)
    issued = google.issued_tokens()[-1].access_token
    failed = failure_event(token_secret_arn, cause=f"tokeninfo refused {issued}")

    first = describe_failure(failed)
    held_back = describe_failure(failed)
    refused = describe_failure(failure_event(token_secret_arn, step="input validation"))
    unreadable = describe_failure(failure_event("google/no-such-secret"))

    for answer in (first, held_back, refused, unreadable):
        assert set(answer) == {"Notice", "Schedule"}
        assert issued not in json.dumps(answer)
    assert first["Notice"]["Subject"] == (
        "Google token rotation failed at createSecret (google/access-token)"
    )
    assert json.loads(first["Schedule"]["TargetInput"]) == {"SecretId": token_secret_arn}
    assert held_back["Notice"] is None
    assert held_back["Schedule"]["Name"] == first["Schedule"]["Name"]
    assert refused["Notice"]["Subject"].startswith("Google token rotation failed: input validation")
    assert refused["Schedule"] is None
    assert unreadable["Notice"]["Subject"].startswith("Google token rotation failed")
    assert unreadable["Schedule"] is None
    assert status_tags(secretsmanager, token_secret_arn)[FAILED_ATTEMPTS_TAG] == "2"
