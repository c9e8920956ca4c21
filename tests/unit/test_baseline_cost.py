"""The side-by-side pricing of benchmarks/baseline.py: both shapes in shared categories, fixed
costs per secret or per stack, the freshness sweep, N secrets per stack, the stack before and
after issue #17, the ratios and what makes the difference."""

import re

import pytest

from benchmarks.baseline import (
    ALARMS,
    BASELINE_CODE,
    BASELINE_FUNCTION,
    BASELINE_HANDLER,
    GOAL_RATIO,
    LAMBDA_STEPS,
    LAMBDA_WAITING,
    METRICS,
    PREVIOUS_SECRET_ALARMS,
    PREVIOUS_SECRET_METRICS,
    PREVIOUS_STEP_METRICS,
    SCHEDULER_INVOCATIONS,
    SECRETS,
    SECRETS_PER_STACK,
    SWEEP,
    TRACES,
    TRANSITIONS,
    Comparison,
    FixedCost,
    Shape,
    baseline_shape,
    baseline_spec,
    differences,
    orchestrated_shape,
    per_secret_month,
    previous_shape,
    report,
    secret_alarms,
    variable_items,
    without_monitoring,
)
from benchmarks.cost import (
    CLOUDWATCH_PER_ALARM_METRIC_MONTH,
    CLOUDWATCH_PER_CUSTOM_METRIC_MONTH,
    LONG_TOKEN_LIFETIME_SECONDS,
    SECRETS_MANAGER_PER_SECRET_MONTH,
    SWEEP_METRICS,
    TOKEN_LIFETIME_SECONDS,
    Measurement,
    RotationUsage,
    alarm_metrics,
    fixed_dollars,
    fixed_items,
    gb_seconds,
    line_items,
    monthly_total,
    rotations_per_month,
    sweep_dollars,
    variable_dollars,
)
from localcloud.template import Template, load_template

ENTRY = "RotationEntryFunction"
STEPS = ("CreateSecretFunction", "SetSecretFunction", "TestSecretFunction", "FinishSecretFunction")
SECRET_CALLS = {
    ("secretsmanager", "DescribeSecret"): 4,
    ("secretsmanager", "GetSecretValue"): 5,
    ("secretsmanager", "PutSecretValue"): 1,
    ("secretsmanager", "UpdateSecretVersionStage"): 1,
    ("secretsmanager", "TagResource"): 1,
    ("secretsmanager", "RotateSecret"): 1,
}
TEMPLATE = load_template()
HOURLY = rotations_per_month(TOKEN_LIFETIME_SECONDS, 900)
TWELVE_HOURLY = rotations_per_month(LONG_TOKEN_LIFETIME_SECONDS, 900)


def _orchestrated_usage(entry_ms: float) -> RotationUsage:
    return RotationUsage(
        transitions=25,
        invocations={ENTRY: 4, **dict.fromkeys(STEPS, 1)},
        gb_seconds={
            ENTRY: 4 * gb_seconds(entry_ms, 256),
            **dict.fromkeys(STEPS, gb_seconds(25, 256)),
        },
        billed_ms={ENTRY: 4 * round(entry_ms), **dict.fromkeys(STEPS, 25)},
        api_calls={
            **SECRET_CALLS,
            ("stepfunctions", "StartExecution"): 4,
            ("stepfunctions", "DescribeExecution"): 8,
            ("scheduler", "UpdateSchedule"): 1,
            ("awslambda", "Invoke"): 4,
        },
        google_requests={"/token": 1, "/tokeninfo": 1},
        log_bytes=14_000,
        history_events=70,
        metrics=frozenset(),
        failed_executions=(),
        rotate_seconds=1.2 + entry_ms / 10_000,
    )


def _baseline_usage(ms: float) -> RotationUsage:
    return RotationUsage(
        transitions=0,
        invocations={BASELINE_FUNCTION: 4},
        gb_seconds={BASELINE_FUNCTION: 4 * gb_seconds(ms, 256)},
        billed_ms={BASELINE_FUNCTION: 4 * round(ms)},
        api_calls=SECRET_CALLS,
        google_requests={"/token": 1, "/tokeninfo": 1},
        log_bytes=6_000,
        history_events=0,
        metrics=frozenset(),
        failed_executions=(),
        rotate_seconds=ms / 100,
    )


def _orchestrated() -> Measurement:
    return Measurement(
        rotations=3,
        usage=[_orchestrated_usage(250), _orchestrated_usage(300), _orchestrated_usage(900)],
        memory_mb={ENTRY: 256, **dict.fromkeys(STEPS, 256)},
        lead_seconds=900,
        secrets=("ServiceAccountKeySecret", "TokenSecret"),
        alarms=alarm_metrics(TEMPLATE),
    )


def _baseline() -> Measurement:
    return Measurement(
        rotations=3,
        usage=[_baseline_usage(30), _baseline_usage(40), _baseline_usage(35)],
        memory_mb={BASELINE_FUNCTION: 256},
        lead_seconds=900,
        secrets=("BaselineTokenSecret", "ServiceAccountKeySecret"),
        alarms={},
    )


def _comparison() -> Comparison:
    return Comparison(
        orchestrated_shape(_orchestrated(), TEMPLATE),
        baseline_shape(_baseline()),
        previous_shape(_orchestrated()),
    )


def _fixed(shape: Shape) -> dict[tuple[str, bool], tuple[str, ...]]:
    return {(fixed.category, fixed.per_secret): fixed.names for fixed in shape.fixed}


def _items(shape: Shape) -> dict[str, float]:
    return {item.item: item.per_rotation for item in variable_items(shape)}


@pytest.mark.parametrize("rotations", [HOURLY, TWELVE_HOURLY])
def test_the_orchestrated_shape_costs_what_the_cost_table_reports(rotations: float) -> None:
    measured = _orchestrated()
    shape = orchestrated_shape(measured, TEMPLATE)

    assert variable_dollars(variable_items(shape), rotations) == pytest.approx(
        variable_dollars(line_items(measured), rotations)
    )
    assert sum(fixed.dollars_per_month for fixed in shape.fixed) == pytest.approx(
        fixed_dollars(fixed_items(measured))
    )
    assert sum(per_secret_month(shape, rotations, 1).values()) == pytest.approx(
        monthly_total(line_items(measured), fixed_items(measured), rotations) + sweep_dollars(1)
    )


def test_the_entry_functions_billed_wait_is_a_category_of_its_own() -> None:
    comparison = _comparison()
    orchestrated, baseline = _items(comparison.orchestrated), _items(comparison.baseline)

    # The median entry invocation waits 300 ms; the steps run 25 ms each.
    assert orchestrated[LAMBDA_WAITING] == pytest.approx(4 * 0.300 * 0.25)
    assert orchestrated[LAMBDA_STEPS] == pytest.approx(4 * 0.025 * 0.25)
    assert baseline[LAMBDA_WAITING] == 0
    assert baseline[LAMBDA_STEPS] == pytest.approx(4 * 0.035 * 0.25)


def test_only_the_orchestrated_shape_has_transitions_and_a_refresh_schedule() -> None:
    comparison = _comparison()
    orchestrated, baseline = _items(comparison.orchestrated), _items(comparison.baseline)

    assert (orchestrated[TRANSITIONS], baseline[TRANSITIONS]) == (25, 0)
    assert (orchestrated[SCHEDULER_INVOCATIONS], baseline[SCHEDULER_INVOCATIONS]) == (1, 0)
    # One trace per invocation of the function Secrets Manager calls: 4 steps, 4 traces each.
    assert (orchestrated[TRACES], baseline[TRACES]) == (4, 4)


def test_the_stack_pays_for_nothing_per_secret_but_the_secret_itself() -> None:
    """After issue #17: the sweep's metrics and every alarm come once per stack."""
    shape = orchestrated_shape(_orchestrated(), TEMPLATE)

    assert _fixed(shape) == {
        (SECRETS, True): ("TokenSecret",),
        (SECRETS, False): ("ServiceAccountKeySecret",),
        (METRICS, False): tuple(f"GoogleTokenRotation/{name}" for name in SWEEP_METRICS),
        (ALARMS, False): (
            "RotationEntryFailuresAlarm",
            "RotationFailuresAlarm",
            "ServiceAccountKeyExpiryAlarm",
            "TokenFreshnessAlarm",
        ),
    }
    (alarms,) = [f for f in shape.fixed if f.category == ALARMS]
    assert alarms.dollars_per_month == pytest.approx(
        (2 + 3 + 1 + 1) * CLOUDWATCH_PER_ALARM_METRIC_MONTH
    )
    assert shape.sweeps


def test_before_the_stack_paid_a_metric_and_an_alarm_per_secret_and_a_metric_per_step() -> None:
    shape = previous_shape(_orchestrated())

    assert _fixed(shape) == {
        (SECRETS, True): ("TokenSecret",),
        (METRICS, True): PREVIOUS_SECRET_METRICS,
        (ALARMS, True): tuple(PREVIOUS_SECRET_ALARMS),
        (SECRETS, False): ("ServiceAccountKeySecret",),
        (METRICS, False): PREVIOUS_STEP_METRICS,
        (ALARMS, False): (
            "RotationEntryFailuresAlarm",
            "RotationFailuresAlarm",
            "ServiceAccountKeyExpiryAlarm",
        ),
    }
    assert len(PREVIOUS_STEP_METRICS) == 4
    assert not shape.sweeps
    # The same measured rotation: only the monitoring and the sweep differ.
    assert _items(shape) == _items(orchestrated_shape(_orchestrated(), TEMPLATE))


def test_the_baseline_pays_for_its_secrets_only_whatever_metric_lines_it_prints() -> None:
    assert _fixed(baseline_shape(_baseline())) == {
        (SECRETS, True): ("BaselineTokenSecret",),
        (SECRETS, False): ("ServiceAccountKeySecret",),
    }


def test_no_alarm_of_the_template_watches_one_token_secret() -> None:
    """An alarm naming the token secret would be repeated for every secret a stack rotates."""
    assert secret_alarms(TEMPLATE) == set()


def test_a_stacks_own_costs_are_shared_by_its_secrets() -> None:
    shape = orchestrated_shape(_orchestrated(), TEMPLATE)

    alone = per_secret_month(shape, HOURLY, 1)
    shared = per_secret_month(shape, HOURLY, 50)

    assert alone[SECRETS] == pytest.approx(2 * SECRETS_MANAGER_PER_SECRET_MONTH)
    assert shared[SECRETS] == pytest.approx(SECRETS_MANAGER_PER_SECRET_MONTH * (1 + 1 / 50))
    assert shared[ALARMS] == pytest.approx(7 * CLOUDWATCH_PER_ALARM_METRIC_MONTH / 50)
    assert shared[METRICS] == pytest.approx(
        len(SWEEP_METRICS) * CLOUDWATCH_PER_CUSTOM_METRIC_MONTH / 50
    )
    assert sum(v for k, v in shared.items() if k.startswith(SWEEP)) == pytest.approx(
        sweep_dollars(50) / 50
    )
    assert shared[TRANSITIONS] == alone[TRANSITIONS]


def test_a_stack_without_secrets_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        per_secret_month(baseline_shape(_baseline()), HOURLY, 0)


def test_differences_come_largest_first_without_the_equal_categories() -> None:
    assert differences({"a": 1.0, "b": 3.0, "c": 2.0}, {"a": 0.5, "c": 2.0, "d": 0.25}) == [
        ("b", 3.0),
        ("a", 0.5),
        ("d", -0.25),
    ]


def test_the_report_puts_the_shapes_side_by_side_per_rotation() -> None:
    lines = report(_comparison())

    assert "| wall time (RotateSecret until the rotation ended) | 1.230 s | 0.350 s |" in lines
    assert "| Step Functions state transitions | 25 | 0 |" in lines
    assert (
        "| Lambda invocations | 8: CreateSecretFunction 1, FinishSecretFunction 1, "
        "RotationEntryFunction 4, SetSecretFunction 1, TestSecretFunction 1 | "
        "4: BaselineRotationFunction 4 |"
    ) in lines
    assert "| AWS API secretsmanager:GetSecretValue | 5 | 5 |" in lines
    assert (
        "| AWS API stepfunctions:DescribeExecution (the entry Lambda's; no charge) | 8 | 0 |"
        in lines
    )
    assert "| Google /token | 1 | 1 |" in lines
    assert any(line.startswith("| EventBridge Scheduler invocations") for line in lines)
    assert any(line.startswith("| fixed per stack: CloudWatch custom metrics |") for line in lines)


def test_the_report_gives_the_ratio_per_secret_month_for_each_lifetime_and_stack_size() -> None:
    comparison = _comparison()
    lines = report(comparison)

    rows = [line for line in lines if re.match(r"\| 1\d?-hour token \| [\d,]+ \|", line)]
    assert len(rows) == 2 * len(SECRETS_PER_STACK)
    for label, rotations in (("1-hour", HOURLY), ("12-hour", TWELVE_HOURLY)):
        for secrets in SECRETS_PER_STACK:
            theirs = sum(per_secret_month(comparison.baseline, rotations, secrets).values())
            ratios = []
            for shape in (comparison.before, comparison.orchestrated):
                ours = per_secret_month(shape, rotations, secrets)
                ratios += [
                    f"**{sum(ours.values()) / theirs:.2f}x**",
                    f"**{sum(without_monitoring(ours).values()) / theirs:.2f}x**",
                ]
            (row,) = [r for r in rows if r.startswith(f"| {label} token | {secrets:,} | ")]
            cells = [cell.strip() for cell in row.split("|")[1:-1]]
            assert [cells[4], cells[5], cells[7], cells[8]] == ratios


def test_each_verdict_says_whether_the_goal_is_met_and_what_dominates() -> None:
    verdicts = [line for line in report(_comparison()) if line.startswith("- ")]

    assert len(verdicts) == 2 * len(SECRETS_PER_STACK)
    for verdict in verdicts:
        ratio = re.search(r": (\d+\.\d+)x, the goal of [\d.]+x (met|\*\*not met\*\*) ", verdict)
        alike = re.search(r"\((\d+\.\d+)x like for like, .*: (met|\*\*not met\*\*)\)", verdict)
        assert ratio is not None
        assert alike is not None
        assert (ratio[2] == "met") is (float(ratio[1]) <= GOAL_RATIO)
        assert (alike[2] == "met") is (float(alike[1]) <= GOAL_RATIO)
    # A 1-hour token: the state transitions cost the most once a stack's own costs are shared.
    for size in ("50", "2,500"):
        (shared,) = [v for v in verdicts if v.startswith(f"- 1-hour token, {size} secrets")]
        more = shared.split("more per secret-month: ")[1]
        assert more.startswith("Step Functions state transitions")


def test_a_shape_beside_itself_meets_the_goal_and_costs_no_more() -> None:
    shape = baseline_shape(_baseline())
    verdicts = [line for line in report(Comparison(shape, shape, shape)) if line.startswith("- ")]

    assert verdicts
    assert all("1.00x" in v and "costs no more" in v and "not met" not in v for v in verdicts)


def test_the_baseline_function_is_declared_as_the_step_functions_are() -> None:
    step = TEMPLATE.functions()["CreateSecretFunction"]

    spec = baseline_spec(TEMPLATE)

    assert (spec.logical_id, spec.code_uri, spec.handler) == (
        BASELINE_FUNCTION,
        BASELINE_CODE,
        BASELINE_HANDLER,
    )
    assert (BASELINE_CODE / BASELINE_HANDLER.replace(".lambda_handler", ".py")).is_file()
    assert spec.environment == step.environment
    assert (spec.runtime, spec.memory_mb, spec.timeout_seconds, spec.layers) == (
        step.runtime,
        step.memory_mb,
        step.timeout_seconds,
        step.layers,
    )


def test_the_baseline_is_refused_when_the_step_functions_disagree() -> None:
    document = TEMPLATE.document
    resources = dict(document["Resources"])
    resource = dict(resources["SetSecretFunction"])
    resource["Properties"] = {**resource["Properties"], "MemorySize": 512}
    resources["SetSecretFunction"] = resource

    with pytest.raises(ValueError, match="SetSecretFunction differ from CreateSecretFunction"):
        baseline_spec(Template({**document, "Resources": resources}))


def test_a_fixed_cost_is_its_units_times_its_price() -> None:
    alarms = FixedCost(
        ALARMS, {"A": 1, "B": 3}, CLOUDWATCH_PER_ALARM_METRIC_MONTH, per_secret=False
    )
    assert alarms.names == ("A", "B")
    assert alarms.dollars_per_month == pytest.approx(0.40)


def test_like_for_like_leaves_out_only_the_monitoring_the_baseline_lacks() -> None:
    dollars = {TRANSITIONS: 0.25, SECRETS: 0.8, METRICS: 1.5, ALARMS: 0.3, TRACES: 0.02}

    assert without_monitoring(dollars) == {TRANSITIONS: 0.25, SECRETS: 0.8, TRACES: 0.02}


# --- Before and after issue #17, from the model's constants -----------------------------------


def _monitoring_before(secrets: int) -> float:
    """Per secret-month: a token-life metric and a near-expiry alarm per secret; per stack, a
    duration metric per step, the two failure alarms' 3 + 2 alarm metrics and the key-expiry
    alarm's 1 (no part of issue #17: priced the same before and after)."""
    per_stack = (
        len(PREVIOUS_STEP_METRICS) * CLOUDWATCH_PER_CUSTOM_METRIC_MONTH
        + (3 + 2 + 1) * CLOUDWATCH_PER_ALARM_METRIC_MONTH
    )
    per_secret = CLOUDWATCH_PER_CUSTOM_METRIC_MONTH + CLOUDWATCH_PER_ALARM_METRIC_MONTH
    return per_secret + per_stack / secrets


def _monitoring_after(secrets: int) -> float:
    """Per secret-month: nothing per secret but the sweep's reads; per stack, the sweep's runs,
    its metrics and the freshness alarm beside the failure and key-expiry alarms."""
    per_stack = (
        len(SWEEP_METRICS) * CLOUDWATCH_PER_CUSTOM_METRIC_MONTH
        + (1 + 3 + 2 + 1) * CLOUDWATCH_PER_ALARM_METRIC_MONTH
    )
    return (per_stack + sweep_dollars(secrets)) / secrets


@pytest.mark.parametrize("rotations", [HOURLY, TWELVE_HOURLY])
@pytest.mark.parametrize("secrets", SECRETS_PER_STACK)
def test_before_and_after_differ_by_exactly_the_monitoring_and_the_sweep(
    rotations: float, secrets: int
) -> None:
    comparison = _comparison()
    before = sum(per_secret_month(comparison.before, rotations, secrets).values())
    after = sum(per_secret_month(comparison.orchestrated, rotations, secrets).values())

    assert after - before == pytest.approx(_monitoring_after(secrets) - _monitoring_before(secrets))


@pytest.mark.parametrize("secrets", [50, 2_500])
def test_from_fifty_secrets_on_monitoring_per_stack_costs_far_less_than_per_secret(
    secrets: int,
) -> None:
    """The point of monitoring per stack: what a secret pays for its freshness alarm falls with
    the secrets a stack rotates, to the sweep's read of it (a GetSecretValue every 5 minutes)."""
    assert _monitoring_after(secrets) < _monitoring_before(secrets) / 4


def test_with_one_secret_too_the_sweep_and_its_metrics_cost_less_than_the_old_alarm() -> None:
    """Priced with only the metrics it sends every run, the sweep (its runs, its metrics and
    its alarm) costs a stack of one secret less than a token-life metric and alarm per secret
    and a metric per step did."""
    assert _monitoring_after(1) < _monitoring_before(1)


@pytest.mark.parametrize("secrets", SECRETS_PER_STACK)
def test_the_after_ratio_is_the_rotation_the_secrets_and_a_share_of_the_stack(
    secrets: int,
) -> None:
    """The after table's whole-bill ratio at 1-hour tokens, from the measured rotation's line
    items and the model's prices, not from the table."""
    comparison = _comparison()
    baseline = sum(per_secret_month(comparison.baseline, HOURLY, secrets).values())
    rotating = variable_dollars(line_items(_orchestrated()), HOURLY)
    secrets_dollars = SECRETS_MANAGER_PER_SECRET_MONTH * (1 + 1 / secrets)
    expected = (rotating + secrets_dollars + _monitoring_after(secrets)) / baseline

    lines = report(comparison)

    (row,) = [r for r in lines if r.startswith(f"| 1-hour token | {secrets:,} | ")]
    assert row.split("|")[8].strip() == f"**{expected:.2f}x**"
