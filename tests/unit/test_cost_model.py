"""The cost model's arithmetic (benchmarks/cost.py): rotations a month, billed GB-s, dollars,
the freshness sweep's runs, calls and metrics, alarms billed per alarm metric."""

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

import freshness_sweep
from benchmarks.cost import (
    CLOUDWATCH_PER_ALARM_METRIC_MONTH,
    CLOUDWATCH_PER_CUSTOM_METRIC_MONTH,
    LAMBDA_ARM64_PER_GB_SECOND,
    LAMBDA_PER_REQUEST,
    SCHEDULER_PER_INVOCATION,
    SECRETS_MANAGER_PER_API_CALL,
    SECRETS_MANAGER_PER_SECRET_MONTH,
    STEP_FUNCTIONS_PER_TRANSITION,
    SWEEP_ALARMED_METRICS,
    SWEEP_CHECK_MS,
    SWEEP_CONCURRENCY,
    SWEEP_INTERVAL_SECONDS,
    SWEEP_KEY_READS_PER_RUN,
    SWEEP_LIST_PAGE,
    SWEEP_MEMORY_MB,
    SWEEP_METRICS,
    SWEEP_READS_PER_SECRET,
    SWEEP_RUN_MS,
    FixedItem,
    LineItem,
    Measurement,
    RotationUsage,
    alarm_metrics,
    billed_ms,
    billed_transitions,
    embedded_metrics,
    fixed_items,
    gb_seconds,
    line_items,
    median_by_key,
    monthly_total,
    report,
    rotations_per_month,
    short_name,
    sweep_dollars,
    sweep_items,
    sweep_runs_per_month,
)
from localcloud.operations import ExecutionSummary
from localcloud.template import Template, load_template
from rotation_core.config import MANAGED_BY_VARIABLE
from rotation_core.sweep import NEVER, Action, Decision, Freshness, Reason
from rotation_core.sweep_run import KeyCheck, SweepReport
from tests.support import MANAGING_STACK, stdout_so_far

MONTH = 30.4 * 86_400


def test_a_one_hour_token_with_the_default_lead_rotates_every_45_minutes() -> None:
    assert rotations_per_month(3_600, 900) == pytest.approx(MONTH / 2_700)
    assert rotations_per_month(3_600, 900) == pytest.approx(972.8)


def test_a_twelve_hour_token_with_the_same_lead_rotates_sixty_two_times() -> None:
    assert rotations_per_month(43_200, 900) == pytest.approx(MONTH / 42_300)
    assert rotations_per_month(43_200, 900) == pytest.approx(62.0936, abs=1e-4)


def test_the_month_is_a_parameter() -> None:
    assert rotations_per_month(100, 10, month_seconds=900) == pytest.approx(10)


@pytest.mark.parametrize(("lifetime", "lead"), [(3_600, 3_600), (3_600, 4_000), (3_600, -1)])
def test_a_lead_that_does_not_fit_the_lifetime_is_refused(lifetime: int, lead: int) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        rotations_per_month(lifetime, lead)


@pytest.mark.parametrize(
    ("duration_ms", "billed"),
    [(0.0, 1), (0.2, 1), (1.0, 1), (1.0001, 2), (53.4, 54), (272.0, 272), (999.01, 1_000)],
)
def test_lambda_bills_the_duration_rounded_up_to_the_millisecond(
    duration_ms: float, billed: int
) -> None:
    assert billed_ms(duration_ms) == billed


def test_a_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        billed_ms(-0.5)


def test_gb_seconds_are_the_rounded_duration_times_the_memory_in_gib() -> None:
    assert gb_seconds(1_000, 1_024) == pytest.approx(1.0)
    assert gb_seconds(999.1, 256) == pytest.approx(0.25)  # 1,000 ms at a quarter of a GB
    assert gb_seconds(272.4, 256) == pytest.approx(0.273 * 0.25)
    assert gb_seconds(0.3, 128) == pytest.approx(0.001 / 8)


@pytest.mark.parametrize(
    ("price_per_unit", "units", "published_dollars"),
    [
        (STEP_FUNCTIONS_PER_TRANSITION, 1_000, 0.025),
        (LAMBDA_PER_REQUEST, 1_000_000, 0.20),
        (SECRETS_MANAGER_PER_API_CALL, 10_000, 0.05),
        (LAMBDA_ARM64_PER_GB_SECOND, 1, 0.0000133334),
        (SCHEDULER_PER_INVOCATION, 1_000_000, 1.00),
        (CLOUDWATCH_PER_ALARM_METRIC_MONTH, 1, 0.10),
    ],
)
def test_each_price_per_unit_adds_up_to_the_published_price_per_block(
    price_per_unit: float, units: int, published_dollars: float
) -> None:
    assert LineItem("x", units, price_per_unit).dollars_per_month(1) == pytest.approx(
        published_dollars
    )


def test_a_line_item_scales_with_the_rotations() -> None:
    transitions = LineItem("transitions", 25, STEP_FUNCTIONS_PER_TRANSITION)
    assert transitions.per_month(1_000) == pytest.approx(25_000)
    assert transitions.dollars_per_month(1_000) == pytest.approx(0.625)
    assert transitions.dollars_per_month(0) == 0


def test_fixed_items_do_not_depend_on_the_rotations() -> None:
    secrets = FixedItem("secrets", 2, SECRETS_MANAGER_PER_SECRET_MONTH)
    alarms = FixedItem("alarms", 2, CLOUDWATCH_PER_ALARM_METRIC_MONTH)
    assert secrets.dollars_per_month == pytest.approx(0.80)
    assert monthly_total([], [secrets, alarms], 1_000) == pytest.approx(1.00)
    assert monthly_total([], [secrets, alarms], 10) == pytest.approx(1.00)


def test_the_monthly_total_adds_variable_and_fixed_costs() -> None:
    items = [
        LineItem("transitions", 25, STEP_FUNCTIONS_PER_TRANSITION),
        LineItem("calls", 2, SECRETS_MANAGER_PER_API_CALL),
    ]
    fixed = [FixedItem("metric", 1, CLOUDWATCH_PER_CUSTOM_METRIC_MONTH)]
    # 100 rotations: 2,500 transitions ($0.0625) + 200 calls ($0.001) + $0.30.
    assert monthly_total(items, fixed, 100) == pytest.approx(0.0625 + 0.001 + 0.30)


def test_the_median_counts_a_missing_key_as_zero() -> None:
    samples = [{"a": 1.0}, {"a": 3.0, "b": 2.0}, {"a": 2.0}]
    assert median_by_key(samples) == {"a": 2.0, "b": 0.0}


def test_each_retry_of_a_task_is_billed_as_a_transition() -> None:
    """A new key Google accepts late: testSecret scheduled three times in the one state entered."""
    execution = ExecutionSummary(
        name="testSecret-v1",
        arn="arn:aws:states:us-east-1:123456789012:execution:m:testSecret-v1",
        status="SUCCEEDED",
        error=None,
        input={},
        output={},
        seconds=1.0,
        states=[("TestSecret", 1.0)],
        task_attempts={"TestSecret": 3},
        transitions=1,
        history=[],
    )
    assert billed_transitions(execution) == 3


def test_an_embedded_metric_line_names_its_metric_by_its_dimension_values() -> None:
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": 0,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "GoogleTokenRotation",
                        "Dimensions": [["Stack", "service"]],
                        "Metrics": [{"Name": "LeastSecondsLeft", "Unit": "Seconds"}],
                    }
                ],
            },
            "Stack": "google-token-rotation",
            "service": "google-token-rotation",
            "LeastSecondsLeft": [2699.0],
        }
    )
    assert embedded_metrics(line) == [
        (
            "GoogleTokenRotation",
            "LeastSecondsLeft",
            (("Stack", "google-token-rotation"), ("service", "google-token-rotation")),
        )
    ]
    assert embedded_metrics('{"level": "INFO", "message": "done"}') == []
    assert embedded_metrics('{"_aws": broken') == []


def _usage(entry_ms: float) -> RotationUsage:
    return RotationUsage(
        transitions=25,
        invocations={"RotationEntryFunction": 4, "CreateSecretFunction": 1},
        gb_seconds={
            "RotationEntryFunction": 4 * gb_seconds(entry_ms, 256),
            "CreateSecretFunction": gb_seconds(50, 256),
        },
        billed_ms={"RotationEntryFunction": 4 * billed_ms(entry_ms), "CreateSecretFunction": 50},
        api_calls={("secretsmanager", "GetSecretValue"): 5, ("stepfunctions", "StartExecution"): 4},
        google_requests={"/token": 1},
        log_bytes=10_000,
        history_events=70,
        metrics=frozenset({("GoogleTokenRotation", "UnverifiedPromotions", ())}),
        failed_executions=(),
    )


def _measurement() -> Measurement:
    return Measurement(
        rotations=3,
        usage=[_usage(250), _usage(300), _usage(1_000)],
        memory_mb={"RotationEntryFunction": 256, "CreateSecretFunction": 256},
        lead_seconds=900,
        secrets=("ServiceAccountKeySecret", "TokenSecret"),
        alarms={"RotationFailuresAlarm": 3, "TokenFreshnessAlarm": 1},
    )


def test_the_line_items_price_the_median_rotation() -> None:
    items = {item.item.split(":")[0]: item for item in line_items(_measurement())}
    entry = items["Lambda duration, RotationEntryFunction (billed for its whole wait)"]
    assert entry.per_rotation == pytest.approx(4 * 0.3 * 0.25)  # the median entry wait, 300 ms
    assert items["Step Functions state transitions (Standard)"].per_rotation == 25
    assert items["Secrets Manager GetSecretValue"].unit_price == SECRETS_MANAGER_PER_API_CALL
    assert items["Step Functions StartExecution (the entry Lambda's; Standard"].unit_price == 0
    assert items["Lambda requests"].per_rotation == 5


def test_the_fixed_items_count_the_secrets_metrics_and_alarm_metrics() -> None:
    fixed = fixed_items(_measurement())
    # Two secrets; the rotation's one metric line; the sweep's metrics; 3 + 1 alarm metrics.
    assert [item.count for item in fixed] == [2, 1, len(SWEEP_METRICS), 4]
    assert sum(item.dollars_per_month for item in fixed) == pytest.approx(
        2 * 0.40 + (1 + len(SWEEP_METRICS)) * 0.30 + 4 * 0.10
    )


def test_the_report_totals_agree_with_the_arithmetic() -> None:
    measured = _measurement()
    rotations = rotations_per_month(3_600, 900)
    total = monthly_total(line_items(measured), fixed_items(measured), rotations)
    hour_row = next(line for line in report(measured) if line.startswith("| 1 hour"))
    assert hour_row.endswith(f"**${total + sweep_dollars(1):,.2f}** |")


def test_the_templates_alarms_are_billed_per_metric_they_evaluate() -> None:
    """One freshness alarm and one key-expiry alarm per stack, on one metric each; the failure
    alarms' metric math retrieves 3 and 2 metrics, each an alarm metric on the bill."""
    assert alarm_metrics(load_template()) == {
        "RotationEntryFailuresAlarm": 2,
        "RotationFailuresAlarm": 3,
        "ServiceAccountKeyExpiryAlarm": 1,
        "TokenFreshnessAlarm": 1,
    }


def test_the_sweep_metrics_the_alarms_watch_are_the_templates() -> None:
    """The sweep's metrics that must be sent every run, whatever their value."""
    alarms = load_template().of_type("AWS::CloudWatch::Alarm").values()
    watched = {
        alarm["Properties"]["MetricName"]
        for alarm in alarms
        if alarm["Properties"].get("Namespace") == "GoogleTokenRotation"
    }
    assert watched == set(SWEEP_ALARMED_METRICS) <= set(SWEEP_METRICS)


def test_a_mapped_period_under_a_minute_is_priced_as_high_resolution() -> None:
    document = dict(load_template().document)
    resources = dict(document["Resources"])
    alarm = dict(resources["TokenFreshnessAlarm"])
    alarm["Properties"] = {
        **alarm["Properties"],
        "Period": {"Fn::FindInMap": ["Periods", {"Ref": "TokenLifetimeSeconds"}, "Period"]},
    }
    resources["TokenFreshnessAlarm"] = alarm
    document["Resources"] = resources
    document["Mappings"] = {"Periods": {"3600": {"Period": 60}, "43200": {"Period": 10}}}
    with pytest.raises(ValueError, match="TokenFreshnessAlarm is a high-resolution alarm"):
        alarm_metrics(Template(document))


# --- The freshness sweep ----------------------------------------------------------------------


def test_the_sweep_runs_every_five_minutes_of_the_month() -> None:
    assert SWEEP_INTERVAL_SECONDS == 300
    assert sweep_runs_per_month() == pytest.approx(MONTH / 300)
    assert sweep_runs_per_month(30 * 86_400) == pytest.approx(8_640)


def _sweep(secrets: int) -> dict[str, LineItem]:
    return {short_name(item): item for item in sweep_items(secrets)}


@pytest.mark.parametrize("secrets", [1, 99, 100, 101, 2_500])
def test_a_sweep_run_lists_the_secrets_by_pages_reads_each_once_and_describes_the_key(
    secrets: int,
) -> None:
    calls = _sweep(secrets)["Secrets Manager"]
    pages = math.ceil(secrets / SWEEP_LIST_PAGE)
    assert calls.per_rotation == pages + secrets * SWEEP_READS_PER_SECRET + SWEEP_KEY_READS_PER_RUN
    assert calls.unit_price == SECRETS_MANAGER_PER_API_CALL
    assert _sweep(secrets)["Google tokeninfo requests"].per_rotation == secrets


def test_a_sweep_run_is_one_invocation_one_schedule_firing_and_one_trace() -> None:
    items = _sweep(2_500)
    assert items["Lambda requests"].per_rotation == 1
    assert items["EventBridge Scheduler invocations"].per_rotation == 1
    assert items["X-Ray traces"].per_rotation == 1


def test_a_sweep_runs_longer_by_a_concurrent_share_of_each_check() -> None:
    for secrets in (1, 2_500):
        run_ms = SWEEP_RUN_MS + secrets * SWEEP_CHECK_MS / SWEEP_CONCURRENCY
        assert _sweep(secrets)["Lambda duration"].per_rotation == pytest.approx(
            gb_seconds(run_ms, SWEEP_MEMORY_MB)
        )


def test_the_sweep_costs_a_stack_its_runs_plus_a_read_per_secret_and_run() -> None:
    """What grows with the secrets is the reads (and a little duration): 2,500 secrets cost the
    stack 2,499 more reads a run than one secret, and 24 more list pages."""
    runs = sweep_runs_per_month()
    grown = sweep_dollars(2_500) - sweep_dollars(1)
    reads = (2_499 * SWEEP_READS_PER_SECRET + 24) * runs * SECRETS_MANAGER_PER_API_CALL
    duration = (
        (
            gb_seconds(SWEEP_RUN_MS + 2_500 * SWEEP_CHECK_MS / SWEEP_CONCURRENCY, SWEEP_MEMORY_MB)
            - gb_seconds(SWEEP_RUN_MS + SWEEP_CHECK_MS / SWEEP_CONCURRENCY, SWEEP_MEMORY_MB)
        )
        * runs
        * LAMBDA_ARM64_PER_GB_SECOND
    )
    assert grown == pytest.approx(reads + duration)


def test_a_stack_without_secrets_has_no_sweep_to_price() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        sweep_items(0)


def test_the_report_prices_the_sweep_per_stack_and_per_secret() -> None:
    lines = report(_measurement())

    def dollars(row: str) -> list[float]:
        line = next(line for line in lines if line.startswith(row))
        return [float(cell.strip(" *$").replace(",", "")) for cell in line.split("|")[2:-1]]

    header = next(line for line in lines if line.startswith("| sweep, $ per stack-month"))
    assert header.split("|")[2:-1] == [" 1 secret ", " 50 secrets ", " 2,500 secrets "]
    for secrets, shown in zip((1, 50, 2_500), dollars("| **sweep, per stack**"), strict=True):
        assert shown == pytest.approx(sweep_dollars(secrets), abs=0.005)
    for secrets, shown in zip((1, 50, 2_500), dollars("| **sweep, per secret**"), strict=True):
        assert shown == pytest.approx(sweep_dollars(secrets) / secrets, rel=0.01)


def test_the_sweep_metrics_priced_every_month_are_what_a_quiet_run_publishes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A metric priced for every hour of the month must be one the sweep's handler sends on every
    run, a quiet one included: every token fresh, the stack's key not due, nothing to repair or
    defer, and Google asked about each token (which is why the Google calls are no metric)."""
    now = datetime.now(UTC)
    secrets = 3
    key_not_due = Decision("key", Action.NOTHING, Reason.KEY_NOT_DUE, NEVER)
    quiet = SweepReport(
        decisions=tuple(
            Decision(f"token-{n}", Action.NOTHING, Reason.FRESH, now + timedelta(minutes=40))
            for n in range(secrets)
        ),
        acted=(),
        deferred=(),
        skipped=0,
        google_calls=secrets,
        notices=0,
        freshness=Freshness(least_seconds_left=2_400, without_valid_token=0),
        key=KeyCheck("google/service-account-key", key_not_due, now + timedelta(days=20), now),
    )
    monkeypatch.setenv(MANAGED_BY_VARIABLE, MANAGING_STACK)

    freshness_sweep._publish_metrics(quiet)
    freshness_sweep.metrics.flush_metrics()

    [document] = [
        json.loads(line) for line in stdout_so_far(capsys).splitlines() if '"_aws"' in line
    ]
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert {metric["Name"] for metric in directive["Metrics"]} == set(SWEEP_METRICS)
    assert len(SWEEP_METRICS) == len(set(SWEEP_METRICS)), "each metric priced once"
