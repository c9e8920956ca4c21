"""The freshness sweep's rules: what one stack-wide run does for each token secret and for the
stack's own key secret, in which order, and how many rotations it may start.

Pure logic: no AWS, no Google, no clock of its own. A run reads what every managed secret says
about itself (`SecretState`), `decide`s for each, `plan`s the actions earliest expiry first within
`run_budget`, and acts only through RotateSecret, so that Secrets Manager stays the one place that
serialises rotations. The per-secret one-time schedules stay the precise trigger; the sweep is the
repair path that makes every trigger losable (docs/freshness-sweep.md).
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from rotation_core.refresh import refresh_due

SWEEP_INTERVAL: Final = timedelta(minutes=5)
"""template.yaml's FreshnessSweepSchedule: rate(5 minutes), no flexible window."""
SCHEDULE_GRACE: Final = timedelta(minutes=2)
"""How long the precise trigger (the secret's one-time schedule, due a lead before expiry) has
before the sweep steps in. A lost schedule is repaired at most SWEEP_INTERVAL + SCHEDULE_GRACE
(7 minutes) after it should have fired, which a lead of at least 10 minutes (the template's rule)
leaves time for."""
ENTRY_FUNCTION_TIMEOUT: Final = timedelta(seconds=300)
"""template.yaml's RotationEntryFunction Timeout: no step of a rotation runs longer."""
STUCK_MARGIN: Final = timedelta(minutes=2)
STUCK_AFTER: Final = ENTRY_FUNCTION_TIMEOUT + STUCK_MARGIN
"""A pending version older than this belongs to a rotation that stopped (a failed step, a lost
retry): the sweep may drive it. Driving one that still runs costs nothing but calls: Secrets
Manager's re-attempt invokes the entry function again, which attaches to the running execution."""

PACING_WINDOW: Final = timedelta(minutes=4)
"""A run spreads its starts over at most this much of its interval, so that it ends before the
next run begins (the sweep function's Timeout leaves room for the reads around it)."""
SWEEP_SHARE: Final = 0.5
"""The share of each Step Functions refill rate the sweep's rotations may use; the rest is kept
for the rotations the per-secret schedules and retries start."""
LARGE_REGIONS: Final = frozenset({"us-east-1", "us-west-2", "eu-west-1"})


@dataclass(frozen=True)
class ApiQuota:
    """A Step Functions API quota per account and Region: a token bucket of `burst` calls,
    refilled at `refill_per_second`, and how many calls one rotation makes against it."""

    action: str
    burst: int
    refill_per_second: float
    calls_per_rotation: int


DESCRIBE_EXECUTION_CALLS_PER_ROTATION: Final = 10
"""The entry function polls each of a rotation's 4 executions (it starts attempt 1 before it looks
for older attempts): 7.5-11 DescribeExecution calls per rotation on the local cloud's recorder
(`python -m benchmarks.scale`), rounded up; 4 more before the entry started attempt 1 first."""
START_EXECUTION_CALLS_PER_ROTATION: Final = 4
"""One execution per rotation step."""
DESCRIBE_EXECUTION_QUOTA: Final = ApiQuota(
    "DescribeExecution", 250, 10.0, DESCRIBE_EXECUTION_CALLS_PER_ROTATION
)
"""Standard workflows, outside the large Regions. Source: the API-throttling table of AWS's Step
Functions developer guide as last published on GitHub (awsdocs/aws-step-functions-developer-guide,
doc_source/limits-overview.md, 2022-06-28; benchmarks/scale.py names the commit); the current
page's table is unverified."""
DESCRIBE_EXECUTION_QUOTA_LARGE_REGIONS: Final = ApiQuota(
    "DescribeExecution", 300, 15.0, DESCRIBE_EXECUTION_CALLS_PER_ROTATION
)
"""The same in LARGE_REGIONS (us-east-1, us-west-2, eu-west-1)."""
START_EXECUTION_QUOTA: Final = ApiQuota(
    "StartExecution", 800, 150.0, START_EXECUTION_CALLS_PER_ROTATION
)
"""Standard workflows, outside the large Regions; same source."""
START_EXECUTION_QUOTA_LARGE_REGIONS: Final = ApiQuota(
    "StartExecution", 1_300, 300.0, START_EXECUTION_CALLS_PER_ROTATION
)
"""The same in LARGE_REGIONS."""


class Verdict(StrEnum):
    """What Google's tokeninfo said about the AWSCURRENT token during this run."""

    VALID = "valid"
    REFUSED = "refused"
    """An explicit refusal (invalid_token): revoked, its account disabled, its key deleted."""
    UNKNOWN = "unknown"
    """tokeninfo could not answer, or was not asked."""


class Action(StrEnum):
    NOTHING = "nothing"
    ROTATE = "rotate"
    """RotateSecret: a new rotation."""
    DRIVE = "drive"
    """The rotation in progress is stuck: RotateSecret makes Secrets Manager re-attempt it."""
    ABANDON = "abandon"
    """The stuck pending version can never pass (empty or stale value): its AWSPENDING label
    goes, then RotateSecret starts a new rotation."""


class Reason(StrEnum):
    """Why a secret needs a rotation, or why it gets none: short, fixed, counted by the report."""

    NO_TOKEN = "no token yet"
    EXPIRED = "token expired"
    REFUSED = "Google refused the token"
    DUE = "token due and its schedule did not rotate it"
    FRESH = "token fresh"
    DISABLED = "rotation disabled"
    IN_PROGRESS = "rotation in progress"
    STUCK_NOT_DUE = "stuck rotation left to its retries until the token is due"
    KEY_DUE = "service-account key due"
    KEY_REFUSED = "Google refused the service-account key"
    KEY_NOT_DUE = "service-account key not due"
    KEY_STUCK_NOT_DUE = "stuck key rotation left to its retries until the key is due"


@dataclass(frozen=True)
class SecretState:
    """What one managed token secret says about itself, as a run read it."""

    arn: str
    name: str
    rotation_enabled: bool
    current_version: str | None
    current_expires_at: datetime | None
    """None: no token yet (the placeholder), or no readable one."""
    pending_version: str | None
    """AWSPENDING on a version that is not AWSCURRENT: a rotation is in progress."""
    pending_created_at: datetime | None
    lead_seconds: int
    """The secret's resolved refresh lead."""
    verdict: Verdict = Verdict.UNKNOWN
    refused_noticed: bool = False
    """The refused-version status tag already names current_version."""
    pending_fresh: bool | None = None
    """Whether the pending version's value could still become AWSCURRENT: False when it is empty
    or stale (expired, too short-lived, malformed), None when not checked."""
    current_issued_at: datetime | None = None
    """When the token in use was minted, if known: its schedule is never due sooner than
    MIN_VERSION_INTERVAL after that (refresh.refresh_due)."""
    holds_id_token: bool = False
    """The token in use is an ID token: Google's verdict comes from its certificates."""


@dataclass(frozen=True)
class Decision:
    secret_arn: str
    action: Action
    reason: str
    """One of Reason's texts."""
    urgency: datetime
    """When the secret stops (or stopped) holding a token Google accepts: the token's expiry, or
    the run's now for a missing or refused one. Earliest is acted on first."""
    notify_refused: bool = False
    """The token in use was refused while it had not expired, and no notice said so yet."""


def decide(state: SecretState, now: datetime) -> Decision:
    """One secret's action this run. A rotation in progress is never doubled: a young one is left
    alone, a stuck one is driven (or its hopeless pending version abandoned) once the token needs
    replacing."""
    need = _need(state, now)
    action, reason = _action(state, now, need)
    notify = action is not Action.NOTHING and need is Reason.REFUSED and not state.refused_noticed
    return Decision(state.arn, action, reason, _urgency(state, now, need), notify)


def asks_google(state: SecretState, now: datetime) -> bool:
    """Whether Google's verdict on the token in use could change this run's decision: tokeninfo
    is asked about those secrets only (not about one rotated anyway, nor one left alone)."""
    unknown = decide(replace(state, verdict=Verdict.UNKNOWN), now).action
    return decide(replace(state, verdict=Verdict.REFUSED), now).action is not unknown


@dataclass(frozen=True)
class KeyState:
    """What the stack's own key secret says about its key, as a run read it (never the key)."""

    arn: str
    rotation_enabled: bool
    due_at: datetime
    """When the key must next be replaced (key_rotation.KeyStatus.due_at)."""
    valid_before: datetime | None
    """When Google stops accepting the key; None: no key-expiry policy."""
    refused: bool
    """A rotation found Google refusing the key in AWSCURRENT and did not replace it yet."""
    pending_version: str | None
    pending_created_at: datetime | None


NEVER: Final = datetime.max.replace(tzinfo=UTC)
"""The urgency of a key without expiry: the last to start when a run's budget runs out."""


def decide_key(state: KeyState, now: datetime) -> Decision:
    """The key secret's action this run: RotateSecret once the key is due or Google refused it,
    a stuck key rotation driven as a token's is, a young one left alone."""
    if state.refused:
        need: Reason | None = Reason.KEY_REFUSED
    else:
        need = Reason.KEY_DUE if state.due_at <= now else None
    urgency = now if state.refused else (state.valid_before or NEVER)
    if not state.rotation_enabled:
        return Decision(state.arn, Action.NOTHING, Reason.DISABLED, urgency)
    if state.pending_version is None:
        action = Action.NOTHING if need is None else Action.ROTATE
        return Decision(state.arn, action, need or Reason.KEY_NOT_DUE, urgency)
    created = state.pending_created_at
    if created is not None and now - created < STUCK_AFTER:
        return Decision(state.arn, Action.NOTHING, Reason.IN_PROGRESS, urgency)
    if need is None:
        return Decision(state.arn, Action.NOTHING, Reason.KEY_STUCK_NOT_DUE, urgency)
    return Decision(state.arn, Action.DRIVE, need, urgency)


def days_left(due_at: datetime, now: datetime) -> float:
    """Days from now until `due_at`, negative once it has passed: the key's metric."""
    return (due_at - now) / timedelta(days=1)


def plan(decisions: Iterable[Decision], budget: int) -> tuple[list[Decision], list[Decision]]:
    """(started, deferred): the decisions that act, earliest urgency first (then by ARN, so a
    run is reproducible), the first `budget` of them started this run and the rest deferred to
    the next. Decisions to do nothing are in neither list."""
    if budget < 0:
        raise ValueError(f"the budget is a number of rotations, at least 0; got {budget}")
    acting = sorted(
        (d for d in decisions if d.action is not Action.NOTHING),
        key=lambda d: (d.urgency, d.secret_arn),
    )
    return acting[:budget], acting[budget:]


def quotas(region: str | None = None) -> tuple[ApiQuota, ...]:
    """The quotas a rotation spends, in `region` (None: the lower figures of other Regions)."""
    if region in LARGE_REGIONS:
        return (DESCRIBE_EXECUTION_QUOTA_LARGE_REGIONS, START_EXECUTION_QUOTA_LARGE_REGIONS)
    return (DESCRIBE_EXECUTION_QUOTA, START_EXECUTION_QUOTA)


def run_budget(region: str | None = None, share: float = SWEEP_SHARE) -> int:
    """Rotations one run may start: its rotations' calls, spread over PACING_WINDOW, use at most
    `share` of each quota's refill, so over one interval the entry functions stay under the
    refill rates with the rest left to the schedules. 120 outside the large Regions, 180 in them
    (DescribeExecution binds)."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be above 0 and at most 1, got {share}")
    window = PACING_WINDOW.total_seconds()
    return min(
        math.floor(q.refill_per_second * share * window / q.calls_per_rotation)
        for q in quotas(region)
    )


def start_spacing(region: str | None = None, share: float = SWEEP_SHARE) -> timedelta:
    """The pause between two starts of a run, so that at every moment (not only on average) its
    rotations call each API at most `share` of its refill rate: 2 s outside the large Regions,
    1.33 s in them."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be above 0 and at most 1, got {share}")
    return timedelta(
        seconds=max(q.calls_per_rotation / (q.refill_per_second * share) for q in quotas(region))
    )


@dataclass(frozen=True)
class Freshness:
    """The stack's freshness as the run saw it, for its per-stack metrics."""

    least_seconds_left: int | None
    """The least remaining life of any managed token, 0 for a missing or refused one; None when
    the stack manages no secret."""
    without_valid_token: int
    """Secrets whose token is missing, expired or refused."""


def freshness(states: Iterable[SecretState], now: datetime) -> Freshness:
    lefts = [_seconds_left(state, now) for state in states]
    return Freshness(min(lefts, default=None), sum(left == 0 for left in lefts))


def _seconds_left(state: SecretState, now: datetime) -> int:
    expires = state.current_expires_at
    if expires is None or state.verdict is Verdict.REFUSED:
        return 0
    return max(0, math.floor((expires - now).total_seconds()))


def _need(state: SecretState, now: datetime) -> Reason | None:
    """Why the token in use must be replaced now, if it must."""
    expires = state.current_expires_at
    if expires is None:
        return Reason.NO_TOKEN
    if expires <= now:
        return Reason.EXPIRED
    if state.verdict is Verdict.REFUSED:
        return Reason.REFUSED
    if now >= _schedule_due(state, expires) + SCHEDULE_GRACE:
        return Reason.DUE
    return None


def _action(state: SecretState, now: datetime, need: Reason | None) -> tuple[Action, Reason]:
    if not state.rotation_enabled:
        # RotateSecret would switch rotation back on: an operator turned it off.
        return Action.NOTHING, Reason.DISABLED
    if state.pending_version is None:
        return (Action.NOTHING, Reason.FRESH) if need is None else (Action.ROTATE, need)
    created = state.pending_created_at
    if created is not None and now - created < STUCK_AFTER:
        return Action.NOTHING, Reason.IN_PROGRESS
    if need is None:
        return Action.NOTHING, Reason.STUCK_NOT_DUE
    return (Action.ABANDON if state.pending_fresh is False else Action.DRIVE), need


def _schedule_due(state: SecretState, expires: datetime) -> datetime:
    """The latest moment the secret's own schedule fires (its successor may be due sooner)."""
    if state.current_issued_at is None:
        return expires - timedelta(seconds=state.lead_seconds)
    return refresh_due(state.current_issued_at, expires, state.lead_seconds)


def _urgency(state: SecretState, now: datetime, need: Reason | None) -> datetime:
    expires = state.current_expires_at
    if expires is None or need is Reason.REFUSED:
        return now
    return expires
