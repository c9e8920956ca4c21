"""The cost model's arithmetic (benchmarks/cost.py): rotations a month, billed GB-s, dollars."""

import json

import pytest

from benchmarks.cost import (
    CLOUDWATCH_PER_CUSTOM_METRIC_MONTH,
    CLOUDWATCH_PER_STANDARD_ALARM_MONTH,
    LAMBDA_ARM64_PER_GB_SECOND,
    LAMBDA_PER_REQUEST,
    SECRETS_MANAGER_PER_API_CALL,
    SECRETS_MANAGER_PER_SECRET_MONTH,
    STEP_FUNCTIONS_PER_TRANSITION,
    FixedItem,
    LineItem,
    Measurement,
    RotationUsage,
    billed_ms,
    embedded_metrics,
    fixed_items,
    gb_seconds,
    line_items,
    median_by_key,
    monthly_total,
    report,
    rotations_per_month,
    standard_alarms,
)
from localcloud.template import Template, load_template

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
    alarms = FixedItem("alarms", 2, CLOUDWATCH_PER_STANDARD_ALARM_MONTH)
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


def test_an_embedded_metric_line_names_its_metric_by_its_dimension_values() -> None:
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": 0,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "GoogleTokenRotation",
                        "Dimensions": [["TokenSecret", "service"]],
                        "Metrics": [{"Name": "AccessTokenSecondsLeft", "Unit": "Seconds"}],
                    }
                ],
            },
            "TokenSecret": "google/access-token",
            "service": "google-token-rotation",
            "AccessTokenSecondsLeft": [3599.0],
        }
    )
    assert embedded_metrics(line) == [
        (
            "GoogleTokenRotation",
            "AccessTokenSecondsLeft",
            (("TokenSecret", "google/access-token"), ("service", "google-token-rotation")),
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
        metrics=frozenset({("GoogleTokenRotation", "AccessTokenSecondsLeft", ())}),
        failed_executions=(),
    )


def _measurement() -> Measurement:
    return Measurement(
        rotations=3,
        usage=[_usage(250), _usage(300), _usage(1_000)],
        memory_mb={"RotationEntryFunction": 256, "CreateSecretFunction": 256},
        lead_seconds=900,
        secrets=("ServiceAccountKeySecret", "TokenSecret"),
        alarms=("RotationFailuresAlarm", "TokenNearExpiryAlarm"),
    )


def test_the_line_items_price_the_median_rotation() -> None:
    items = {item.item.split(":")[0]: item for item in line_items(_measurement())}
    entry = items["Lambda duration, RotationEntryFunction (billed for its whole wait)"]
    assert entry.per_rotation == pytest.approx(4 * 0.3 * 0.25)  # the median entry wait, 300 ms
    assert items["Step Functions state transitions (Standard)"].per_rotation == 25
    assert items["Secrets Manager GetSecretValue"].unit_price == SECRETS_MANAGER_PER_API_CALL
    assert items["Step Functions StartExecution (the entry Lambda's; Standard"].unit_price == 0
    assert items["Lambda requests"].per_rotation == 5


def test_the_fixed_items_count_the_secrets_metrics_and_alarms() -> None:
    fixed = fixed_items(_measurement())
    assert [item.count for item in fixed] == [2, 1, 2]
    assert sum(item.dollars_per_month for item in fixed) == pytest.approx(0.80 + 0.30 + 0.20)


def test_the_report_totals_agree_with_the_arithmetic() -> None:
    measured = _measurement()
    rotations = rotations_per_month(3_600, 900)
    total = monthly_total(line_items(measured), fixed_items(measured), rotations)
    hour_row = next(line for line in report(measured) if line.startswith("| 1 hour"))
    assert hour_row.endswith(f"**${total:,.2f}** |")


def test_the_templates_alarms_are_standard_resolution_whatever_the_token_lifetime() -> None:
    """The near-expiry alarm's period comes from a mapping per lifetime: every entry counts."""
    assert standard_alarms(load_template()) == (
        "RotationEntryFailuresAlarm",
        "RotationFailuresAlarm",
        "TokenNearExpiryAlarm",
    )


def test_a_mapped_period_under_a_minute_is_priced_as_high_resolution() -> None:
    document = dict(load_template().document)
    document["Mappings"] = {"NearExpiryAlarm": {"3600": {"Period": 10, "Periods": 5}}}
    with pytest.raises(ValueError, match="TokenNearExpiryAlarm is a high-resolution alarm"):
        standard_alarms(Template(document))
