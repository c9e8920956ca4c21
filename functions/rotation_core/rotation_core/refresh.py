"""The refresh chain's rules: when a token secret rotates next, and when a failing streak speaks.

Pure logic. After a rotation promotes a token, the next one is due `lead` seconds before that token
expires (after a secret's first token, at a moment of the secret's own before that, so that
secrets created together do not rotate together); after a failure, a retry is due after a capped
backoff that never waits past half of the current token's remaining life. A streak of failures
is kept on the secret itself, as status tags, so that its first failure notifies, later ones
remind at most hourly, and the success that ends it says so once.
"""

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from rotation_core.errors import InvalidTokenSecretError
from rotation_core.token_secret import format_timestamp, parse_timestamp

MIN_VERSION_INTERVAL: Final = timedelta(minutes=10)
"""Secrets Manager: storing versions more often than every 10 minutes outgrows its pruning of old
versions (it keeps 100, and none younger than a day), so no refresh comes sooner after a mint."""
EARLIEST_FIRING: Final = timedelta(minutes=1)
"""A schedule is never set in the past, nor so close that it might fire before it is saved."""
FIRST_RETRY: Final = timedelta(minutes=1)
MAX_RETRY: Final = timedelta(minutes=15)
REMINDER_INTERVAL: Final = timedelta(hours=1)

STATUS_TAG_PREFIX: Final = "token-rotation-status:"
"""Tags the rotation writes itself. A prefix of their own, apart from the `token-rotation:`
settings tags, so that IAM can let the rotation write these and nothing else."""
FAILING_SINCE_TAG: Final = f"{STATUS_TAG_PREFIX}failing-since"
FAILED_ATTEMPTS_TAG: Final = f"{STATUS_TAG_PREFIX}failed-attempts"
NOTIFIED_AT_TAG: Final = f"{STATUS_TAG_PREFIX}notified-at"
CURRENT_EXPIRES_AT_TAG: Final = f"{STATUS_TAG_PREFIX}current-expires-at"
STREAK_TAGS: Final = (FAILING_SINCE_TAG, FAILED_ATTEMPTS_TAG, NOTIFIED_AT_TAG)
REFUSED_VERSION_TAG: Final = f"{STATUS_TAG_PREFIX}refused-version"
"""The AWSCURRENT version whose token Google's tokeninfo refused while it had not expired (revoked,
account disabled), as the freshness sweep last noticed it: one notice per refused token, not one
per sweep; testSecret counts that token as bad."""
UNSCHEDULED_NOTIFIED_AT_TAG: Final = f"{STATUS_TAG_PREFIX}unscheduled-notified-at"
"""When a notice last said that a rotation succeeded but its next refresh's schedule could not be
written (the schedule group deleted, say): such notices come at most hourly per secret. Never
removed by a success, so that rotations the sweep starts while the group is missing do not each
notify again."""
UNVERIFIED_VERSION_TAG: Final = f"{STATUS_TAG_PREFIX}unverified-version"
"""The pending version testSecret accepted without tokeninfo's verdict (tokeninfo unreachable while
the token in use was bad or about to be); finishSecret says so in a notice and removes it."""

_SCHEDULE_NAME_LIMIT: Final = 64
_DIGEST_LENGTH: Final = 16
_NOT_IN_SCHEDULE_NAMES: Final = re.compile(r"[^0-9A-Za-z_.-]+")


class NoticeKind(StrEnum):
    FIRST = "first failure"
    REMINDER = "reminder"


class StreakWrite(StrEnum):
    """How the write of a failure's streak to the status tags went."""

    RECORDED = "recorded"
    UNAVAILABLE = "unavailable"
    """Throttled or failing on AWS's side: the record already on the secret stands."""
    REFUSED = "refused"
    """Denied, or the secret is gone: no record will be written for a while."""


@dataclass(frozen=True)
class FailureStreak:
    """Failed rotation attempts since the last success, as the secret's status tags record it."""

    since: datetime
    failed_attempts: int
    notified_at: datetime | None

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> "FailureStreak | None":
        """None when no streak is recorded, or when its tags were edited out of shape: the next
        failure then starts a new streak, which notifies (never a silent one)."""
        if FAILING_SINCE_TAG not in tags:
            return None
        try:
            since = parse_timestamp(tags[FAILING_SINCE_TAG], FAILING_SINCE_TAG)
            notified = tags.get(NOTIFIED_AT_TAG)
            notified_at = None if notified is None else parse_timestamp(notified, NOTIFIED_AT_TAG)
        except InvalidTokenSecretError:
            return None
        attempts = tags.get(FAILED_ATTEMPTS_TAG, "")
        if not (attempts.isascii() and attempts.isdigit()) or int(attempts) < 1:
            return None
        return cls(since, int(attempts), notified_at)

    def as_tags(self) -> dict[str, str]:
        tags = {
            FAILING_SINCE_TAG: format_timestamp(self.since),
            FAILED_ATTEMPTS_TAG: str(self.failed_attempts),
        }
        if self.notified_at is not None:
            tags[NOTIFIED_AT_TAG] = format_timestamp(self.notified_at)
        return tags


def after_failure(
    streak: FailureStreak | None, now: datetime
) -> tuple[NoticeKind | None, FailureStreak]:
    """Whether this failure notifies, and the streak it leaves: the first failure notifies, then
    at most one reminder per REMINDER_INTERVAL while the secret keeps failing."""
    if streak is None:
        return NoticeKind.FIRST, FailureStreak(now, 1, now)
    attempts = streak.failed_attempts + 1
    if streak.notified_at is None or now - streak.notified_at >= REMINDER_INTERVAL:
        return NoticeKind.REMINDER, FailureStreak(streak.since, attempts, now)
    return None, FailureStreak(streak.since, attempts, streak.notified_at)


def notifies(kind: NoticeKind | None, write: StreakWrite) -> bool:
    """Whether this failure sends its notice, given how the streak's write went.

    Recorded: when the rules say so. Unavailable: never now, since the record on the secret is
    what the next failure decides on: a notice held back stays held back (its hour is still on
    record), and a notice that was due is due again at the next failure, which records it. Were
    it sent now, the unrecorded notice would go out again at every failure until a write lands:
    the reminders every retry that AWS throttling caused. Refused: always, since no record will
    stop the next one either and silence would hide the failures."""
    if write is StreakWrite.UNAVAILABLE:
        return False
    return kind is not None or write is StreakWrite.REFUSED


def unscheduled_notice_due(tags: Mapping[str, str], now: datetime) -> bool:
    """Whether a "next refresh not scheduled" notice goes out now: unless one went out within
    REMINDER_INTERVAL (a record edited out of shape counts as none, so it never silences)."""
    recorded = tags.get(UNSCHEDULED_NOTIFIED_AT_TAG)
    if recorded is None:
        return True
    try:
        notified_at = parse_timestamp(recorded, UNSCHEDULED_NOTIFIED_AT_TAG)
    except InvalidTokenSecretError:
        return True
    return not timedelta(0) <= now - notified_at < REMINDER_INTERVAL


def current_expiry(tags: Mapping[str, str]) -> datetime | None:
    """When the token in use expires, as the last promotion recorded it (None if unknown)."""
    recorded = tags.get(CURRENT_EXPIRES_AT_TAG)
    if recorded is None:
        return None
    try:
        return parse_timestamp(recorded, CURRENT_EXPIRES_AT_TAG)
    except InvalidTokenSecretError:
        return None


def refresh_due(issued_at: datetime, expires_at: datetime, lead_seconds: int) -> datetime:
    """The latest moment a token's successor is due: `lead_seconds` before it expires, but never
    sooner than MIN_VERSION_INTERVAL after it was minted."""
    return max(expires_at - timedelta(seconds=lead_seconds), issued_at + MIN_VERSION_INTERVAL)


def next_refresh_at(
    issued_at: datetime,
    expires_at: datetime,
    lead_seconds: int,
    now: datetime,
    spread: float = 1.0,
) -> datetime:
    """When the new token's successor is minted: `spread` of the way from MIN_VERSION_INTERVAL
    after the mint to `refresh_due` (1.0, the default, is refresh_due itself), and never sooner
    than EARLIEST_FIRING from now."""
    if not 0.0 <= spread <= 1.0:
        raise ValueError(f"spread must be between 0 and 1, got {spread}")
    earliest = issued_at + MIN_VERSION_INTERVAL
    due = earliest + (refresh_due(issued_at, expires_at, lead_seconds) - earliest) * spread
    return whole_second(max(due, now + EARLIEST_FIRING))


def first_refresh_spread(secret_arn: str) -> float:
    """Where in its window a secret's first token is refreshed, in [0, 1): a digest of the ARN, so
    secrets created together (whose first tokens expire together) spread their refreshes over a
    token's lifetime and, each successor being due a fixed lead before its own expiry, stay
    spread. A digest rather than a random draw: the same secret always gets the same moment, so
    runs replay and tests can name it."""
    digest = hashlib.sha256(secret_arn.encode()).digest()
    return int.from_bytes(digest[:8]) / 2**64


def retry_at(failed_attempts: int, now: datetime, expires_at: datetime | None) -> datetime:
    """1, 2, 4, ... minutes after the latest failure, at most MAX_RETRY; while the token in use
    still lives, at most half of its remaining life, so that attempts crowd in before it expires
    instead of one backoff step jumping past the expiry."""
    doublings = min(failed_attempts - 1, 10)
    delay = min(FIRST_RETRY * (1 << doublings), MAX_RETRY)
    if expires_at is not None and expires_at > now:
        delay = min(delay, max(FIRST_RETRY, (expires_at - now) / 2))
    return whole_second(now + delay)


def schedule_name(secret_arn: str) -> str:
    """The one schedule of a secret: readable (the secret's name, in the characters schedule
    names allow) and unique (a digest of the full ARN), at most 64 characters."""
    name = secret_arn.split(":secret:", 1)[-1]
    readable = _NOT_IN_SCHEDULE_NAMES.sub("-", name).strip("-._") or "secret"
    digest = hashlib.sha256(secret_arn.encode()).hexdigest()[:_DIGEST_LENGTH]
    room = _SCHEDULE_NAME_LIMIT - len("refresh--") - _DIGEST_LENGTH
    return f"refresh-{readable[:room]}-{digest}"


@dataclass(frozen=True)
class RotationSchedule:
    """When the secret's one EventBridge Scheduler schedule calls RotateSecret next. Where the
    schedule lives, the role it runs as and its target are the template's (the state machine's
    Parameters), so no function can aim a schedule elsewhere."""

    secret_arn: str
    due: datetime

    def as_payload(self) -> dict[str, str]:
        return {
            "Name": schedule_name(self.secret_arn),
            "ScheduleExpression": at_expression(self.due),
            "Description": f"Rotate the token secret at {format_timestamp(self.due)}",
            "TargetInput": json.dumps({"SecretId": self.secret_arn}),
        }


def whole_second(moment: datetime) -> datetime:
    """Rounded up: schedules and notices name whole seconds, never before the moment meant."""
    if moment.microsecond:
        return moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def at_expression(moment: datetime) -> str:
    """EventBridge Scheduler's one-time expression, in UTC, whole seconds rounded up."""
    return f"at({format_timestamp(whole_second(moment))[:-1]})"
