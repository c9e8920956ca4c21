"""The freshness soak: does an application that reads AWSCURRENT at any moment get a token Google
accepts, over many token lifetimes of faults?

Time is simulated, not shortened: the local cloud's clock (shared by the Google emulator, the
workers' handlers and the local scheduler) jumps minute by minute, while every rotation runs in
real time at its real speed. Tokens keep their real 1-hour life and the template its real
settings; only the idle minutes between events are skipped, so a week passes in minutes.

Each simulated minute the driver injects the faults that are due, lets the local scheduler fire
what is due (the expiry-driven schedules and Secrets Manager's own schedule, each a real
RotateSecret), every 5 minutes invokes the freshness sweep as its schedule would, and reads the
token as an application does: GetSecretValue with no VersionStage.
Every token read is checked with the emulator's tokeninfo rules on the shared clock.
"""

import contextlib
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

from moto.backends import get_backend

from localcloud import faults
from localcloud.cloud import ACCOUNT_ID, REGION, LocalCloud
from localcloud.deployment import Deployment
from localcloud.scheduler import LocalScheduler

MINUTE: Final = 60
SWEEP_INTERVAL_SECONDS: Final = 5 * MINUTE
"""template.yaml's FreshnessSweepSchedule, which the local scheduler does not fire."""
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
SOAK_AUDIENCE: Final = (
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/soak/"
    "providers/aws"
)
WORKER_GOOGLE_TIMEOUT_SECONDS: Final = 1.0


class FaultKind(StrEnum):
    GOOGLE_STORM = "google storm"
    GOOGLE_OUTAGE = "google outage"
    GOOGLE_HANG = "google hang"
    KEY_DISABLED = "key disabled"
    AWS_THROTTLING = "aws throttling"
    CRASH_AFTER_PUT = "crash after PutSecretValue"
    CRASH_AFTER_STAGE_MOVE = "crash after the stage move"


BLOCKING: Final = frozenset(
    {FaultKind.GOOGLE_STORM, FaultKind.GOOGLE_OUTAGE, FaultKind.KEY_DISABLED}
)
"""Faults that stop every rotation while they last (the others hit one attempt)."""
GOOGLE_ANSWERS: Final = frozenset({FaultKind.GOOGLE_STORM, FaultKind.GOOGLE_OUTAGE})
STORM_ANSWERS: Final = (500, 502, 503, 429, "reset")
_PER_DAY: Final = {
    FaultKind.GOOGLE_STORM: 4.0,
    FaultKind.GOOGLE_HANG: 1.0,
    FaultKind.AWS_THROTTLING: 2.0,
    FaultKind.CRASH_AFTER_PUT: 1.0,
    FaultKind.CRASH_AFTER_STAGE_MOVE: 1.0,
}
_PER_WEEK: Final = {FaultKind.GOOGLE_OUTAGE: 1.0, FaultKind.KEY_DISABLED: 1.0}


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

    @property
    def until(self) -> float:
        return self.at + self.seconds

    def describe(self) -> str:
        lasting = f" for {self.seconds / MINUTE:.0f} min" if self.seconds else ""
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
        return rng.uniform(start + 10 * MINUTE, max(start + 10 * MINUTE, end - margin))

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
    return sorted(planned, key=lambda fault: fault.at)


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
    failed_executions: int = 0
    excused: list[tuple[float, float, Fault]] = field(default_factory=list)
    firings: Counter[str] = field(default_factory=Counter)
    """What the local scheduler fired, by kind: expiry-driven schedules, the 4-hour backstop."""
    wall_seconds: float = 0.0

    def counted(self) -> list[Read]:
        """Reads outside the reported outages (faults that outlived the token in use)."""
        return [read for read in self.reads if not self._excused(read.at)]

    def _excused(self, at: float) -> bool:
        return any(begin <= at <= end for begin, end, _ in self.excused)

    def percentile_remaining(self, fraction: float) -> float:
        remaining = sorted(read.remaining for read in self.counted())
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
        storm = _notice_storm(self.notices)
        if storm:
            broken.append(storm)
        return broken

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


def _notice_storm(notices: list[tuple[float, str]]) -> str | None:
    """Within a failing streak, failure notices come at most once an hour."""
    last_failure: float | None = None
    for at, subject in notices:
        if "recovered" in subject:
            last_failure = None
            continue
        if last_failure is not None and at - last_failure < 3600:
            return f"two failure notices within an hour of a streak ({subject!r})"
        last_failure = at
    return None


def excused_outages(faults_: list[Fault], reads: list[Read]) -> list[tuple[float, float, Fault]]:
    """Each blocking fault that outlived the token in use when it began, from its start to its
    end plus one recovery. Reads there are reported apart."""
    excused = []
    for fault in faults_:
        if fault.kind not in BLOCKING:
            continue
        before = [read for read in reads if read.at <= fault.at]
        if not before:
            continue
        expiry = before[-1].at + before[-1].remaining
        if expiry < fault.until:
            excused.append((fault.at, fault.until + RECOVERY_SECONDS, fault))
    return excused


class Soak:
    """Drives one simulated run on a local cloud of its own."""

    def __init__(
        self,
        cloud: LocalCloud,
        seed: int,
        lifetimes: int,
        say: Callable[[str], None],
        source: str = KEY_SOURCE,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
        self.source = source
        self.cloud = cloud
        self.rng = random.Random(seed)
        self.say = say
        self.result = SoakResult(seed=seed, lifetimes=lifetimes, lead_seconds=DEFAULT_LEAD_SECONDS)
        self.deployment: Deployment | None = None
        self.key_id = ""
        self._pending_patches: list[Fault] = []
        self._seen_versions: set[str] = set()
        self._notices_seen = 0

    def run(self) -> SoakResult:
        started = time.monotonic()
        cloud = self.cloud
        # Names of its own: moto's backends are the process's, and a test suite runs many clouds.
        suffix = uuid.uuid4().hex[:8]
        self.deployment = cloud.deploy(
            {
                "RefreshLeadSeconds": str(DEFAULT_LEAD_SECONDS),
                "TokenSecretName": f"soak/{suffix}/access-token",
                **self._google_side(suffix),
            },
            stack_name=f"soak-{suffix}",
        )
        if self.source != FEDERATION_SOURCE:
            account = cloud.google.create_service_account()
            self.key_id = account.private_key_id
            cloud.store_service_account_key(account)
            if self.source == IMPERSONATION_SOURCE:
                cloud.google.grant_token_creator(self._target(suffix), account.client_email)
        cloud.prewarm()
        scheduler = LocalScheduler(cloud, group=self.deployment.refs["RefreshScheduleGroup"])
        start = cloud.clock.now()
        end = start + self.result.lifetimes * cloud.google.token_lifetime_seconds
        plan = [
            fault
            for fault in plan_faults(self.rng, start, end, ROUTES_OF[self.source])
            # Keyless: there is no key to disable.
            if not (self.source == FEDERATION_SOURCE and fault.kind is FaultKind.KEY_DISABLED)
        ]
        # What the template's RotationSchedule does on deploy (RotateImmediatelyOnUpdate).
        self._rotate_now()
        tick = start
        next_sweep = start + SWEEP_INTERVAL_SECONDS
        while tick < end:
            ahead = tick - cloud.clock.now()
            if ahead > 0:
                cloud.clock.advance(ahead)
            while plan and plan[0].at <= cloud.clock.now():
                self._inject(plan.pop(0))
            with self._armed_patch():
                self.result.firings.update(firing.kind for firing in scheduler.fire_due())
                if cloud.clock.now() >= next_sweep:
                    self._sweep()
                    next_sweep += SWEEP_INTERVAL_SECONDS
            self._after_events()
            self._read()
            tick += TICK_SECONDS
        self.result.failed_executions = self._failed_executions()
        self.result.excused = excused_outages(self.result.faults, self.result.reads)
        self.result.wall_seconds = time.monotonic() - started
        return self.result

    def _sweep(self) -> None:
        """What the template's FreshnessSweepSchedule does every 5 minutes."""
        assert self.deployment is not None
        self.cloud.client("lambda").invoke(
            FunctionName=self.deployment.functions["FreshnessSweepFunction"], Payload=b"{}"
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
        parameters = {"CredentialSource": self.source, "ImpersonatedServiceAccount": target}
        if self.source == FEDERATION_SOURCE:
            google.register_workload_identity_provider(SOAK_AUDIENCE, ACCOUNT_ID)
            caller = self.cloud.client("sts").get_caller_identity()["Arn"]
            google.grant_token_creator(target, caller)
            parameters["WorkloadIdentityAudience"] = SOAK_AUDIENCE
        return parameters

    def _rotate_now(self) -> None:
        assert self.deployment is not None
        self.cloud.client("secretsmanager").rotate_secret(SecretId=self.deployment.token_secret_arn)
        self._after_events()

    def _inject(self, fault: Fault) -> None:
        google = self.cloud.google
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
            google.disable_key(self.key_id, until_epoch=fault.until)
        else:
            self._pending_patches.append(fault)

    @contextlib.contextmanager
    def _armed_patch(self) -> Iterator[None]:
        """At most one moto patch at a time, entered around one minute's firings and kept for
        the next minute until it has fired (patches must unwind in the order they were made)."""
        if not self._pending_patches:
            yield
            return
        fault = self._pending_patches[0]
        with self._patch(fault) as fired:
            yield
        if fired():
            self._pending_patches.pop(0)

    @contextlib.contextmanager
    def _patch(self, fault: Fault) -> Iterator[Callable[[], bool]]:
        assert self.deployment is not None
        arn = self.deployment.token_secret_arn
        functions = self.deployment.functions
        if fault.kind is FaultKind.AWS_THROTTLING:
            with faults.secrets_manager_throttled(arn, fault.times) as refusals:
                yield lambda: refusals.refused >= fault.times
        elif fault.kind is FaultKind.CRASH_AFTER_PUT:
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
        topic = get_backend("sns")[ACCOUNT_ID][REGION].topics[self.deployment.topic_arn]
        sent = topic.sent_notifications
        for _, _, subject, *_ in sent[self._notices_seen :]:
            self.result.notices.append((self.cloud.clock.now(), str(subject)))
            self.say(f"  +{self._hours():6.2f} h  notice: {subject}")
        self._notices_seen = len(sent)

    def _read(self) -> None:
        """An application's read: GetSecretValue without VersionStage, then Google's verdict."""
        assert self.deployment is not None
        answer = self.cloud.client("secretsmanager").get_secret_value(
            SecretId=self.deployment.token_secret_arn
        )
        value = json.loads(answer["SecretString"])
        now = self.cloud.clock.now()
        info = self.cloud.google.token_info(str(value.get("GOOGLE_ACCESS_TOKEN", "")))
        remaining = float(info["exp"]) - now if info is not None else _remaining(value, now)
        self.result.reads.append(Read(now, answer["VersionId"], info is not None, remaining))

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
) -> SoakResult:
    chosen = random.SystemRandom().randrange(2**32) if seed is None else seed
    say(f"soak: {lifetimes} token lifetimes of simulated time, seed {chosen}, source {source}")
    say(
        f"      replay with: python -m localcloud soak --lifetimes {lifetimes} --seed {chosen} "
        f"--source {source}"
    )
    with LocalCloud(
        sleep_retries=False, google_timeout_seconds=WORKER_GOOGLE_TIMEOUT_SECONDS
    ) as cloud:
        result = Soak(cloud, chosen, lifetimes, say, source).run()
    say(f"wall time {result.wall_seconds:.0f} s for {len(result.reads)} reads")
    for broken in result.broken_invariants():
        say(f"BROKEN: {broken}")
    say(result.outage_line())
    say(result.line())
    return result


def soak_exit_code(lifetimes: int, seed: int | None, source: str = KEY_SOURCE) -> int:
    """The command line's soak: 0 when every invariant held, 1 otherwise."""
    return 1 if run_soak(lifetimes, seed, source=source).broken_invariants() else 0
