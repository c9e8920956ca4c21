"""A simulated day of thousands of token secrets created together: the product's own rules driven
on a model of AWS's calls and quotas, to show whether pacing keeps every read valid and every API
under its quota, and how many secrets one account and Region holds before a quota binds.

`python -m benchmarks.scale_day [--secrets N] [--hours H] [--seed S] [--region R]
[--creators-rotate] [--unpaced] [--check-capacity]` runs one simulated day (by default 2,500
secrets with 1-hour tokens, all put under management within one minute, for 25 hours: a day after
the first hour) on a simulated clock, in about half a minute, and prints its table, what is real
and what is modelled, and the capacity table. The same seed replays the same run. `python -m
benchmarks` runs it too; tests/unit/test_scale_day.py runs short versions; docs/scale.md shows
and explains the figures.

Real: the product's rules, imported and called, never re-implemented.
- rotation_core.sweep: every SWEEP_INTERVAL a run builds each secret's `SecretState`, `decide`s,
  `plan`s within `run_budget` and starts the planned rotations `start_spacing` apart.
- rotation_core.refresh: after each promotion the secret's one-time refresh schedule is set to
  `next_refresh_at`, `first_refresh_spread` of the way after a secret's first token (the rule of
  rotation_core.follow_up's `after_success`).
- the entry function's waiting (functions/rotation_entry/step_execution.py): its settings, parsed
  by `EntrySettings.from_environment` from template.yaml (first poll 0.25 s, growing by
  POLL_GROWTH to a 5 s cap, a 10 s deadline margin) and its Timeout; `next_poll_interval`,
  `throttle_backoff`, and its newest-attempt search (mirrored: `_EntryInvocation`, checked
  against the real run_step_execution by tests/unit/test_scale_day.py); botocore's standard
  retry mode with the attempts lambda_adapter.AWS_CLIENT_CONFIG sets.

Modelled: AWS's side, each number with its source (the constants below).
- Each API is a token bucket at its published default quota: Step Functions' from
  rotation_core.sweep's constants, the others from benchmarks/scale.py's table. A call that finds
  the bucket empty is throttled.
- Secrets Manager runs a rotation's 4 steps one after another, invoking the entry function for
  each; a step's execution lasts STEP_SECONDS; the writes a step makes happen when its execution
  ends. A RotateSecret while a rotation is in progress is refused; when no entry invocation of it
  runs any more, it re-attempts it (AWS's message: "That rotation will be reattempted"), as
  Secrets Manager itself does SM_REATTEMPT_SECONDS after a failed rotation. Schedules fire exactly
  when due (AWS: within about a minute), which bunches their calls more than AWS would.
- Applications read random secrets at random moments (a Poisson process, seeded); a read is valid
  when the AWSCURRENT token's expires_at is after it: Google accepts an unexpired token nobody
  revoked. A secret's reads count from its first token.
Not modelled: faults (Google or AWS failing), so no execution fails and the retry rule
(`retry_at`, which the state machine's failure path schedules) is never reached; an entry
invocation that reaches its deadline is re-attempted by Secrets Manager or driven by the sweep.
The soak proves the rules under faults, this model the rates.
"""

import argparse
import heapq
import itertools
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Final

from benchmarks.scale import (
    LAMBDA_CONCURRENCY,
    LAMBDA_SOURCE,
    SECRETS_MANAGER_READS,
    SECRETS_MANAGER_ROTATIONS,
    SECRETS_MANAGER_TAGGING,
    SECRETS_MANAGER_WRITES,
    SFN_ARCHIVED_SOURCE,
    SFN_STATUS,
    STATE_TRANSITIONS_LARGE_REGIONS,
    STATE_TRANSITIONS_OTHER_REGIONS,
    Quota,
)
from lambda_adapter import AWS_CLIENT_CONFIG
from localcloud.template import load_template
from rotation_core import sweep_run
from rotation_core.refresh import first_refresh_spread, next_refresh_at
from rotation_core.steps import Step
from rotation_core.sweep import (
    DESCRIBE_EXECUTION_CALLS_PER_ROTATION,
    LARGE_REGIONS,
    START_EXECUTION_CALLS_PER_ROTATION,
    SWEEP_INTERVAL,
    Action,
    ApiQuota,
    SecretState,
    Verdict,
    decide,
    plan,
    quotas,
    run_budget,
    start_spacing,
)
from step_execution import EntrySettings, next_poll_interval, throttle_backoff

# --- The scenario ------------------------------------------------------------------------------

DEFAULT_SECRETS: Final = 2_500
DEFAULT_HOURS: Final = 25.0
"""A day after the first hour, in which the secrets get their first tokens."""
DEFAULT_SEED: Final = 17
DEFAULT_REGION: Final = "us-east-1"
OTHER_REGION: Final = "eu-central-1"
"""A Region outside sweep.LARGE_REGIONS, with Step Functions' lower quotas."""
DEFAULT_READS_PER_HOUR: Final = 5_000
CREATION_SECONDS: Final = 60.0
"""Every secret is put under management within this first minute."""
TOKEN_LIFETIME_SECONDS: Final = 3_600
"""A service-account key's own tokens: the shortest Google mints, so the most rotations."""
TWELVE_HOURS: Final = 43_200
"""The longest impersonated tokens (with the org policy that allows them)."""
LEAD_SECONDS: Final = 900
"""RefreshLeadSeconds' default."""
RAMP_HOURS: Final = 3
"""Hours after which even secrets at 115 % of the first bound all have their first token."""
T0: Final = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
"""The simulated clock's zero: the product's rules take datetimes."""

# --- The model of AWS, and where each number comes from ----------------------------------------

STEP_SECONDS: Final = {
    Step.CREATE: (0.5, 1.1),
    Step.SET: (0.2, 0.6),
    Step.TEST: (0.3, 0.9),
    Step.FINISH: (0.3, 0.9),
}
"""How long each step's execution runs, drawn uniformly between these bounds. Modelled, not
measured on AWS (a Standard execution's Choice and Lambda task: createSecret mints at Google's
token endpoint and writes the pending version, testSecret asks tokeninfo, finishSecret moves
AWSCURRENT, tags and upserts the schedule). Chosen, when the entry function still searched before it
started, so that its real poll rule made about 13.5 DescribeExecution calls per rotation (the scale
run's figure for 50 secrets at once on the local cloud); with attempt 1 started first the model
makes 9.6, which rotation_core.sweep rounds up to DESCRIBE_EXECUTION_CALLS_PER_ROTATION. The
capacity table scales with that count."""
STEP_TRANSITIONS: Final = {Step.CREATE: 2, Step.SET: 2, Step.TEST: 2, Step.FINISH: 4}
"""State transitions per step's execution, 10 per rotation: ValidateAndRoute and the step's Task,
and finishSecret's RecoveredNoticeDue and ScheduleNextRotation (the scale run's histories)."""
STEP_READS: Final = {Step.CREATE: 3, Step.SET: 2, Step.TEST: 2, Step.FINISH: 3}
"""DescribeSecret + GetSecretValue per step: 10 per rotation as the scale run counted them (4 and
6); their split between the steps is modelled."""
WRITES_PER_ROTATION: Final = 2
"""PutSecretValue (createSecret) and UpdateSecretVersionStage (finishSecret): the scale run."""
SWEEP_READS_PER_SECRET: Final = 1
"""What a sweep run reads of each managed secret (rotation_core.sweep_run): its AWSCURRENT value,
for expires_at; the descriptions come from ListSecrets pages of 100 (a quota of its own, not
modelled)."""
SWEEP_READ_SECONDS: Final = 0.05
"""One GetSecretValue's round trip from the sweep function (modelled)."""
SWEEP_READS_PER_SECOND: Final = sweep_run.MAX_CONCURRENCY / SWEEP_READ_SECONDS
"""How fast a run reads: sweep_run.MAX_CONCURRENCY at once (8), 160 a second."""
SM_REATTEMPT_SECONDS: Final = 50 * 60
"""Secrets Manager re-attempts a failed rotation about 50 minutes later (docs/self-healing.md;
how often, unverified)."""
BOTOCORE_THROTTLING_BASE_SECONDS: Final = 1.0
BOTOCORE_MAX_BACKOFF_SECONDS: Final = 20.0
"""botocore's standard retry mode (botocore/retries/standard.py, ExponentialBackoff): a throttled
call is retried after rand(0, 1) * min(1 s * 2**i, 20 s)."""
BOTOCORE_ATTEMPTS: Final = int(AWS_CLIENT_CONFIG.retries["total_max_attempts"])  # type: ignore[attr-defined]
"""Calls per SDK request, the first included (lambda_adapter.AWS_CLIENT_CONFIG)."""

_ENTRY_FUNCTION: Final = load_template().functions()["RotationEntryFunction"]
ENTRY_SETTINGS: Final = EntrySettings.from_environment(
    {
        **{k: v for k, v in _ENTRY_FUNCTION.environment.items() if isinstance(v, str)},
        # CloudFormation resolves it on AWS; any state machine ARN will do for the settings.
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:rotation",
    }
)
"""The entry function's poll settings, from template.yaml, by the entry's own parser."""
ENTRY_TIMEOUT_SECONDS: Final = _ENTRY_FUNCTION.timeout_seconds


class Api(StrEnum):
    """The calls the model counts, each against one quota."""

    START_EXECUTION = "StartExecution"
    DESCRIBE_EXECUTION = "DescribeExecution"
    STATE_TRANSITIONS = "state transitions"
    ROTATE_SECRET = "RotateSecret"
    SECRETS_MANAGER_WRITES = "PutSecretValue + UpdateSecretVersionStage"
    TAG_RESOURCE = "TagResource"
    SECRETS_MANAGER_READS = "GetSecretValue + DescribeSecret (rotations, sweep, applications)"


@dataclass(frozen=True)
class Limit:
    """A quota as a token bucket: `burst` calls, refilled at `per_second`. A plain rate quota
    (Secrets Manager's) is a bucket of one second's calls."""

    burst: float
    per_second: float
    source: str

    def shown(self) -> str:
        """As the report's table shows it."""
        if self.burst == self.per_second:
            return f"{self.per_second:,.0f}/s"
        return f"{self.burst:,.0f} / {self.per_second:,.0f} per s"


def sfn_quotas(region: str) -> tuple[ApiQuota, ApiQuota]:
    """(DescribeExecution, StartExecution) in `region`, as the sweep paces against them."""
    by_action = {quota.action: quota for quota in quotas(region)}
    return by_action["DescribeExecution"], by_action["StartExecution"]


def limits(region: str) -> dict[Api, Limit]:
    """Every counted API's default quota in `region`."""
    describe, start = sfn_quotas(region)
    transitions = _transitions(region)
    sfn = f"rotation_core.sweep ({SFN_STATUS}: {SFN_ARCHIVED_SOURCE})"
    plain: dict[Api, Quota] = {
        Api.ROTATE_SECRET: SECRETS_MANAGER_ROTATIONS,
        Api.SECRETS_MANAGER_WRITES: SECRETS_MANAGER_WRITES,
        Api.TAG_RESOURCE: SECRETS_MANAGER_TAGGING,
        Api.SECRETS_MANAGER_READS: SECRETS_MANAGER_READS,
    }
    return {
        Api.START_EXECUTION: Limit(start.burst, start.refill_per_second, sfn),
        Api.DESCRIBE_EXECUTION: Limit(describe.burst, describe.refill_per_second, sfn),
        Api.STATE_TRANSITIONS: Limit(
            float(transitions.bucket or 0),
            transitions.per_second,
            f"{transitions.status}: {transitions.source}",
        ),
        **{
            api: Limit(quota.per_second, quota.per_second, f"{quota.status}: {quota.source}")
            for api, quota in plain.items()
        },
    }


def _transitions(region: str) -> Quota:
    if region in LARGE_REGIONS:
        return STATE_TRANSITIONS_LARGE_REGIONS
    return STATE_TRANSITIONS_OTHER_REGIONS


class Trigger(StrEnum):
    """Who called RotateSecret."""

    CREATOR = "creators (RotateSecret at creation)"
    SCHEDULE = "refresh schedules"
    SWEEP = "the sweep"
    SECRETS_MANAGER = "Secrets Manager's own re-attempts"


@dataclass(frozen=True)
class Scenario:
    """What one simulated day is: how many secrets, how long, which quotas, which rules."""

    secrets: int = DEFAULT_SECRETS
    hours: float = DEFAULT_HOURS
    seed: int = DEFAULT_SEED
    region: str = DEFAULT_REGION
    reads_per_hour: int = DEFAULT_READS_PER_HOUR
    first_rotation_by_sweep: bool = True
    """True: a secret is put under management with no token, and the sweep's pacing gives it its
    first; False: its creator's RotateSecret rotates it at once (tools/add-token-secret today)."""
    paced: bool = True
    """False, the counter-example: each sweep run starts every rotation it decides on at once
    (no budget, no spacing), and a first token's refresh is not spread."""

    def __post_init__(self) -> None:
        if self.secrets < 1:
            raise ValueError(f"secrets: at least 1, got {self.secrets}")
        if not 0 < self.hours <= 24 * 7:
            raise ValueError(f"hours: above 0 and at most a week (168), got {self.hours}")
        if self.reads_per_hour < 0:
            raise ValueError(f"reads per hour: 0 or more, got {self.reads_per_hour}")

    @property
    def seconds(self) -> float:
        return self.hours * 3600

    def command(self) -> str:
        """The command that replays this run."""
        flags = [f"--secrets {self.secrets}", f"--hours {self.hours:g}", f"--seed {self.seed}"]
        if self.region != DEFAULT_REGION:
            flags.append(f"--region {self.region}")
        if self.reads_per_hour != DEFAULT_READS_PER_HOUR:
            flags.append(f"--reads-per-hour {self.reads_per_hour}")
        if not self.first_rotation_by_sweep:
            flags.append("--creators-rotate")
        if not self.paced:
            flags.append("--unpaced")
        return f"python -m benchmarks.scale_day {' '.join(flags)}"

    def describe(self) -> str:
        first = (
            "the sweep's pacing gives each its first token"
            if self.first_rotation_by_sweep
            else "each creator's RotateSecret rotates it at once"
        )
        pacing = (
            "paced by the sweep's rules"
            if self.paced
            else "NOT paced (no run budget, no spacing, no spread of first refreshes)"
        )
        kind = "a large Region's" if self.region in LARGE_REGIONS else "another Region's"
        return (
            f"{self.secrets:,} token secrets with 1-hour tokens (lead {LEAD_SECONDS} s), all "
            f"put under management within {CREATION_SECONDS:.0f} s; {first}; {pacing}; "
            f"{self.region} ({kind} quotas); {self.hours:g} simulated hours; "
            f"{self.reads_per_hour:,} reads an hour at random moments; seed {self.seed}"
        )


# --- The simulation ----------------------------------------------------------------------------

Process = Generator[float, None, None]
"""A simulated activity: yields how many seconds to wait before it goes on."""
STEPS: Final = tuple(Step)


class _EntryError(Exception):
    """The entry function's invocation raised: Secrets Manager marks the rotation failed."""


class _Calls:
    """Calls per API in each simulated second, served and throttled, and their token buckets."""

    def __init__(self, limits: dict[Api, Limit], seconds: float) -> None:
        self.limits = limits
        size = math.ceil(seconds) + 1
        self.attempted = {api: [0] * size for api in Api}
        self.throttled = {api: [0] * size for api in Api}
        self._tokens = {api: limit.burst for api, limit in limits.items()}
        self._filled_at = dict.fromkeys(limits, 0.0)

    def take(self, api: Api, now: float, count: int = 1) -> bool:
        """`count` calls at `now`: True when the bucket held them all, else none is served.
        Calls come in the order of the simulated clock (the event loop's)."""
        limit = self.limits[api]
        elapsed = now - self._filled_at[api]
        tokens = min(limit.burst, self._tokens[api] + elapsed * limit.per_second)
        self._filled_at[api] = now
        second = min(int(now), len(self.attempted[api]) - 1)
        self.attempted[api][second] += count
        if tokens >= count:
            self._tokens[api] = tokens - count
            return True
        self._tokens[api] = tokens
        self.throttled[api][second] += count
        return False


@dataclass(eq=False)
class _Rotation:
    """One rotation of one secret: the step Secrets Manager runs next, and when each step's
    (single) execution ends."""

    pending_since: float
    step: int = 0
    ends: dict[Step, float] = field(default_factory=dict)
    minted_at: float | None = None
    promoted: bool = False
    invoking: bool = False
    """An entry invocation for it runs."""


@dataclass(eq=False)
class _Secret:
    """One token secret: its current token's times, its rotation in progress, its schedule."""

    index: int
    arn: str
    created_at: float
    issued_at: float | None = None
    expires_at: float | None = None
    first_token_at: float | None = None
    rotation: _Rotation | None = None
    schedule_generation: int = 0
    """Bumped by every upsert of the one-time schedule, so that a replaced firing does nothing."""
    rotations: int = 0


@dataclass(frozen=True)
class ApiFigures:
    """One API's calls over the day, against its quota."""

    calls: int
    throttled: int
    peak_second: int
    """The most calls in one second (whole seconds of the simulated clock)."""
    peak_minute: int
    """The most calls in any 60 consecutive seconds."""
    throttled_between: tuple[int, int] | None
    """The first and last second with a throttled call."""
    throttled_hours: tuple[int, ...]
    """Throttled calls in each simulated hour."""
    limit: Limit

    @property
    def under_quota(self) -> bool:
        """No call throttled: the bucket never ran dry, so every window's calls stayed within
        its burst and refill."""
        return self.throttled == 0


@dataclass(frozen=True)
class DayFigures:
    """What one simulated day did."""

    scenario: Scenario
    rotations: int
    started: dict[Trigger, int]
    reattempted: dict[Trigger, int]
    refused: dict[Trigger, int]
    sweep_runs: int
    deferred: int
    """Rotations a run decided on and left to a later run, summed over the runs."""
    most_deferred: int
    budget: int
    spacing_seconds: float
    entry_failures: dict[str, int]
    secrets_without_token: int
    least_rotations: int
    """The fewest rotations any secret made."""
    first_token_seconds: tuple[float, ...]
    """Each secret's time from creation to its first token, sorted."""
    reads: int
    valid_reads: int
    reads_before_first_token: int
    least_seconds_left: float | None
    """The least remaining life of a token at a read (negative: an expired token was read)."""
    apis: dict[Api, ApiFigures]
    lambda_peak: int
    lambda_seconds: float
    wall_seconds: float

    @property
    def valid_share(self) -> float:
        return self.valid_reads / self.reads if self.reads else 1.0

    @property
    def all_under_quota(self) -> bool:
        return all(api.under_quota for api in self.apis.values())

    def per_rotation(self, api: Api) -> float:
        return self.apis[api].calls / self.rotations if self.rotations else 0.0


class _Day:
    """The simulated clock, its events, and the world: secrets, quotas, applications."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self.calls = _Calls(limits(scenario.region), scenario.seconds)
        self.budget = run_budget(scenario.region) if scenario.paced else scenario.secrets
        self.spacing = start_spacing(scenario.region).total_seconds() if scenario.paced else 0.0
        self.secrets = [
            _Secret(
                n,
                f"arn:aws:secretsmanager:{scenario.region}:123456789012:secret:google/token-{n}",
                self.rng.uniform(0, CREATION_SECONDS),
            )
            for n in range(scenario.secrets)
        ]
        self.by_arn = {secret.arn: secret for secret in self.secrets}
        self.started: Counter[Trigger] = Counter()
        self.reattempted: Counter[Trigger] = Counter()
        self.refused: Counter[Trigger] = Counter()
        self.entry_failures: Counter[str] = Counter()
        self.sweep_runs = self.deferred = self.most_deferred = 0
        self.reads = self.valid_reads = self.reads_before_first_token = 0
        self.least_left = math.inf
        self.lambdas = self.lambda_peak = 0
        self.lambda_seconds = 0.0
        self.execution_seconds: Callable[[Step], float] = self._drawn_execution_seconds

    def _drawn_execution_seconds(self, step: Step) -> float:
        return self.rng.uniform(*STEP_SECONDS[step])

    # The event loop.

    def at(self, moment: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (moment, next(self._order), action))

    def spawn(self, process: Process) -> None:
        def resume() -> None:
            try:
                wait = next(process)
            except StopIteration:
                return
            self.at(self.now + wait, resume)

        self.at(self.now, resume)

    def run(self) -> None:
        for secret in self.secrets:
            self.at(secret.created_at, partial(self._created, secret))
        self.at(self.rng.uniform(0, SWEEP_INTERVAL.total_seconds()), self._sweep)
        if self.scenario.reads_per_hour:
            self.spawn(self._applications())
        self.until(self.scenario.seconds)

    def until(self, end: float) -> None:
        """Runs every event before `end`."""
        while self._queue and self._queue[0][0] < end:
            self.now, _, action = heapq.heappop(self._queue)
            action()

    def moment(self, seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)

    # AWS: API calls and Lambda.

    def call(self, api: Api) -> Generator[float, None, bool]:
        """One SDK request with botocore's standard retries: True when AWS served it."""
        for attempt in range(BOTOCORE_ATTEMPTS):
            if self.calls.take(api, self.now):
                return True
            if attempt + 1 < BOTOCORE_ATTEMPTS:
                ceiling = BOTOCORE_THROTTLING_BASE_SECONDS * 2**attempt
                yield self.rng.random() * min(ceiling, BOTOCORE_MAX_BACKOFF_SECONDS)
        return False

    def lambda_starts(self) -> float:
        """A Lambda invocation starts now; returns the moment, for `lambda_ends`."""
        self.lambdas += 1
        self.lambda_peak = max(self.lambda_peak, self.lambdas)
        return self.now

    def lambda_ends(self, started: float) -> None:
        self.lambdas -= 1
        self.lambda_seconds += self.now - started

    def lambda_runs(self, seconds: float) -> None:
        started = self.lambda_starts()
        self.at(self.now + seconds, lambda: self.lambda_ends(started))

    # Secrets Manager.

    def _created(self, secret: _Secret) -> None:
        if not self.scenario.first_rotation_by_sweep:
            self.rotate_secret(secret, Trigger.CREATOR)

    def rotate_secret(self, secret: _Secret, trigger: Trigger) -> None:
        """RotateSecret: starts a rotation, re-attempts a stopped one, or is refused."""
        self.calls.take(Api.ROTATE_SECRET, self.now)
        rotation = secret.rotation
        if rotation is None:
            rotation = secret.rotation = _Rotation(pending_since=self.now)
            self.started[trigger] += 1
        elif rotation.invoking:
            self.refused[trigger] += 1
            return
        else:
            self.reattempted[trigger] += 1
        rotation.invoking = True
        self.spawn(self._rotation(secret, rotation))

    def _rotation(self, secret: _Secret, rotation: _Rotation) -> Process:
        """Secrets Manager invokes the entry function for each remaining step in turn."""
        try:
            while rotation.step < len(STEPS):
                started = self.lambda_starts()
                try:
                    invocation = _EntryInvocation(self, secret, rotation, STEPS[rotation.step])
                    yield from invocation.run()
                finally:
                    self.lambda_ends(started)
                rotation.step += 1
        except _EntryError as failure:
            self.entry_failures[str(failure)] += 1
            rotation.invoking = False
            if rotation.promoted:
                secret.rotation = None
            else:
                self.at(self.now + SM_REATTEMPT_SECONDS, lambda: self._reattempt(secret, rotation))
            return
        rotation.invoking = False
        secret.rotation = None

    def _reattempt(self, secret: _Secret, rotation: _Rotation) -> None:
        if secret.rotation is rotation and not rotation.invoking:
            self.rotate_secret(secret, Trigger.SECRETS_MANAGER)

    # Step Functions: one execution per step; its writes when it ends.

    def start_execution(self, secret: _Secret, rotation: _Rotation, step: Step) -> float:
        """Starts the step's execution; returns when it ends."""
        seconds = self.execution_seconds(step)
        end = rotation.ends[step] = self.now + seconds
        self.calls.take(Api.STATE_TRANSITIONS, self.now, STEP_TRANSITIONS[step])
        self.calls.take(Api.SECRETS_MANAGER_READS, self.now, STEP_READS[step])
        self.lambda_runs(seconds)
        self.at(end, lambda: self._execution_ended(secret, rotation, step))
        return end

    def _execution_ended(self, secret: _Secret, rotation: _Rotation, step: Step) -> None:
        if step is Step.CREATE:
            self.calls.take(Api.SECRETS_MANAGER_WRITES, self.now)
            rotation.minted_at = self.now
        elif step is Step.FINISH:
            self.calls.take(Api.SECRETS_MANAGER_WRITES, self.now)
            self.calls.take(Api.TAG_RESOURCE, self.now)
            self._promote(secret, rotation)

    def _promote(self, secret: _Secret, rotation: _Rotation) -> None:
        """finishSecret moved AWSCURRENT; the state machine upserts the refresh schedule where
        follow_up puts it: next_refresh_at, spread after a secret's first token."""
        if rotation.minted_at is None:
            raise RuntimeError("finishSecret ended before createSecret minted")
        first = secret.expires_at is None
        secret.issued_at = rotation.minted_at
        secret.expires_at = rotation.minted_at + TOKEN_LIFETIME_SECONDS
        secret.rotations += 1
        rotation.promoted = True
        if first:
            secret.first_token_at = self.now
        spread = first_refresh_spread(secret.arn) if first and self.scenario.paced else 1.0
        due = next_refresh_at(
            self.moment(secret.issued_at),
            self.moment(secret.expires_at),
            LEAD_SECONDS,
            self.moment(self.now),
            spread,
        )
        secret.schedule_generation += 1
        generation = secret.schedule_generation
        self.at((due - T0).total_seconds(), lambda: self._schedule_fires(secret, generation))

    def _schedule_fires(self, secret: _Secret, generation: int) -> None:
        if generation == secret.schedule_generation:
            self.rotate_secret(secret, Trigger.SCHEDULE)

    # The sweep.

    def _sweep(self) -> None:
        """One run: reads every secret, decides, and starts the planned rotations spaced out."""
        self.sweep_runs += 1
        now = self.moment(self.now)
        managed = [secret for secret in self.secrets if secret.created_at <= self.now]
        reads = SWEEP_READS_PER_SECRET * len(managed)
        for second in range(math.ceil(reads / SWEEP_READS_PER_SECOND)):
            count = int(min(SWEEP_READS_PER_SECOND, reads - second * SWEEP_READS_PER_SECOND))
            self.at(self.now + second, partial(self._sweep_reads, count))
        states = [self._state(secret, now) for secret in managed]
        started, deferred = plan((decide(state, now) for state in states), self.budget)
        self.deferred += len(deferred)
        self.most_deferred = max(self.most_deferred, len(deferred))
        for k, decision in enumerate(started):
            secret = self.by_arn[decision.secret_arn]
            self.at(self.now + k * self.spacing, partial(self._sweep_acts, secret, decision.action))
        self.lambda_runs(reads / SWEEP_READS_PER_SECOND + len(started) * self.spacing)
        self.at(self.now + SWEEP_INTERVAL.total_seconds(), self._sweep)

    def _sweep_reads(self, count: int) -> None:
        self.calls.take(Api.SECRETS_MANAGER_READS, self.now, count)

    def _sweep_acts(self, secret: _Secret, action: Action) -> None:
        if action is Action.ABANDON and secret.rotation is not None:
            self.calls.take(Api.SECRETS_MANAGER_WRITES, self.now)
            secret.rotation = None
        self.rotate_secret(secret, Trigger.SWEEP)

    def _state(self, secret: _Secret, now: datetime) -> SecretState:
        """What the secret says about itself: its token's times and its pending version."""
        rotation = secret.rotation
        pending = rotation if rotation is not None and not rotation.promoted else None
        expires = None if secret.expires_at is None else self.moment(secret.expires_at)
        issued = None if secret.issued_at is None else self.moment(secret.issued_at)
        return SecretState(
            arn=secret.arn,
            name=f"google/token-{secret.index}",
            rotation_enabled=True,
            current_version=None if expires is None else f"v{secret.rotations}",
            current_expires_at=expires,
            pending_version=None if pending is None else f"v{secret.rotations + 1}",
            pending_created_at=None if pending is None else self.moment(pending.pending_since),
            lead_seconds=LEAD_SECONDS,
            verdict=Verdict.VALID if expires is not None and now < expires else Verdict.UNKNOWN,
            current_issued_at=issued,
        )

    # Applications.

    def _applications(self) -> Process:
        rate = self.scenario.reads_per_hour / 3600
        while True:
            yield self.rng.expovariate(rate)
            secret = self.secrets[self.rng.randrange(len(self.secrets))]
            if secret.expires_at is None:
                self.reads_before_first_token += 1
                continue
            self.calls.take(Api.SECRETS_MANAGER_READS, self.now)
            self.reads += 1
            left = secret.expires_at - self.now
            self.valid_reads += left > 0
            self.least_left = min(self.least_left, left)


class _EntryInvocation:
    """One invocation of the entry function as step_execution._Invocation runs it: StartExecution
    of attempt 1 (the newest-attempt search only when that one has closed), then polls growing
    from the first interval to the cap, a throttled call backing off with full jitter, and a
    deadline DEADLINE_MARGIN_SECONDS before the function's timeout."""

    def __init__(self, day: _Day, secret: _Secret, rotation: _Rotation, step: Step) -> None:
        self._day = day
        self._secret = secret
        self._rotation = rotation
        self._step = step
        margin = ENTRY_SETTINGS.deadline_margin_seconds
        self._deadline = day.now + ENTRY_TIMEOUT_SECONDS - margin
        self._interval = ENTRY_SETTINGS.poll_first_interval_seconds
        self.pauses: list[float] = []
        self.describes = 0

    def run(self) -> Process:
        end = self._rotation.ends.get(self._step)
        if not (yield from self._day.call(Api.START_EXECUTION)):
            raise _EntryError("StartExecution throttled")
        if end is None:
            yield from self._wait(
                self._day.start_execution(self._secret, self._rotation, self._step)
            )
        elif end > self._day.now:
            # Attempt 1 runs with this input: StartExecution answered with it, so it is watched.
            yield from self._wait(end)
        else:
            # Attempt 1 has closed (ExecutionAlreadyExists): the search finds the newest attempt.
            yield from self._newest_attempt(1)

    def _newest_attempt(self, existing: int) -> Process:
        """Probes attempts 1, 2, 4, ... then bisects: one DescribeExecution each."""
        found, missing = 0, 1
        while True:
            yield from self._describe()
            if missing > existing:
                break
            found, missing = missing, missing * 2
        while missing - found > 1:
            middle = (found + missing) // 2
            yield from self._describe()
            if middle > existing:
                missing = middle
            else:
                found = middle

    def _wait(self, end: float) -> Process:
        self._interval = ENTRY_SETTINGS.poll_first_interval_seconds
        while True:
            yield from self._pause(self._interval)
            yield from self._describe()
            if self._day.now >= end:
                return
            self._interval = next_poll_interval(
                self._interval, ENTRY_SETTINGS.poll_max_interval_seconds
            )

    def _describe(self) -> Process:
        maximum = ENTRY_SETTINGS.poll_max_interval_seconds
        self.describes += 1
        while not (yield from self._day.call(Api.DESCRIBE_EXECUTION)):
            delay = throttle_backoff(self._interval, maximum, self._day.rng.uniform)
            self._interval = next_poll_interval(self._interval, maximum)
            yield from self._pause(delay)
            self.describes += 1

    def _pause(self, seconds: float) -> Process:
        left = self._deadline - self._day.now
        if left <= 0:
            raise _EntryError("the entry function reached its deadline")
        self.pauses.append(min(seconds, left))
        yield min(seconds, left)


def entry_waits(execution_seconds: float) -> tuple[tuple[float, ...], int]:
    """The model's entry invocation for one new step whose execution runs `execution_seconds`,
    nothing throttled: (its pauses, its DescribeExecution requests)."""
    day = _Day(Scenario(secrets=1, hours=1, reads_per_hour=0))
    day.execution_seconds = lambda _step: execution_seconds
    secret = day.secrets[0]
    rotation = secret.rotation = _Rotation(pending_since=0.0)
    invocation = _EntryInvocation(day, secret, rotation, Step.SET)
    day.spawn(invocation.run())
    day.until(math.inf)
    return tuple(invocation.pauses), invocation.describes


def simulate(scenario: Scenario) -> DayFigures:
    """Runs the scenario's simulated hours and measures them."""
    started = time.perf_counter()
    day = _Day(scenario)
    day.run()
    apis = {api: _api_figures(day.calls, api) for api in Api}
    first_tokens = sorted(
        s.first_token_at - s.created_at for s in day.secrets if s.first_token_at is not None
    )
    return DayFigures(
        scenario=scenario,
        rotations=sum(secret.rotations for secret in day.secrets),
        started=dict(day.started),
        reattempted=dict(day.reattempted),
        refused=dict(day.refused),
        sweep_runs=day.sweep_runs,
        deferred=day.deferred,
        most_deferred=day.most_deferred,
        budget=day.budget,
        spacing_seconds=day.spacing,
        entry_failures=dict(day.entry_failures),
        secrets_without_token=sum(s.first_token_at is None for s in day.secrets),
        least_rotations=min(secret.rotations for secret in day.secrets),
        first_token_seconds=tuple(first_tokens),
        reads=day.reads,
        valid_reads=day.valid_reads,
        reads_before_first_token=day.reads_before_first_token,
        least_seconds_left=None if math.isinf(day.least_left) else day.least_left,
        apis=apis,
        lambda_peak=day.lambda_peak,
        lambda_seconds=day.lambda_seconds,
        wall_seconds=time.perf_counter() - started,
    )


def _api_figures(calls: _Calls, api: Api) -> ApiFigures:
    attempted, throttled = calls.attempted[api], calls.throttled[api]
    seconds = [second for second, count in enumerate(throttled) if count]
    return ApiFigures(
        calls=sum(attempted),
        throttled=sum(throttled),
        peak_second=max(attempted),
        peak_minute=peak_window(attempted, 60),
        throttled_between=(seconds[0], seconds[-1]) if seconds else None,
        throttled_hours=tuple(
            sum(throttled[start : start + 3600]) for start in range(0, len(throttled) - 1, 3600)
        ),
        limit=calls.limits[api],
    )


def peak_window(per_second: Sequence[int], width: int) -> int:
    """The most calls in any `width` consecutive seconds."""
    window = peak = sum(per_second[:width])
    for second in range(width, len(per_second)):
        window += per_second[second] - per_second[second - width]
        peak = max(peak, window)
    return peak


# --- The capacity table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """What one quota allows: secrets whose rotations (and sweep reads) stay within its rate."""

    name: str
    per_rotation: float
    """Calls per rotation (for Lambda: seconds of invocations per rotation)."""
    per_run: float
    """Calls per secret per sweep run."""
    large: float
    """The quota's rate in large Regions (for Lambda: concurrent executions)."""
    other: float
    source: str

    def secrets(self, lifetime_seconds: int, *, large: bool) -> int:
        """The most secrets of `lifetime_seconds` tokens it allows, rotating every lifetime less
        the lead, spread out."""
        interval = lifetime_seconds - LEAD_SECONDS
        per_secret = self.per_rotation / interval + self.per_run / SWEEP_INTERVAL.total_seconds()
        return math.floor((self.large if large else self.other) / per_secret)


def api_bounds() -> list[Bound]:
    """Every API quota a rotation spends, with the calls per rotation the sweep's pacing assumes
    (Step Functions) or the scale run measured (the others)."""
    large, other = limits(DEFAULT_REGION), limits(OTHER_REGION)

    def bound(api: Api, name: str, per_rotation: float, per_run: float = 0.0) -> Bound:
        return Bound(
            name, per_rotation, per_run, large[api].per_second, other[api].per_second,
            large[api].source,
        )  # fmt: skip

    return [
        bound(Api.DESCRIBE_EXECUTION, "Step Functions DescribeExecution",
              DESCRIBE_EXECUTION_CALLS_PER_ROTATION),
        bound(Api.START_EXECUTION, "Step Functions StartExecution",
              START_EXECUTION_CALLS_PER_ROTATION),
        bound(Api.STATE_TRANSITIONS, "Step Functions state transitions",
              sum(STEP_TRANSITIONS.values())),
        bound(Api.SECRETS_MANAGER_WRITES, "Secrets Manager PutSecretValue + "
              "UpdateSecretVersionStage", WRITES_PER_ROTATION),
        bound(Api.ROTATE_SECRET, "Secrets Manager RotateSecret", 1),
        bound(Api.TAG_RESOURCE, "Secrets Manager TagResource", 1),
        bound(Api.SECRETS_MANAGER_READS, "Secrets Manager GetSecretValue + DescribeSecret "
              "(applications' reads not counted)", sum(STEP_READS.values()),
              SWEEP_READS_PER_SECRET),
    ]  # fmt: skip


def lambda_bound(seconds_per_rotation: float) -> Bound:
    """Lambda's concurrency: invocations running at once, `seconds_per_rotation` each."""
    return Bound(
        "Lambda concurrent executions",
        seconds_per_rotation,
        0.0,
        LAMBDA_CONCURRENCY,
        LAMBDA_CONCURRENCY,
        f"default: {LAMBDA_SOURCE}",
    )


def sweep_alone(lifetime_seconds: int, *, large: bool) -> int:
    """Secrets the sweep keeps fresh by itself (every schedule lost): run_budget rotations per
    SWEEP_INTERVAL."""
    budget = run_budget(DEFAULT_REGION if large else OTHER_REGION)
    interval = lifetime_seconds - LEAD_SECONDS
    return math.floor(budget * interval / SWEEP_INTERVAL.total_seconds())


def capacity_report(figures: DayFigures) -> list[str]:
    """Markdown: secrets per account and Region before each quota binds."""
    lambda_seconds = figures.lambda_seconds / max(figures.rotations, 1)
    rows = [*api_bounds(), lambda_bound(lambda_seconds)]
    lines = [
        f"Secrets per account and Region before a quota binds (tokens refreshed {LEAD_SECONDS} s "
        "before expiry, rotations spread out as the pacing spreads them; calls per rotation: "
        "Step Functions' as rotation_core.sweep assumes them, "
        f"{DESCRIBE_EXECUTION_CALLS_PER_ROTATION} DescribeExecution and "
        f"{START_EXECUTION_CALLS_PER_ROTATION} StartExecution (this "
        f"model made {figures.per_rotation(Api.DESCRIBE_EXECUTION):.2f} and "
        f"{figures.per_rotation(Api.START_EXECUTION):.2f}); the others as the scale run counted "
        f"them; Lambda: {lambda_seconds:.1f} s of invocations per rotation in this model).",
        "",
        "| quota (default) | per rotation | large Regions: 1-hour / 12-hour tokens | other "
        "Regions: 1-hour / 12-hour tokens | source |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        per = f"{row.per_rotation:.3g}" + (f" + {row.per_run:g} a sweep run" if row.per_run else "")
        lines.append(
            f"| {row.name} | {per} | {_count(row, True)} | {_count(row, False)} | {row.source} |"
        )
    lines.append(
        f"| the sweep alone, if every schedule were lost ({run_budget(DEFAULT_REGION)} / "
        f"{run_budget(OTHER_REGION)} rotations a run) | - | "
        f"{sweep_alone(TOKEN_LIFETIME_SECONDS, large=True):,} / "
        f"{sweep_alone(TWELVE_HOURS, large=True):,} | "
        f"{sweep_alone(TOKEN_LIFETIME_SECONDS, large=False):,} / "
        f"{sweep_alone(TWELVE_HOURS, large=False):,} | rotation_core.sweep.run_budget |"
    )
    first = {
        (lifetime, large): min(rows, key=lambda r: r.secrets(lifetime, large=large))
        for lifetime in (TOKEN_LIFETIME_SECONDS, TWELVE_HOURS)
        for large in (True, False)
    }
    binding = "; ".join(
        f"{'large' if large else 'other'} Regions, {lifetime // 3600}-hour tokens: "
        f"{bound.secrets(lifetime, large=large):,} ({bound.name})"
        for (lifetime, large), bound in first.items()
    )
    lines += ["", f"First to bind: {binding}."]
    return lines


def _count(row: Bound, large: bool) -> str:
    return (
        f"{row.secrets(TOKEN_LIFETIME_SECONDS, large=large):,} / "
        f"{row.secrets(TWELVE_HOURS, large=large):,}"
    )


# --- The report --------------------------------------------------------------------------------

REAL_AND_MODELLED: Final = (
    "Real (the product's code, called): the sweep's decide, plan, run_budget and start_spacing "
    "every 5 simulated minutes; next_refresh_at with first_refresh_spread after every promotion; "
    "the entry function's poll and throttle rules (its settings parsed from template.yaml, "
    "next_poll_interval, throttle_backoff, attempt 1 started before its newest-attempt search) "
    "and botocore's standard retries. Modelled (AWS's side): each API as a token bucket at its "
    "default quota (Step Functions' from rotation_core.sweep, AWS's archived table, current page "
    "unverified; Secrets Manager's and Lambda's from benchmarks/scale.py); each step's execution "
    "time (STEP_SECONDS, tuned to the 13.5 DescribeExecution calls per rotation the scale run "
    "counted when the entry searched before it started); when a step's writes happen; Secrets "
    "Manager refusing RotateSecret during a rotation and re-attempting a stopped one; schedules "
    "firing exactly on time; reads as a Poisson process, valid while the token has not expired. "
    "Not modelled: faults (so the retry rule is never reached), AWS's latencies beyond the "
    "execution times."
)


def report(figures: DayFigures) -> list[str]:
    """Markdown: what the day did, per API against its quota, and the verdict."""
    scenario = figures.scenario
    n = scenario.secrets
    firsts = figures.first_token_seconds
    least = figures.least_seconds_left
    lines = [
        f"Scale day, a model on a simulated clock: {scenario.describe()}. Replay: "
        f"`{scenario.command()}` ({figures.wall_seconds:.0f} s here).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| rotations | {figures.rotations:,}: {figures.rotations / n:.1f} per secret, at least "
        f"{figures.least_rotations} each |",
        f"| rotations started by | {_by_trigger(figures.started)} |",
        f"| RotateSecret refused (a rotation in progress) | {_by_trigger(figures.refused)} |",
        f"| stopped rotations re-attempted by | {_by_trigger(figures.reattempted)} |",
        f"| entry invocations that failed | {_failures(figures.entry_failures)} |",
        f"| deferred by the sweep's pacing | {figures.deferred:,} decisions over "
        f"{figures.sweep_runs} runs (at most {figures.most_deferred:,} in one run); "
        f"budget {figures.budget:,} rotations a run, one start every "
        f"{figures.spacing_seconds:.2f} s |",
        f"| first tokens | {len(firsts):,} of {n:,}; creation to first token: median "
        f"{statistics.median(firsts) / 60 if firsts else math.nan:.0f} min, longest "
        f"{max(firsts, default=math.nan) / 60:.0f} min |",
        f"| reads (each secret's from its first token) | {figures.reads:,}, "
        f"{figures.valid_share:.2%} valid; least life left at a read "
        f"{'n/a' if least is None else f'{least:.0f} s'} ({figures.reads_before_first_token:,} "
        "reads of secrets with no token yet not counted) |",
        f"| Lambda | at most {figures.lambda_peak:,} invocations at once (default concurrency "
        f"{LAMBDA_CONCURRENCY:,}); {figures.lambda_seconds / max(figures.rotations, 1):.1f} s "
        "per rotation |",
        "",
        "| API | quota: burst / refill | calls | per rotation | peak in 1 s | peak in 60 s, per "
        "s | throttled |",
        "|---|---|---|---|---|---|---|",
    ]
    for api, figure in figures.apis.items():
        lines.append(
            f"| {api} | {figure.limit.shown()} | {figure.calls:,} | "
            f"{figures.per_rotation(api):.2f} | {figure.peak_second:,} | "
            f"{figure.peak_minute / 60:,.1f} | {_throttled(figure)} |"
        )
    over = [str(api) for api, figure in figures.apis.items() if not figure.under_quota]
    lines += [
        "",
        f"Every read valid: {'yes' if figures.valid_reads == figures.reads else 'NO'}. "
        "Every API under its quota (no call throttled): "
        f"{'yes' if not over else 'NO: ' + ', '.join(over)}.",
        "",
        REAL_AND_MODELLED,
    ]
    return lines


def _by_trigger(counts: dict[Trigger, int]) -> str:
    return ", ".join(f"{trigger} {count:,}" for trigger, count in counts.items()) or "none"


def _failures(counts: dict[str, int]) -> str:
    return ", ".join(f"{count:,}: {reason}" for reason, count in counts.items()) or "none"


def _throttled(figure: ApiFigures) -> str:
    if figure.throttled_between is None:
        return "0"
    first, last = figure.throttled_between
    hours = " ".join(f"{count:,}" for count in figure.throttled_hours)
    return f"{figure.throttled:,} (minutes {first // 60}-{last // 60}; per hour: {hours})"


def check_report(
    region: str = OTHER_REGION, hours: float = 6.0, shares: Sequence[float] = (0.75, 1.15)
) -> list[str]:
    """The capacity table's first bound, checked: `hours` at `shares` of it in `region`.
    Throttled calls are counted apart from the first RAMP_HOURS, in which the first tokens
    arrive, so that the steady state shows."""
    large = region in LARGE_REGIONS
    bound = min(api_bounds(), key=lambda b: b.secrets(TOKEN_LIFETIME_SECONDS, large=large))
    limit = bound.secrets(TOKEN_LIFETIME_SECONDS, large=large)
    lines = [
        f"The first bound checked in {region} ({bound.name}: {limit:,} secrets of 1-hour tokens), "
        f"{hours:g} simulated hours each:",
        "",
        f"| secrets | reads valid | throttled calls: first {RAMP_HOURS} hours / after | entry "
        "invocations failed | replay |",
        "|---|---|---|---|---|",
    ]
    for share in shares:
        scenario = Scenario(secrets=round(limit * share), hours=hours, region=region)
        figures = simulate(scenario)
        ramp = sum(sum(api.throttled_hours[:RAMP_HOURS]) for api in figures.apis.values())
        after = sum(sum(api.throttled_hours[RAMP_HOURS:]) for api in figures.apis.values())
        lines.append(
            f"| {scenario.secrets:,} ({share:.0%}) | {figures.valid_share:.2%} | {ramp:,} / "
            f"{after:,} | {sum(figures.entry_failures.values()):,} | `{scenario.command()}` |"
        )
    return lines


def parser() -> argparse.ArgumentParser:
    """The command line, apart so that a test can check the documented invocations against it."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale_day",
        description="A simulated day of many token secrets created together: the product's "
        "pacing rules on a model of AWS's quotas.",
    )
    parser.add_argument("--secrets", type=int, default=DEFAULT_SECRETS)
    parser.add_argument("--hours", type=float, default=DEFAULT_HOURS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--region", default=DEFAULT_REGION)
    parser.add_argument("--reads-per-hour", type=int, default=DEFAULT_READS_PER_HOUR)
    parser.add_argument(
        "--creators-rotate",
        action="store_true",
        help="each creator's RotateSecret rotates its secret at once (today's add-token-secret)",
    )
    parser.add_argument(
        "--unpaced", action="store_true", help="no run budget, no spacing, no first-refresh spread"
    )
    parser.add_argument(
        "--check-capacity",
        action="store_true",
        help="also simulate 6 hours below and above the first bound in another Region",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    command_line = parser()
    arguments = command_line.parse_args(argv)
    try:
        scenario = Scenario(
            secrets=arguments.secrets,
            hours=arguments.hours,
            seed=arguments.seed,
            region=arguments.region,
            reads_per_hour=arguments.reads_per_hour,
            first_rotation_by_sweep=not arguments.creators_rotate,
            paced=not arguments.unpaced,
        )
    except ValueError as error:
        command_line.error(str(error))
    figures = simulate(scenario)
    print("\n".join([*report(figures), "", *capacity_report(figures)]))
    if arguments.check_capacity:
        print("\n".join(["", *check_report()]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
