"""What the expiry-driven refresh and the freshness sweep cost: local-cloud counts, AWS prices."""

import json
import math
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from localcloud.deployment import Deployment
from localcloud.operations import ExecutionSummary, summarize
from localcloud.template import Template, load_template
from rotation_core.sweep_run import MAX_CONCURRENCY

if TYPE_CHECKING:
    # Types only: importing localcloud.cloud imports moto, which the arithmetic (and its unit
    # test) does not need; the measurement imports moto's parts where it patches them.
    from localcloud.cloud import LocalCloud

# ---------------------------------------------------------------------------------------------
# AWS's public prices: us-east-1, on-demand, in US dollars per single unit. No free tier is
# applied anywhere (most of these would be free for one secret in an account that uses nothing
# else: 4,000 transitions, 1M Lambda requests and 400,000 GB-s, 14M schedule invocations,
# 100,000 traces, 10 custom metrics, 10 alarms and 5 GB of logs a month).
#
# Checked here with a search of stored public pages, not against a live pricing page:
# - verified on AWS's own page: the Step Functions transition price, the X-Ray trace price.
# - AWS's own pages render their rate tables client-side, so these were found only in
#   transcriptions of them and third-party guides (all agreeing): Lambda arm64 GB-s and
#   requests, Secrets Manager per secret and per 10,000 calls, CloudWatch custom metric,
#   standard alarm metric, Logs ingestion.
# - EventBridge Scheduler: AWS's price list (a public transcription of its rows) says "$0 for the
#   first 14 million scheduled invocations" a month, then a price per million by Region
#   ($1.25 in Tokyo); us-east-1's $1.00 per million from the pricing page's transcriptions.
# - that a metric-math alarm is billed per metric it evaluates: CloudWatch's price is "per alarm
#   metric", and infracost (a cost estimator) counts one alarm metric per metric an alarm's
#   queries retrieve; AWS's own sentence on it was not found.
# - not verified at all: that Step Functions and EventBridge Scheduler charge nothing for their
#   API calls (StartExecution, DescribeExecution, UpdateSchedule). Neither pricing page lists
#   a price for them; one third-party guide says Scheduler's create and update are included.
# ---------------------------------------------------------------------------------------------

STEP_FUNCTIONS_PER_TRANSITION: Final = 0.025 / 1_000
"""Standard workflow, per state transition ($0.025 per 1,000), retries included.
https://aws.amazon.com/step-functions/pricing/"""
LAMBDA_ARM64_PER_GB_SECOND: Final = 0.0000133334
"""Lambda on arm64 (Graviton), per GB-second of billed duration (first 7.5 billion GB-s a
month). https://aws.amazon.com/lambda/pricing/"""
LAMBDA_PER_REQUEST: Final = 0.20 / 1_000_000
"""Lambda, per invocation request ($0.20 per 1M), any architecture.
https://aws.amazon.com/lambda/pricing/"""
SECRETS_MANAGER_PER_SECRET_MONTH: Final = 0.40
"""Secrets Manager, per secret stored for a month (prorated).
https://aws.amazon.com/secrets-manager/pricing/"""
SECRETS_MANAGER_PER_API_CALL: Final = 0.05 / 10_000
"""Secrets Manager, per API call ($0.05 per 10,000), every action alike.
https://aws.amazon.com/secrets-manager/pricing/"""
SCHEDULER_PER_INVOCATION: Final = 1.00 / 1_000_000
"""EventBridge Scheduler, per schedule invocation ($1.00 per 1M in us-east-1; the first 14M a
month are free, not applied). https://aws.amazon.com/eventbridge/pricing/"""
CLOUDWATCH_PER_CUSTOM_METRIC_MONTH: Final = 0.30
"""CloudWatch, per custom metric (namespace, name and dimension values) a month, first 10,000
(embedded-metric lines count as custom metrics; prorated by the hour, metered only while the
metric is sent). https://aws.amazon.com/cloudwatch/pricing/"""
CLOUDWATCH_PER_ALARM_METRIC_MONTH: Final = 0.10
"""CloudWatch, per standard-resolution alarm metric a month (period of 60 s or more): an alarm
on one metric is one, a metric-math alarm one per metric it retrieves.
https://aws.amazon.com/cloudwatch/pricing/"""
CLOUDWATCH_LOGS_PER_GB_INGESTED: Final = 0.50
"""CloudWatch Logs, Standard log class, per GB ingested (Lambda logs: the first tier).
https://aws.amazon.com/cloudwatch/pricing/"""
XRAY_PER_TRACE_RECORDED: Final = 5.00 / 1_000_000
"""X-Ray, per trace recorded ($5.00 per 1M; 100,000 a month are free, not applied).
https://aws.amazon.com/xray/pricing/"""
NO_CHARGE: Final = 0.0
"""Calls counted for the record that no price list charges for: Step Functions' and EventBridge
Scheduler's API calls (Standard workflows pay per transition, schedules per invocation) and
Google's token and tokeninfo endpoints."""
# SNS is priced nowhere here: the state machine publishes only after failures (a streak's first,
# hourly reminders, one "recovered"): a few notices a month at most, well under a cent.

MONTH_SECONDS: Final = 30.4 * 86_400
"""A 30.4-day month, as the issue counts one."""
TOKEN_LIFETIME_SECONDS: Final = 3_600
"""A token minted with a service-account key lives an hour."""
LONG_TOKEN_LIFETIME_SECONDS: Final = 43_200
"""The comparison: a 12-hour token (the longest Google grants with lifetime extension)."""
STANDARD_ALARM_MIN_PERIOD_SECONDS: Final = 60
ROTATIONS_MEASURED: Final = 7
ENTRY_FUNCTION: Final = "RotationEntryFunction"

# --- The freshness sweep (issue #17), per stack -----------------------------------------------
# Not measured here yet: what one run does is stated below as assumptions, each to replace with
# a measurement once the sweep runs on the local cloud.

SWEEP_INTERVAL_SECONDS: Final = 300
"""The sweep's schedule: rate(5 minutes), no flexible window."""
SWEEP_MEMORY_MB: Final = 256
"""The sweep inherits the template's Globals MemorySize, as every function of the stack."""
SWEEP_RUN_MS: Final = 300.0
"""Assumed: one warm run's own work whatever the secrets (the metric line, a summary line, the
first ListSecrets page), as a step function's run on the local cloud."""
SWEEP_CHECK_MS: Final = 120.0
"""Assumed: one secret's check, GetSecretValue in-Region then tokeninfo over the internet."""
SWEEP_CONCURRENCY: Final = MAX_CONCURRENCY
"""The sweep checks this many secrets at once (rotation_core.sweep_run), so each check adds that
fraction of its time to the run's billed duration."""
SWEEP_LIST_PAGE: Final = 100
"""ListSecrets returns at most 100 secrets a call (its MaxResults): the managed secrets, with
their tags, stages and rotation dates, in one call per 100."""
SWEEP_READS_PER_SECRET: Final = 1
"""Assumed: one GetSecretValue of AWSCURRENT per secret and run (its expires_at, and the token
tokeninfo is asked about); ListSecrets gives the rest. A DescribeSecret as well would double it."""
SWEEP_KEY_READS_PER_RUN: Final = 1
"""One DescribeSecret of the stack's key secret a run, while its key rotates (a key source with
KeyRotationDays above 0, as deployed by default): when the key is due, from its tags."""
SWEEP_LOG_BYTES_PER_RUN: Final = 2_000
"""Assumed: a summary line and the metric line a run; a line per secret only for a decision."""
SWEEP_METRICS: Final = (
    "LeastSecondsLeft",
    "SecretsWithoutValidToken",
    "ServiceAccountKeyDaysLeft",
)
"""What the sweep publishes every run, each once per stack (dimension Stack): a custom metric a
month each (ServiceAccountKeyDaysLeft while the stack's key rotates, as deployed by default;
ServiceAccountKeyDaysToExpiry as well under a key-expiry policy, which no stack has by default).
CloudWatch bills a custom metric pro rata for the hours it is published, so the counts the sweep
sends only when not 0 (SweepRotationsStarted, SweepRotationsDeferred: a repair, or pacing; rare
while the schedules work) are not priced as monthly metrics, nor is UnverifiedPromotions
(finishSecret, only when a token is promoted unverified). The Google calls of a run are in its
summary line, not a metric."""
SWEEP_ALARMED_METRICS: Final = ("LeastSecondsLeft", "ServiceAccountKeyDaysLeft")
"""The sweep's metrics an alarm watches (TokenFreshnessAlarm, ServiceAccountKeyExpiryAlarm), which
must be sent every run; the others could be sent only when not 0."""

# --- The arithmetic ---------------------------------------------------------------------------


def rotations_per_month(
    lifetime_seconds: float, lead_seconds: float, month_seconds: float = MONTH_SECONDS
) -> float:
    """Each rotation mints a token and schedules the next `lead_seconds` before it expires,
    so a secret rotates every `lifetime_seconds - lead_seconds`."""
    interval = lifetime_seconds - lead_seconds
    if lead_seconds < 0 or interval <= 0:
        raise ValueError(
            f"a lead of {lead_seconds} s does not fit a {lifetime_seconds} s token lifetime"
        )
    return month_seconds / interval


def billed_ms(duration_ms: float) -> int:
    """Lambda bills each invocation's duration rounded up to the next millisecond (at least 1)."""
    if duration_ms < 0:
        raise ValueError(f"negative duration: {duration_ms} ms")
    return max(1, math.ceil(duration_ms))


def gb_seconds(duration_ms: float, memory_mb: int) -> float:
    """One invocation's billed compute: its rounded duration times the configured memory
    (1 GB = 1,024 MB, as Lambda counts it)."""
    return billed_ms(duration_ms) / 1_000 * memory_mb / 1_024


@dataclass(frozen=True)
class LineItem:
    """A cost that grows with the number of runs: rotations, or the sweep's runs."""

    item: str
    per_rotation: float
    """Units per run (calls, transitions, GB-s, bytes, ...): per rotation, or per sweep run."""
    unit_price: float
    """Dollars per unit."""
    unit: str = ""
    """Shown after the counts, e.g. "GB-s"."""

    def per_month(self, rotations: float) -> float:
        return self.per_rotation * rotations

    def dollars_per_month(self, rotations: float) -> float:
        return self.per_month(rotations) * self.unit_price


@dataclass(frozen=True)
class FixedItem:
    """A cost per month whatever the number of rotations."""

    item: str
    count: int
    monthly_price: float

    @property
    def dollars_per_month(self) -> float:
        return self.count * self.monthly_price


def variable_dollars(items: Sequence[LineItem], rotations: float) -> float:
    return sum(item.dollars_per_month(rotations) for item in items)


def fixed_dollars(items: Sequence[FixedItem]) -> float:
    return sum(item.dollars_per_month for item in items)


def monthly_total(items: Sequence[LineItem], fixed: Sequence[FixedItem], rotations: float) -> float:
    return variable_dollars(items, rotations) + fixed_dollars(fixed)


def median_by_key[K: Hashable](samples: Sequence[Mapping[K, float]]) -> dict[K, float]:
    """Per key, the median over the samples; a key missing from a sample counts as 0 there
    (a call that one rotation did not make)."""
    keys = {key for sample in samples for key in sample}
    return {key: statistics.median(sample.get(key, 0) for sample in samples) for key in keys}


def sweep_runs_per_month(month_seconds: float = MONTH_SECONDS) -> float:
    """The sweep runs every SWEEP_INTERVAL_SECONDS, whatever the secrets."""
    return month_seconds / SWEEP_INTERVAL_SECONDS


def sweep_items(secrets: int) -> list[LineItem]:
    """What one sweep run of a stack with `secrets` token secrets uses, priced: per_rotation is
    per run (sweep_runs_per_month() of them a month)."""
    if secrets < 1:
        raise ValueError(f"a stack rotates at least one secret, not {secrets}")
    run_ms = SWEEP_RUN_MS + secrets * SWEEP_CHECK_MS / SWEEP_CONCURRENCY
    pages = math.ceil(secrets / SWEEP_LIST_PAGE)
    reads = secrets * SWEEP_READS_PER_SECRET
    return [
        LineItem("Lambda requests (one a run)", 1, LAMBDA_PER_REQUEST),
        LineItem(
            f"Lambda duration: {SWEEP_MEMORY_MB} MB arm64, ~{run_ms:,.0f} ms a run",
            gb_seconds(run_ms, SWEEP_MEMORY_MB),
            LAMBDA_ARM64_PER_GB_SECOND,
            "GB-s",
        ),
        LineItem(
            f"Secrets Manager: {pages} ListSecrets, {reads:,} GetSecretValue, "
            f"{SWEEP_KEY_READS_PER_RUN} DescribeSecret (the key secret) a run",
            pages + reads + SWEEP_KEY_READS_PER_RUN,
            SECRETS_MANAGER_PER_API_CALL,
        ),
        LineItem("EventBridge Scheduler invocations (one a run)", 1, SCHEDULER_PER_INVOCATION),
        LineItem(
            "CloudWatch Logs ingestion",
            SWEEP_LOG_BYTES_PER_RUN / 1e9,
            CLOUDWATCH_LOGS_PER_GB_INGESTED,
            "GB",
        ),
        LineItem("X-Ray traces (Tracing: Active; one a run)", 1, XRAY_PER_TRACE_RECORDED),
        LineItem(f"Google tokeninfo requests ({secrets:,} a run; no charge)", secrets, NO_CHARGE),
    ]


# --- What one rotation uses, on the local cloud -----------------------------------------------

ApiCall = tuple[str, str]
"""(moto's service name, API action), e.g. ("secretsmanager", "GetSecretValue")."""
MetricKey = tuple[str, str, tuple[tuple[str, str], ...]]
"""A CloudWatch metric's identity: namespace, name and its dimensions' values."""


@dataclass(frozen=True)
class RotationUsage:
    """One scheduled rotation as the local cloud saw it."""

    transitions: int
    """Billed state transitions: the states the executions entered, and each Task Retry."""
    invocations: Mapping[str, int]
    """Function logical id → invocations."""
    gb_seconds: Mapping[str, float]
    """Function logical id → billed GB-s, summed over its invocations."""
    billed_ms: Mapping[str, int]
    api_calls: Mapping[ApiCall, int]
    google_requests: Mapping[str, int]
    """Request path → count."""
    log_bytes: int
    """What the functions printed (each line and its newline)."""
    history_events: int
    metrics: frozenset[MetricKey]
    """Custom metrics the functions' embedded-metric lines published."""
    failed_executions: tuple[str, ...]
    rotate_seconds: float | None = None
    """Wall time of the schedule's RotateSecret call, which on the local cloud returns when the
    rotation has ended; None in usage made by hand."""


@dataclass(frozen=True)
class Measurement:
    """Medians per scheduled rotation over several warm ones, and what they were measured on."""

    rotations: int
    usage: Sequence[RotationUsage]
    memory_mb: Mapping[str, int]
    """Function logical id → MemorySize in template.yaml (Globals, then the function's own)."""
    lead_seconds: int
    """RefreshLeadSeconds as deployed (finishSecret's REFRESH_LEAD_SECONDS)."""
    secrets: tuple[str, ...]
    """Logical ids of the secrets the deployment created."""
    alarms: Mapping[str, int]
    """The template's alarms by logical id, each with the standard-resolution alarm metrics it
    is billed for."""

    def median(self, value: Callable[[RotationUsage], float]) -> float:
        return statistics.median(value(usage) for usage in self.usage)

    def median_map[K: Hashable](
        self, value: Callable[[RotationUsage], Mapping[K, float]]
    ) -> dict[K, float]:
        return median_by_key([value(usage) for usage in self.usage])


def measure(
    cloud: "LocalCloud", deployment: Deployment, rotations: int = ROTATIONS_MEASURED
) -> Measurement:
    """Rotates the token secret as its schedule would (RotateSecret), once to settle what the
    earlier benchmarks left (a failure streak, a missing schedule), then `rotations` times,
    counting each one."""
    template = load_template()
    memory = {logical_id: spec.memory_mb for logical_id, spec in template.functions().items()}
    finish = cloud.client("lambda").get_function_configuration(
        FunctionName=deployment.functions["FinishSecretFunction"]
    )
    lead = int(finish["Environment"]["Variables"]["REFRESH_LEAD_SECONDS"])
    secrets = tuple(
        sorted(set(template.of_type("AWS::SecretsManager::Secret")) & set(deployment.refs))
    )
    usage = counted_rotations(cloud, deployment, memory, rotations)
    return Measurement(rotations, usage, memory, lead, secrets, alarm_metrics(template))


def counted_rotations(
    cloud: "LocalCloud", deployment: Deployment, memory: Mapping[str, int], rotations: int
) -> list[RotationUsage]:
    """Rotates `deployment.token_secret_arn` as its schedule would, once to settle what ran
    before, then `rotations` times, counting each one; `memory` gives the MemorySize of every
    function in `deployment.functions`."""
    _rotate(cloud, deployment.token_secret_arn)
    return [counted_rotation(cloud, deployment, memory) for _ in range(rotations)]


def alarm_metrics(template: Template) -> dict[str, int]:
    """The template's alarms, each with the alarm metrics it is billed for: 1, or for a
    metric-math alarm the metrics its queries retrieve. Refuses a high-resolution alarm (it has
    another price)."""
    alarms = template.of_type("AWS::CloudWatch::Alarm")
    billed = {}
    for logical_id, alarm in sorted(alarms.items()):
        properties = alarm["Properties"]
        # A metric-math alarm's periods are its queries'.
        retrieved = [q["MetricStat"] for q in properties.get("Metrics", []) if "MetricStat" in q]
        periods = [stat["Period"] for stat in retrieved] or [
            properties.get("Period", STANDARD_ALARM_MIN_PERIOD_SECONDS)
        ]
        possible = [value for period in periods for value in _possible_values(template, period)]
        if min(possible) < STANDARD_ALARM_MIN_PERIOD_SECONDS:
            raise ValueError(f"{logical_id} is a high-resolution alarm: price it as one")
        billed[logical_id] = len(retrieved) or 1
    return billed


def _possible_values(template: Template, value: Any) -> list[int]:
    """A number, or every number a `!FindInMap` can give whatever the parameters are."""
    if isinstance(value, Mapping) and "Fn::FindInMap" in value:
        mapping, _, attribute = value["Fn::FindInMap"]
        return [int(entry[attribute]) for entry in template.document["Mappings"][mapping].values()]
    return [int(value)]


def _rotate(cloud: "LocalCloud", secret_arn: str) -> None:
    cloud.client("secretsmanager").rotate_secret(SecretId=secret_arn)


def counted_rotation(
    cloud: "LocalCloud",
    deployment: Deployment,
    memory: Mapping[str, int],
    secret_arn: str | None = None,
) -> RotationUsage:
    """One rotation of `secret_arn` (default: the deployment's token secret) as its schedule
    would start it (RotateSecret), counted; `memory` gives the MemorySize of every function in
    `deployment.functions`."""
    sfn = cloud.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=deployment.state_machine_arn)["executions"]
    before = {item["executionArn"] for item in listed}
    first_invocation, first_google = len(cloud.invocations), len(cloud.google.requests)
    first_line = len(cloud.logs.lines)
    # Imported here: the pricing arithmetic and its tests need no moto.
    from localcloud.api_calls import recording  # noqa: PLC0415

    with recording() as recorded:
        # Only this call is the benchmark's own: the one the schedule makes.
        started = time.perf_counter()
        _rotate(cloud, secret_arn or deployment.token_secret_arn)
        rotate_seconds = time.perf_counter() - started
    listed = sfn.list_executions(stateMachineArn=deployment.state_machine_arn)["executions"]
    ran = [summarize(cloud, i["executionArn"]) for i in listed if i["executionArn"] not in before]
    logical_ids = {name: logical_id for logical_id, name in deployment.functions.items()}
    invocations: Counter[str] = Counter()
    compute: defaultdict[str, float] = defaultdict(float)
    billed: Counter[str] = Counter()
    for invocation in cloud.invocations[first_invocation:]:
        logical_id = logical_ids[invocation.function_name]
        invocations[logical_id] += 1
        # The worker times the handler with a real clock, so the entry function's duration is
        # the wall time of its whole wait on the execution, as Lambda bills it.
        compute[logical_id] += gb_seconds(invocation.duration_ms, memory[logical_id])
        billed[logical_id] += billed_ms(invocation.duration_ms)
    lines = [line for _, line in cloud.logs.lines[first_line:]]
    return RotationUsage(
        transitions=sum(billed_transitions(execution) for execution in ran),
        invocations=invocations,
        gb_seconds=compute,
        billed_ms=billed,
        api_calls=recorded.counts(),
        google_requests=Counter(r.path for r in cloud.google.requests[first_google:]),
        log_bytes=sum(len(line.encode()) + 1 for line in lines),
        history_events=sum(len(execution.history) for execution in ran),
        metrics=frozenset(key for line in lines for key in embedded_metrics(line)),
        failed_executions=tuple(e.name for e in ran if e.status != "SUCCEEDED"),
        rotate_seconds=rotate_seconds,
    )


def billed_transitions(execution: ExecutionSummary) -> int:
    """The states an execution entered, and each Retry of a Task: AWS bills a retry as a
    transition, where the history enters the state once."""
    retries = sum(attempts - 1 for attempts in execution.task_attempts.values() if attempts > 1)
    return execution.transitions + retries


def embedded_metrics(line: str) -> list[MetricKey]:
    """The metrics one CloudWatch embedded-metric-format line publishes (none for other lines):
    each metric name once per dimension set, identified by its dimensions' values."""
    if not line.startswith("{") or '"_aws"' not in line:
        return []
    try:
        document = json.loads(line)
        directives = document["_aws"]["CloudWatchMetrics"]
        return [
            (
                str(directive["Namespace"]),
                str(metric["Name"]),
                tuple((str(name), str(document[name])) for name in dimension_set),
            )
            for directive in directives
            for dimension_set in directive.get("Dimensions", [[]])
            for metric in directive["Metrics"]
        ]
    except (ValueError, KeyError, TypeError):
        return []


# --- From usage to dollars --------------------------------------------------------------------


def line_items(measured: Measurement) -> list[LineItem]:
    """Every cost that grows with the rotations, per rotation (medians)."""
    invocations = measured.median_map(lambda u: u.invocations)
    compute = measured.median_map(lambda u: u.gb_seconds)
    billed = measured.median_map(lambda u: u.billed_ms)
    calls = measured.median_map(lambda u: u.api_calls)
    google = measured.median_map(lambda u: u.google_requests)
    items = [
        LineItem(
            "Step Functions state transitions (Standard)",
            measured.median(lambda u: u.transitions),
            STEP_FUNCTIONS_PER_TRANSITION,
        ),
        LineItem(
            "Lambda requests: "
            + ", ".join(f"{name} {count:g}" for name, count in sorted(invocations.items())),
            sum(invocations.values()),
            LAMBDA_PER_REQUEST,
        ),
    ]
    for name in sorted(compute, key=lambda n: (n != ENTRY_FUNCTION, n)):
        wait = " (billed for its whole wait)" if name == ENTRY_FUNCTION else ""
        calls_made = invocations.get(name, 0)
        each = billed[name] / calls_made if calls_made else 0.0
        items.append(
            LineItem(
                f"Lambda duration, {name}{wait}: {measured.memory_mb[name]} MB arm64, "
                f"{calls_made:g} x ~{each:.0f} ms",
                compute[name],
                LAMBDA_ARM64_PER_GB_SECOND,
                "GB-s",
            )
        )
    for (service, action), count in sorted(calls.items()):
        if service == "secretsmanager":
            who = " (the schedule's call)" if action == "RotateSecret" else ""
            items.append(
                LineItem(f"Secrets Manager {action}{who}", count, SECRETS_MANAGER_PER_API_CALL)
            )
    items.append(
        LineItem(
            "EventBridge Scheduler invocations (from the design: the schedule fires RotateSecret "
            "once per rotation; the local cloud's scheduler is not used)",
            1,
            SCHEDULER_PER_INVOCATION,
        )
    )
    for (service, action), count in sorted(calls.items()):
        if service == "scheduler":
            items.append(
                LineItem(f"EventBridge Scheduler {action} (the state machine's)", count, NO_CHARGE)
            )
        elif service == "stepfunctions":
            items.append(
                LineItem(
                    f"Step Functions {action} (the entry Lambda's; Standard: no charge)",
                    count,
                    NO_CHARGE,
                )
            )
        elif service not in {"secretsmanager", "awslambda"}:
            # Anything else that turns up (SNS after a failure, ...) is shown, not priced.
            items.append(LineItem(f"{service} {action} (not priced)", count, NO_CHARGE))
    items += [
        LineItem(f"Google {path} requests (no charge)", count, NO_CHARGE)
        for path, count in sorted(google.items())
    ]
    items += [
        LineItem(
            "CloudWatch Logs ingestion, the functions' own lines (no platform lines)",
            measured.median(lambda u: u.log_bytes) / 1e9,
            CLOUDWATCH_LOGS_PER_GB_INGESTED,
            "GB",
        ),
        LineItem(
            "X-Ray traces (Tracing: Active; from the design: one per entry invocation, which "
            "each execution and its step Lambda join)",
            invocations.get(ENTRY_FUNCTION, 0),
            XRAY_PER_TRACE_RECORDED,
        ),
    ]
    return items


def fixed_items(measured: Measurement) -> list[FixedItem]:
    """The monthly costs that do not depend on how often the secret rotates: the secrets, the
    custom metrics (the rotation's own metric lines, measured, and the sweep's) and the alarm
    metrics."""
    metrics: set[MetricKey] = set().union(*(usage.metrics for usage in measured.usage))
    measured_names = ", ".join(f"{ns}/{name}" for ns, name, _ in sorted(metrics)) or "none"
    alarms = ", ".join(
        f"{logical_id}{f' ({count} metrics)' if count > 1 else ''}"
        for logical_id, count in measured.alarms.items()
    )
    return [
        FixedItem(
            f"Secrets Manager secrets: {', '.join(measured.secrets)} (no key secret when "
            "ServiceAccountKeySecretArn names an existing one)",
            len(measured.secrets),
            SECRETS_MANAGER_PER_SECRET_MONTH,
        ),
        FixedItem(
            f"CloudWatch custom metrics, the rotation's own metric lines: {measured_names}",
            len(metrics),
            CLOUDWATCH_PER_CUSTOM_METRIC_MONTH,
        ),
        FixedItem(
            "CloudWatch custom metrics, the freshness sweep's every run: "
            + ", ".join(SWEEP_METRICS),
            len(SWEEP_METRICS),
            CLOUDWATCH_PER_CUSTOM_METRIC_MONTH,
        ),
        FixedItem(
            f"CloudWatch alarm metrics (standard resolution): {alarms}",
            sum(measured.alarms.values()),
            CLOUDWATCH_PER_ALARM_METRIC_MONTH,
        ),
    ]


def short_name(item: LineItem) -> str:
    """An item's name without its figures: "Lambda duration", "Secrets Manager", ..."""
    return item.item.split(":", maxsplit=1)[0].split(" (", maxsplit=1)[0]


def sweep_dollars(secrets: int) -> float:
    """The freshness sweep's running costs per stack-month (its metrics are fixed items)."""
    return variable_dollars(sweep_items(secrets), sweep_runs_per_month())


# --- The report -------------------------------------------------------------------------------


def report(measured: Measurement) -> list[str]:
    """Markdown: the per-rotation table with its monthly total, the fixed costs, the sweep's
    costs, the total per secret-month for a 1-hour and a 12-hour token at one secret per stack,
    and what was not priced."""
    items, fixed = line_items(measured), fixed_items(measured)
    lead = measured.lead_seconds
    rotations = rotations_per_month(TOKEN_LIFETIME_SECONDS, lead)
    long_rotations = rotations_per_month(LONG_TOKEN_LIFETIME_SECONDS, lead)
    variable, fixed_total = variable_dollars(items, rotations), fixed_dollars(fixed)
    long_variable = variable_dollars(items, long_rotations)
    sweep = sweep_dollars(1)
    lines = [
        f"Cost per secret-month (us-east-1 on-demand prices, no free tier): a "
        f"{TOKEN_LIFETIME_SECONDS} s token refreshed {lead} s before expiry rotates every "
        f"{TOKEN_LIFETIME_SECONDS - lead} s, {rotations:.1f} times in a 30.4-day month. "
        f"Per rotation: median of {measured.rotations} warm scheduled rotations on the local "
        "cloud.",
        "",
        "| item | per rotation | per month | $ per month |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {item.item} | {_count(item.per_rotation, item.unit)} | "
        f"{_count(item.per_month(rotations), item.unit)} | "
        f"{_dollars(item.dollars_per_month(rotations))} |"
        for item in items
    ]
    lines += [
        f"| **rotations, 1-hour token** | | **{rotations:.1f}** | **{_dollars(variable)}** |",
        "",
        "| fixed per month | count | $ per month |",
        "|---|---|---|",
    ]
    lines += [
        f"| {item.item} | {item.count} | {_dollars(item.dollars_per_month)} |" for item in fixed
    ]
    lines += [
        f"| **fixed** | | **{_dollars(fixed_total)}** |",
        "",
        *_sweep_lines(),
        "",
        "| token lifetime | rotations per month | rotations $ | sweep $ | fixed $ | **total $ "
        "per secret-month, one secret per stack** |",
        "|---|---|---|---|---|---|",
        f"| 1 hour ({TOKEN_LIFETIME_SECONDS} s) | {rotations:.1f} | {_dollars(variable)} | "
        f"{_dollars(sweep)} | {_dollars(fixed_total)} | "
        f"**{_dollars(variable + sweep + fixed_total)}** |",
        f"| 12 hours ({LONG_TOKEN_LIFETIME_SECONDS} s) | {long_rotations:.1f} | "
        f"{_dollars(long_variable)} | {_dollars(sweep)} | {_dollars(fixed_total)} | "
        f"**{_dollars(long_variable + sweep + fixed_total)}** |",
        "",
        *_notes(measured),
    ]
    return lines


def _sweep_lines() -> list[str]:
    """The sweep's running costs by item, per stack-month, at 1, 50 and 2,500 secrets."""
    runs = sweep_runs_per_month()
    sizes = (1, 50, 2_500)
    lines = [
        f"The freshness sweep runs every {SWEEP_INTERVAL_SECONDS} s, {runs:,.0f} times a month, "
        "whatever the secrets; what a run uses is assumed (SWEEP_* in benchmarks/cost.py), not "
        "measured yet.",
        "",
        "| sweep, $ per stack-month | "
        + " | ".join(f"{n:,} secret{'s' if n > 1 else ''}" for n in sizes)
        + " |",
        "|---|" + "---|" * len(sizes),
    ]
    by_size = [sweep_items(n) for n in sizes]
    for index, item in enumerate(by_size[0]):
        label = short_name(item)
        cells = [_dollars(items[index].dollars_per_month(runs)) for items in by_size]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines += [
        "| **sweep, per stack** | "
        + " | ".join(f"**{_dollars(sweep_dollars(n))}**" for n in sizes)
        + " |",
        "| **sweep, per secret** | "
        + " | ".join(f"**{_dollars(sweep_dollars(n) / n)}**" for n in sizes)
        + " |",
    ]
    return lines


def _notes(measured: Measurement) -> list[str]:
    events = measured.median(lambda u: u.history_events)
    notes = [
        "Not priced: SNS (failure notices only), KMS requests behind the secrets "
        "(aws/secretsmanager key), Logs storage, the platform's START/END/REPORT lines and the "
        f"state machine's execution log (Level ALL: {events:g} history events per rotation, "
        "their size not measured here); the sweep's RotateSecret calls, made only to repair a "
        "lost trigger or replace a refused token, and the metrics sent only when not zero "
        "(SweepRotationsStarted, SweepRotationsDeferred, UnverifiedPromotions), billed for the "
        "hours they are sent.",
        "The entry Lambda's billed wait is the local execution time plus polling (first poll "
        "0.25 s); each extra second per entry invocation adds about "
        f"{_dollars(_extra_wait_dollars(measured))} a month at 1-hour tokens.",
    ]
    failed = sorted({name for usage in measured.usage for name in usage.failed_executions})
    if failed:
        notes.append(
            f"WARNING: {len(failed)} measured executions did not succeed ({failed[0]}, ...): "
            "the counts include failure paths and are not a normal rotation's."
        )
    return notes


def _extra_wait_dollars(measured: Measurement) -> float:
    entries = measured.median_map(lambda u: u.invocations).get(ENTRY_FUNCTION, 0)
    memory = measured.memory_mb.get(ENTRY_FUNCTION, 0)
    rotations = rotations_per_month(TOKEN_LIFETIME_SECONDS, measured.lead_seconds)
    return entries * memory / 1_024 * rotations * LAMBDA_ARM64_PER_GB_SECOND


def _count(value: float, unit: str) -> str:
    if unit == "GB":
        return f"{value * 1e6:,.1f} kB" if value < 1e-3 else f"{value * 1e3:,.1f} MB"
    if value == int(value) or value >= 100:
        text = f"{value:,.0f}"
    else:
        text = f"{value:,.1f}" if value >= 10 else f"{value:.3f}"
    return f"{text} {unit}".rstrip()


def _dollars(value: float) -> str:
    """Enough digits that no cost that exists shows as zero."""
    if value == 0:
        return "$0"
    if value < 0.01:
        return f"${value:.5f}"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"
