"""Streak notices (first, reminder, recovered) say what the rules did, fit SNS, hold no token."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rotation_core.failure_notice import (
    SUBJECT_LIMIT,
    FailureReport,
    Notice,
    StreakNote,
    compose_notice,
    compose_recovered,
)
from rotation_core.refresh import FailureStreak, NoticeKind, after_failure, retry_at
from rotation_core.secrets import SecretDescription

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NAME = "google/access-token"
ARN = f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{NAME}-AbCdEf"
LONGEST_NAME = "team/" + "n-" * 253 + "xx"
"""512 characters, the longest secret name Secrets Manager allows (hyphens: not token-shaped)."""
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:rotation:createSecret-5f0d1c2b-1"
THIS = "5f0d1c2b-3a4e-4f60-9b8a-7c6d5e4f3a21"
ISSUED_SHAPE = (
    "ya29.jOHOCm1t7G-OL2EiFjr-zzisKrsZwK5qI4g0g6-BxlmspCPH2A8U7QhmukCNf7jhJw9wlYVQEP8GGG4vfh0Fy"
    "qTuP-k7ixkQLA2FwZeu6KbI4skRJKLgJ7h19hoYoufq"
)
"""One the Google emulator issued ("ya29." and 128 URL-safe characters, as Google's)."""
PLAIN_SHAPE = "ya29." + "a0AfB_byC1x2y3z4" * 6 + "QRST"


def report(
    step: str = "createSecret", cause: str = "invalid_grant: the key was deleted"
) -> FailureReport:
    return FailureReport.from_payload(
        {
            "Request": {"Step": step, "SecretId": ARN, "ClientRequestToken": THIS},
            "FailedStep": step,
            "Failure": {"Error": "GoogleGrantRejectedError", "Cause": cause},
            "ExecutionArn": EXECUTION,
        }
    )


def secret(name: str = NAME) -> SecretDescription:
    return SecretDescription(
        arn=f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{name}-AbCdEf",
        name=name,
        rotation_enabled=True,
        version_stages={"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d": ("AWSCURRENT",)},
        tags={},
    )


def first_note(recorded: bool = True) -> StreakNote:
    kind, streak = after_failure(None, T0)
    assert kind is NoticeKind.FIRST
    return StreakNote(kind, streak, retry_at(streak.failed_attempts, T0, None), recorded)


def reminder_note(recorded: bool = True) -> StreakNote:
    """The 13th failure, 61 minutes after the first notice, as the rules leave it."""
    streak = FailureStreak(since=T0, failed_attempts=12, notified_at=T0)
    now = T0 + timedelta(minutes=61)
    kind, streak = after_failure(streak, now)
    assert kind is NoticeKind.REMINDER
    return StreakNote(kind, streak, retry_at(streak.failed_attempts, now, None), recorded)


def held_back_note() -> StreakNote:
    """A failure the rules held back, whose streak write was refused: it speaks anyway."""
    streak = FailureStreak(since=T0, failed_attempts=2, notified_at=T0)
    now = T0 + timedelta(minutes=5)
    kind, streak = after_failure(streak, now)
    assert kind is None
    return StreakNote(kind, streak, retry_at(streak.failed_attempts, now, None), recorded=False)


def notice_with(
    note: StreakNote | None, name: str = NAME, cause: str = "invalid_grant"
) -> tuple[Notice, dict[str, Any]]:
    notice = compose_notice(report(cause=cause), secret(name), note)
    message: dict[str, Any] = json.loads(notice.message)
    return notice, message


def recovered(name: str = NAME) -> tuple[Notice, dict[str, Any]]:
    streak = FailureStreak(since=T0, failed_attempts=9, notified_at=T0 + timedelta(hours=1))
    now = T0 + timedelta(minutes=107, seconds=59)
    notice = compose_recovered(
        secret(name), streak, now, now + timedelta(hours=1), now + timedelta(minutes=45)
    )
    message: dict[str, Any] = json.loads(notice.message)
    return notice, message


def assert_valid_subject(subject: str) -> None:
    assert 0 < len(subject) <= SUBJECT_LIMIT
    assert subject.isascii()
    assert subject.isprintable()


# Subjects: what kind of notice this is, at a glance.


def test_the_first_failure_of_a_streak_says_failed() -> None:
    notice, _ = notice_with(first_note())

    assert notice.subject == "Google token rotation failed at createSecret (google/access-token)"


def test_a_reminder_says_still_failing() -> None:
    notice, _ = notice_with(reminder_note())

    assert notice.subject == (
        "Google token rotation still failing at createSecret (google/access-token)"
    )


def test_a_held_back_failure_that_speaks_because_it_went_unrecorded_says_still_failing() -> None:
    notice, message = notice_with(held_back_note())

    assert notice.subject.startswith("Google token rotation still failing at createSecret")
    assert message["Streak"].startswith("Still failing: 3 failed attempts since ")


def test_the_recovered_notice_says_recovered() -> None:
    notice, _ = recovered()

    assert notice.subject == "Google token rotation recovered (google/access-token)"


def test_a_failure_without_a_streak_note_keeps_the_plain_notice() -> None:
    notice, message = notice_with(None)

    assert notice.subject == "Google token rotation failed at createSecret (google/access-token)"
    assert "Streak" not in message
    assert "NextAttempt" not in message


def all_subjects(name: str) -> dict[str, str]:
    return {
        "first": notice_with(first_note(), name)[0].subject,
        "reminder": notice_with(reminder_note(), name)[0].subject,
        "unrecorded": notice_with(held_back_note(), name)[0].subject,
        "recovered": recovered(name)[0].subject,
    }


def test_every_subject_fits_sns_even_with_a_512_character_secret_name() -> None:
    subjects = all_subjects(LONGEST_NAME)

    for subject in subjects.values():
        assert_valid_subject(subject)
        assert subject.endswith("...)")
        assert "(team/n-n-" in subject
    assert subjects["first"].startswith("Google token rotation failed at createSecret (")
    assert subjects["reminder"].startswith("Google token rotation still failing at createSecret (")
    assert subjects["recovered"].startswith("Google token rotation recovered (")


@pytest.mark.parametrize("name", [PLAIN_SHAPE, ISSUED_SHAPE.replace("-", "A")])
def test_a_token_shaped_secret_name_stays_out_of_every_subject(name: str) -> None:
    for kind, subject in all_subjects(name).items():
        assert_valid_subject(subject)
        assert name not in subject, kind
        assert "ya29" not in subject, kind


# Messages: the Streak and NextAttempt fields say what the rules did.


def test_the_first_notice_says_it_is_the_first_and_when_the_retry_runs() -> None:
    _, message = notice_with(first_note())

    assert message["Streak"].startswith("The first failure since the last successful rotation.")
    assert "at most once an hour" in message["Streak"]
    assert "could not be recorded" not in message["Streak"]
    assert message["NextAttempt"].startswith("RotateSecret runs again at 2026-03-01T12:01:00Z ")


def test_a_reminder_counts_the_attempts_since_the_streak_began_and_when_the_next_runs() -> None:
    _, message = notice_with(reminder_note())

    assert message["Streak"] == (
        "Still failing: 13 failed attempts since 2026-03-01T12:00:00Z. The next reminder comes "
        "in an hour at the earliest."
    )
    # The 13th attempt waits the capped 15 minutes: 13:01 + 15 min.
    assert message["NextAttempt"].startswith("RotateSecret runs again at 2026-03-01T13:16:00Z ")


@pytest.mark.parametrize(
    "note", [first_note(recorded=False), held_back_note()], ids=["first", "held"]
)
def test_an_unrecorded_streak_says_notices_may_come_for_every_attempt(note: StreakNote) -> None:
    _, message = notice_with(note)

    assert "could not be recorded" in message["Streak"]
    assert "TagResource failed" in message["Streak"]


def test_the_streak_fields_sit_with_the_rest_of_the_failure_report() -> None:
    _, message = notice_with(reminder_note())

    assert message["Step"] == "createSecret"
    assert message["Error"] == "GoogleGrantRejectedError"
    assert message["SecretId"] == ARN
    assert list(message).index("Streak") < list(message).index("NextSteps")


def test_the_recovered_notice_counts_the_failed_attempts_and_whole_minutes() -> None:
    _, message = recovered()

    assert message["Summary"] == (
        f"The rotation of secret {ARN} succeeded again, after 9 failed attempts over 107 minutes."
    )
    assert message["FailedAttempts"] == 9
    assert message["FailingSince"] == "2026-03-01T12:00:00Z"
    assert message["RecoveredAt"] == "2026-03-01T13:47:59Z"
    assert message["CurrentTokenExpiresAt"] == "2026-03-01T14:47:59Z"
    assert message["NextRefreshAt"] == "2026-03-01T14:32:59Z"
    assert message["SecretId"] == ARN


def test_a_recovery_within_the_first_minute_says_zero_minutes() -> None:
    streak = FailureStreak(since=T0, failed_attempts=1, notified_at=T0)
    now = T0 + timedelta(seconds=59)

    notice = compose_recovered(secret(), streak, now, now + timedelta(hours=1), now)

    assert "after 1 failed attempt over 0 minutes" in json.loads(notice.message)["Summary"]


# No notice ever carries a token.


@pytest.mark.parametrize("token", [ISSUED_SHAPE, PLAIN_SHAPE], ids=["issued-shape", "plain"])
@pytest.mark.parametrize(
    "note",
    [None, first_note(), reminder_note(), held_back_note(), first_note(recorded=False)],
    ids=["no-note", "first", "reminder", "held-unrecorded", "first-unrecorded"],
)
@pytest.mark.parametrize("wrapped", [False, True], ids=["plain-cause", "lambda-error-json"])
def test_no_streak_notice_carries_a_token_from_the_cause(
    token: str, note: StreakNote | None, wrapped: bool
) -> None:
    text = f"tokeninfo refused {token} (expired)"
    cause = json.dumps({"errorType": "X", "errorMessage": text}) if wrapped else text

    notice, message = notice_with(note, cause=cause)

    assert token not in notice.message
    assert token[5:40] not in notice.message
    assert token not in notice.subject
    assert message["Cause"].startswith("tokeninfo refused <redacted>")
