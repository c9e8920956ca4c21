"""One run of the freshness sweep against Secrets Manager, Google and the failure topic.

It reads what every token secret of the stack says about itself, asks Google about the tokens
whose verdict can change what happens (tokeninfo for an access token; an ID token is verified
with Google's certificates, as its relying party would), decides and plans with rotation_core.sweep,
and acts through RotateSecret only (after UpdateSecretVersionStage for a hopeless pending
version), so that Secrets Manager keeps serialising rotations. No token is ever logged.

When the stack's own key secret renews itself, a run also reads when its key is due (from the
secret's tags and versions) and starts its rotation once it is due or Google refused it; the key's
value is never read here (a key secret still holding the `{}` it was created with fails that
rotation's createSecret, whose notice says to put the key).
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from rotation_core.aws_errors import error_code
from rotation_core.config import (
    KEY_SECRET_ID,
    MANAGED_BY_TAG,
    RotationSettings,
    key_rotation_days,
    managed_by,
    managed_secret_check,
)
from rotation_core.errors import (
    AwsUnavailableError,
    ConfigurationError,
    InvalidTokenSecretError,
    RotationError,
    TokenVerificationError,
    UnmanagedSecretError,
)
from rotation_core.failure_notice import Notice, compose_refused
from rotation_core.freshness import fresh_pending_value
from rotation_core.google_client import GoogleClient
from rotation_core.iam_keys import NO_EXPIRY
from rotation_core.key_rotation import KeyStatus
from rotation_core.refresh import REFUSED_VERSION_TAG
from rotation_core.secrets import CURRENT, RotateOutcome, SecretDescription, SecretsGateway
from rotation_core.sweep import (
    Action,
    Decision,
    Freshness,
    KeyState,
    SecretState,
    Verdict,
    asks_google,
    days_left,
    decide,
    decide_key,
    freshness,
    plan,
)
from rotation_core.token_secret import (
    IdTokenSecretValue,
    StoredToken,
    format_timestamp,
    is_token_secret_string,
    parse_token_secret,
)

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

logger = logging.getLogger(__name__)

MAX_CONCURRENCY: Final = 8
"""Secrets read, and tokens looked up at Google's tokeninfo, at once."""
GOOGLE_FAILURES_TO_STOP: Final = 3
"""tokeninfo failures (no answer, 5xx, 429) after which a run asks Google no more: while Google
is down every lookup would wait for its timeout, and their verdicts would all be UNKNOWN."""
DEADLINE_MARGIN: Final = timedelta(seconds=20)
"""A run starts nothing later than this (plus a spacing) before its function's deadline."""

Clock = Callable[[], datetime]
Publish = Callable[[Notice], None]


class NoticeTopic:
    """The stack's failure topic, where the sweep's notices go."""

    def __init__(self, client: "SNSClient", topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn

    def publish(self, notice: Notice) -> None:
        try:
            self._client.publish(
                TopicArn=self._topic_arn, Subject=notice.subject, Message=notice.message
            )
        except ClientError as error:
            raise AwsUnavailableError(
                f"SNS refused the notice ({error_code(error)}); it is tried again next run"
            ) from None
        except BotoCoreError as error:
            raise AwsUnavailableError(
                f"SNS could not be reached ({type(error).__name__}); the notice is tried again "
                "next run"
            ) from None


@dataclass(frozen=True)
class Acted:
    """One started action and how it went."""

    decision: Decision
    outcome: str
    """A RotateOutcome value, or "failed: <error type>"."""
    notified: bool = False
    """The refused-token notice went out."""

    @property
    def accepted(self) -> bool:
        return self.outcome in {RotateOutcome.STARTED, RotateOutcome.REATTEMPTED}


@dataclass(frozen=True)
class KeyCheck:
    """What the run found of the stack's own key secret: its decision and when the key is due."""

    name: str
    decision: Decision
    due_at: datetime | None
    now: datetime
    valid_before: datetime | None = None
    """When Google stops accepting the key; None without a key-expiry policy."""

    @property
    def days_left(self) -> float | None:
        return None if self.due_at is None else days_left(self.due_at, self.now)

    @property
    def days_to_expiry(self) -> float | None:
        expires = None if self.due_at is None else self.valid_before
        return None if expires is None else days_left(expires, self.now)

    def as_payload(self) -> dict[str, object]:
        left, to_expiry = self.days_left, self.days_to_expiry
        return {
            "Action": self.decision.action.value,
            "Reason": self.decision.reason,
            "DueAt": None if self.due_at is None else format_timestamp(self.due_at),
            "DaysLeft": None if left is None else round(left, 3),
            "DaysToExpiry": None if to_expiry is None else round(to_expiry, 3),
        }


@dataclass(frozen=True)
class SweepReport:
    """What one run saw and did; ids, counts and reasons only."""

    decisions: tuple[Decision, ...]
    acted: tuple[Acted, ...]
    deferred: tuple[Decision, ...]
    skipped: int
    """Secrets with this stack's tag that are no token secret, or could not be read this run."""
    google_calls: int
    notices: int
    freshness: Freshness
    key: KeyCheck | None = None
    """None when the stack's key does not rotate, or its secret could not be read this run."""

    @property
    def rotations_started(self) -> int:
        return sum(acted.accepted for acted in self.acted)

    def as_payload(self) -> dict[str, object]:
        key = {} if self.key is None else {"ServiceAccountKey": self.key.as_payload()}
        return {
            "Secrets": len(self.decisions),
            "Skipped": self.skipped,
            "Actions": dict(Counter(decision.action.value for decision in self.decisions)),
            "Reasons": dict(Counter(decision.reason for decision in self.decisions)),
            "RotationsStarted": self.rotations_started,
            "ActionsFailed": len(self.acted) - self.rotations_started,
            "RotationsDeferred": len(self.deferred),
            "GoogleCalls": self.google_calls,
            "RefusedNotices": self.notices,
            "LeastSecondsLeft": self.freshness.least_seconds_left,
            "SecretsWithoutValidToken": self.freshness.without_valid_token,
            **key,
        }


@dataclass(frozen=True)
class _Reading:
    state: SecretState
    settings: RotationSettings
    token: StoredToken | None = field(repr=False)


class _Skipped:
    """A secret with this stack's tag that the run cannot look after (it says why in the log)."""


_SKIPPED: Final = _Skipped()


class FreshnessSweep:
    """Runs the sweep once per `run()`: at most `budget` actions, `spacing` apart."""

    def __init__(
        self,
        secrets: SecretsGateway,
        google: GoogleClient,
        environment: Mapping[str, str],
        publish: Publish,
        *,
        clock: Clock,
        budget: int,
        spacing: timedelta,
        sleep: Callable[[float], None] = time.sleep,
        remaining_seconds: Callable[[], float] | None = None,
    ) -> None:
        self._secrets = secrets
        self._google = google
        self._environment = environment
        self._publish = publish
        self._clock = clock
        self._budget = budget
        self._spacing = spacing
        self._sleep = sleep
        self._remaining_seconds = remaining_seconds
        self._lock = threading.Lock()
        self._google_calls = 0
        self._google_failures = 0

    def run(self) -> SweepReport:
        owner = managed_by(self._environment)
        now = self._clock()
        self._google_calls = self._google_failures = 0
        listed = list(self._secrets.list_tagged(MANAGED_BY_TAG, owner))
        with ThreadPoolExecutor(max_workers=MAX_CONCURRENCY) as pool:
            read = list(pool.map(self._read, listed))
            readings = [reading for reading in read if isinstance(reading, _Reading)]
            readings = self._with_verdicts(readings, now, pool)
        readings = [self._with_pending_checked(reading, now) for reading in readings]
        states = {reading.state.arn: reading.state for reading in readings}
        decisions = [decide(state, now) for state in states.values()]
        key = self._key_check(now)
        key_decisions = [] if key is None else [key.decision]
        started, deferred = plan([*decisions, *key_decisions], self._budget)
        acted, late = self._act(started, states, key, now)
        report = SweepReport(
            decisions=tuple(decisions),
            acted=tuple(acted),
            deferred=(*late, *deferred),
            skipped=sum(reading is _SKIPPED for reading in read),
            google_calls=self._google_calls,
            notices=sum(action.notified for action in acted),
            freshness=freshness(states.values(), now),
            key=key,
        )
        for decision in report.deferred:
            logger.info(
                "sweep deferred an action to the next run",
                extra={**_described(decision), "secret_arn": decision.secret_arn},
            )
        return report

    # Reading.

    def _read(self, secret: SecretDescription) -> _Reading | _Skipped | None:
        """The secret's state, None for another stack's secret (ListSecrets matches loosely),
        _SKIPPED for one of this stack's that the run cannot look after."""
        try:
            managed_secret_check(secret.arn, secret.name, secret.tags, self._environment)
        except UnmanagedSecretError:
            return None
        try:
            return self._reading(secret)
        except RotationError as error:
            logger.warning(
                "sweep could not read a token secret this run",
                extra={"secret": secret.name, "error_type": type(error).__name__},
            )
            return _SKIPPED

    def _reading(self, secret: SecretDescription) -> _Reading | _Skipped:
        settings = self._settings(secret)
        current_version = secret.version_with(CURRENT)
        value = None if current_version is None else self._secrets.read_current_string(secret.arn)
        if current_version is None or value is None or not is_token_secret_string(value):
            # createSecret refuses to overwrite it: rotating would only fail, run after run.
            logger.warning(
                "sweep skipped a secret with this stack's tag that holds no token secret value",
                extra={"secret": secret.name},
            )
            return _SKIPPED
        try:
            token: StoredToken | None = parse_token_secret(value)
        except InvalidTokenSecretError:
            token = None  # the placeholder a token secret is created with
        pending = secret.unfinished_rotation()
        state = SecretState(
            arn=secret.arn,
            name=secret.name,
            rotation_enabled=secret.rotation_enabled,
            current_version=current_version,
            current_expires_at=None if token is None else token.metadata.expires_at,
            pending_version=pending,
            pending_created_at=(
                None if pending is None else self._secrets.version_created(secret.arn, pending)
            ),
            lead_seconds=settings.refresh_lead_seconds,
            refused_noticed=secret.tags.get(REFUSED_VERSION_TAG) == current_version,
            current_issued_at=None if token is None else token.metadata.issued_at,
            holds_id_token=isinstance(token, IdTokenSecretValue),
        )
        return _Reading(state, settings, token)

    def _settings(self, secret: SecretDescription) -> RotationSettings:
        """The secret's settings; when one of its tags is out of bounds, the deployer's (its
        rotations fail and notify about the tag, but the sweep still watches its token)."""
        try:
            return RotationSettings.resolve(secret.tags, self._environment)
        except ConfigurationError as error:
            logger.warning(
                "sweep reads a secret with the deployer's settings: one of its tags is invalid",
                extra={"secret": secret.name, "error_message": str(error)},
            )
            return RotationSettings.resolve({}, self._environment)

    def _with_verdicts(
        self, readings: list[_Reading], now: datetime, pool: ThreadPoolExecutor
    ) -> list[_Reading]:
        """Google's verdict on the tokens in use whose verdict matters, each asked once."""
        asking = [(r.state.arn, r.token) for r in readings if r.token and asks_google(r.state, now)]
        verdicts = dict(
            zip(
                (arn for arn, _ in asking),
                pool.map(lambda asked: self._verdict(asked[1]), asking),
                strict=True,
            )
        )
        return [
            replace(r, state=replace(r.state, verdict=verdicts[r.state.arn]))
            if r.state.arn in verdicts
            else r
            for r in readings
        ]

    def _verdict(self, token: StoredToken) -> Verdict:
        with self._lock:
            if self._google_failures >= GOOGLE_FAILURES_TO_STOP:
                return Verdict.UNKNOWN
            self._google_calls += 1
        try:
            if isinstance(token, IdTokenSecretValue):
                self._google.verify_id_token(token.id_token, token.metadata.audience)
            else:
                self._google.token_info(token.access_token)
        except TokenVerificationError:
            return Verdict.REFUSED
        except RotationError as error:
            if error.transient:
                with self._lock:
                    self._google_failures += 1
                    gave_up = self._google_failures == GOOGLE_FAILURES_TO_STOP
                if gave_up:
                    logger.warning(
                        "sweep stops asking Google's tokeninfo this run: it keeps failing",
                        extra={"error_type": type(error).__name__},
                    )
            return Verdict.UNKNOWN
        return Verdict.VALID

    def _with_pending_checked(self, reading: _Reading, now: datetime) -> _Reading:
        """A stuck rotation the run would drive: whether its pending value can still pass."""
        state = reading.state
        if state.pending_version is None or decide(state, now).action is not Action.DRIVE:
            return reading
        try:
            stored = self._secrets.read_pending(state.arn, state.pending_version)
        except RotationError:
            return reading  # unchecked: driving is safe, its steps abandon a stale version
        fresh = stored is not None
        if stored is not None:
            try:
                fresh_pending_value(stored, reading.settings, now)
            except TokenVerificationError:
                fresh = False
        return replace(reading, state=replace(state, pending_fresh=fresh))

    # The key secret.

    def _key_check(self, now: datetime) -> KeyCheck | None:
        """When the stack's own key is due, from its secret's tags (or, for a key put by hand,
        its AWSCURRENT version's creation): one DescribeSecret a run. A failure to read it
        costs this run its key check only, never the token secrets' sweep."""
        key_secret_id = self._environment.get(KEY_SECRET_ID.variable, "").strip()
        try:
            days = key_rotation_days(self._environment)
            if not key_secret_id or days == 0:
                return None
            secret = self._secrets.describe(key_secret_id)
            return self._checked_key(secret, days, now)
        except RotationError as error:
            logger.warning(
                "sweep could not read the service-account key secret this run",
                extra={"error_type": type(error).__name__, "error_message": str(error)},
            )
            return None

    def _checked_key(self, secret: SecretDescription, days: int, now: datetime) -> KeyCheck | None:
        current = secret.version_with(CURRENT)
        status = KeyStatus.from_tags(secret.tags, current)
        rotated_at = status.rotated_at or (
            None if current is None else self._secrets.version_created(secret.arn, current)
        )
        if rotated_at is None:
            return None  # no AWSCURRENT version to date: nothing a rotation could start from
        pending = secret.unfinished_rotation()
        expires = status.valid_before
        state = KeyState(
            arn=secret.arn,
            rotation_enabled=secret.rotation_enabled,
            due_at=status.due_at(days, rotated_at),
            valid_before=None if expires is None or expires >= NO_EXPIRY else expires,
            refused=status.refused_key is not None,
            pending_version=pending,
            pending_created_at=(
                None if pending is None else self._secrets.version_created(secret.arn, pending)
            ),
        )
        decision = decide_key(state, now)
        return KeyCheck(secret.name, decision, state.due_at, now, state.valid_before)

    # Acting.

    def _act(
        self,
        started: Iterable[Decision],
        states: Mapping[str, SecretState],
        key: KeyCheck | None,
        now: datetime,
    ) -> tuple[list[Acted], list[Decision]]:
        """The planned actions, `spacing` apart; what no longer fits before the deadline is
        deferred to the next run."""
        acted: list[Acted] = []
        planned = list(started)
        for index, decision in enumerate(planned):
            if index:
                if not self._time_for_another():
                    return acted, planned[index:]
                self._sleep(self._spacing.total_seconds())
            acted.append(
                # The key secret: no notice to send, no pending value to judge.
                self._rotate(decision, key.name)
                if key is not None and decision.secret_arn == key.decision.secret_arn
                else self._act_on(decision, states[decision.secret_arn], now)
            )
        return acted, []

    def _time_for_another(self) -> bool:
        if self._remaining_seconds is None:
            return True
        needed = self._spacing + DEADLINE_MARGIN
        return self._remaining_seconds() > needed.total_seconds()

    def _act_on(self, decision: Decision, state: SecretState, now: datetime) -> Acted:
        notified = decision.notify_refused and self._notify_refused(state, now)
        if decision.action is Action.ABANDON and state.pending_version is not None:
            try:
                self._secrets.remove_pending(state.arn, state.pending_version)
            except RotationError as error:
                return self._failed(decision, state.name, error, notified)
        return replace(self._rotate(decision, state.name), notified=notified)

    def _rotate(self, decision: Decision, name: str) -> Acted:
        try:
            outcome = self._secrets.rotate(decision.secret_arn).value
        except RotationError as error:
            return self._failed(decision, name, error)
        logger.info(
            "sweep action", extra={**_described(decision), "secret": name, "outcome": outcome}
        )
        return Acted(decision, outcome)

    def _failed(
        self, decision: Decision, name: str, error: RotationError, notified: bool = False
    ) -> Acted:
        outcome = f"failed: {type(error).__name__}"
        logger.warning(
            "sweep action failed; the next run tries again",
            extra={"secret": name, "error_message": str(error)},
        )
        logger.info(
            "sweep action", extra={**_described(decision), "secret": name, "outcome": outcome}
        )
        return Acted(decision, outcome, notified)

    def _notify_refused(self, state: SecretState, now: datetime) -> bool:
        """One notice per refused token: the version is tagged once the notice is out, so a
        later run does not send it again (and sends it if it could not go out)."""
        if state.current_version is None or state.current_expires_at is None:
            return False
        notice = compose_refused(
            state.arn,
            state.name,
            state.current_version,
            state.current_expires_at,
            now,
            id_token=state.holds_id_token,
        )
        try:
            self._publish(notice)
        except RotationError as error:
            logger.warning(
                "sweep could not publish the refused-token notice",
                extra={"secret": state.name, "error_message": str(error)},
            )
            return False
        try:
            self._secrets.tag(state.arn, {REFUSED_VERSION_TAG: state.current_version})
        except RotationError as error:
            logger.warning(
                "sweep could not record the refused-token notice: the next run sends it again",
                extra={"secret": state.name, "error_message": str(error)},
            )
        return True


def _described(decision: Decision) -> dict[str, object]:
    return {
        "action": decision.action.value,
        "reason": decision.reason,
        "urgency": format_timestamp(decision.urgency),
        "notify_refused": decision.notify_refused,
    }
