"""What renewing the service-account key costs: the key secret's rotations on the local cloud,
counted call by call and priced with benchmarks/cost.py's prices."""

import bisect
import dataclasses
import math
import statistics
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from benchmarks import cost
from benchmarks.cost import LineItem, Measurement, RotationUsage
from localcloud.deployment import Deployment
from localcloud.google_keys import key_call
from localcloud.template import Template, load_template
from rotation_core.config import KEY_ROTATION_DAYS_VARIABLE

if TYPE_CHECKING:
    # Types only, as in benchmarks/cost.py.
    from localcloud.cloud import Invocation, LocalCloud
    from localcloud.google_emulator import RecordedRequest

KEY_SECRET: Final = "ServiceAccountKeySecret"
KEY_ALARM: Final = "ServiceAccountKeyExpiryAlarm"
KEY_METRICS: Final = tuple(
    name for name in cost.SWEEP_METRICS if name.startswith("ServiceAccountKey")
)
"""The sweep's metrics of the key sent every run (cost.py prices them with the stack's)."""
ROTATIONS_MEASURED: Final = 5
ROTATION_DAYS: Final = (30, 1)
"""KeyRotationDays priced: the default, and the shortest."""
PROPAGATION_SECONDS: Final = 5.0
"""How long after keys.create the emulator's Google accepts the new key in the slow-key rotation
(its default): testSecret's first attempt is refused and the state machine's Retry waits 5 s."""
TOKEN_MINT: Final = "/token"
TOKENINFO: Final = "/tokeninfo"
STEPS: Final = {
    "CreateSecretFunction": "createSecret",
    "SetSecretFunction": "setSecret",
    "TestSecretFunction": "testSecret",
    "FinishSecretFunction": "finishSecret",
}
STEP_ORDER: Final = tuple(STEPS.values())
ROUTE_ORDER: Final = (TOKEN_MINT, TOKENINFO, "keys.create", "keys.list", "keys.delete")

GoogleCalls = Mapping[tuple[str, str], float]
"""(step that made it, route) → calls, a median of them in a report; the route is "/token",
"/tokeninfo" or "keys.<action>" (never a key's path, which names the key)."""


@dataclass(frozen=True)
class KeyRotationUsage:
    """One key rotation: what cost.py counts, and Google's calls by step and route."""

    usage: RotationUsage
    """Its google_requests are by route, as `google` without the steps."""
    google: GoogleCalls


@dataclass(frozen=True)
class KeyRotationMeasurement:
    first: KeyRotationUsage
    """The first rotation after a key was put by hand: no standby key yet, so none is deleted."""
    later: Sequence[KeyRotationUsage]
    """The rotations after it: each deletes the standby the one before left."""
    slow_key: KeyRotationUsage | None
    """A later rotation whose new key Google accepted only PROPAGATION_SECONDS after creating it
    (the Retry waits are slept for real); None when not measured."""
    priced: Measurement
    """`later` as cost.py prices it."""

    def median_later(self) -> KeyRotationUsage:
        """The later rotations' medians, in the shape of one rotation."""
        priced = self.priced
        walls = [u.rotate_seconds for u in priced.usage if u.rotate_seconds is not None]
        usage = RotationUsage(
            transitions=round(priced.median(lambda u: u.transitions)),
            invocations=_rounded(priced.median_map(lambda u: u.invocations)),
            gb_seconds=priced.median_map(lambda u: u.gb_seconds),
            billed_ms=_rounded(priced.median_map(lambda u: u.billed_ms)),
            api_calls=_rounded(priced.median_map(lambda u: u.api_calls)),
            google_requests=_rounded(priced.median_map(lambda u: u.google_requests)),
            log_bytes=round(priced.median(lambda u: u.log_bytes)),
            history_events=round(priced.median(lambda u: u.history_events)),
            metrics=frozenset(),
            failed_executions=(),
            rotate_seconds=statistics.median(walls) if walls else None,
        )
        return KeyRotationUsage(usage, cost.median_by_key([r.google for r in self.later]))


def measure(
    cloud: "LocalCloud",
    deployment: Deployment,
    rotations: int = ROTATIONS_MEASURED,
    slow_key: bool = True,
) -> KeyRotationMeasurement:
    """Rotates the key secret as Secrets Manager's schedule would (RotateSecret) 1 + `rotations`
    times, Google accepting each new key at once, then once with a new key Google accepts only
    after PROPAGATION_SECONDS when `slow_key`; the key must be in its secret already. ValueError
    for a stack whose key does not rotate, RuntimeError when a rotation failed."""
    template = load_template()
    memory = {logical_id: spec.memory_mb for logical_id, spec in template.functions().items()}
    _check_rotates_key(cloud, deployment)
    with _key_propagation(cloud, 0.0):
        first = _counted(cloud, deployment, memory)
        later = [_counted(cloud, deployment, memory) for _ in range(rotations)]
    slow = None
    if slow_key:
        with _key_propagation(cloud, PROPAGATION_SECONDS), _sleeping_retries(cloud):
            slow = _counted(cloud, deployment, memory)
    failed = [
        name
        for rotation in (first, *later, *([slow] if slow else []))
        for name in rotation.usage.failed_executions
    ]
    if failed:
        raise RuntimeError(f"key rotations failed ({', '.join(failed)}): no figures to report")
    lead = int(_environment(cloud, deployment)["REFRESH_LEAD_SECONDS"])
    priced = Measurement(
        rotations,
        [rotation.usage for rotation in later],
        memory,
        lead,
        (KEY_SECRET,),
        alarms={},
    )
    return KeyRotationMeasurement(first, later, slow, priced)


def _rounded[K](counts: Mapping[K, float]) -> dict[K, int]:
    """Medians of counts as counts (ROTATIONS_MEASURED is odd: each is one rotation's)."""
    return {key: round(count) for key, count in counts.items()}


def _check_rotates_key(cloud: "LocalCloud", deployment: Deployment) -> None:
    days = _environment(cloud, deployment).get(KEY_ROTATION_DAYS_VARIABLE, "0")
    if KEY_SECRET not in deployment.refs or int(days) <= 0:
        raise ValueError(
            f"stack {deployment.stack_name!r} does not rotate its key: deploy it with a key "
            "(CredentialSource service-account-key or impersonation, no "
            "ServiceAccountKeySecretArn) and KeyRotationDays above 0"
        )


def _environment(cloud: "LocalCloud", deployment: Deployment) -> dict[str, str]:
    finish = cloud.client("lambda").get_function_configuration(
        FunctionName=deployment.functions["FinishSecretFunction"]
    )
    variables: dict[str, str] = finish["Environment"]["Variables"]
    return variables


@contextmanager
def _key_propagation(cloud: "LocalCloud", seconds: float) -> Iterator[None]:
    saved = cloud.google.key_propagation_seconds
    cloud.google.key_propagation_seconds = seconds
    try:
        yield
    finally:
        cloud.google.key_propagation_seconds = saved


@contextmanager
def _sleeping_retries(cloud: "LocalCloud") -> Iterator[None]:
    """The state machine's Retry waits slept for real, so that Google's clock (the simulated
    one, which ticks with real time) reaches the moment it accepts the new key."""
    saved = cloud.corrections.sleep_retries
    cloud.corrections.sleep_retries = True
    try:
        yield
    finally:
        cloud.corrections.sleep_retries = saved


def _counted(
    cloud: "LocalCloud", deployment: Deployment, memory: Mapping[str, int]
) -> KeyRotationUsage:
    first_invocation, first_request = len(cloud.invocations), len(cloud.google.requests)
    usage = cost.counted_rotation(cloud, deployment, memory, deployment.key_secret_arn)
    google = google_calls_by_step(
        cloud,
        deployment,
        cloud.invocations[first_invocation:],
        cloud.google.requests[first_request:],
    )
    routes: Counter[str] = Counter()
    for (_, route), count in google.items():
        routes[route] += count
    return KeyRotationUsage(dataclasses.replace(usage, google_requests=routes), google)


def google_route(request: "RecordedRequest") -> str:
    """What a request asked Google for, named without the account or key it names."""
    call = key_call(request.method, request.path)
    return request.path if call is None else f"keys.{call.action}"


def google_calls_by_step(
    cloud: "LocalCloud",
    deployment: Deployment,
    invocations: Sequence["Invocation"],
    requests: Sequence["RecordedRequest"],
) -> Counter[tuple[str, str]]:
    """Each Google request with the step whose invocation was running when it arrived (the steps
    of one rotation run one after another); "other" for one that came while none was."""
    logical_ids = {name: logical_id for logical_id, name in deployment.functions.items()}
    # Invocations are timed in real time, requests on the emulator's (simulated) clock.
    windows = sorted(
        (
            cloud.clock.simulated_at(invocation.started),
            cloud.clock.simulated_at(invocation.ended),
            STEPS[logical_ids[invocation.function_name]],
        )
        for invocation in invocations
        if logical_ids.get(invocation.function_name) in STEPS
    )
    starts = [start for start, _, _ in windows]
    calls: Counter[tuple[str, str]] = Counter()
    for request in requests:
        index = bisect.bisect_right(starts, request.time) - 1
        inside = index >= 0 and request.time <= windows[index][1]
        calls[(windows[index][2] if inside else "other", google_route(request))] += 1
    return calls


def rotations_per_month(days: int) -> float:
    """A key renewed every `days` (KeyRotationDays) rotates this often in cost.py's month."""
    return cost.MONTH_SECONDS / (days * 86_400)


# --- The report -------------------------------------------------------------------------------


def report(measured: KeyRotationMeasurement) -> list[str]:
    """Markdown: a key rotation's counts (the first, the later ones, one with a slow new key),
    then its cost per rotation and per month at each of ROTATION_DAYS."""
    later = measured.priced
    shown = {
        "first (key put by hand)": measured.first,
        f"each later (median of {later.rotations})": measured.median_later(),
    }
    if measured.slow_key is not None:
        shown[f"later, new key accepted {PROPAGATION_SECONDS:g} s after keys.create"] = (
            measured.slow_key
        )
    return [
        "## Key rotation",
        "",
        "The key secret renewing itself (KeyRotationDays above 0), started by "
        "RotateSecret on the key secret as Secrets Manager's schedule or the key's refresh "
        "schedule starts it; the emulator's Google answers the IAM keys API. A rotation deletes "
        "the standby key the one before it kept, so the first after a key was put by hand "
        "deletes none.",
        "",
        f"| per key rotation | {' | '.join(shown)} |",
        "|---|" + "---|" * len(shown),
        *_count_rows(list(shown.values()), later),
        "",
        *_cost_lines(later),
    ]


def _count_rows(rotations: Sequence[KeyRotationUsage], priced: Measurement) -> list[str]:
    usages = [r.usage for r in rotations]
    rows = [
        _row("wall time (RotateSecret until the rotation ended)", [_wall(u) for u in usages]),
        _row(
            "Step Functions state transitions (billed: each Retry too)",
            [f"{u.transitions:g}" for u in usages],
        ),
        _row("Lambda invocations", [f"{sum(u.invocations.values()):g}" for u in usages]),
    ]
    for name in sorted({name for u in usages for name in u.invocations}):
        rows.append(
            _row(
                f"Lambda {name}: invocations, billed duration",
                [
                    f"{u.invocations.get(name, 0):g}, {u.billed_ms.get(name, 0):,.0f} ms"
                    for u in usages
                ],
            )
        )
    for service, action in sorted({call for u in usages for call in u.api_calls}):
        label = _API_LABELS.get(service, service + " {} (not priced)").format(action)
        rows.append(_row(label, [f"{u.api_calls.get((service, action), 0):g}" for u in usages]))
    for route in _routes(rotations):
        rows.append(
            _row(
                f"Google {_ROUTE_LABELS.get(route, route)}",
                [_by_step(r.google, route) for r in rotations],
            )
        )
    rows.append(
        _row(
            "**$ per rotation**",
            [f"**{dollars(cost.variable_dollars(_items(u, priced), 1))}**" for u in usages],
        )
    )
    return rows


_API_LABELS: Final = {
    "secretsmanager": "Secrets Manager {}",
    "scheduler": "EventBridge Scheduler {} (the state machine's; no charge)",
    "stepfunctions": "Step Functions {} (the entry Lambda's; no charge)",
    "awslambda": "Lambda {} (the state machine's; priced as Lambda requests)",
}
_ROUTE_LABELS: Final = {
    TOKEN_MINT: "token mints (/token), by step",
    TOKENINFO: "tokeninfo, by step",
    "keys.create": "IAM keys.create, by step",
    "keys.list": "IAM keys.list, by step",
    "keys.delete": "IAM keys.delete, by step",
}


def _routes(rotations: Sequence[KeyRotationUsage]) -> list[str]:
    seen = {route for r in rotations for _, route in r.google}
    known = [route for route in ROUTE_ORDER if route in seen or route.startswith("keys.")]
    return known + sorted(seen - set(known))


def _by_step(google: Mapping[tuple[str, str], float], route: str) -> str:
    steps = {step: count for (step, r), count in google.items() if r == route and count}
    order = [*STEP_ORDER, *sorted(set(steps) - set(STEP_ORDER))]
    each = ", ".join(f"{step} {steps[step]:g}" for step in order if step in steps)
    total = sum(steps.values())
    return f"{total:g}" + (f" ({each})" if each else "")


def _items(usage: RotationUsage, priced: Measurement) -> list[LineItem]:
    """One rotation priced as cost.py prices a token secret's (and as `priced` is)."""
    return cost.line_items(dataclasses.replace(priced, rotations=1, usage=[usage]))


def _cost_lines(later: Measurement) -> list[str]:
    items = cost.line_items(later)
    priced = [item for item in items if item.unit_price]
    months = {days: rotations_per_month(days) for days in ROTATION_DAYS}
    header = " | ".join(
        f"KeyRotationDays {days} ({rotations:.1f} a month)" for days, rotations in months.items()
    )
    lines = [
        f"Cost (us-east-1 on-demand, no free tier; cost.py's prices), from the median later "
        f"rotation; a {cost.MONTH_SECONDS / 86_400:.1f}-day month. The EventBridge Scheduler "
        "invocation is the key's refresh schedule firing RotateSecret (none when Secrets "
        "Manager's own schedule starts the rotation); Google's calls cost nothing.",
        "",
        f"| item | per rotation | $ per rotation | $ per month, {header} |",
        "|---|---|---|" + "---|" * len(months),
    ]
    for item in priced:
        per_month = [dollars(item.dollars_per_month(rotations)) for rotations in months.values()]
        lines.append(
            _row(
                item.item,
                [
                    _amount(item.per_rotation, item.unit),
                    dollars(item.dollars_per_month(1)),
                    *per_month,
                ],
            )
        )
    totals = [dollars(cost.variable_dollars(items, rotations)) for rotations in months.values()]
    lines.append(
        _row(
            "**key rotation**",
            ["", f"**{dollars(cost.variable_dollars(items, 1))}**", *[f"**{t}**" for t in totals]],
        )
    )
    upkeep = upkeep_items(load_template())
    lines += [
        "",
        "What watching the key costs, per stack and month whatever KeyRotationDays is (part of "
        "the stack's fixed costs and the sweep's runs in cost.py):",
        "",
        "| per stack, while the key renews itself | $ per month |",
        "|---|---|",
        *[_row(item, [dollars(monthly)]) for item, monthly in upkeep.items()],
        _row("**watching the key**", [f"**{dollars(sum(upkeep.values()))}**"]),
    ]
    return lines


def upkeep_items(template: Template) -> dict[str, float]:
    """What a stack pays a month for the key's renewal besides the rotations: the sweep's key
    metrics, the key's alarm, and the sweep's read of the key secret every run."""
    alarm_metrics = cost.alarm_metrics(template)[KEY_ALARM]
    runs = cost.sweep_runs_per_month()
    reads = cost.SWEEP_KEY_READS_PER_RUN
    metrics = f"CloudWatch custom metrics, the sweep's every run: {', '.join(KEY_METRICS)}"
    alarm = f"CloudWatch alarm metrics: {KEY_ALARM} ({alarm_metrics})"
    describe = (
        f"Secrets Manager DescribeSecret of the key secret, {reads} a sweep run ({runs:,.0f})"
    )
    return {
        metrics: len(KEY_METRICS) * cost.CLOUDWATCH_PER_CUSTOM_METRIC_MONTH,
        alarm: alarm_metrics * cost.CLOUDWATCH_PER_ALARM_METRIC_MONTH,
        describe: reads * runs * cost.SECRETS_MANAGER_PER_API_CALL,
    }


def _row(label: str, cells: Sequence[str]) -> str:
    return f"| {label} | {' | '.join(cells)} |"


def _wall(usage: RotationUsage) -> str:
    return "not measured" if usage.rotate_seconds is None else f"{usage.rotate_seconds:.2f} s"


def _amount(value: float, unit: str) -> str:
    if unit == "GB":
        return f"{value * 1e6:,.1f} kB"
    text = f"{value:g}" if value >= 0.01 or value == 0 else f"{value:.5f}"
    return f"{text} {unit}".rstrip()


def dollars(value: float) -> str:
    """Three significant digits below a dollar, so that no cost that exists shows as zero."""
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.{2 - math.floor(math.log10(value))}f}"
