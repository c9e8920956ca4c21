"""The orchestrated rotation beside a single-Lambda baseline, per rotation and per secret-month.

The baseline (benchmarks/baseline_function/, never in template.yaml) is AWS's rotation-template
shape: one function that Secrets Manager invokes once per step, running the step in-process
with the stack's own step handlers and core. It is deployed into the stack on the same local
cloud and rotates a second token secret, made as the template makes TokenSecret; both are
measured the same way (benchmarks/cost.py) and priced with the same prices and the same
rotations a month.

The stack is priced twice: as it is (after issue #17: the freshness sweep and one freshness
alarm per stack) and as it was before (a metric and an alarm per secret, a metric per step), the
same measured rotation under both."""

import dataclasses
import json
import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from benchmarks import cost
from benchmarks.cost import LineItem, Measurement, MetricKey
from localcloud.deployment import CURRENT, Deployment
from localcloud.intrinsics import references
from localcloud.template import PROJECT_ROOT, FunctionSpec, Template, load_template

if TYPE_CHECKING:
    # Types only, as in benchmarks/cost.py: the arithmetic and its unit test need no moto.
    from localcloud.cloud import LocalCloud

BASELINE_FUNCTION: Final = "BaselineRotationFunction"
BASELINE_SECRET: Final = "BaselineTokenSecret"
"""The baseline's token secret, named like a logical id for the tables (it is no resource of
the template)."""
BASELINE_CODE: Final = PROJECT_ROOT / "benchmarks" / "baseline_function"
BASELINE_HANDLER: Final = "baseline_rotation.lambda_handler"
TOKEN_SECRET: Final = "TokenSecret"
STEP_FUNCTIONS: Final = (
    "CreateSecretFunction",
    "SetSecretFunction",
    "TestSecretFunction",
    "FinishSecretFunction",
)
SECRET_DIMENSION: Final = "TokenSecret"
"""The dimension naming the token secret in finishSecret's metric line: a metric carrying it
exists once per secret, one without it once per stack."""
AWS_SCHEDULE_MIN_INTERVAL_SECONDS: Final = 4 * 3_600
"""Secrets Manager's own rotation schedule runs at most every 4 hours."""
SECRETS_PER_STACK: Final = (1, 50, 2_500)
GOAL_RATIO: Final = 1.5
"""Issues #12 and #17: the orchestrated stack should cost at most 1.5 times the baseline per
secret-month."""

NAMESPACE: Final = "GoogleTokenRotation"

# What the stack paid for monitoring before issue #17, beside what it pays now.
PREVIOUS_STEP_METRICS: Final = tuple(
    f"{NAMESPACE}/RotationStepDuration (Step={step})"
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret")
)
"""A duration metric per step and stack (RotationStepFailures only when a step failed)."""
PREVIOUS_SECRET_METRICS: Final = (f"{NAMESPACE}/AccessTokenSecondsLeft",)
"""finishSecret's token-life metric, with the secret's name as a dimension: one per secret."""
PREVIOUS_SECRET_ALARMS: Final = {"TokenNearExpiryAlarm": 1}
"""The near-expiry alarm on that metric: one per secret (tools/add-token-secret --alarm-topic)."""
FRESHNESS_ALARM: Final = "TokenFreshnessAlarm"
"""The one alarm per stack that replaced it."""

# The cost categories both shapes are priced in, so that their difference can be taken line by
# line.
TRANSITIONS: Final = "Step Functions state transitions"
LAMBDA_REQUESTS: Final = "Lambda requests"
LAMBDA_WAITING: Final = "Lambda duration, the entry function waiting on executions"
LAMBDA_STEPS: Final = "Lambda duration, the functions running the steps"
SECRETS_MANAGER_CALLS: Final = "Secrets Manager API calls"
SCHEDULER_INVOCATIONS: Final = "EventBridge Scheduler invocations"
LOGS: Final = "CloudWatch Logs ingestion"
TRACES: Final = "X-Ray traces"
SECRETS: Final = "Secrets Manager secrets"
METRICS: Final = "CloudWatch custom metrics"
ALARMS: Final = "CloudWatch alarm metrics"
MONITORING: Final = frozenset({METRICS, ALARMS})
SWEEP: Final = "freshness sweep"
"""The sweep's running costs, each its own category: "freshness sweep, <item>"."""


@dataclass(frozen=True)
class FixedCost:
    """A monthly cost that does not grow with the rotations: paid once per secret, or once per
    stack and shared by all the secrets it rotates."""

    category: str
    units: Mapping[str, int]
    """What is paid for (secrets and alarms by logical id, metrics by name), each with its
    billed units (an alarm's alarm metrics; 1 for the rest)."""
    monthly_price: float
    per_secret: bool

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.units)

    @property
    def dollars_per_month(self) -> float:
        return sum(self.units.values()) * self.monthly_price


@dataclass(frozen=True)
class Shape:
    """One way to rotate a secret: what its rotations used, and how it is priced."""

    name: str
    measured: Measurement
    rotation_function: str
    """The function Secrets Manager invokes (logical id): one X-Ray trace per invocation."""
    waiting_functions: frozenset[str]
    """Functions whose billed duration is a wait on others (the entry Lambda's polling)."""
    schedule_invocations: int
    """The refresh schedule firing RotateSecret, per rotation (by design: the local cloud's
    scheduler does not run in the benchmark)."""
    fixed: tuple[FixedCost, ...]
    sweeps: bool = False
    """Whether a freshness sweep runs per stack (priced from cost.sweep_items)."""


@dataclass(frozen=True)
class Comparison:
    orchestrated: Shape
    baseline: Shape
    before: Shape
    """The stack as it was before issue #17, on the same measured rotation."""


# --- The arithmetic ---------------------------------------------------------------------------


def variable_items(shape: Shape) -> list[LineItem]:
    """Every cost that grows with the rotations, per rotation (medians), in the categories both
    shapes share; the same prices and the same totals as cost.line_items."""
    measured = shape.measured
    invocations = measured.median_map(lambda u: u.invocations)
    compute = measured.median_map(lambda u: u.gb_seconds)
    calls = measured.median_map(lambda u: u.api_calls)
    waiting = sum(gb for name, gb in compute.items() if name in shape.waiting_functions)
    return [
        LineItem(
            TRANSITIONS,
            measured.median(lambda u: u.transitions),
            cost.STEP_FUNCTIONS_PER_TRANSITION,
        ),
        LineItem(LAMBDA_REQUESTS, sum(invocations.values()), cost.LAMBDA_PER_REQUEST),
        LineItem(LAMBDA_WAITING, waiting, cost.LAMBDA_ARM64_PER_GB_SECOND, "GB-s"),
        LineItem(
            LAMBDA_STEPS, sum(compute.values()) - waiting, cost.LAMBDA_ARM64_PER_GB_SECOND, "GB-s"
        ),
        LineItem(
            SECRETS_MANAGER_CALLS,
            sum(count for (service, _), count in calls.items() if service == "secretsmanager"),
            cost.SECRETS_MANAGER_PER_API_CALL,
        ),
        LineItem(SCHEDULER_INVOCATIONS, shape.schedule_invocations, cost.SCHEDULER_PER_INVOCATION),
        LineItem(
            LOGS,
            measured.median(lambda u: u.log_bytes) / 1e9,
            cost.CLOUDWATCH_LOGS_PER_GB_INGESTED,
            "GB",
        ),
        LineItem(TRACES, invocations.get(shape.rotation_function, 0), cost.XRAY_PER_TRACE_RECORDED),
    ]


def fixed_costs(
    measured: Measurement,
    token_secret: str,
    secret_alarms: Collection[str],
    stack_metrics: Sequence[str] = (),
    secret_metrics: Sequence[str] = (),
) -> tuple[FixedCost, ...]:
    """The secrets, custom metrics and alarm metrics of a measured shape, each per secret (the
    token secret, a metric with the secret's dimension or in `secret_metrics`, an alarm in
    `secret_alarms`) or per stack (the rest: the key secret, per-step metrics, `stack_metrics`
    that no rotation prints, the stack's alarms)."""
    metrics: set[MetricKey] = set().union(*(usage.metrics for usage in measured.usage))
    costs = []
    for per_secret in (True, False):
        secrets = {s: 1 for s in measured.secrets if (s == token_secret) is per_secret}
        metric_names = dict.fromkeys(
            [
                _metric_name(metric)
                for metric in sorted(metrics)
                if (SECRET_DIMENSION in dict(metric[2])) is per_secret
            ]
            + list(secret_metrics if per_secret else stack_metrics),
            1,
        )
        alarms = {a: n for a, n in measured.alarms.items() if (a in secret_alarms) is per_secret}
        costs += [
            FixedCost(SECRETS, secrets, cost.SECRETS_MANAGER_PER_SECRET_MONTH, per_secret),
            FixedCost(METRICS, metric_names, cost.CLOUDWATCH_PER_CUSTOM_METRIC_MONTH, per_secret),
            FixedCost(ALARMS, alarms, cost.CLOUDWATCH_PER_ALARM_METRIC_MONTH, per_secret),
        ]
    return tuple(fixed for fixed in costs if fixed.units)


def _metric_name(metric: MetricKey) -> str:
    namespace, name, dimensions = metric
    # The secret's name and the service's are the same in every metric of the stack.
    shown = [
        f"{key}={value}" for key, value in dimensions if key not in {SECRET_DIMENSION, "service"}
    ]
    return f"{namespace}/{name}" + (f" ({', '.join(shown)})" if shown else "")


def secret_alarms(template: Template) -> frozenset[str]:
    """The template's alarms that watch the token secret (its resource or the parameter that
    names it): one such alarm per secret when a stack rotates several."""
    names = template.resources[TOKEN_SECRET].get("Properties", {}).get("Name", {})
    token_refs = {TOKEN_SECRET} | references(names)
    return frozenset(
        logical_id
        for logical_id, alarm in template.of_type("AWS::CloudWatch::Alarm").items()
        if references(alarm.get("Properties", {})) & token_refs
    )


def per_secret_month(shape: Shape, rotations: float, secrets_per_stack: int) -> dict[str, float]:
    """Dollars per secret-month by category: the rotations' costs, the per-secret fixed costs,
    and a `secrets_per_stack`-th of the per-stack ones and of the sweep's."""
    if secrets_per_stack < 1:
        raise ValueError(f"a stack rotates at least one secret, not {secrets_per_stack}")
    dollars = {item.item: item.dollars_per_month(rotations) for item in variable_items(shape)}
    for fixed in shape.fixed:
        share = fixed.dollars_per_month / (1 if fixed.per_secret else secrets_per_stack)
        dollars[fixed.category] = dollars.get(fixed.category, 0.0) + share
    if shape.sweeps:
        runs = cost.sweep_runs_per_month()
        for item in cost.sweep_items(secrets_per_stack):
            category = f"{SWEEP}, {cost.short_name(item)}"
            dollars[category] = item.dollars_per_month(runs) / secrets_per_stack
    return dollars


def without_monitoring(dollars: Mapping[str, float]) -> dict[str, float]:
    """The costs of rotating alone: what the baseline provides (it has no metric or alarm)."""
    return {category: value for category, value in dollars.items() if category not in MONITORING}


def differences(
    orchestrated: Mapping[str, float], baseline: Mapping[str, float]
) -> list[tuple[str, float]]:
    """By category, how much more the orchestrated shape costs, largest first; equal ones left
    out."""
    gaps = {
        category: orchestrated.get(category, 0.0) - baseline.get(category, 0.0)
        for category in {*orchestrated, *baseline}
    }
    return sorted(((c, gap) for c, gap in gaps.items() if gap), key=lambda item: -item[1])


# --- Measuring both on one local cloud --------------------------------------------------------


def compare(
    cloud: "LocalCloud",
    deployment: Deployment,
    orchestrated: Measurement,
    rotations: int = cost.ROTATIONS_MEASURED,
) -> Comparison:
    """Deploys the baseline into `deployment` (its stack measured as `orchestrated`), measures
    `rotations` warm scheduled rotations of it, and prices both shapes."""
    template = load_template()
    baseline = measure_baseline(cloud, deployment, orchestrated, rotations, template)
    return Comparison(
        orchestrated_shape(orchestrated, template),
        baseline_shape(baseline),
        previous_shape(orchestrated),
    )


def orchestrated_shape(measured: Measurement, template: Template) -> Shape:
    """The stack: Secrets Manager invokes the entry function, which waits on the executions;
    the refresh schedule fires once per rotation; the freshness sweep runs per stack and
    publishes its metrics once per stack; an alarm that watches a token secret would come once
    per secret."""
    return Shape(
        name="orchestrated (this stack)",
        measured=measured,
        rotation_function=cost.ENTRY_FUNCTION,
        waiting_functions=frozenset({cost.ENTRY_FUNCTION}),
        schedule_invocations=1,
        fixed=fixed_costs(
            measured,
            TOKEN_SECRET,
            secret_alarms(template),
            stack_metrics=[f"{NAMESPACE}/{name}" for name in cost.SWEEP_METRICS],
        ),
        sweeps=True,
    )


def previous_shape(measured: Measurement) -> Shape:
    """The stack before issue #17, on the same measured rotation: no sweep; a duration metric
    per step; a token-life metric and a near-expiry alarm per secret instead of the one
    freshness alarm per stack; the failure alarms as they are."""
    alarms = {a: n for a, n in measured.alarms.items() if a != FRESHNESS_ALARM}
    return Shape(
        name="before (a metric and an alarm per secret)",
        measured=measured,
        rotation_function=cost.ENTRY_FUNCTION,
        waiting_functions=frozenset({cost.ENTRY_FUNCTION}),
        schedule_invocations=1,
        fixed=fixed_costs(
            dataclasses.replace(measured, alarms={**alarms, **PREVIOUS_SECRET_ALARMS}),
            TOKEN_SECRET,
            PREVIOUS_SECRET_ALARMS,
            stack_metrics=PREVIOUS_STEP_METRICS,
            secret_metrics=PREVIOUS_SECRET_METRICS,
        ),
    )


def baseline_shape(measured: Measurement) -> Shape:
    """The baseline: Secrets Manager invokes the one function, nothing waits, nothing schedules
    a refresh, no alarm. AWS's shape has no metric either: the embedded-metric lines that the
    shared step handlers print in it are left unpriced (deployed as is, its logs would create
    those metrics)."""
    return Shape(
        name="single-Lambda baseline",
        measured=measured,
        rotation_function=BASELINE_FUNCTION,
        waiting_functions=frozenset(),
        schedule_invocations=0,
        fixed=tuple(
            fixed
            for fixed in fixed_costs(measured, BASELINE_SECRET, ())
            if fixed.category != METRICS
        ),
    )


def baseline_spec(template: Template) -> FunctionSpec:
    """The baseline function as the template would declare it: what SAM Globals give the step
    functions (runtime, memory, timeout, the rotation-core layer, every variable) and its own
    code. The step functions must agree on those, as the one function runs all four steps."""
    functions = template.functions()
    first = functions[STEP_FUNCTIONS[0]]

    def settings(spec: FunctionSpec) -> tuple[object, ...]:
        return (spec.runtime, spec.memory_mb, spec.timeout_seconds, spec.layers, spec.environment)

    differing = [name for name in STEP_FUNCTIONS if settings(functions[name]) != settings(first)]
    if differing:
        raise ValueError(
            f"{', '.join(differing)} differ from {first.logical_id} in runtime, memory, timeout, "
            "layers or variables: the one baseline function cannot match them all"
        )
    return dataclasses.replace(
        first,
        logical_id=BASELINE_FUNCTION,
        code_uri=BASELINE_CODE,
        handler=BASELINE_HANDLER,
        policies=(),
    )


def deploy_baseline(
    cloud: "LocalCloud", deployment: Deployment, spec: FunctionSpec, template: Template
) -> str:
    """The baseline function in the stack, and its token secret made as the template makes
    TokenSecret (its initial value, and the tags the template gives it as deployed: the stack's
    managed-by tag), with rotation configured to call the function on the shortest schedule
    AWS allows; that RotateSecret runs a first (cold) rotation. Returns the secret's ARN."""
    function_arn = cloud.deploy_extra_function(deployment, spec)
    properties = template.resources[TOKEN_SECRET]["Properties"]
    declared = {tag["Key"] for tag in properties.get("Tags", [])}
    secrets = cloud.client("secretsmanager")
    token_secret = secrets.describe_secret(SecretId=deployment.token_secret_arn)
    secret_arn: str = secrets.create_secret(
        Name=f"{token_secret['Name']}-baseline",
        SecretString=properties["SecretString"],
        # Not the status tags the stack's rotations have added since: they describe its secret.
        Tags=[tag for tag in token_secret["Tags"] if tag["Key"] in declared],
    )["ARN"]
    secrets.rotate_secret(
        SecretId=secret_arn,
        RotationLambdaARN=function_arn,
        RotationRules={
            "ScheduleExpression": f"rate({AWS_SCHEDULE_MIN_INTERVAL_SECONDS // 3600} hours)"
        },
    )
    return secret_arn


def measure_baseline(
    cloud: "LocalCloud",
    deployment: Deployment,
    orchestrated: Measurement,
    rotations: int,
    template: Template,
) -> Measurement:
    """Deploys the baseline and counts `rotations` scheduled rotations of its secret (after the
    first, cold one and one more to settle), exactly as cost.measure counts the stack's.
    RuntimeError if any of its rotations failed: the figures would not be a rotation's."""
    spec = baseline_spec(template)
    first_invocation = len(cloud.invocations)
    secret_arn = deploy_baseline(cloud, deployment, spec, template)
    # cost's counting rotates the deployment's token secret and counts executions on its state
    # machine: pointed at the baseline's secret, it finds none started (0 transitions, measured).
    as_baseline = dataclasses.replace(
        deployment, refs={**deployment.refs, TOKEN_SECRET: secret_arn}
    )
    memory = {**orchestrated.memory_mb, BASELINE_FUNCTION: spec.memory_mb}
    usage = cost.counted_rotations(cloud, as_baseline, memory, rotations)
    failed = [i.error_type for i in cloud.invocations[first_invocation:] if i.error_type]
    current = json.loads(
        cloud.client("secretsmanager").get_secret_value(SecretId=secret_arn, VersionStage=CURRENT)[
            "SecretString"
        ]
    )
    if failed or not current.get("GOOGLE_ACCESS_TOKEN"):
        raise RuntimeError(f"the baseline's rotations failed ({', '.join(failed) or 'no token'})")
    secrets = tuple(sorted({BASELINE_SECRET, *orchestrated.secrets} - {TOKEN_SECRET}))
    return Measurement(rotations, usage, memory, orchestrated.lead_seconds, secrets, alarms={})


# --- The report -------------------------------------------------------------------------------


def report(comparison: Comparison) -> list[str]:
    """Markdown: both shapes per rotation, then per secret-month at 1-hour and 12-hour tokens and
    1, 50 or 2,500 secrets per stack, the stack before and after issue #17 against the
    baseline, whole bill and like for like, and what the difference is made of."""
    orchestrated, baseline = comparison.orchestrated, comparison.baseline
    before = comparison.before
    lead = orchestrated.measured.lead_seconds
    hourly = cost.rotations_per_month(cost.TOKEN_LIFETIME_SECONDS, lead)
    lifetimes = {
        "1-hour token": hourly,
        "12-hour token": cost.rotations_per_month(cost.LONG_TOKEN_LIFETIME_SECONDS, lead),
    }
    aws_schedule = cost.MONTH_SECONDS / AWS_SCHEDULE_MIN_INTERVAL_SECONDS
    lines = [
        "Side by side: the single-Lambda baseline is AWS's rotation-template shape, one function "
        "that Secrets Manager invokes once per step, running it in-process with the same step "
        "handlers and core; no Step Functions, no refresh schedule, no metric or alarm (the "
        "metric lines those handlers print are not priced for it). Both on the same local "
        "cloud, each rotating its own token secret; per rotation, the median of "
        f"{orchestrated.measured.rotations} warm scheduled rotations (RotateSecret) each.",
        "",
        f"| per rotation | {orchestrated.name} | {baseline.name} |",
        "|---|---|---|",
        *_usage_rows(orchestrated, baseline),
        "",
        f"Both are priced at the same rotations a month: a {cost.TOKEN_LIFETIME_SECONDS} s token "
        f"refreshed {lead} s before expiry rotates {hourly:.1f} times, a "
        f"{cost.LONG_TOKEN_LIFETIME_SECONDS} s one {lifetimes['12-hour token']:.1f} times. "
        "Secrets Manager's own schedule rotates at most every "
        f"{AWS_SCHEDULE_MIN_INTERVAL_SECONDS // 3600} hours ({aws_schedule:.1f} times a month): "
        "with 1-hour tokens the baseline needs a trigger it does not have (counted here as "
        "free), with 12-hour tokens its own schedule will do.",
        "",
        "Before and after issue #17: the same measured rotation, priced with the monitoring "
        "the stack had (a token-life metric and a near-expiry alarm per secret, a duration "
        "metric per step) and with what it has (the freshness sweep, its metrics and one "
        "freshness alarm per stack; the steps publish no metric: AWS/Lambda's free Duration and "
        "Errors per step function say the same). Alarms are priced per alarm metric, a "
        "metric-math alarm per metric it retrieves, before and after alike.",
        "",
        f"| $ per month | {before.name} | {orchestrated.name} | {baseline.name} |",
        "|---|---|---|---|",
    ]
    shapes = (before, orchestrated, baseline)
    for label, rotations in lifetimes.items():
        lines.append(
            _row(
                f"rotations, {label} ({rotations:.1f} a month)",
                [_dollars(cost.variable_dollars(variable_items(s), rotations)) for s in shapes],
            )
        )
    lines += _fixed_rows(shapes)
    lines += [
        _row(
            f"freshness sweep per stack, {secrets:,} secret{'s' if secrets > 1 else ''}",
            [_dollars(cost.sweep_dollars(secrets)) if shape.sweeps else "none" for shape in shapes],
        )
        for secrets in SECRETS_PER_STACK
    ]
    lines += [
        "",
        "| $ per secret-month | secrets per stack | single Lambda | before | before / "
        "baseline | like for like | after | after / baseline | like for like |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for label, rotations in lifetimes.items():
        for secrets in SECRETS_PER_STACK:
            theirs = per_secret_month(baseline, rotations, secrets)
            cells = [_dollars(sum(theirs.values()))]
            for shape in (before, orchestrated):
                ours = per_secret_month(shape, rotations, secrets)
                ratio, like_for_like = _ratios(ours, theirs)
                cells += [
                    _dollars(sum(ours.values())),
                    f"**{ratio:.2f}x**",
                    f"**{like_for_like:.2f}x**",
                ]
            lines.append(_row(f"{label} | {secrets:,}", cells))
            ours = per_secret_month(orchestrated, rotations, secrets)
            verdicts.append(_verdict(label, secrets, *_ratios(ours, theirs), ours, theirs))
    lines += [
        "",
        *verdicts,
        "",
        _sweep_metrics_note(comparison, hourly),
        "",
        _entry_wait_note(comparison, hourly),
    ]
    return lines


def _ratios(ours: Mapping[str, float], theirs: Mapping[str, float]) -> tuple[float, float]:
    """The whole bill against the baseline's, and like for like: without the metrics and alarms
    the baseline lacks (the sweep's running costs stay: it keeps tokens fresh, not only looks)."""
    total = sum(theirs.values())
    return sum(ours.values()) / total, sum(without_monitoring(ours).values()) / total


def _usage_rows(orchestrated: Shape, baseline: Shape) -> list[str]:
    shapes = (orchestrated, baseline)
    calls = [shape.measured.median_map(lambda u: u.api_calls) for shape in shapes]
    google = [shape.measured.median_map(lambda u: u.google_requests) for shape in shapes]
    rows = [
        _row("wall time (RotateSecret until the rotation ended)", [_wall(s) for s in shapes]),
        _row("Lambda invocations", [_invocations(s) for s in shapes]),
        _row(
            "billed GB-s (duration rounded up to 1 ms x memory)",
            [_compute(s) for s in shapes],
        ),
        _row(
            "Step Functions state transitions",
            [f"{s.measured.median(lambda u: u.transitions):g}" for s in shapes],
        ),
    ]
    for service, action in sorted({*calls[0], *calls[1]}):
        label = (
            f"AWS API {_SERVICE_NAMES.get(service, service)}:{action}{_CALLERS.get(service, '')}"
        )
        rows.append(
            _row(label, [f"{shape_calls.get((service, action), 0):g}" for shape_calls in calls])
        )
    rows.append(
        _row(
            "EventBridge Scheduler invocations (the refresh schedule's RotateSecret)",
            [
                f"{orchestrated.schedule_invocations}",
                f"{baseline.schedule_invocations} (no refresh schedule: AWS's shape has none)",
            ],
        )
    )
    for path in sorted({*google[0], *google[1]}):
        rows.append(_row(f"Google {path}", [f"{requests.get(path, 0):g}" for requests in google]))
    rows.append(
        _row(
            "log lines ingested (the functions' own)",
            [f"{s.measured.median(lambda u: u.log_bytes) / 1e3:,.1f} kB" for s in shapes],
        )
    )
    rows.append(
        _row(
            "**$ per rotation**",
            [f"**{_dollars(cost.variable_dollars(variable_items(s), 1))}**" for s in shapes],
        )
    )
    return rows


_SERVICE_NAMES: Final = {"awslambda": "lambda"}
"""moto's service names that differ from the IAM prefix."""
_CALLERS: Final = {
    "awslambda": " (the state machine's; priced as Lambda requests)",
    "scheduler": " (the state machine's; no charge)",
    "stepfunctions": " (the entry Lambda's; no charge)",
}


def _row(label: str, cells: Sequence[str]) -> str:
    return f"| {label} | {' | '.join(cells)} |"


def _wall(shape: Shape) -> str:
    seconds = [u.rotate_seconds for u in shape.measured.usage if u.rotate_seconds is not None]
    return f"{statistics.median(seconds):.3f} s" if seconds else "not measured"


def _invocations(shape: Shape) -> str:
    invocations = shape.measured.median_map(lambda u: u.invocations)
    each = ", ".join(f"{name} {count:g}" for name, count in sorted(invocations.items()))
    return f"{sum(invocations.values()):g}: {each}"


def _compute(shape: Shape) -> str:
    compute = shape.measured.median_map(lambda u: u.gb_seconds)
    memory = sorted({shape.measured.memory_mb[name] for name in compute})
    waiting = sum(gb for name, gb in compute.items() if name in shape.waiting_functions)
    text = f"{sum(compute.values()):.4f} (arm64, {'/'.join(map(str, memory))} MB)"
    if waiting:
        text += f", of which the entry function billed for its whole wait {waiting:.4f}"
    return text


def _fixed_rows(shapes: Sequence[Shape]) -> list[str]:
    shown = [{(f.category, f.per_secret): f for f in shape.fixed} for shape in shapes]
    rows = []
    for per_secret in (True, False):
        for category in (SECRETS, METRICS, ALARMS):
            found = [fixed.get((category, per_secret)) for fixed in shown]
            if any(found):
                where = "per secret" if per_secret else "per stack"
                cells = [
                    "none" if f is None else f"{_dollars(f.dollars_per_month)}: {_names(f)}"
                    for f in found
                ]
                rows.append(_row(f"fixed {where}: {category}", cells))
    return rows


def _names(fixed: FixedCost) -> str:
    return ", ".join(
        name + (f" ({units} metrics)" if units > 1 else "") for name, units in fixed.units.items()
    )


def _verdict(
    label: str,
    secrets: int,
    ratio: float,
    like_for_like: float,
    orchestrated: Mapping[str, float],
    baseline: Mapping[str, float],
) -> str:
    met = "met" if ratio <= GOAL_RATIO else "**not met**"
    met_alike = "met" if like_for_like <= GOAL_RATIO else "**not met**"
    gap = sum(orchestrated.values()) - sum(baseline.values())
    verdict = (
        f"- {label}, {secrets:,} secret{'s' if secrets > 1 else ''} per stack: {ratio:.2f}x, the "
        f"goal of {GOAL_RATIO}x {met} ({like_for_like:.2f}x like for like, without the "
        f"monitoring the baseline lacks: {met_alike})"
    )
    if gap <= 0:
        return f"{verdict}; the orchestrated stack costs no more."
    largest = ", ".join(
        f"{category} {_dollars(dollars)} ({dollars / gap:.0%})"
        for category, dollars in differences(orchestrated, baseline)[:3]
    )
    return f"{verdict}; of the {_dollars(gap)} more per secret-month: {largest}."


def _sweep_metrics_note(comparison: Comparison, rotations: float) -> str:
    """What the sweep's metrics weigh where they weigh most: a stack of one secret."""
    theirs = sum(per_secret_month(comparison.baseline, rotations, 1).values())
    ours = sum(per_secret_month(comparison.orchestrated, rotations, 1).values())
    sent = cost.SWEEP_METRICS
    others = [name for name in sent if name not in cost.SWEEP_ALARMED_METRICS]
    extra = len(others) * cost.CLOUDWATCH_PER_CUSTOM_METRIC_MONTH
    return (
        f"The sweep sends {len(sent)} metrics every run ({', '.join(sent)}): "
        f"{_dollars(len(sent) * cost.CLOUDWATCH_PER_CUSTOM_METRIC_MONTH)} a stack-month. Its "
        "repair counts are sent only when not zero, billed only for the hours they are sent, "
        "and its Google calls are in its summary line, not a metric. The alarms need "
        f"{' and '.join(cost.SWEEP_ALARMED_METRICS)} alone; with {', '.join(others)} sent only "
        "when not zero too, a 1-secret "
        f"stack of 1-hour tokens would cost {_dollars(ours - extra)} a month, "
        f"{(ours - extra) / theirs:.2f}x the baseline instead of {ours / theirs:.2f}x."
    )


def _entry_wait_note(comparison: Comparison, rotations: float) -> str:
    ours = per_secret_month(comparison.orchestrated, rotations, 1)
    theirs = per_secret_month(comparison.baseline, rotations, 1)
    wait = ours[LAMBDA_WAITING] - theirs[LAMBDA_WAITING]
    total = sum(ours.values())
    return (
        "The entry Lambda, billed for its whole wait on the executions, costs "
        f"{_dollars(wait)} per secret-month with 1-hour tokens, {wait / total:.1%} of the "
        "orchestrated stack's cost at 1 secret per stack."
    )


def _dollars(value: float) -> str:
    """Three significant digits below a dollar, so that no cost that exists shows as zero."""
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.{2 - math.floor(math.log10(abs(value)))}f}"
