"""How far one account goes: many token secrets of one stack rotating at the same moment.

`python -m benchmarks.scale [--secrets N] [--sandboxes N]` deploys template.yaml on the local cloud
with N token secrets (the template's own and N - 1 more, made as tools/add-token-secret makes
them: the template's placeholder and managed-by tag, then RotateSecret with the stack's rotation
function), rotates every one once so that every worker is warm, and then starts all N rotations
at the same instant: RotateSecret from N threads released by one barrier, as N refresh schedules
due in the same minute would call it. The local cloud's RotateSecret runs the whole rotation inside
the call, so the concurrency is the threads'. Of that round it measures:

- every API call the moto server received, with its arrival time (localcloud.api_calls: moto's
  own dispatch, so the entry Lambdas' StartExecution and DescribeExecution are counted where AWS
  would count them, not by the callers); per rotation, and StartExecution, DescribeExecution and
  the Secrets Manager writes in 1-second buckets. The entry Lambdas' own count of their
  DescribeExecution calls (their result's DescribeCalls) is kept beside it as a cross-check;
- the wall time, each rotation's time (its RotateSecret call, which here ends with the rotation)
  and the state transitions;
- how many entry Lambdas ran at once. Each function of the local cloud is a pool of worker
  processes (localcloud/lambda_runtime.py: at most DEFAULT_MAX_CONCURRENCY = 4 per function at
  once; a further invocation waits for a free one). Lambda would start a sandbox per concurrent
  invocation instead, so locally the rotations queue behind the pool: the per-second counts are
  lower, and the rotation times longer, than AWS would see. `--sandboxes` widens every pool.

`report()` compares the calls per rotation with the published quotas below and extrapolates to
1,000 secrets. `run()` and `report()` are what `python -m benchmarks` can call;
tests/localcloud/test_scale_bench.py runs a short version.
"""

import argparse
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from localcloud.api_calls import recording
from localcloud.cloud import Invocation, LocalCloud
from localcloud.operations import ExecutionSummary, summarize
from localcloud.template import load_template
from rotation_core import sweep

DEFAULT_SECRETS: Final = 50
SCOPE: Final = "https://www.googleapis.com/auth/calendar.readonly"
ENTRY_FUNCTION: Final = "RotationEntryFunction"

ApiAction = tuple[str, str]
"""(moto's service name, API action)."""
START_EXECUTION: Final = ("stepfunctions", "StartExecution")
DESCRIBE_EXECUTION: Final = ("stepfunctions", "DescribeExecution")
PUT_SECRET_VALUE: Final = ("secretsmanager", "PutSecretValue")
UPDATE_SECRET_VERSION_STAGE: Final = ("secretsmanager", "UpdateSecretVersionStage")
PER_SECOND: Final = {
    "StartExecution": (START_EXECUTION,),
    "DescribeExecution": (DESCRIBE_EXECUTION,),
    "Secrets Manager writes": (PUT_SECRET_VALUE, UPDATE_SECRET_VERSION_STAGE),
}
"""What is counted in 1-second buckets: the calls of the lowest quotas."""

# --- The extrapolation -----------------------------------------------------------------------

ACCOUNT_SECRETS: Final = 1_000
TOKEN_LIFETIME_SECONDS: Final = 3_600
"""A key's own tokens live an hour: the most rotations a secret makes."""
LEAD_SECONDS: Final = 900
"""RefreshLeadSeconds' default: a 1-hour token is replaced every 2,700 s, 32 times a day."""
SYNCHRONIZED_WINDOW_SECONDS: Final = 60
"""The peak: every secret's rotation due in the same minute. Secrets added together stay
together, since each next rotation is due a fixed lead before its own token's expiry."""

# --- Published quotas (per account and Region, defaults) ---------------------------------------
#
# The Step Functions figures are rotation_core.sweep's, which paces the freshness sweep by them.
# Step Functions: the current page, https://docs.aws.amazon.com/step-functions/latest/dg/
# service-quotas.html, could not be read here beyond its first lines (its API-throttling table is
# not in the stored copies searched), so its current values are UNVERIFIED. The figures below
# are the developer guide's own source as AWS last published it on GitHub (awsdocs/
# aws-step-functions-developer-guide, doc_source/limits-overview.md, content refreshed on
# 2022-06-28 in commit f578176006a37b95b192dc99bcd0cee305f5dba6; the repository was archived in
# 2023). The same file's history holds the older table this project's notes quoted
# (DescribeExecution bucket 200, refill 2/s; StartExecution 1,000/200 in us-east-1, us-west-2 and
# eu-west-1, 500/25 elsewhere): it held from 2018-02 (commit de120e63a43b) to 2019-05
# (564a7927ef33); the one used here from 2019-09-11 (7af80d042de0) on.
SFN_ARCHIVED_SOURCE: Final = (
    "https://github.com/awsdocs/aws-step-functions-developer-guide/blob/"
    "f578176006a37b95b192dc99bcd0cee305f5dba6/doc_source/limits-overview.md"
)
SFN_STATUS: Final = "AWS's archived guide (2022-06-28); the current page's table unverified"
LARGE_REGIONS: Final = "us-east-1, us-west-2, eu-west-1"
SECRETS_MANAGER_SOURCE: Final = (
    "https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html"
)
TRANSLATED_ONLY: Final = (
    "unverified: read only in AWS's machine translations of the page (zh-TW, zh-CN), whose "
    "other rows match the English one"
)
LAMBDA_SOURCE: Final = (
    "https://docs.aws.amazon.com/lambda/latest/operatorguide/scaling-concurrency.html"
)


@dataclass(frozen=True)
class Quota:
    """A default API quota: a token bucket (`bucket` tokens, refilled at `per_second`), or a
    plain rate when `bucket` is None."""

    name: str
    where: str
    calls: tuple[ApiAction, ...]
    """The API actions it counts; none for state transitions, counted from the histories."""
    per_second: float
    bucket: int | None
    source: str
    status: str

    def calls_in(self, seconds: float) -> float:
        """What it lets through in `seconds` from full."""
        return (self.bucket or 0) + self.per_second * seconds


DESCRIBE_EXECUTION_LARGE_REGIONS: Final = Quota(
    name="Step Functions DescribeExecution",
    where=LARGE_REGIONS,
    calls=(DESCRIBE_EXECUTION,),
    bucket=sweep.DESCRIBE_EXECUTION_QUOTA_LARGE_REGIONS.burst,
    per_second=sweep.DESCRIBE_EXECUTION_QUOTA_LARGE_REGIONS.refill_per_second,
    source=SFN_ARCHIVED_SOURCE,
    status=SFN_STATUS,
)
DESCRIBE_EXECUTION_OTHER_REGIONS: Final = Quota(
    name="Step Functions DescribeExecution",
    where="other Regions",
    calls=(DESCRIBE_EXECUTION,),
    bucket=sweep.DESCRIBE_EXECUTION_QUOTA.burst,
    per_second=sweep.DESCRIBE_EXECUTION_QUOTA.refill_per_second,
    source=SFN_ARCHIVED_SOURCE,
    status=SFN_STATUS,
)
DESCRIBE_EXECUTION_BEFORE_2019_09: Final = Quota(
    name="Step Functions DescribeExecution, the 2018-2019 table",
    where="every Region",
    calls=(DESCRIBE_EXECUTION,),
    bucket=200,
    per_second=2,
    source=f"{SFN_ARCHIVED_SOURCE} (its history, commit de120e63a43b)",
    status="superseded in 2019-09, the lowest ever published",
)
START_EXECUTION_LARGE_REGIONS: Final = Quota(
    name="Step Functions StartExecution (Standard)",
    where=LARGE_REGIONS,
    calls=(START_EXECUTION,),
    bucket=sweep.START_EXECUTION_QUOTA_LARGE_REGIONS.burst,
    per_second=sweep.START_EXECUTION_QUOTA_LARGE_REGIONS.refill_per_second,
    source=SFN_ARCHIVED_SOURCE,
    status=SFN_STATUS,
)
START_EXECUTION_OTHER_REGIONS: Final = Quota(
    name="Step Functions StartExecution (Standard)",
    where="other Regions",
    calls=(START_EXECUTION,),
    bucket=sweep.START_EXECUTION_QUOTA.burst,
    per_second=sweep.START_EXECUTION_QUOTA.refill_per_second,
    source=SFN_ARCHIVED_SOURCE,
    status=SFN_STATUS,
)
STATE_TRANSITIONS_LARGE_REGIONS: Final = Quota(
    name="Step Functions state transitions (Standard)",
    where=LARGE_REGIONS,
    calls=(),
    bucket=5_000,
    per_second=1_500,
    source=SFN_ARCHIVED_SOURCE,
    status=f"{SFN_STATUS}; new accounts start lower",
)
STATE_TRANSITIONS_OTHER_REGIONS: Final = Quota(
    name="Step Functions state transitions (Standard)",
    where="other Regions",
    calls=(),
    bucket=800,
    per_second=500,
    source=SFN_ARCHIVED_SOURCE,
    status=f"{SFN_STATUS}; new accounts start lower",
)
SECRETS_MANAGER_WRITES: Final = Quota(
    name="Secrets Manager PutSecretValue + UpdateSecretVersionStage (+ UpdateSecret, replication)",
    where="each Region",
    calls=(PUT_SECRET_VALUE, UPDATE_SECRET_VERSION_STAGE),
    bucket=None,
    per_second=50,
    source=SECRETS_MANAGER_SOURCE,
    status="verified (AWS's English page); not adjustable",
)
SECRETS_MANAGER_ROTATIONS: Final = Quota(
    name="Secrets Manager RotateSecret + CancelRotateSecret",
    where="each Region",
    calls=(("secretsmanager", "RotateSecret"),),
    bucket=None,
    per_second=50,
    source=SECRETS_MANAGER_SOURCE,
    status=TRANSLATED_ONLY,
)
SECRETS_MANAGER_TAGGING: Final = Quota(
    name="Secrets Manager TagResource + UntagResource",
    where="each Region",
    calls=(("secretsmanager", "TagResource"), ("secretsmanager", "UntagResource")),
    bucket=None,
    per_second=50,
    source=SECRETS_MANAGER_SOURCE,
    status=TRANSLATED_ONLY,
)
SECRETS_MANAGER_READS: Final = Quota(
    name="Secrets Manager GetSecretValue + DescribeSecret",
    where="each Region",
    calls=(("secretsmanager", "GetSecretValue"), ("secretsmanager", "DescribeSecret")),
    bucket=None,
    per_second=10_000,
    source=SECRETS_MANAGER_SOURCE,
    status="verified (AWS's English page); applications' reads share it",
)
QUOTAS: Final = (
    DESCRIBE_EXECUTION_LARGE_REGIONS,
    DESCRIBE_EXECUTION_OTHER_REGIONS,
    DESCRIBE_EXECUTION_BEFORE_2019_09,
    START_EXECUTION_LARGE_REGIONS,
    START_EXECUTION_OTHER_REGIONS,
    STATE_TRANSITIONS_LARGE_REGIONS,
    STATE_TRANSITIONS_OTHER_REGIONS,
    SECRETS_MANAGER_WRITES,
    SECRETS_MANAGER_ROTATIONS,
    SECRETS_MANAGER_TAGGING,
    SECRETS_MANAGER_READS,
)
LAMBDA_CONCURRENCY: Final = 1_000
"""Lambda's default concurrent executions per account and Region ("All AWS accounts start with
a default concurrent limit of 1000 per Region", LAMBDA_SOURCE); new accounts may be given less
(unverified). The EventBridge Scheduler API quotas (UpdateSchedule, one call per rotation) are
not compared: their table is not in the stored copies of its page."""


# --- The measurement ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleFigures:
    """One round of `secrets` rotations started at the same instant on the local cloud."""

    secrets: int
    refresh: bool
    """The round refreshed secrets rotated once before, with warm worker pools; False: it was
    each secret's first rotation, cold pools included."""
    sandboxes: int
    """Worker processes each function could run at once (Lambda: one per concurrent call)."""
    cpus: int
    start_spread_seconds: float
    """From the round's first RotateSecret call to the start of its last."""
    wall_seconds: float
    rotation_seconds: tuple[float, ...]
    """Each secret's RotateSecret call, which on the local cloud ends with its rotation."""
    failed: tuple[str, ...]
    """Secrets whose new version did not become AWSCURRENT."""
    calls: Mapping[ApiAction, int]
    """Every API call the moto server handled during the round."""
    per_second: Mapping[str, tuple[int, ...]]
    """PER_SECOND's groups: calls in each second from the round's start."""
    entry_describe_calls: int
    """DescribeExecution calls as the entry Lambdas counted them themselves."""
    executions: int
    failed_executions: int
    transitions: int
    entry_peak: int
    """Entry Lambda handlers running at the same moment, at most."""
    entry_queued_seconds: float
    """Time entry invocations waited for a free (or a starting) worker process, summed."""
    lambda_seconds: float
    """Handler time of every Lambda invocation of the round, summed (the entry Lambda's is its
    whole wait on its execution, as Lambda bills it)."""

    def count(self, actions: Sequence[ApiAction]) -> int:
        return sum(self.calls.get(action, 0) for action in actions)

    def per_rotation(self, quota: Quota) -> float:
        used = self.transitions if not quota.calls else self.count(quota.calls)
        return used / self.secrets

    def percentile(self, fraction: float) -> float:
        """Nearest rank."""
        ordered = sorted(self.rotation_seconds)
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def run(
    secrets: int = DEFAULT_SECRETS,
    *,
    sandboxes: int | None = None,
    warm_up: bool = True,
    cloud: LocalCloud | None = None,
) -> ScaleFigures:
    """Deploys a stack with `secrets` token secrets on `cloud` (a fresh local cloud if None) and
    measures one round of all of them rotating at once. `sandboxes` sets how many worker
    processes each function may run at once (None: the local runtime's default). With
    `warm_up`, every secret rotates once first, so that the round is a refresh with warm worker
    pools; without it, the round is each secret's first rotation, cold pools included (half the
    time, for tests)."""
    if secrets < 1:
        raise ValueError("at least one secret")
    if cloud is None:
        with LocalCloud(sleep_retries=False) as own:
            return _Round(own, secrets, sandboxes).measure(warm_up)
    return _Round(cloud, secrets, sandboxes).measure(warm_up)


class _Round:
    """A deployed stack with `secrets` token secrets, and the round that rotates them at once."""

    def __init__(self, cloud: LocalCloud, secrets: int, sandboxes: int | None) -> None:
        self.cloud = cloud
        self.secrets = secrets
        # Names of its own: moto's backends are the process's, shared by every cloud in it.
        suffix = uuid.uuid4().hex[:8]
        self.prefix = f"scale/{suffix}"
        self.deployment = cloud.deploy(
            {"GoogleScopes": SCOPE, "TokenSecretName": f"{self.prefix}/token-0"},
            stack_name=f"scale-{suffix}",
        )
        cloud.store_service_account_key(cloud.google.create_service_account())
        workers = [cloud.runtime.worker(name) for name in self.deployment.functions.values()]
        if sandboxes is not None:
            for worker in workers:
                worker.max_concurrency = sandboxes
        self.sandboxes = min(worker.max_concurrency for worker in workers)
        # The calls block for a whole rotation: one connection per thread.
        self.secretsmanager = cloud.client("secretsmanager", max_pool_connections=secrets)
        self.arns = [self.deployment.token_secret_arn, *self._add_secrets()]

    def _add_secrets(self) -> list[str]:
        """What tools/add-token-secret creates, through the API: the template's placeholder and
        managed-by tag, no rotation yet."""
        token_secret = load_template().resources["TokenSecret"]["Properties"]
        tags = [
            {"Key": tag["Key"], "Value": self.deployment.stack_name} for tag in token_secret["Tags"]
        ]
        return [
            self.secretsmanager.create_secret(
                Name=f"{self.prefix}/token-{n}",
                SecretString=token_secret["SecretString"],
                Tags=tags,
            )["ARN"]
            for n in range(1, self.secrets)
        ]

    def measure(self, warm_up: bool) -> ScaleFigures:
        entry = self.deployment.attributes[(ENTRY_FUNCTION, "Arn")]

        def first_rotation(arn: str) -> Mapping[str, Any]:
            """The template's secret has its rotation configured already; the others are
            configured as tools/add-token-secret configures them."""
            if arn == self.deployment.token_secret_arn:
                return {}
            return {
                "RotationLambdaARN": entry,
                "RotationRules": {"ScheduleExpression": "rate(4 hours)"},
            }

        round_parameters: Callable[[str], Mapping[str, Any]] = first_rotation
        if warm_up:
            # Every worker process of the pools starts here, not in the round.
            if failed := self._failed(self._all_at_once(first_rotation)):
                raise RuntimeError(f"the first rotations failed: {', '.join(failed)}")
            round_parameters = _as_scheduled
        first_invocation = len(self.cloud.invocations)
        with recording() as log:
            timed = self._all_at_once(round_parameters)
        invocations = self.cloud.invocations[first_invocation:]
        started = min(start for start, _, _ in timed.values())
        executions = self._executions_of(timed)
        by_function = {name: logical for logical, name in self.deployment.functions.items()}
        entries = [i for i in invocations if by_function[i.function_name] == ENTRY_FUNCTION]
        return ScaleFigures(
            secrets=self.secrets,
            refresh=warm_up,
            sandboxes=self.sandboxes,
            cpus=os.cpu_count() or 1,
            start_spread_seconds=max(start for start, _, _ in timed.values()) - started,
            wall_seconds=max(end for _, end, _ in timed.values()) - started,
            rotation_seconds=tuple(end - start for start, end, _ in timed.values()),
            failed=self._failed(timed),
            calls=dict(log.counts()),
            per_second={
                group: tuple(log.per_second(actions, started))
                for group, actions in PER_SECOND.items()
            },
            entry_describe_calls=sum(_result_field(i, "DescribeCalls") for i in entries),
            executions=len(executions),
            failed_executions=sum(e.status != "SUCCEEDED" for e in executions),
            transitions=sum(e.transitions for e in executions),
            entry_peak=peak_overlap([_handler_interval(i) for i in entries]),
            entry_queued_seconds=sum(i.ended - i.started - i.duration_ms / 1000 for i in entries),
            lambda_seconds=sum(i.duration_ms for i in invocations) / 1000,
        )

    def _all_at_once(
        self, parameters: Callable[[str], Mapping[str, Any]]
    ) -> dict[str, tuple[float, float, str]]:
        """RotateSecret on every secret from a thread each, released together by a barrier:
        arn → (start, end, new version), times from time.monotonic()."""
        barrier = threading.Barrier(self.secrets)

        def rotate(arn: str) -> tuple[float, float, str]:
            barrier.wait()
            start = time.monotonic()
            version = self.secretsmanager.rotate_secret(SecretId=arn, **parameters(arn))[
                "VersionId"
            ]
            return start, time.monotonic(), version

        with ThreadPoolExecutor(max_workers=self.secrets) as pool:
            return dict(zip(self.arns, pool.map(rotate, self.arns), strict=True))

    def _failed(self, rotated: Mapping[str, tuple[float, float, str]]) -> tuple[str, ...]:
        """The secrets whose new version is not AWSCURRENT."""
        failed = []
        for arn, (_, _, version) in rotated.items():
            stages = self.secretsmanager.describe_secret(SecretId=arn)["VersionIdsToStages"]
            if "AWSCURRENT" not in stages.get(version, []):
                failed.append(arn)
        return tuple(failed)

    def _executions_of(
        self, rotated: Mapping[str, tuple[float, float, str]]
    ) -> list[ExecutionSummary]:
        """The round's executions: each is named <step>-<version>-<attempt>."""
        versions = {version for _, _, version in rotated.values()}
        pages = (
            self.cloud.client("stepfunctions")
            .get_paginator("list_executions")
            .paginate(stateMachineArn=self.deployment.state_machine_arn)
        )
        return [
            summarize(self.cloud, item["executionArn"])
            for page in pages
            for item in page["executions"]
            if item["name"].split("-", 1)[1].rsplit("-", 1)[0] in versions
        ]


def _as_scheduled(_arn: str) -> Mapping[str, Any]:
    """A refresh: the schedule's RotateSecret names the secret and nothing else."""
    return {}


def peak_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The most (start, end) intervals open at one moment; one that ends as another starts does
    not overlap it."""
    # (t, -1) sorts before (t, 1): an end at t closes before a start at t opens.
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = open_now = 0
    for _, change in events:
        open_now += change
        peak = max(peak, open_now)
    return peak


def _handler_interval(invocation: Invocation) -> tuple[float, float]:
    """When the handler ran (Invocation.started is taken before the wait for a free worker)."""
    return invocation.ended - invocation.duration_ms / 1000, invocation.ended


def _result_field(invocation: Invocation, name: str) -> int:
    result = invocation.result
    return int(result.get(name, 0)) if isinstance(result, dict) else 0


# --- The report --------------------------------------------------------------------------------

ROTATION_INTERVAL_SECONDS: Final = TOKEN_LIFETIME_SECONDS - LEAD_SECONDS


def account_rotations_per_second() -> float:
    """ACCOUNT_SECRETS secrets, each rotating every ROTATION_INTERVAL_SECONDS, spread out."""
    return ACCOUNT_SECRETS / ROTATION_INTERVAL_SECONDS


@dataclass(frozen=True)
class Demand:
    """What rotations ask of one quota, at `per_rotation` calls each."""

    quota: Quota
    per_rotation: float

    @property
    def average_per_second(self) -> float:
        """ACCOUNT_SECRETS secrets' rotations spread out evenly."""
        return self.per_rotation * account_rotations_per_second()

    @property
    def synchronized_calls(self) -> float:
        """ACCOUNT_SECRETS secrets' rotations all in one SYNCHRONIZED_WINDOW_SECONDS."""
        return self.per_rotation * ACCOUNT_SECRETS

    @property
    def secrets_spread_out(self) -> float:
        """The most secrets whose rotations, spread out, stay within the refill."""
        if self.per_rotation == 0:
            return math.inf
        return self.quota.per_second / self.per_rotation * ROTATION_INTERVAL_SECONDS

    @property
    def drain_seconds(self) -> float:
        """How long the quota takes to serve the synchronized window's calls: a full bucket at
        once, the rest at the refill."""
        return max(0.0, self.synchronized_calls - (self.quota.bucket or 0)) / self.quota.per_second

    @property
    def secrets_in_one_window(self) -> float:
        """The most secrets that can all rotate in the same window without a throttled call:
        a full bucket and the window's refill (a plain rate: the window's worth of it)."""
        if self.per_rotation == 0:
            return math.inf
        return self.quota.calls_in(SYNCHRONIZED_WINDOW_SECONDS) / self.per_rotation


def demands(figures: ScaleFigures) -> list[Demand]:
    return [Demand(quota, figures.per_rotation(quota)) for quota in QUOTAS]


def report(figures: ScaleFigures) -> list[str]:
    """Markdown: what the round measured, each quota against 1,000 secrets, and a paragraph."""
    n = figures.secrets
    kind = (
        "a refresh, warm workers"
        if figures.refresh
        else "each secret's first rotation, cold workers"
    )
    lines = [
        f"Scale on the local cloud: {n} token secrets of one stack, their {n} rotations started "
        f"within {figures.start_spread_seconds * 1000:.0f} ms (RotateSecret from {n} threads at "
        f"once; {kind}; {figures.cpus} CPUs; each function at most {figures.sandboxes} worker "
        "processes at once).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| rotations that succeeded | {n - len(figures.failed)}/{n} ({figures.executions} "
        f"executions, {figures.failed_executions} failed) |",
        f"| wall time, first start to last end | {figures.wall_seconds:.1f} s |",
        f"| rotation time (its RotateSecret call, which ends with the rotation here) | p50 "
        f"{figures.percentile(0.5):.1f} s, p95 {figures.percentile(0.95):.1f} s |",
        f"| entry Lambdas running at once, at most | {figures.entry_peak}: the local pool runs "
        f"{figures.sandboxes} worker processes per function, and the other invocations waited "
        f"{figures.entry_queued_seconds:.0f} s in all; Lambda would have run all {n} at once |",
    ]
    for group, actions in PER_SECOND.items():
        total = figures.count(actions)
        buckets = figures.per_second[group]
        lines.append(
            f"| {group} ({', '.join(action for _, action in actions)}) | {total} in all, "
            f"{total / n:.2f} per rotation; peak {max(buckets, default=0)}/s; per second: "
            f"{' '.join(map(str, buckets))} |"
        )
    shown = {action for actions in PER_SECOND.values() for action in actions}
    others = ", ".join(
        f"{action} {count / n:.2f}"
        for (service, action), count in sorted(figures.calls.items())
        if (service, action) not in shown
    )
    lines += [
        f"| DescribeExecution, as the entry Lambdas counted their own calls | "
        f"{figures.entry_describe_calls} |",
        f"| state transitions | {figures.transitions} ({figures.transitions / n:.1f} per "
        "rotation) |",
        f"| Lambda handler time | {figures.lambda_seconds:.1f} s ({figures.lambda_seconds / n:.2f}"
        " s per rotation, the entry Lambda's whole wait on each execution included) |",
        f"| other API calls per rotation | {others} |",
        "",
        *_quota_table(figures),
        "",
        _paragraph(figures),
    ]
    return lines


def _quota_table(figures: ScaleFigures) -> list[str]:
    rate = account_rotations_per_second()
    window = SYNCHRONIZED_WINDOW_SECONDS
    lines = [
        f"{ACCOUNT_SECRETS:,} secrets, 1-hour tokens refreshed {LEAD_SECONDS} s before expiry: "
        f"{rate:.3f} rotations a second spread out, or all {ACCOUNT_SECRETS:,} in one "
        f"{window}-second window. Calls per rotation as measured above.",
        "",
        "| quota (default, per account and Region) | where | bucket / refill per s | per "
        f"rotation | spread out: calls/s | in one {window} s window: calls | secrets it allows: "
        f"spread out / in one window | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for demand in demands(figures):
        quota = demand.quota
        limit = (
            f"{quota.per_second:,.0f}/s" if quota.bucket is None
            else f"{quota.bucket:,} / {quota.per_second:,.0f}"
        )  # fmt: skip
        lines.append(
            f"| {quota.name} | {quota.where} | {limit} | {demand.per_rotation:.2f} | "
            f"{demand.average_per_second:.2f} | {demand.synchronized_calls:,.0f} of "
            f"{quota.calls_in(window):,.0f} | {_secrets(demand.secrets_spread_out)} / "
            f"{_secrets(demand.secrets_in_one_window)} | {quota.status}: {quota.source} |"
        )
    seconds = figures.lambda_seconds / figures.secrets
    peak = ACCOUNT_SECRETS * seconds / window
    lines.append(
        f"| Lambda concurrent executions | every Region | {LAMBDA_CONCURRENCY:,} at once | "
        f"{seconds:.2f} s | {rate * seconds:.2f} at once | {peak:,.0f} at once | "
        f"{_secrets(LAMBDA_CONCURRENCY / seconds * ROTATION_INTERVAL_SECONDS)} / "
        f"{_secrets(LAMBDA_CONCURRENCY * window / seconds)} | default: {LAMBDA_SOURCE} |"
    )
    return lines


def _paragraph(figures: ScaleFigures) -> str:
    rate = account_rotations_per_second()
    current = [d for d in demands(figures) if d.quota is not DESCRIBE_EXECUTION_BEFORE_2019_09]
    ranked = sorted(current, key=lambda d: d.secrets_in_one_window)
    first = ranked[0]
    twin = next(d for d in current if d.quota.name == first.quota.name and d is not first)
    second = next(d for d in ranked if d.quota.name != first.quota.name)
    spread = min(current, key=lambda d: d.secrets_spread_out)
    old = next(d for d in demands(figures) if d.quota is DESCRIBE_EXECUTION_BEFORE_2019_09)
    window = SYNCHRONIZED_WINDOW_SECONDS
    lambda_seconds = figures.lambda_seconds / figures.secrets
    return (
        f"How far one account goes: {ACCOUNT_SECRETS:,} secrets with 1-hour tokens, each "
        f"refreshed {LEAD_SECONDS} s before expiry, rotate every {ROTATION_INTERVAL_SECONDS:,} s, "
        f"{86_400 / ROTATION_INTERVAL_SECONDS:.0f} times a day each: "
        f"{ACCOUNT_SECRETS * 86_400 / ROTATION_INTERVAL_SECONDS:,.0f} rotations a day, "
        f"{rate:.2f} a second. Spread out, every quota is far off; the nearest, "
        f"{spread.quota.name} ({spread.quota.where}), gets {spread.average_per_second:.2f} of its "
        f"{spread.quota.per_second:,.0f} calls/s ({_secrets(spread.secrets_spread_out)} secrets "
        "would fill it). But secrets added together stay together (every next rotation is due a "
        "fixed lead before its own token's expiry, with no jitter), so the peak to plan for is "
        f"all {ACCOUNT_SECRETS:,} due in the same minute. Then {first.quota.name} throttles "
        f"first: {first.per_rotation:.2f} calls per rotation (measured here) make "
        f"{first.synchronized_calls:,.0f} calls in that minute against "
        f"{first.quota.calls_in(window):,.0f} ({first.quota.where}: a bucket of "
        f"{first.quota.bucket or 0:,} and {first.quota.per_second:,.0f}/s), enough for "
        f"{_secrets(first.secrets_in_one_window)} secrets in one minute "
        f"({_secrets(twin.secrets_in_one_window)} in {twin.quota.where}; "
        f"{_secrets(old.secrets_in_one_window)} under the 2018-2019 table's refill of "
        f"{old.quota.per_second:.0f}/s). Served at the refill, that minute's calls take "
        f"{first.drain_seconds / 60:.0f} minutes ({twin.drain_seconds / 60:.0f} in "
        f"{twin.quota.where}) against a lead of {LEAD_SECONDS // 60} minutes: the throttled entry "
        "Lambdas back off (polling less often, waiting longer), and one that reaches its 300 s "
        "timeout leaves its rotation to Secrets Manager's later re-attempt. Next, still within "
        f"its limit at {ACCOUNT_SECRETS:,}: {second.quota.name}, {second.per_rotation:.2f} calls "
        f"per rotation, {second.synchronized_calls / window:,.0f}/s in that minute of "
        f"{second.quota.per_second:,.0f}/s ({_secrets(second.secrets_in_one_window)} secrets in "
        f"one minute). Lambda: {ACCOUNT_SECRETS * lambda_seconds / window:,.0f} executions at "
        f"once in that minute ({lambda_seconds:.2f} s of handlers per rotation as measured here) "
        f"of {LAMBDA_CONCURRENCY:,}. Spreading the first rotations of secrets added together (or "
        "jitter in the refresh schedule) removes the peak."
    )


def _secrets(value: float) -> str:
    return "no limit" if math.isinf(value) else f"{math.floor(value):,}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale",
        description="Many token secrets of one stack rotating at once on the local cloud.",
    )
    parser.add_argument("--secrets", type=int, default=DEFAULT_SECRETS)
    parser.add_argument(
        "--sandboxes",
        type=int,
        help="worker processes each function may run at once (default: the local runtime's)",
    )
    arguments = parser.parse_args(argv)
    figures = run(arguments.secrets, sandboxes=arguments.sandboxes)
    print("\n".join(report(figures)))
    return 1 if figures.failed or figures.failed_executions else 0


if __name__ == "__main__":
    raise SystemExit(main())
