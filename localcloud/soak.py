"""The freshness soak: does an application that reads AWSCURRENT at any moment get a token Google
accepts, over many token lifetimes of faults?

Time is simulated, not shortened: the local cloud's clock (shared by the Google emulator, the
workers' handlers and the local scheduler) jumps minute by minute, while every rotation runs in
real time at its real speed. Tokens keep their real 1-hour life and the template its real
settings (but two waits of the workers: a 1 s Google timeout, and a 0.05 s first poll of each
step's execution); only the idle minutes between events are skipped, so a week passes in minutes.

Each simulated minute the driver injects the faults that are due, lets the local scheduler fire
what is due (the freshness sweep every 5 minutes, the expiry-driven schedules and Secrets
Manager's own schedule, each a real RotateSecret or Lambda invocation), then moves the clock to a
random second of the minute and reads the token as an application does: GetSecretValue with no
VersionStage. Every token read is checked with the emulator's tokeninfo rules on the shared clock.
Besides Google's and AWS's failures, the faults are what operators and Google do in real life:
schedules deleted, the token revoked, the key rolled over, console runs and rotate-secret calls.

Sources with a service-account key renew that key every simulated day (KeyRotationDays=1) under an
organisation's key-expiry policy, and each minute the driver also looks at the key secret and at
Google's keys: the key in AWSCURRENT works unless a fault hit it, it never outlives its
validBeforeTime, the stack holds at most two keys at Google, and the key is renewed at least daily.
The key's own faults: deleted or disabled behind the rotation's back, Google's 10-key limit filled
by someone else for a while, and crashes of the key's rotation steps.
"""

import bisect
import contextlib
import dataclasses
import itertools
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import urllib3
from botocore.exceptions import ClientError
from moto.backends import get_backend

from localcloud import faults, operations
from localcloud.cloud import ACCOUNT_ID, REGION, LocalCloud
from localcloud.demo import DEMO_PARAMETERS
from localcloud.deployment import Deployment
from localcloud.google_emulator import ServiceAccountKey
from localcloud.google_keys import MAX_KEYS_PER_ACCOUNT
from localcloud.scheduler import LAMBDA_INVOKE, Firing, LocalScheduler

MINUTE: Final = 60
TICK_SECONDS: Final = MINUTE
"""One read per simulated minute, and the scheduler looks as often (it fires within a minute)."""
DEFAULT_LEAD_SECONDS: Final = 900
RECOVERY_SECONDS: Final = 17 * MINUTE
"""After a blocking fault ends: at most one capped backoff (15 min) and one rotation (2 min)."""
LONG_HANG_SECONDS: Final = 3.0
KEY_SOURCE: Final = "service-account-key"
IMPERSONATION_SOURCE: Final = "impersonation"
FEDERATION_SOURCE: Final = "workload-identity-federation"
SOURCES: Final = (KEY_SOURCE, IMPERSONATION_SOURCE, FEDERATION_SOURCE)
ROUTES_OF: Final = {
    KEY_SOURCE: ("/token", "/tokeninfo"),
    IMPERSONATION_SOURCE: ("/token", "/generateAccessToken", "/tokeninfo"),
    FEDERATION_SOURCE: ("/sts", "/generateAccessToken", "/tokeninfo"),
}
"""The Google routes each source's rotation calls, the one that mints first."""
TOKENINFO_ROUTE: Final = "/tokeninfo"
"""Google's verifier: while it is down Google still mints (impersonation and federation, which
ask it for the client id, take the stored one), and the unverified promotion must keep the token
valid."""
SOAK_AUDIENCE: Final = (
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/soak/"
    "providers/aws"
)
WORKER_GOOGLE_TIMEOUT_SECONDS: Final = 1.0
ENTRY_FIRST_POLL_SECONDS: Final = "0.05"
"""The entry function's first look at the execution it started, in place of the template's 0.25 s:
a local step ends well within that, and a soak runs hundreds of them. It only shortens each
rotation's real (so simulated) time by the sleep a step no longer needs."""
TOKEN_SECRET_PLACEHOLDER: Final = '{"GOOGLE_ACCESS_TOKEN": ""}'
"""rotation_core.token_secret.PLACEHOLDER: the value a token secret is created with."""
ID_TOKEN_SECRET: Final = "id-token"
"""The last part of the name of the ID-token secret the soak keeps beside the access-token one,
for a Cloud Run service of the emulator that every read of it calls."""
TOKENINFO_OUTAGE_SECONDS: Final = 2 * 3600
"""tokeninfo unreachable for 2 hours while the token endpoint keeps minting (issue 17)."""
OLD_KEY_DELETED_AFTER_SECONDS: Final = 5 * MINUTE
"""An operator's key rollover: the new key stored, the old one deleted at Google this much later."""
GROUP_RECREATED_AFTER_MINUTES: Final = (5, 30)
"""A deleted refresh schedule group comes back, empty, this many minutes later (drawn), as in a
stack update that replaces it: every schedule in it is gone. Until it is back no per-secret
schedule can be written: a rotation then promotes its token and fails to schedule the next one
(a "next refresh not scheduled" notice, at most hourly), and only the sweep and the 4-hour
backstop rotate. It may come at any moment, a failure streak's end included."""
REVOCATION_GAP_LIMIT_SECONDS: Final = 10 * MINUTE
"""From a revocation to the first valid read after it, at most: one sweep interval (5 min), one
rotation, and the minute to the next read (issue 17: "within one sweep interval plus one
rotation")."""
MIN_REMAINING_SECONDS: Final = DEFAULT_LEAD_SECONDS
"""MIN_REMAINING_SECONDS as template.yaml derives it from RefreshLeadSeconds: a pending token with
less is stale, and may be dropped."""
SWEEP_PERIOD_SECONDS: Final = 5 * MINUTE
"""template.yaml's FreshnessSweepSchedule: rate(5 minutes)."""
FAILURE_NOTICES: Final = ("Google token rotation failed", "Google token rotation still failing")
"""How a failing streak's notices begin: its first, and its hourly reminders."""
NOTICE_STAMP_SLACK_SECONDS: Final = 30
"""How much later than it was sent the driver may stamp a notice (the rest of the firing that
sent it); the hourly rule is checked with this much slack."""
STREAK_ENDS: Final = ("Google token rotation recovered", "promoted an unverified token")
"""The one notice that ends a streak."""
UNSCHEDULED_NOTICE: Final = "Google token rotated, next refresh not scheduled"
"""A rotation that succeeded but could not schedule its successor: at most hourly per secret, and
part of no streak."""
KEY_REFUSED_TAG: Final = "token-rotation:key-refused"
"""The key secret's tag while a rotation replaces a key Google refused: the product's own
(rotation_core.key_rotation, which runs in the workers; tests/localcloud/test_soak.py checks that
they agree)."""
STACK_KEYS: Final = 2
"""The stack's keys at Google: the key in use and the standby."""
REPLACING_REFUSED_KEYS: Final = 3
"""While a rotation replaces a key Google refused: that key (AWSCURRENT, never deleted while it
holds the label), the standby that works, and the new key; finishSecret deletes the refused one."""
KEY_ROTATION_DAYS: Final = "1"
"""The soak's KeyRotationDays: a key renewal every simulated day."""
KEY_EXPIRY_HOURS: Final = (30, 60)
"""The organisation's key-expiry policy, drawn per seed: a key is renewed min(1 day, 3/4 of its
life) after the last renewal (the margin is a quarter of its life), so below 32 hours the margin
rule sets the pace (a 30-hour key: every 22.5 h), above it the daily schedule does; and the
standby (AWSPREVIOUS) outlives the next renewal only from 48 hours on, so a key fault meets a
standby that still works sometimes, and sometimes none."""
KEY_PROPAGATION_SECONDS: Final = 5.0
"""A new key works at Google this long after keys.create: testSecret's first mint is refused
and its NewKeyNotYetAccepted Retry waits (on the simulated clock) until Google accepts it."""
KEY_LIMIT_MINUTES: Final = (30, 120)
"""How long someone else's keys fill the account up to Google's 10-key limit."""
DAY_SECONDS: Final = 86400
OPERATOR_NEW_KEY_MINUTES: Final = (20, 60)
"""A key deleted with no standby that works stops every mint: the operator, notified, stores a
new key this long after (drawn)."""


class FaultKind(StrEnum):
    GOOGLE_STORM = "google storm"
    GOOGLE_OUTAGE = "google outage"
    GOOGLE_HANG = "google hang"
    KEY_DISABLED = "key disabled"
    AWS_THROTTLING = "aws throttling"
    CRASH_AFTER_PUT = "crash after PutSecretValue"
    CRASH_AFTER_STAGE_MOVE = "crash after the stage move"
    TOKENINFO_OUTAGE = "tokeninfo outage"
    SCHEDULE_DELETED = "refresh schedule deleted"
    GROUP_DELETED = "refresh schedule group deleted"
    TOKEN_REVOKED = "token revoked at Google"
    KEY_ROLLED_OVER = "key rolled over"
    MANUAL_RUN = "console run"
    ROTATE_SECRET_CALL = "rotate-secret call"
    KEY_DELETED = "key deleted at Google"
    KEY_LIMIT = "10-key limit filled by someone else"
    KEY_CRASH_AFTER_PUT = "crash after the new key's PutSecretValue"
    KEY_CRASH_AFTER_STAGE_MOVE = "crash after the key's stage move"


BLOCKING: Final = frozenset(
    {FaultKind.GOOGLE_STORM, FaultKind.GOOGLE_OUTAGE, FaultKind.KEY_DISABLED}
)
"""Faults that stop every rotation while they last (the others hit one attempt); on
/tokeninfo only verification stops, which the unverified promotion gets past."""
GOOGLE_ANSWERS: Final = frozenset(
    {FaultKind.GOOGLE_STORM, FaultKind.GOOGLE_OUTAGE, FaultKind.TOKENINFO_OUTAGE}
)
GOOGLE_SIDE: Final = BLOCKING | {FaultKind.GOOGLE_HANG, FaultKind.TOKENINFO_OUTAGE}
"""Faults that keep Google from answering: revocations are planned clear of
them (quiet_spans)."""
KEY_CRASHES: Final = frozenset(
    {FaultKind.KEY_CRASH_AFTER_PUT, FaultKind.KEY_CRASH_AFTER_STAGE_MOVE}
)
"""Crashes of the key secret's rotation: they wait for its next rotation, beside the token's."""
KEY_HITS: Final = frozenset({FaultKind.KEY_DISABLED, FaultKind.KEY_DELETED})
"""Faults that make Google refuse the key in AWSCURRENT, behind the rotation's back."""
KEYED: Final = frozenset({FaultKind.KEY_ROLLED_OVER, FaultKind.KEY_LIMIT}) | KEY_HITS | KEY_CRASHES
"""Faults on a service-account key: none for keyless federation."""
STORM_ANSWERS: Final = (500, 502, 503, 429, "reset")
_PER_DAY: Final = {
    FaultKind.GOOGLE_STORM: 4.0,
    FaultKind.GOOGLE_HANG: 1.0,
    FaultKind.AWS_THROTTLING: 2.0,
    FaultKind.CRASH_AFTER_PUT: 1.0,
    FaultKind.CRASH_AFTER_STAGE_MOVE: 1.0,
}
_PER_WEEK: Final = {FaultKind.GOOGLE_OUTAGE: 1.0, FaultKind.KEY_DISABLED: 1.0}
_KEY_FAULTS_PER_WEEK: Final = {
    FaultKind.KEY_DELETED: 2.0,
    FaultKind.KEY_LIMIT: 1.0,
    FaultKind.KEY_CRASH_AFTER_PUT: 2.0,
    FaultKind.KEY_CRASH_AFTER_STAGE_MOVE: 2.0,
}
"""The key's own faults, a week: each at least once in any run."""
EVENTS_PER_DAY: Final = {
    FaultKind.SCHEDULE_DELETED: 2.0,
    FaultKind.TOKEN_REVOKED: 1.0,
    FaultKind.MANUAL_RUN: 3.0,
    FaultKind.ROTATE_SECRET_CALL: 3.0,
}
"""What operators and Google do between the rotations, a day: each at least once in any run."""
EVENTS_PER_WEEK: Final = {
    FaultKind.TOKENINFO_OUTAGE: 1.0,
    FaultKind.GROUP_DELETED: 1.0,
    FaultKind.KEY_ROLLED_OVER: 2.0,
}
"""The same, a week."""
EVENTS: Final = frozenset(EVENTS_PER_DAY) | frozenset(EVENTS_PER_WEEK)
QUIET_EVENTS: Final = (FaultKind.TOKEN_REVOKED,)
"""Planned last, at moments clear of Google's faults (quiet_spans)."""


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    at: float
    """Simulated epoch seconds."""
    seconds: float = 0.0
    """How long it lasts; 0 for a fault that hits the next attempt only."""
    route: str = "/token"
    answer: int | str = 503
    times: int = 1
    standby_until: float | None = None
    """A key fault (KEY_HITS), as injected: until when the standby in AWSPREVIOUS works at
    Google (-math.inf: there was none that worked); None for other faults."""

    @property
    def until(self) -> float:
        return self.at + self.seconds

    def describe(self) -> str:
        minutes = f"{self.seconds / MINUTE:.0f} min"
        lasting = f" for {minutes}" if self.seconds else ""
        if self.kind is FaultKind.KEY_ROLLED_OVER:
            lasting = f" (the old key deleted at Google {minutes} later)"
        elif self.kind is FaultKind.GROUP_DELETED:
            lasting = f" (recreated empty {minutes} later)"
        elif self.kind is FaultKind.KEY_DELETED:
            lasting = ""
        if self.standby_until == -math.inf:
            lasting += ", no standby key that works"
            if self.kind is FaultKind.KEY_DELETED:
                lasting += f" (a new key stored {minutes} later)"
        target = f" on {self.route} ({self.answer})" if self.kind in GOOGLE_ANSWERS else ""
        return f"{self.kind}{target}{lasting}"


def plan_faults(
    rng: random.Random, start: float, end: float, routes: tuple[str, ...] = ("/token", "/tokeninfo")
) -> list[Fault]:
    """Faults drawn at random times: short storms of every kind Google answers, hangs, AWS
    throttling, crashes at the worst moments, and longer outages (Google down, the key disabled).
    At least one of each, however short the run. `routes` are the Google routes the source
    calls, the one that mints first."""
    days = (end - start) / 86400
    planned: list[Fault] = []

    def when(margin: float = 0.0) -> float:
        # Before the run's last tick: a fault planned after it would never be injected.
        latest = end - margin - TICK_SECONDS
        return rng.uniform(start + 10 * MINUTE, max(start + 10 * MINUTE, latest))

    for kind, rate in _PER_DAY.items():
        for _ in range(max(1, round(rate * days))):
            if kind is FaultKind.GOOGLE_STORM:
                planned.append(
                    Fault(
                        kind,
                        when(),
                        seconds=rng.randint(1, 8) * MINUTE,
                        route=rng.choice(routes),
                        answer=rng.choice(STORM_ANSWERS),
                    )
                )
            elif kind is FaultKind.GOOGLE_HANG:
                planned.append(Fault(kind, when(), route=rng.choice(routes)))
            elif kind is FaultKind.AWS_THROTTLING:
                planned.append(Fault(kind, when(), times=rng.randint(1, 4)))
            else:
                planned.append(Fault(kind, when()))
    for kind, rate in _PER_WEEK.items():
        for _ in range(max(1, round(rate * days / 7))):
            # An hour or more, up to 2.5 hours in a week (shorter runs, shorter outages).
            longest = max(60, min(150, round(6 * days * 24)))
            seconds = rng.randint(60, longest) * MINUTE
            # Google unreachable (connections reset), or the key disabled (invalid_grant).
            answer = "reset" if kind is FaultKind.GOOGLE_OUTAGE else "invalid_grant"
            planned.append(
                Fault(kind, when(seconds), seconds=seconds, route=routes[0], answer=answer)
            )
    planned += plan_events(rng, start, end, planned)
    for kind, rate in _KEY_FAULTS_PER_WEEK.items():
        for _ in range(max(1, round(rate * days / 7))):
            seconds = 0
            if kind is FaultKind.KEY_LIMIT:
                seconds = rng.randint(*KEY_LIMIT_MINUTES) * MINUTE
            elif kind is FaultKind.KEY_DELETED:
                # Only without a standby that works: when the operator, notified, stores a new key.
                seconds = rng.randint(*OPERATOR_NEW_KEY_MINUTES) * MINUTE
            planned.append(Fault(kind, when(seconds), seconds=seconds))
    return sorted(planned, key=lambda fault: fault.at)


def plan_events(rng: random.Random, start: float, end: float, faults_: list[Fault]) -> list[Fault]:
    """What operators and Google do at random moments, around the planned `faults_`: schedules
    and the schedule group deleted, tokeninfo unreachable for 2 hours, the key rolled over,
    console runs and rotate-secret calls, and the token in use revoked; a revocation at a quiet
    moment (see `quiet_spans`). At least one of each, however short the run, except a revocation
    in a run with no quiet moment left."""
    days = (end - start) / 86400
    planned: list[Fault] = []
    earliest = start + 10 * MINUTE

    def when(margin: float = 0.0) -> float:
        # Before the run's last tick: a fault planned after it would never be injected.
        return rng.uniform(earliest, max(earliest, end - margin - TICK_SECONDS))

    per_day = {**EVENTS_PER_DAY, **{kind: rate / 7 for kind, rate in EVENTS_PER_WEEK.items()}}
    quiet_ones = {kind: per_day.pop(kind) for kind in QUIET_EVENTS}
    for kind, rate in per_day.items():
        for _ in range(max(1, round(rate * days))):
            if kind is FaultKind.TOKENINFO_OUTAGE:
                seconds = TOKENINFO_OUTAGE_SECONDS
                at = when(seconds)
                planned.append(
                    Fault(kind, at, seconds=seconds, route=TOKENINFO_ROUTE, answer="reset")
                )
            elif kind is FaultKind.KEY_ROLLED_OVER:
                planned.append(Fault(kind, when(), seconds=OLD_KEY_DELETED_AFTER_SECONDS))
            elif kind is FaultKind.GROUP_DELETED:
                seconds = rng.randint(*GROUP_RECREATED_AFTER_MINUTES) * MINUTE
                planned.append(Fault(kind, when(seconds), seconds=seconds))
            else:
                planned.append(Fault(kind, when()))
    # Last, around everything else on Google's side.
    for kind, rate in quiet_ones.items():
        for _ in range(max(1, round(rate * days))):
            clear_for = float(REVOCATION_GAP_LIMIT_SECONDS)
            quiet = quiet_spans([*faults_, *planned], earliest, end - clear_for, clear_for)
            if quiet:
                planned.append(Fault(kind, _uniform_within(rng, quiet)))
    return planned


def quiet_spans(
    faults_: list[Fault], start: float, end: float, clear_for: float
) -> list[tuple[float, float]]:
    """The moments in [start, end] that meet no fault on Google's side in the `clear_for`
    seconds after them, nor one that ended less than a recovery before them (the retry chain
    may still be backing off). A revocation there measures the sweep, not an outage that hides
    the refusal or stops the replacement."""
    busy = sorted(
        (fault.at - clear_for, fault.until + RECOVERY_SECONDS)
        for fault in faults_
        if fault.kind in GOOGLE_SIDE
    )
    spans = []
    free_from = start
    for begin, finish in busy:
        if begin > free_from:
            spans.append((free_from, min(begin, end)))
        free_from = max(free_from, finish)
    spans.append((free_from, end))
    return [(begin, finish) for begin, finish in spans if finish > begin]


def _uniform_within(rng: random.Random, spans: list[tuple[float, float]]) -> float:
    """A moment drawn uniformly from the union of disjoint `spans`."""
    left = rng.uniform(0, sum(finish - begin for begin, finish in spans))
    for begin, finish in spans:
        if left <= finish - begin:
            return begin + left
        left -= finish - begin
    return spans[-1][1]


@dataclass(frozen=True)
class Read:
    at: float
    version_id: str
    valid: bool
    remaining: float
    """Simulated seconds of life the token had left when it was read (negative: expired)."""


@dataclass
class SoakResult:
    seed: int
    lifetimes: int
    lead_seconds: int
    reads: list[Read] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    notices: list[tuple[float, str]] = field(default_factory=list)
    rotations: int = 0
    promotions: list[float] = field(default_factory=list)
    """When a new version was seen AWSCURRENT (simulated epoch seconds)."""
    failed_executions: int = 0
    excused: list[tuple[float, float, Fault]] = field(default_factory=list)
    firings: Counter[str] = field(default_factory=Counter)
    """What the local scheduler fired, by kind: expiry-driven schedules, the 4-hour backstop."""
    wall_seconds: float = 0.0
    revocations: list[float] = field(default_factory=list)
    """When the driver revoked the token applications read (simulated epoch seconds)."""
    sweeps: list[Firing] = field(default_factory=list)
    """The freshness sweep's firings."""
    operators: Counter[str] = field(default_factory=Counter)
    """How operators' console runs and rotate-secret calls ended."""
    live_pending_dropped: list[float] = field(default_factory=list)
    """When a pending version Google would still accept was found dropped unpromoted: a second
    rotation started while one was in progress."""
    id_secret_name: str | None = None
    """The ID-token secret beside the access-token one (None: a run without it)."""
    key_secret_name: str | None = None
    """The key secret, whose own rotations notify as a token secret's do."""
    id_reads: list[Read] = field(default_factory=list)
    """Reads of the ID-token secret; valid: the Cloud Run service accepted its token."""
    id_promotions: list[float] = field(default_factory=list)
    id_excused: list[tuple[float, float, Fault]] = field(default_factory=list)
    """The blocking faults that outlived the ID token in use (as `excused` for the other)."""
    lead_spent: list[tuple[float, float, Fault]] = field(default_factory=list)
    """The mint outages that ended with the token in use inside its lead (`lead_spent_outages`)."""
    id_lead_spent: list[tuple[float, float, Fault]] = field(default_factory=list)
    key_expiry_hours: float | None = None
    """The key-expiry policy of a run whose key renews itself (None: a keyless run)."""
    key_promotions: list[float] = field(default_factory=list)
    """When the key secret's rotation promoted a new key (not the driver's own puts)."""
    key_creates: int = 0
    """keys.create calls Google answered with a key."""
    stack_keys: list[tuple[float, int, bool]] = field(default_factory=list)
    """Each minute: how many keys of the stack's account Google holds, someone else's left out,
    and whether a rotation was replacing a key Google refused (tag token-rotation:key-refused)."""
    key_refused_current: list[float] = field(default_factory=list)
    """Minutes at which Google refused the key in AWSCURRENT though no fault had hit that key."""
    key_expired_current: list[float] = field(default_factory=list)
    """Minutes at which the key in AWSCURRENT was past its validBeforeTime."""

    def counted(self) -> list[Read]:
        """Reads outside the reported outages (faults that outlived the token in use) and
        outside the gaps after a revocation (reported, and bounded, apart)."""
        gaps = self.revocation_gaps()
        return [
            read
            for read in self.reads
            if not self._excused(read.at) and not any(begin <= read.at < end for begin, end in gaps)
        ]

    def revocation_gaps(self) -> list[tuple[float, float]]:
        """Each revocation with the moment of the first valid read after it (infinity: none):
        the reads between got the revoked token, as nothing can notice a revocation sooner
        than the sweep asks Google."""
        valid = [read.at for read in self.reads if read.valid]
        gaps = []
        for revoked in self.revocations:
            after = bisect.bisect_left(valid, revoked)
            gaps.append((revoked, valid[after] if after < len(valid) else math.inf))
        return gaps

    def _excused(self, at: float) -> bool:
        return _within(self.excused, at)

    def percentile_remaining(self, fraction: float) -> float:
        """Of the counted reads outside tokeninfo outages (see `verification_line`) and outside
        the mint outages that spent the lead (see `lead_spent_line`)."""
        remaining = sorted(
            read.remaining
            for read in self.counted()
            if not self._unverifiable(read.at) and not _within(self.lead_spent, read.at)
        )
        if not remaining:
            return math.nan
        return remaining[min(len(remaining) - 1, int(fraction * len(remaining)))]

    def broken_invariants(self) -> list[str]:
        counted = self.counted()
        broken = []
        invalid = [read for read in counted if not read.valid]
        if invalid:
            first = invalid[0]
            broken.append(
                f"{len(invalid)} reads outside reported outages got a token Google refuses "
                f"(first at +{(first.at - self.reads[0].at) / 3600:.2f} h)"
            )
        if len(self.reads) < self.lifetimes * 60:
            broken.append(f"only {len(self.reads)} reads: at least one per simulated minute")
        if self.percentile_remaining(0.001) < self.lead_seconds / 2:
            broken.append(
                f"p0.1 remaining {self.percentile_remaining(0.001):.0f} s is below half the "
                f"lead ({self.lead_seconds / 2:.0f} s)"
            )
        # Each secret has its streaks of its own: the token secrets and the key secret.
        by_secret: dict[str, list[tuple[float, str]]] = {}
        for notice in self.notices:
            by_secret.setdefault(_named_secret(notice[1]), []).append(notice)
        for name, notices in by_secret.items():
            promotions = (
                self.id_promotions
                if name == self.id_secret_name
                else None
                if name == self.key_secret_name
                else self.promotions
            )
            storm = _notice_storm(notices, promotions)
            if storm:
                broken.append(storm)
        broken.extend(self._id_token_trouble())
        for revoked, replaced in self.revocation_gaps():
            if replaced == math.inf:
                broken.append(
                    f"the token revoked at +{self._hours(revoked):.2f} h was never replaced"
                )
            elif replaced - revoked > REVOCATION_GAP_LIMIT_SECONDS:
                broken.append(
                    f"the token revoked at +{self._hours(revoked):.2f} h was still read "
                    f"{(replaced - revoked) / MINUTE:.1f} min later (at most "
                    f"{REVOCATION_GAP_LIMIT_SECONDS / MINUTE:.0f})"
                )
        sweep = self._sweep_trouble()
        if sweep:
            broken.append(sweep)
        broken.extend(self._key_trouble())
        if self.live_pending_dropped:
            broken.append(
                f"{len(self.live_pending_dropped)} rotations in progress were replaced by another "
                f"(a live pending version dropped, first at "
                f"+{self._hours(self.live_pending_dropped[0]):.2f} h)"
            )
        return broken

    def _hours(self, at: float) -> float:
        return (at - self.reads[0].at) / 3600 if self.reads else 0.0

    def _key_trouble(self) -> list[str]:
        """The key's promises in a run whose key renews itself: at most two of the stack's keys
        at Google, the key in AWSCURRENT accepted unless a fault hit it and never expired, and a
        renewal at least every day (plus a recovery and the faults that stop rotations)."""
        if self.key_expiry_hours is None or not self.reads:
            return []
        trouble = []
        over = [
            (at, count)
            for at, count, replacing in self.stack_keys
            if count > (REPLACING_REFUSED_KEYS if replacing else STACK_KEYS)
        ]
        if over:
            trouble.append(
                f"the stack held {max(count for _, count in over)} keys at Google (at most "
                f"{STACK_KEYS}; {REPLACING_REFUSED_KEYS} while replacing a key Google refused), "
                f"first at +{self._hours(over[0][0]):.2f} h"
            )
        for moments, what in (
            (self.key_refused_current, "Google refused the key in AWSCURRENT, no fault on it"),
            (self.key_expired_current, "the key in AWSCURRENT was past its validBeforeTime"),
        ):
            if moments:
                trouble.append(
                    f"{what}: {len(moments)} minutes, first at +{self._hours(moments[0]):.2f} h"
                )
        late = self._late_key_renewal()
        if late:
            trouble.append(late)
        return trouble

    def _late_key_renewal(self) -> str | None:
        """A day between two renewals (the run's start and end count as ones), plus a recovery
        and the time faults stopped rotations in between."""
        begun, ended = self.reads[0].at, self.reads[-1].at
        marks = [begun, *self.key_promotions, ended]
        for before, after in itertools.pairwise(marks):
            stopped = sum(
                max(0.0, min(fault.until, after) - max(fault.at, before))
                for fault in self.faults
                if fault.kind in BLOCKING | {FaultKind.KEY_LIMIT}
            )
            if after - before > DAY_SECONDS + RECOVERY_SECONDS + stopped:
                return (
                    f"the key went {(after - before) / 3600:.1f} h without a renewal from "
                    f"+{self._hours(before):.2f} h (at most a day)"
                )
        return None

    def key_line(self) -> str:
        """The key's figures: renewals, keys at Google, its faults (keyless: none)."""
        if self.key_expiry_hours is None:
            return "service-account key: none (keyless)"
        kinds = Counter(str(fault.kind) for fault in self.faults if fault.kind in KEYED)
        faults_ = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        covered = sum(
            fault.kind in KEY_HITS and fault.standby_until != -math.inf for fault in self.faults
        )
        most = max((count for _, count, _ in self.stack_keys), default=0)
        third = sum(count > STACK_KEYS for _, count, _ in self.stack_keys)
        return (
            f"key: policy {self.key_expiry_hours:g} h, key rotations {len(self.key_promotions)} "
            f"({self.key_creates} keys.create), keys max {most} ({third} min above "
            f"{STACK_KEYS}), "
            f"AWSCURRENT refused {len(self.key_refused_current)} min unexplained, "
            f"expired {len(self.key_expired_current)} min; faults: {faults_ or 'none'} "
            f"({covered} hits with a standby that worked)"
        )

    def _names_id_secret(self, subject: str) -> bool:
        """Notices name their secret at the end of the subject, in parentheses."""
        return self.id_secret_name is not None and f"({self.id_secret_name})" in subject

    def id_counted(self) -> list[Read]:
        """ID-token reads outside the outages that outlived the ID token in use."""
        return [read for read in self.id_reads if not _within(self.id_excused, read.at)]

    def _id_token_trouble(self) -> list[str]:
        """The promise for the ID-token secret: every counted read gets a token the Cloud Run
        service accepts, with half the lead to spare at p0.1 (no tokeninfo in its way)."""
        if self.id_secret_name is None:
            return []
        counted = self.id_counted()
        trouble = []
        refused = [read for read in counted if not read.valid]
        if refused:
            trouble.append(
                f"{len(refused)} ID-token reads outside reported outages got a token Cloud Run "
                f"refuses (first at +{self._hours(refused[0].at):.2f} h)"
            )
        if len(self.id_reads) < self.lifetimes * 60:
            trouble.append(f"only {len(self.id_reads)} ID-token reads: one per simulated minute")
        remaining = sorted(
            read.remaining for read in counted if not _within(self.id_lead_spent, read.at)
        )
        p01 = remaining[int(0.001 * len(remaining))] if remaining else math.nan
        if not p01 >= self.lead_seconds / 2:
            trouble.append(
                f"ID-token p0.1 remaining {p01:.0f} s is below half the lead "
                f"({self.lead_seconds / 2:.0f} s)"
            )
        return trouble

    def id_token_line(self) -> str:
        counted = self.id_counted()
        accepted = sum(read.valid for read in counted)
        lowest = min((read.remaining for read in counted), default=math.nan)
        return (
            f"ID token ({self.id_secret_name}): {accepted}/{len(counted)} reads accepted by the "
            f"Cloud Run service, min remaining {lowest:.0f} s, rotations "
            f"{len(self.id_promotions)}, outages longer than its life {len(self.id_excused)}"
        )

    def _sweep_trouble(self) -> str | None:
        """The freshness sweep fired for every 5-minute period of the run, within two reads."""
        if not self.reads:
            return None
        if not self.sweeps:
            return "the freshness sweep never fired"
        dues = [firing.due_at for firing in self.sweeps]
        # The planned end: Retry waits pass on the simulated clock, and a rotation's waits can
        # carry the last reads past it, where no sweep is due any more.
        begun = self.reads[0].at
        ended = min(self.reads[-1].at, begun + self.lifetimes * 3600)
        # Reads fall on random seconds of their minute: a tick's slack at either end.
        allowed = SWEEP_PERIOD_SECONDS + TICK_SECONDS
        if dues[0] - begun > allowed or ended - dues[-1] > allowed:
            return (
                "the freshness sweep did not fire from the run's start to its end (first due "
                f"{(dues[0] - begun) / MINUTE:.1f} min after the first read, last "
                f"{(ended - dues[-1]) / MINUTE:.1f} min before the last)"
            )
        for before, after in itertools.pairwise(dues):
            if abs(after - before - SWEEP_PERIOD_SECONDS) > 1:
                return f"the freshness sweep skipped a period at +{self._hours(before):.2f} h"
        late = max(self.sweeps, key=lambda firing: firing.fired_at - firing.due_at)
        if late.fired_at - late.due_at > 2 * TICK_SECONDS:
            return (
                f"the freshness sweep fired {late.fired_at - late.due_at:.0f} s late at "
                f"+{self._hours(late.due_at):.2f} h"
            )
        return None

    def revocation_line(self) -> str:
        gaps = self.revocation_gaps()
        worst = max((replaced - revoked for revoked, replaced in gaps), default=0.0)
        inside = sum(any(begin <= read.at < end for begin, end in gaps) for read in self.reads)
        return (
            f"revoked: {len(gaps)} tokens, worst gap {worst / MINUTE:.1f} min (at most "
            f"{REVOCATION_GAP_LIMIT_SECONDS / MINUTE:.0f}), {inside} reads inside the gaps "
            "(refused, reported here, not counted below)"
        )

    def triggers_line(self) -> str:
        failed = sum(firing.failed for firing in self.sweeps)
        refresh = self.firings["schedule"] - len(self.sweeps)
        operators = ", ".join(
            f"{count} {outcome}" for outcome, count in sorted(self.operators.items())
        )
        return (
            f"triggers: sweeps {len(self.sweeps)} ({failed} failed), refresh schedules {refresh}, "
            f"backstop {self.firings['rotation']}; operators: {operators or 'none'}"
        )

    def _unverifiable(self, at: float) -> bool:
        """Within a tokeninfo outage or the recovery after it."""
        return any(
            fault.at <= at <= fault.until + RECOVERY_SECONDS
            for fault in self.faults
            if fault.kind is FaultKind.TOKENINFO_OUTAGE
        )

    def verification_line(self) -> str:
        """Reads while tokeninfo is unreachable count for validity like any other; their
        remaining life is reported here and left out of p0.1: by design the rotation promotes a
        token unverified only once the token in use is within a third of the lead of its
        expiry (docs/unverified-promotion.md), so these reads go lower than half the lead."""
        outages = sum(fault.kind is FaultKind.TOKENINFO_OUTAGE for fault in self.faults)
        inside = [read for read in self.counted() if self._unverifiable(read.at)]
        return (
            f"tokeninfo unreachable: {outages} outages; {_reads_apart(inside)} (a token is "
            "promoted unverified within a third of the lead: not in p0.1)"
        )

    def lead_spent_line(self) -> str:
        inside = [read for read in self.counted() if _within(self.lead_spent, read.at)]
        return (
            f"mint outages that ended inside the lead: {len(self.lead_spent)}; "
            f"{_reads_apart(inside)} (nothing could mint: not in p0.1)"
        )

    def outage_line(self) -> str:
        inside = [read for read in self.reads if self._excused(read.at)]
        invalid = sum(not read.valid for read in inside)
        spans = ", ".join(
            f"{fault.describe()} (+{(begin - self.reads[0].at) / 3600:.1f} h)"
            for begin, _, fault in self.excused
        )
        return (
            f"outages longer than the token's remaining life: {len(self.excused)}"
            + (f" [{spans}]" if spans else "")
            + f"; {len(inside)} reads inside them (their token expired to its recovery), "
            f"{invalid} refused"
        )

    def line(self) -> str:
        counted = self.counted()
        valid = sum(read.valid for read in counted)
        share = 100.0 * valid / len(counted) if counted else 0.0
        lowest = min((read.remaining for read in counted), default=math.nan)
        p01 = self.percentile_remaining(0.001)
        return (
            f"freshness: {valid}/{len(counted)} reads valid ({share:.2f}%), "
            f"min remaining {lowest:.0f} s, p0.1 remaining {p01:.0f} s, "
            f"rotations {self.rotations}, failed {self.failed_executions}, "
            f"notices {len(self.notices)}, faults {len(self.faults)}"
        )


def _reads_apart(inside: list[Read]) -> str:
    """The reads a line reports apart from p0.1: how many, how many valid, the lowest life."""
    lowest = min((read.remaining for read in inside), default=math.nan)
    return (
        f"{len(inside)} reads inside them and their recovery, "
        f"{sum(read.valid for read in inside)} valid, min remaining {lowest:.0f} s"
    )


def _versions_by_stage(described: dict[str, Any]) -> dict[str, str]:
    return {
        stage: version
        for version, stages in described["VersionIdsToStages"].items()
        for stage in stages
    }


def _within(spans: list[tuple[float, float, Fault]], at: float) -> bool:
    return any(begin <= at <= end for begin, end, _ in spans)


def _named_secret(subject: str) -> str:
    """Notices name their secret at the end of the subject, in parentheses."""
    return subject.rsplit("(", 1)[-1].removesuffix(")") if subject.endswith(")") else ""


def _notice_storm(
    notices: list[tuple[float, str]], promotions: list[float] | None = None
) -> str | None:
    """Within a failing streak, failure notices come at most once an hour. A success ends the
    streak with one notice: "recovered", or the promotion of an unverified token. Other notices
    (the sweep's word on a refused token) belong to no streak. A failure notice within the hour
    after another with a promotion between means the streak's end went unannounced. Notices that
    a secret's next refresh could not be scheduled come at most hourly per secret too."""
    last_failure: float | None = None
    last_unscheduled: dict[str, float] = {}
    for at, subject in notices:
        if subject.startswith(UNSCHEDULED_NOTICE):
            before = last_unscheduled.get(subject)
            if before is not None and at - before < 3600 - NOTICE_STAMP_SLACK_SECONDS:
                return f"two next-refresh-not-scheduled notices within an hour ({subject!r})"
            last_unscheduled[subject] = at
            continue
        if any(end in subject for end in STREAK_ENDS):
            last_failure = None
            continue
        if not subject.startswith(FAILURE_NOTICES):
            continue
        # Stamped when the driver sees them, after the firing that sent them: a few seconds late.
        if last_failure is not None and at - last_failure < 3600 - NOTICE_STAMP_SLACK_SECONDS:
            if any(last_failure < promoted <= at for promoted in promotions or ()):
                return (
                    f"a failure streak ended without its notice: a token was promoted after the "
                    f"failure notice {(at - last_failure) / MINUTE:.0f} min before {subject!r}, "
                    "and no recovered (or unverified) notice came"
                )
            return f"two failure notices within an hour of a streak ({subject!r})"
        last_failure = at
    return None


def _mint_outages(faults_: list[Fault], reads: list[Read]) -> list[tuple[Fault, float]]:
    """Each fault that stopped every mint while it lasted, with the expiry of the token in use
    when it began. A fault on tokeninfo alone never is: Google still mints, and the unverified
    promotion must keep the token valid. A key deleted or disabled behind the rotation's back is
    one only when no standby key worked (`Fault.standby_until` -inf): the promise holds while
    another valid key exists."""
    outages = []
    for fault in faults_:
        if fault.route == TOKENINFO_ROUTE:
            continue
        if fault.kind in KEY_HITS:
            # With a standby that works the token secrets mint on.
            if fault.standby_until != -math.inf:
                continue
        elif fault.kind not in BLOCKING:
            continue
        before = [read for read in reads if read.at <= fault.at]
        if before:
            outages.append((fault, before[-1].at + before[-1].remaining))
    return outages


def excused_outages(faults_: list[Fault], reads: list[Read]) -> list[tuple[float, float, Fault]]:
    """Each mint outage that outlived the token in use when it began, from its start to its end
    plus one recovery. Reads there are reported apart."""
    return [
        (fault.at, fault.until + RECOVERY_SECONDS, fault)
        for fault, expiry in _mint_outages(faults_, reads)
        if expiry < fault.until
    ]


def lead_spent_outages(
    faults_: list[Fault], reads: list[Read], lead_seconds: float
) -> list[tuple[float, float, Fault]]:
    """Each mint outage the token in use outlived but that ended inside its lead (the rotation
    due a lead before its expiry was stopped), from its start to its end plus one recovery:
    nothing could mint while it lasted, and after it the retries come at most half the remaining
    life apart (refresh.retry_at), so the remaining life of the reads there may fall below half
    the lead. They must still be valid; p0.1 leaves them out."""
    return [
        (fault.at, fault.until + RECOVERY_SECONDS, fault)
        for fault, expiry in _mint_outages(faults_, reads)
        if fault.until <= expiry < fault.until + lead_seconds
    ]


class Soak:
    """Drives one simulated run on a local cloud of its own."""

    def __init__(
        self,
        cloud: LocalCloud,
        seed: int,
        lifetimes: int,
        say: Callable[[str], None],
        source: str = KEY_SOURCE,
        *,
        id_token: bool = True,
        key_expiry_hours: float | None = None,
    ) -> None:
        """`id_token`: an ID-token secret for a Cloud Run service beside the access-token one,
        read and called every minute too (a short soak may leave it out to save time).
        `key_expiry_hours`: the key-expiry policy of a source with a key (None: drawn from the
        seed within KEY_EXPIRY_HOURS; a short soak's few hours renew the key within it)."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
        self.source = source
        self.with_id_token = id_token
        self.cloud = cloud
        self.rng = random.Random(seed)
        self.say = say
        self.result = SoakResult(seed=seed, lifetimes=lifetimes, lead_seconds=DEFAULT_LEAD_SECONDS)
        self.deployment: Deployment | None = None
        self.key: ServiceAccountKey | None = None
        """The first key the driver stored: its account is the one whose keys are watched."""
        self.key_expiry_hours = (
            key_expiry_hours
            if key_expiry_hours is not None
            else float(random.Random(f"key expiry {seed}").randint(*KEY_EXPIRY_HOURS))
        )
        self._key_ids: dict[str, str] = {}
        """The key id each version of the key secret holds (read once per version)."""
        self._own_key_versions: set[str] = set()
        """Versions of the key secret the driver stored itself (not renewals)."""
        self._seen_key_versions: set[str] = set()
        self._hit_keys: set[str] = set()
        """Keys a fault deleted or disabled: Google may refuse them in AWSCURRENT."""
        self._someone_elses: set[str] = set()
        """Keys the 10-key-limit fault made: not the stack's."""
        self._operators: set[str] = set()
        """Keys a key stored by the driver took out of the key secret's labels (the standby, and
        the rolled-over key it deletes itself): the operator's to delete, not the stack's."""
        self._pending_key_patches: list[Fault] = []
        self._later: list[tuple[float, Callable[[], None]]] = []
        """What a fault does some time after it began (a group recreated, an old key deleted)."""
        self._pending_patches: list[Fault] = []
        self._throttled_so_far = 0
        """Writes the armed throttling fault has refused in earlier minutes: it refuses the
        next `times` writes in all, however many minutes they take to come."""
        self._seen_versions: set[str] = set()
        self._were_current: set[str] = set()
        self._dropped_versions: set[str] = set()
        """Versions that lost every label without ever being AWSCURRENT: dropped pendings."""
        self._notices_seen = 0
        self.id_secret_arn: str | None = None
        self.cloud_run_url = ""
        self._seen_id_versions: set[str] = set()

    def run(self) -> SoakResult:
        started = time.monotonic()
        cloud = self.cloud
        # Names of its own: moto's backends are the process's, and a test suite runs many clouds.
        suffix = uuid.uuid4().hex[:8]
        self.cloud_run_url = cloud.google.deploy_cloud_run(f"soak-{suffix}")
        keyed = self.source != FEDERATION_SOURCE
        self.deployment = cloud.deploy(
            {
                **DEMO_PARAMETERS,
                "RefreshLeadSeconds": str(DEFAULT_LEAD_SECONDS),
                "TokenSecretName": f"soak/{suffix}/access-token",
                "IdTokenAudiences": self.cloud_run_url,
                **({"KeyRotationDays": KEY_ROTATION_DAYS} if keyed else {}),
                **self._google_side(suffix),
            },
            stack_name=f"soak-{suffix}",
            environment_overrides={
                "RotationEntryFunction": {"POLL_FIRST_INTERVAL_SECONDS": ENTRY_FIRST_POLL_SECONDS}
            },
        )
        invoker = self._target(suffix)
        if keyed:
            self.result.key_secret_name = cloud.client("secretsmanager").describe_secret(
                SecretId=self.deployment.key_secret_arn
            )["Name"]
            account = self._first_key()
            if self.source == IMPERSONATION_SOURCE:
                cloud.google.grant_token_creator(invoker, account.client_email)
                cloud.google.grant_open_id_token_creator(invoker, account.client_email)
            else:
                invoker = account.client_email
        cloud.google.grant_run_invoker(f"soak-{suffix}", invoker)
        cloud.prewarm()
        self.id_secret_arn = self._add_id_token_secret(f"soak/{suffix}/{ID_TOKEN_SECRET}")
        # The stack's own schedules: the refresh group's and the sweep's (in the default group).
        scheduler = LocalScheduler(cloud, stack=self.deployment)
        start = cloud.clock.now()
        end = start + self.result.lifetimes * cloud.google.token_lifetime_seconds
        plan = [
            fault
            for fault in plan_faults(self.rng, start, end, ROUTES_OF[self.source])
            # Keyless: there is no key to disable or roll over.
            if not (self.source == FEDERATION_SOURCE and fault.kind in KEYED)
        ]
        # What the template's RotationSchedule does on deploy (RotateImmediatelyOnUpdate).
        self._rotate_now()
        tick = start
        while tick < end:
            ahead = tick - cloud.clock.now()
            if ahead > 0:
                cloud.clock.advance(ahead)
            while self._later and self._later[0][0] <= cloud.clock.now():
                self._later.pop(0)[1]()
            while plan and plan[0].at <= cloud.clock.now():
                self._inject(plan.pop(0))
                self._after_events()
            with (
                self._armed_patch(self._pending_patches),
                self._armed_patch(self._pending_key_patches),
            ):
                for firing in scheduler.fire_due():
                    self.result.firings[firing.kind] += 1
                    if firing.target == LAMBDA_INVOKE:
                        self.result.sweeps.append(firing)
            self._after_events()
            # Applications read at any moment, not just after the scheduler looked.
            ahead = tick + self.rng.uniform(0, TICK_SECONDS) - cloud.clock.now()
            if ahead > 0:
                cloud.clock.advance(ahead)
            self._read()
            self._read_id_token()
            self._look_at_keys()
            tick += TICK_SECONDS
        self._conclude()
        self.result.wall_seconds = time.monotonic() - started
        return self.result

    def _conclude(self) -> None:
        """What is judged after the run: Google's key creations, the failed executions and the
        outages whose reads are counted apart."""
        result = self.result
        result.key_creates = sum(
            call.action == "create" and call.status == 200
            for call in self.cloud.google.key_api_calls()
        )
        result.failed_executions = self._failed_executions()
        result.excused = excused_outages(result.faults, result.reads)
        result.id_excused = excused_outages(result.faults, result.id_reads)
        result.lead_spent = lead_spent_outages(result.faults, result.reads, result.lead_seconds)
        result.id_lead_spent = lead_spent_outages(
            result.faults, result.id_reads, result.lead_seconds
        )

    def _target(self, suffix: str) -> str:
        return f"soak-{suffix}@demo-project.iam.gserviceaccount.com"

    def _google_side(self, suffix: str) -> dict[str, str]:
        """What the source needs at Google (made here) and as template parameters (returned)."""
        google = self.cloud.google
        if self.source == KEY_SOURCE:
            return {}
        target = self._target(suffix)
        google.create_keyless_service_account(target)
        parameters = {"CredentialSource": self.source, "GoogleServiceAccount": target}
        if self.source == FEDERATION_SOURCE:
            google.register_workload_identity_provider(SOAK_AUDIENCE, ACCOUNT_ID)
            caller = self.cloud.client("sts").get_caller_identity()["Arn"]
            google.grant_token_creator(target, caller)
            google.grant_open_id_token_creator(target, caller)
            parameters["WorkloadIdentityAudience"] = SOAK_AUDIENCE
        return parameters

    def _add_id_token_secret(self, name: str) -> str | None:
        """An ID-token secret for the Cloud Run service, as tools/add-token-secret adds one: the
        placeholder, the stack's tag and the kind and audience tags, then RotateSecret (which
        rotates it at once). None in a run without one."""
        if not self.with_id_token:
            return None
        assert self.deployment is not None
        secretsmanager = self.cloud.client("secretsmanager")
        arn: str = secretsmanager.create_secret(
            Name=name,
            SecretString=TOKEN_SECRET_PLACEHOLDER,
            # rotation_core.config's tags (the local cloud runs the product without importing it).
            Tags=[
                {"Key": "token-rotation:managed-by", "Value": self.deployment.stack_name},
                {"Key": "token-rotation:token-kind", "Value": "id-token"},
                {"Key": "token-rotation:audience", "Value": self.cloud_run_url},
            ],
        )["ARN"]
        secretsmanager.rotate_secret(
            SecretId=arn,
            RotationLambdaARN=self.deployment.attributes[("RotationEntryFunction", "Arn")],
            RotationRules={"ScheduleExpression": "rate(4 hours)", "Duration": "1h"},
        )
        self.result.id_secret_name = name
        return arn

    def _rotate_now(self) -> None:
        assert self.deployment is not None
        self.cloud.client("secretsmanager").rotate_secret(SecretId=self.deployment.token_secret_arn)
        self._after_events()

    def _inject(self, fault: Fault) -> None:
        google = self.cloud.google
        if fault.kind in KEY_HITS:
            fault = dataclasses.replace(fault, standby_until=self._standby_until())
        self.result.faults.append(fault)
        self.say(f"  +{self._hours():6.2f} h  fault: {fault.describe()}")
        if fault.kind in {FaultKind.GOOGLE_STORM, FaultKind.GOOGLE_OUTAGE}:
            if fault.answer == "reset":
                google.fail_during(fault.route, fault.until, reset_connection=True)
            else:
                google.fail_during(fault.route, fault.until, status=int(fault.answer))
        elif fault.kind is FaultKind.GOOGLE_HANG:
            google.fail_next(fault.route, hang_seconds=LONG_HANG_SECONDS)
        elif fault.kind is FaultKind.KEY_DISABLED:
            self._disable_key_in_use(fault)
        elif fault.kind is FaultKind.KEY_DELETED:
            self._delete_key_in_use(fault)
        elif fault.kind is FaultKind.KEY_LIMIT:
            self._fill_key_limit(fault.until)
        elif fault.kind in KEY_CRASHES:
            self._pending_key_patches.append(fault)
        elif fault.kind in EVENTS:
            self._event(fault)
        else:
            self._pending_patches.append(fault)

    def _event(self, fault: Fault) -> None:
        """One of what operators and Google do between the rotations (plan_events)."""
        actions: dict[FaultKind, Callable[[], None]] = {
            FaultKind.TOKENINFO_OUTAGE: lambda: self.cloud.google.fail_during(
                TOKENINFO_ROUTE, fault.until, reset_connection=True
            ),
            FaultKind.SCHEDULE_DELETED: self._delete_refresh_schedules,
            FaultKind.GROUP_DELETED: lambda: self._delete_refresh_group(fault.until),
            FaultKind.TOKEN_REVOKED: self._revoke_current_token,
            FaultKind.KEY_ROLLED_OVER: lambda: self._roll_key_over(fault.until),
            FaultKind.MANUAL_RUN: self._console_run,
            FaultKind.ROTATE_SECRET_CALL: self._rotate_secret_call,
        }
        actions[fault.kind]()

    def _later_at(self, at: float, action: Callable[[], None]) -> None:
        self._later.append((at, action))
        self._later.sort(key=lambda later: later[0])

    def _delete_refresh_schedules(self) -> None:
        """An operator (or a failed upsert) leaves the secret without its one-time schedule."""
        scheduler = self.cloud.client("scheduler")
        group = self._refresh_group()
        names = [
            schedule["Name"]
            for page in scheduler.get_paginator("list_schedules").paginate(GroupName=group)
            for schedule in page["Schedules"]
        ]
        for name in names:
            scheduler.delete_schedule(GroupName=group, Name=name)
        self.say(f"             deleted {len(names)} schedule(s) of {group}")

    def _delete_refresh_group(self, recreated_at: float) -> None:
        """The group goes with every schedule in it, as on AWS; it comes back empty later."""
        scheduler = self.cloud.client("scheduler")
        group = self._refresh_group()
        scheduler.delete_schedule_group(Name=group)

        def recreate() -> None:
            scheduler.create_schedule_group(Name=group)
            self.say(f"  +{self._hours():6.2f} h  the schedule group {group} is back, empty")

        self._later_at(recreated_at, recreate)

    def _refresh_group(self) -> str:
        assert self.deployment is not None
        return self.deployment.refs["RefreshScheduleGroup"]

    def _revoke_current_token(self) -> None:
        """What an operator does with a leaked token: revoke it at Google. Applications read the
        revoked token until the sweep notices and a rotation replaces it."""
        assert self.deployment is not None
        answer = self.cloud.client("secretsmanager").get_secret_value(
            SecretId=self.deployment.token_secret_arn
        )
        token = json.loads(answer["SecretString"]).get("GOOGLE_ACCESS_TOKEN")
        if not isinstance(token, str) or self.cloud.google.token_info(token) is None:
            self.say("             nothing to revoke: the token in use is not valid")
            return
        self.cloud.google.revoke_token(token)
        self.result.revocations.append(self.cloud.clock.now())

    def _roll_key_over(self, old_deleted_at: float) -> None:
        """An operator's rollover: a new key of the same account stored as the key secret's new
        AWSCURRENT, the old key deleted at Google a few minutes later."""
        old = self._key_in_use()
        self._store_new_key()

        def delete_old() -> None:
            with contextlib.suppress(KeyError):  # the stack's own rotation deleted it already
                self.cloud.google.revoke_key(old)
            self.say(f"  +{self._hours():6.2f} h  the old key is deleted at Google")

        self._later_at(old_deleted_at, delete_old)

    # --- the service-account key ------------------------------------------------------------

    def _first_key(self) -> ServiceAccountKey:
        """The organisation's key-expiry policy, then the user's first key in the key secret. A
        key stored by hand counts as due a whole KeyRotationDays after it was stored, its expiry
        unknown to the stack until its first renewal tags it: with a policy shorter than that, the
        operator starts that renewal at once (`aws secretsmanager rotate-secret`)."""
        assert self.deployment is not None
        google = self.cloud.google
        google.set_key_expiry_policy(self.key_expiry_hours)
        google.key_propagation_seconds = KEY_PROPAGATION_SECONDS
        self.result.key_expiry_hours = self.key_expiry_hours
        self.key = google.create_service_account()
        self._store_key(self.key)
        if self.key_expiry_hours * 3600 < int(KEY_ROTATION_DAYS) * DAY_SECONDS:
            self.cloud.client("secretsmanager").rotate_secret(
                SecretId=self.deployment.key_secret_arn
            )
        return self.key

    def _store_key(self, key: ServiceAccountKey) -> None:
        """What a user does with a downloaded key file: put it in the key secret."""
        assert self.deployment is not None
        for stage in ("AWSCURRENT", "AWSPREVIOUS"):
            version = self._key_versions().get(stage)
            if version is not None:
                self._operators.add(self._key_of(version))
        self.cloud.store_service_account_key(key)
        described = self.cloud.client("secretsmanager").describe_secret(
            SecretId=self.deployment.key_secret_arn
        )
        for version, stages in described["VersionIdsToStages"].items():
            if "AWSCURRENT" in stages:
                self._own_key_versions.add(version)

    def _store_new_key(self) -> None:
        """An operator's new key of the same account (made at the console: no propagation delay
        and no 10-key limit, as the emulator's set-up keys)."""
        assert self.key is not None
        self._store_key(self.cloud.google.create_service_account(self.key.client_email))

    def _key_of(self, version: str) -> str:
        assert self.deployment is not None
        if version not in self._key_ids:
            answer = self.cloud.client("secretsmanager").get_secret_value(
                SecretId=self.deployment.key_secret_arn, VersionId=version
            )
            # The key secret's first version holds {}, as the stack creates it.
            self._key_ids[version] = str(json.loads(answer["SecretString"]).get("private_key_id"))
        return self._key_ids[version]

    def _key_versions(self) -> dict[str, str]:
        """The key secret's version by stage (AWSCURRENT, AWSPREVIOUS, AWSPENDING)."""
        return _versions_by_stage(self._key_secret())

    def _key_secret(self) -> dict[str, Any]:
        assert self.deployment is not None
        described: dict[str, Any] = self.cloud.client("secretsmanager").describe_secret(
            SecretId=self.deployment.key_secret_arn
        )
        return described

    def _key_in_use(self) -> str:
        return self._key_of(self._key_versions()["AWSCURRENT"])

    def _standby_until(self) -> float:
        """Until when the standby (AWSPREVIOUS's key) works at Google, if it works now and for
        the next token rotation to find the key in use refused and replace it (one token life
        and a recovery); -inf otherwise."""
        assert self.key is not None
        previous = self._key_versions().get("AWSPREVIOUS")
        now = self.cloud.clock.now()
        standby = None if previous is None else self._key_of(previous)
        keys = {
            key.key_id: key for key in self.cloud.google.user_managed_keys(self.key.client_email)
        }
        found = keys.get(standby or "")
        needed = now + self.cloud.google.token_lifetime_seconds + RECOVERY_SECONDS
        if found is None or not found.usable(now) or found.valid_before < needed:
            return -math.inf
        return found.valid_before

    def _disable_key_in_use(self, fault: Fault) -> None:
        """Someone disables the key in AWSCURRENT at Google until `fault.until`. A key whose
        validBeforeTime comes before a recovery after that never mints again: with no standby
        that works, the operator, notified, stores a new key when the disabling ends (seed
        2450597087: a 4-hour key disabled for the last hour of its life, the margin its renewal
        needed)."""
        assert self.key is not None
        hit = self._key_in_use()
        self._hit_keys.add(hit)
        try:
            self.cloud.google.disable_key(hit, until_epoch=fault.until)
        except KeyError:
            # A rotation of the key deleted it at Google between the reading and now.
            self.say("           the key in use was already gone at Google")
            return
        keys = self.cloud.google.user_managed_keys(self.key.client_email)
        ends = next(key.valid_before for key in keys if key.key_id == hit)
        if fault.standby_until == -math.inf and ends < fault.until + RECOVERY_SECONDS:
            self._operator_stores_a_key_at(fault.until)

    def _operator_stores_a_key_at(self, moment: float) -> None:
        """The operator's fix once nothing can mint (the runbook's GoogleGrantRejectedError)."""

        def new_key() -> None:
            self._store_new_key()
            self.say(f"  +{self._hours():6.2f} h  the operator stored a new key")

        self._later_at(moment, new_key)

    def _delete_key_in_use(self, fault: Fault) -> None:
        """Someone deletes the key in AWSCURRENT at Google. With no standby that works nothing
        can mint: the operator, notified, stores a new key `fault.seconds` later."""
        hit = self._key_in_use()
        self._hit_keys.add(hit)
        self.cloud.google.revoke_key(hit)
        if fault.standby_until == -math.inf:
            self._operator_stores_a_key_at(fault.until)

    def _fill_key_limit(self, freed_at: float) -> None:
        """Someone else makes keys of the account up to Google's limit, and deletes them later:
        a key renewal in between is refused (KeyLimitReachedError) until then."""
        assert self.key is not None
        google = self.cloud.google
        email = self.key.client_email
        made = [
            google.create_service_account(email).private_key_id
            for _ in range(MAX_KEYS_PER_ACCOUNT - len(google.user_managed_keys(email)))
        ]
        self._someone_elses.update(made)

        def free() -> None:
            for key_id in made:
                with contextlib.suppress(KeyError):
                    google.revoke_key(key_id)
            self.say(f"  +{self._hours():6.2f} h  someone else deleted their {len(made)} keys")

        self._later_at(freed_at, free)

    def _look_at_keys(self) -> None:
        """Each minute: a renewal seen, the keys the stack holds at Google, and whether Google
        accepts the key in AWSCURRENT (a key a fault hit may be refused)."""
        if self.key is None:
            return
        now = self.cloud.clock.now()
        described = self._key_secret()
        current_version = _versions_by_stage(described)["AWSCURRENT"]
        if current_version not in self._seen_key_versions:
            self._seen_key_versions.add(current_version)
            if current_version not in self._own_key_versions:
                self.result.key_promotions.append(now)
        keys = self.cloud.google.user_managed_keys(self.key.client_email)
        replacing = any(tag["Key"] == KEY_REFUSED_TAG for tag in described.get("Tags", []))
        held = sum(key.key_id not in self._someone_elses | self._operators for key in keys)
        self.result.stack_keys.append((now, held, replacing))
        current = self._key_of(current_version)
        if current in self._hit_keys:
            return
        found = next((key for key in keys if key.key_id == current), None)
        if found is not None and found.valid_before <= now:
            self.result.key_expired_current.append(now)
        elif found is None or not found.usable(now):
            self.result.key_refused_current.append(now)

    def _console_run(self) -> None:
        """An operator starts the state machine from the console, {"SecretId": ...}."""
        assert self.deployment is not None
        run = operations.start_manual(self.cloud, self.deployment)
        outcome = (
            "console run succeeded" if run.status == "SUCCEEDED" else f"console run {run.error}"
        )
        self._operator(outcome)

    def _rotate_secret_call(self) -> None:
        """An operator's `aws secretsmanager rotate-secret --secret-id ...`."""
        assert self.deployment is not None
        try:
            self.cloud.client("secretsmanager").rotate_secret(
                SecretId=self.deployment.token_secret_arn
            )
        except ClientError as error:
            self._operator(f"rotate-secret refused ({error.response['Error']['Code']})")
        else:
            self._operator("rotate-secret accepted")

    def _operator(self, outcome: str) -> None:
        self.result.operators[outcome] += 1
        self.say(f"             {outcome}")

    @contextlib.contextmanager
    def _armed_patch(self, pending: list[Fault]) -> Iterator[None]:
        """At most one moto patch of `pending` at a time, entered around one minute's firings
        and kept for the next minute until it has fired (patches must unwind in the order they
        were made). The key secret's crashes queue apart: its rotation comes daily."""
        if not pending:
            yield
            return
        fault = pending[0]
        with self._patch(fault) as fired:
            yield
        if fired():
            pending.pop(0)

    @contextlib.contextmanager
    def _patch(self, fault: Fault) -> Iterator[Callable[[], bool]]:
        assert self.deployment is not None
        arn = self.deployment.token_secret_arn
        if fault.kind in KEY_CRASHES:
            arn = self.deployment.key_secret_arn
        functions = self.deployment.functions
        if fault.kind is FaultKind.AWS_THROTTLING:
            left = fault.times - self._throttled_so_far
            with faults.secrets_manager_throttled(arn, left) as refusals:
                yield lambda: refusals.refused >= left
            self._throttled_so_far += refusals.refused
            if self._throttled_so_far >= fault.times:
                self._throttled_so_far = 0
        elif fault.kind in {FaultKind.CRASH_AFTER_PUT, FaultKind.KEY_CRASH_AFTER_PUT}:
            worker = self.cloud.runtime.worker(functions["CreateSecretFunction"])
            with faults.crash_after_put_secret_value(worker, arn) as crash:
                yield lambda: crash.fired
        else:
            worker = self.cloud.runtime.worker(functions["FinishSecretFunction"])
            with faults.crash_after_update_secret_version_stage(worker, arn) as crash:
                yield lambda: crash.fired

    def _after_events(self) -> None:
        """Counts promotions and notices as they happen, stamped with simulated time."""
        assert self.deployment is not None
        described = self.cloud.client("secretsmanager").describe_secret(
            SecretId=self.deployment.token_secret_arn
        )
        for version, stages in described.get("VersionIdsToStages", {}).items():
            if "AWSCURRENT" in stages and version not in self._seen_versions:
                self._seen_versions.add(version)
                self.result.rotations += 1
                self.result.promotions.append(self.cloud.clock.now())
            if {"AWSCURRENT", "AWSPREVIOUS"} & set(stages):
                # AWSPREVIOUS too: two promotions between two looks leave the first there.
                self._were_current.add(version)
            elif not stages and version not in self._were_current | self._dropped_versions:
                self._dropped_versions.add(version)
                if self._live(version):
                    self.result.live_pending_dropped.append(self.cloud.clock.now())
        if self.id_secret_arn is not None:
            described = self.cloud.client("secretsmanager").describe_secret(
                SecretId=self.id_secret_arn
            )
            for version, stages in described.get("VersionIdsToStages", {}).items():
                if "AWSCURRENT" in stages and version not in self._seen_id_versions:
                    self._seen_id_versions.add(version)
                    self.result.id_promotions.append(self.cloud.clock.now())
        topic = get_backend("sns")[ACCOUNT_ID][REGION].topics[self.deployment.topic_arn]
        sent = topic.sent_notifications
        for _, _, subject, *_ in sent[self._notices_seen :]:
            self.result.notices.append((self.cloud.clock.now(), str(subject)))
            self.say(f"  +{self._hours():6.2f} h  notice: {subject}")
        self._notices_seen = len(sent)

    def _live(self, version: str) -> bool:
        """Whether a version's token is one a rotation in progress could still promote: Google
        accepts it and it has more than MIN_REMAINING_SECONDS left (by a tick, as it was seen up
        to a tick late). Only a second rotation started beside it drops such a version."""
        assert self.deployment is not None
        try:
            answer = self.cloud.client("secretsmanager").get_secret_value(
                SecretId=self.deployment.token_secret_arn, VersionId=version
            )
        except ClientError:
            return False
        token = json.loads(answer.get("SecretString") or "{}").get("GOOGLE_ACCESS_TOKEN")
        info = self.cloud.google.token_info(token) if isinstance(token, str) else None
        remaining = float(info["exp"]) - self.cloud.clock.now() if info is not None else 0.0
        return remaining > MIN_REMAINING_SECONDS + TICK_SECONDS

    def _read(self) -> None:
        """An application's read: GetSecretValue without VersionStage, then Google's verdict. A
        read Secrets Manager refuses (no version holds AWSCURRENT) got no token at all."""
        assert self.deployment is not None
        try:
            answer = self.cloud.client("secretsmanager").get_secret_value(
                SecretId=self.deployment.token_secret_arn
            )
        except ClientError as error:
            if not self.result.reads or self.result.reads[-1].version_id:
                self.say(f"  +{self._hours():6.2f} h  the read failed: {error}")
            self.result.reads.append(Read(self.cloud.clock.now(), "", False, -math.inf))
            return
        value = json.loads(answer["SecretString"])
        now = self.cloud.clock.now()
        info = self.cloud.google.token_info(str(value.get("GOOGLE_ACCESS_TOKEN", "")))
        remaining = float(info["exp"]) - now if info is not None else _remaining(value, now)
        self.result.reads.append(Read(now, answer["VersionId"], info is not None, remaining))

    def _read_id_token(self) -> None:
        """An application's read of the ID-token secret, then its call to the Cloud Run service
        the token is for: valid when the service answers 200 (nothing in a run without one)."""
        if self.id_secret_arn is None:
            return
        now = self.cloud.clock.now()
        try:
            answer = self.cloud.client("secretsmanager").get_secret_value(
                SecretId=self.id_secret_arn
            )
        except ClientError:
            self.result.id_reads.append(Read(now, "", False, -math.inf))
            return
        value = json.loads(answer["SecretString"])
        token = value.get("GOOGLE_ID_TOKEN")
        accepted = isinstance(token, str) and (
            urllib3.request(
                "GET", self.cloud_run_url, headers={"Authorization": f"Bearer {token}"}, timeout=5
            ).status
            == 200
        )
        self.result.id_reads.append(
            Read(now, answer["VersionId"], accepted, _remaining(value, now))
        )

    def _failed_executions(self) -> int:
        assert self.deployment is not None
        paginator = self.cloud.client("stepfunctions").get_paginator("list_executions")
        pages = paginator.paginate(
            stateMachineArn=self.deployment.state_machine_arn, statusFilter="FAILED"
        )
        return sum(len(page["executions"]) for page in pages)

    def _hours(self) -> float:
        first = self.result.reads[0].at if self.result.reads else self.cloud.clock.now()
        return (self.cloud.clock.now() - first) / 3600


def _remaining(value: dict[str, Any], now: float) -> float:
    """A refused token's life left by its own expires_at (the first-deploy placeholder has none)."""
    expires_at = value.get("expires_at")
    if not isinstance(expires_at, str):
        return -math.inf
    return datetime.fromisoformat(expires_at).timestamp() - now


def run_soak(
    lifetimes: int,
    seed: int | None = None,
    say: Callable[[str], None] = print,
    source: str = KEY_SOURCE,
    key_expiry_hours: float | None = None,
) -> SoakResult:
    chosen = random.SystemRandom().randrange(2**32) if seed is None else seed
    say(f"soak: {lifetimes} token lifetimes of simulated time, seed {chosen}, source {source}")
    say(
        f"      replay with: python -m localcloud soak --lifetimes {lifetimes} --seed {chosen} "
        f"--source {source}"
        + (f" --key-expiry-hours {key_expiry_hours:g}" if key_expiry_hours is not None else "")
    )
    with LocalCloud(
        sleep_retries=False,
        google_timeout_seconds=WORKER_GOOGLE_TIMEOUT_SECONDS,
        retry_waits_on_clock=True,
    ) as cloud:
        result = Soak(
            cloud, chosen, lifetimes, say, source, key_expiry_hours=key_expiry_hours
        ).run()
    say(f"wall time {result.wall_seconds:.0f} s for {len(result.reads)} reads")
    for broken in result.broken_invariants():
        say(f"BROKEN: {broken}")
    say(result.triggers_line())
    say(result.outage_line())
    say(result.verification_line())
    say(result.lead_spent_line())
    say(result.revocation_line())
    say(result.id_token_line())
    say(result.key_line())
    say(result.line())
    return result


def soak_exit_code(
    lifetimes: int,
    seed: int | None,
    source: str = KEY_SOURCE,
    key_expiry_hours: float | None = None,
) -> int:
    """The command line's soak: 0 when every invariant held, 1 otherwise."""
    result = run_soak(lifetimes, seed, source=source, key_expiry_hours=key_expiry_hours)
    return 1 if result.broken_invariants() else 0
