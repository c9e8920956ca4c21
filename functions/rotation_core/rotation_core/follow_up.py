"""What follows an execution: the secret's next rotation, the notice (if one is due) and the streak.

A finished rotation schedules the next one before its token expires and, after failures, says
once that it recovered; a failed one schedules its own retry and notifies only when the streak
rules say so. The status tags are written here; the schedule's time and the notice are returned
for the state machine to send, with its own role (docs/always-fresh.md).
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from rotation_core.config import is_rotating_key_secret, managed_secret_check
from rotation_core.errors import AwsUnavailableError, RotationError, UnmanagedSecretError
from rotation_core.failure_notice import (
    NEXT_ROTATION_NOT_SCHEDULED,
    FailureReport,
    Notice,
    StageReading,
    StreakNote,
    compose_key_replaced,
    compose_notice,
    compose_recovered,
    compose_unscheduled,
    compose_unverified,
    superseding_version,
)
from rotation_core.refresh import (
    CURRENT_EXPIRES_AT_TAG,
    STREAK_TAGS,
    UNSCHEDULED_NOTIFIED_AT_TAG,
    UNVERIFIED_VERSION_TAG,
    FailureStreak,
    RotationSchedule,
    StreakWrite,
    after_failure,
    current_expiry,
    first_refresh_spread,
    next_refresh_at,
    notifies,
    retry_at,
    unscheduled_notice_due,
)
from rotation_core.secrets import PENDING, SecretDescription, SecretsGateway
from rotation_core.steps import STEP_NAMES
from rotation_core.token_secret import IdTokenMetadata, StoredMetadata, format_timestamp

logger = logging.getLogger(__name__)
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class FollowUp:
    """For the state machine: the notice to publish and the schedule to upsert, either absent."""

    notice: Notice | None
    schedule: RotationSchedule | None

    def as_payload(self) -> dict[str, object]:
        # Both keys always present: the state machine's Choice states test them for null.
        return {
            "Notice": None if self.notice is None else self.notice.as_payload(),
            "Schedule": None if self.schedule is None else self.schedule.as_payload(),
        }


class FollowUps:
    """Decides and records what follows each execution; reads and writes status tags only."""

    def __init__(
        self, secrets: SecretsGateway, environment: Mapping[str, str], clock: Clock
    ) -> None:
        self._secrets = secrets
        self._environment = environment
        self._clock = clock

    def after_success(
        self,
        secret: SecretDescription,
        version_id: str,
        current: StoredMetadata,
        lead_seconds: int,
    ) -> FollowUp:
        """The next rotation `lead_seconds` before the token in use (`version_id`) expires
        (after the secret's first token, which no expiry was recorded before, at the secret's own
        moment before that: first_refresh_spread); one notice when that token was promoted
        unverified, else one "recovered" notice when it ends a streak of failures."""
        now = self._clock()
        first = CURRENT_EXPIRES_AT_TAG not in secret.tags
        spread = first_refresh_spread(secret.arn) if first else 1.0
        due = next_refresh_at(current.issued_at, current.expires_at, lead_seconds, now, spread)
        streak = FailureStreak.from_tags(secret.tags)
        ended = [key for key in STREAK_TAGS if key in secret.tags]
        recorded = secret.tags.get(UNVERIFIED_VERSION_TAG)
        unverified = recorded == version_id
        if recorded is not None and (
            # Another version's tag is left from a rotation that never finished, unless that
            # rotation is still pending (a manual run's, say) and may yet be promoted.
            unverified or PENDING not in secret.version_stages.get(recorded, ())
        ):
            ended.append(UNVERIFIED_VERSION_TAG)
        # Status only, each write on its own: the rotation succeeded, and its successor is
        # scheduled all the same. What ended goes first: a streak left on record would make
        # the next failure a reminder of it.
        self._untag_ended(secret.arn, ended)
        try:
            expires_at = format_timestamp(current.expires_at)
            self._secrets.tag(secret.arn, {CURRENT_EXPIRES_AT_TAG: expires_at})
        except RotationError as error:
            logger.warning("the refresh status could not be recorded", extra={"error": str(error)})
        notice = None
        if unverified:
            notice = compose_unverified(
                secret,
                version_id,
                streak,
                now,
                current.expires_at,
                due,
                id_token=isinstance(current, IdTokenMetadata),
            )
        elif streak is not None:
            notice = compose_recovered(secret, streak, now, current.expires_at, due)
            logger.info(
                "the rotation recovered",
                extra={"failing_since": format_timestamp(streak.since)},
            )
        return FollowUp(notice, RotationSchedule(secret.arn, due))

    def after_key_rotation(
        self, secret: SecretDescription, key_id: str | None, due: datetime, refused_tag: str
    ) -> FollowUp:
        """The key secret's next rotation at `due`; one "key replaced" notice when the key in
        use had been refused at Google (the tag `refused_tag` says which), else one "recovered"
        notice when it ends a streak of failures (`key_id`: the key now in use, None when a
        re-run of finishSecret found it promoted already)."""
        now = self._clock()
        streak = FailureStreak.from_tags(secret.tags)
        refused = secret.tags.get(refused_tag, "").split(" ")[0] or None
        ended = [key for key in (*STREAK_TAGS, refused_tag) if key in secret.tags]
        self._untag_ended(secret.arn, ended)
        notice = None
        if refused is not None and key_id is not None and refused != key_id:
            notice = compose_key_replaced(secret, refused, key_id, now, due)
        elif streak is not None:
            notice = compose_recovered(secret, streak, now, due, due)
        return FollowUp(notice, RotationSchedule(secret.arn, due))

    def after_failure(self, report: FailureReport, reading: StageReading) -> FollowUp:
        """A failed rotation of a managed secret schedules its own retry and notifies when the
        streak rules say so; one superseded by a rotation that succeeded is no failure (logged,
        nothing sent, scheduled or recorded); any other failure (bad input, a secret not ours)
        always notifies and schedules nothing. A rotation that succeeded but could not schedule
        its next refresh is no failure either: it notifies at most hourly per secret."""
        if report.step == NEXT_ROTATION_NOT_SCHEDULED:
            return self._after_unscheduled(report, reading)
        if (
            not isinstance(reading, SecretDescription)
            or report.step not in STEP_NAMES
            # A step found the secret is not ours, though it may carry the tag (createSecret's
            # value guard): no status tag on it, and no retry that rotates it again.
            or report.error == UnmanagedSecretError.__name__
        ):
            return FollowUp(compose_notice(report, reading), None)
        try:
            if not is_rotating_key_secret(reading.arn, reading.name, self._environment):
                managed_secret_check(reading.arn, reading.name, reading.tags, self._environment)
        except RotationError:
            return FollowUp(compose_notice(report, reading), None)
        winner = superseding_version(report, reading)
        if winner is not None:
            # Not a failure: the winner's own follow-up scheduled the next refresh and ends any
            # streak with its "recovered" notice. A message from here would only repeat it.
            logger.info(
                "superseded by a rotation that succeeded: nothing to do",
                extra={"version_id": report.version_id, "current_version_id": winner},
            )
            return FollowUp(None, None)
        now = self._clock()
        kind, streak = after_failure(FailureStreak.from_tags(reading.tags), now)
        due = retry_at(streak.failed_attempts, now, current_expiry(reading.tags))
        schedule = RotationSchedule(reading.arn, due)
        write = self._record(reading.arn, streak)
        if not notifies(kind, write):
            logger.info(
                "failure notice held back: the streak was notified within the hour"
                if kind is None
                else "failure notice deferred to the next failure: its streak is not on record",
                extra={"failed_attempts": streak.failed_attempts},
            )
            return FollowUp(None, schedule)
        note = StreakNote(kind, streak, due, write is StreakWrite.RECORDED)
        return FollowUp(compose_notice(report, reading, note), schedule)

    def _after_unscheduled(self, report: FailureReport, reading: StageReading) -> FollowUp:
        """No streak, no retry: the token was promoted, and the freshness sweep refreshes it."""
        if isinstance(reading, SecretDescription):
            now = self._clock()
            if not unscheduled_notice_due(reading.tags, now):
                logger.info("next-refresh-not-scheduled notice held back: one went out this hour")
                return FollowUp(None, None)
            try:
                self._secrets.tag(reading.arn, {UNSCHEDULED_NOTIFIED_AT_TAG: format_timestamp(now)})
            except RotationError as error:
                logger.warning(
                    "the notice's time could not be recorded", extra={"error": str(error)}
                )
        return FollowUp(compose_unscheduled(report, reading), None)

    def _untag_ended(self, secret_arn: str, ended: list[str]) -> None:
        """Status only: the rotation succeeded whether or not the tags go."""
        if not ended:
            return
        try:
            self._secrets.untag(secret_arn, ended)
        except RotationError as error:
            logger.warning("ended status tags could not be removed", extra={"error": str(error)})

    def _record(self, secret_arn: str, streak: FailureStreak) -> StreakWrite:
        try:
            self._secrets.tag(secret_arn, streak.as_tags())
        except AwsUnavailableError as error:
            logger.warning(
                "the failure streak could not be recorded now: the record on the secret stands",
                extra={"error": str(error)},
            )
            return StreakWrite.UNAVAILABLE
        except RotationError as error:
            logger.warning("the failure streak could not be recorded", extra={"error": str(error)})
            return StreakWrite.REFUSED
        return StreakWrite.RECORDED
