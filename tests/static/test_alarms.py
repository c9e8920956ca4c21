"""The alarms operators rely on: every way a rotation can go wrong reaches the failure topic,
including the failures that happen before any execution exists, one freshness alarm per
stack fires when any managed token lapses or nothing looks at all, and one more when the stack's
own service-account key stays overdue for replacement."""

import json
from collections.abc import Mapping
from typing import Any

import pytest
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from localcloud.intrinsics import references
from localcloud.template import load_template

TEMPLATE = load_template()
ALARMS = TEMPLATE.of_type("AWS::CloudWatch::Alarm")
FRESHNESS = ALARMS["TokenFreshnessAlarm"]["Properties"]
KEY_EXPIRY = ALARMS["ServiceAccountKeyExpiryAlarm"]
SWEEP_PERIOD_SECONDS = 300
"""The freshness sweep runs every 5 minutes (issue #17): one datapoint per alarm period."""


def queried_metrics(alarm: Mapping[str, Any]) -> dict[str, tuple[str, object]]:
    """Metric-math queries by id: (namespace/metric name, the dimension's value)."""
    queries = {}
    for query in alarm["Properties"]["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            [dimension] = metric["Dimensions"]
            queries[query["Id"]] = (f"{metric['Namespace']}/{metric['MetricName']}", dimension)
    return queries


def returned_expression(alarm: Mapping[str, Any]) -> str:
    [expression] = [
        query["Expression"]
        for query in alarm["Properties"]["Metrics"]
        if query.get("ReturnData", True) and "Expression" in query
    ]
    return str(expression)


def test_every_execution_that_does_not_succeed_raises_the_rotation_alarm() -> None:
    alarm = ALARMS["RotationFailuresAlarm"]
    queries = queried_metrics(alarm)

    assert {name for name, _ in queries.values()} == {
        "AWS/States/ExecutionsFailed",
        "AWS/States/ExecutionsTimedOut",
        "AWS/States/ExecutionsAborted",
    }
    assert all(
        dimension == {"Name": "StateMachineArn", "Value": {"Ref": "RotationStateMachine"}}
        for _, dimension in queries.values()
    )
    assert sorted(returned_expression(alarm).replace(" ", "").split("+")) == sorted(queries)


def test_failures_before_any_execution_raise_the_entry_alarm() -> None:
    alarm = ALARMS["RotationEntryFailuresAlarm"]
    queries = queried_metrics(alarm)

    assert {name for name, _ in queries.values()} == {"AWS/Lambda/Errors", "AWS/Lambda/Throttles"}
    assert all(
        dimension == {"Name": "FunctionName", "Value": {"Ref": "RotationEntryFunction"}}
        for _, dimension in queries.values()
    )
    assert sorted(returned_expression(alarm).replace(" ", "").split("+")) == sorted(queries)


def test_every_alarm_notifies_the_failure_topic_on_one_bad_period() -> None:
    assert set(ALARMS) == {
        "RotationFailuresAlarm",
        "RotationEntryFailuresAlarm",
        "TokenFreshnessAlarm",
        "ServiceAccountKeyExpiryAlarm",
    }
    for alarm in ALARMS.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "FailureTopic"}]
    for logical_id in ("RotationFailuresAlarm", "RotationEntryFailuresAlarm"):
        properties = ALARMS[logical_id]["Properties"]
        assert properties["Threshold"] == 1
        assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert properties["EvaluationPeriods"] == 1


def test_the_freshness_alarm_fires_when_the_sweep_publishes_nothing() -> None:
    """A deleted sweep schedule, a failing or throttled sweep: no datapoint at all must alarm."""
    assert FRESHNESS["TreatMissingData"] == "breaching"
    assert FRESHNESS["OKActions"] == [{"Ref": "FailureTopic"}]


def test_the_freshness_alarm_watches_the_least_fresh_token_of_the_whole_stack() -> None:
    assert (FRESHNESS["Namespace"], FRESHNESS["MetricName"]) == (
        "GoogleTokenRotation",
        "LeastSecondsLeft",
    )
    assert FRESHNESS["Statistic"] == "Minimum"
    assert FRESHNESS["ComparisonOperator"] == "LessThanThreshold"
    # Per stack: nothing in it names a secret, so secrets added later are covered as they come.
    assert references(FRESHNESS) == {"AWS::StackName", "RefreshLeadSeconds", "FailureTopic"}
    assert {d["Name"]: d["Value"] for d in FRESHNESS["Dimensions"]}["Stack"] == {
        "Ref": "AWS::StackName"
    }
    # One metric, no metric math: CloudWatch bills an alarm per metric it evaluates.
    assert "Metrics" not in FRESHNESS


def test_two_sweep_periods_in_a_row_must_breach() -> None:
    """One late sweep leaves one period empty: that alone must not page anyone."""
    assert FRESHNESS["Period"] == SWEEP_PERIOD_SECONDS
    assert (FRESHNESS["EvaluationPeriods"], FRESHNESS["DatapointsToAlarm"]) == (2, 2)


def allowed_leads() -> list[int]:
    """The leads the template's rule RefreshLeadFitsTheTokenLifetime lets through."""
    [assertion] = TEMPLATE.document["Rules"]["RefreshLeadFitsTheTokenLifetime"]["Assertions"]
    allowed, _ = assertion["Assert"]["Fn::Contains"]
    return [int(lead) for lead in allowed]


@pytest.mark.parametrize("lead", allowed_leads())
def test_the_alarm_line_is_a_third_of_the_lead_plus_one_sweep_period(lead: int) -> None:
    """Two sweeps below the line, 5 minutes apart: the second sees less than a third of the lead
    left, where a token counts as about to lapse, so the alarm fires by then."""
    mapping, key, attribute = FRESHNESS["Threshold"]["Fn::FindInMap"]
    assert key == {"Ref": "RefreshLeadSeconds"}
    threshold = TEMPLATE.document["Mappings"][mapping][str(lead)][attribute]

    assert threshold == lead // 3 + SWEEP_PERIOD_SECONDS
    assert threshold - FRESHNESS["Period"] * (FRESHNESS["EvaluationPeriods"] - 1) <= lead / 3


def test_the_mapping_has_a_line_for_exactly_the_allowed_leads() -> None:
    mapping = FRESHNESS["Threshold"]["Fn::FindInMap"][0]
    assert sorted(map(int, TEMPLATE.document["Mappings"][mapping])) == allowed_leads()


def test_a_powertools_metric_with_a_stack_dimension_matches_the_alarms_dimensions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CloudWatch matches a metric by its whole dimension set: the sweep publishes through
    powertools, which adds `service` from the functions' POWERTOOLS_SERVICE_NAME, so the alarm
    must name that dimension too, with the template's value."""
    variables = TEMPLATE.document["Globals"]["Function"]["Environment"]["Variables"]
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", variables["POWERTOOLS_SERVICE_NAME"])
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    metrics = Metrics(namespace=FRESHNESS["Namespace"])
    metrics.add_dimension(name="Stack", value="a-stack")
    metrics.add_metric(name=FRESHNESS["MetricName"], unit=MetricUnit.Seconds, value=0)

    metrics.flush_metrics()

    document = json.loads(capsys.readouterr().out)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    watched = {d["Name"]: d["Value"] for d in FRESHNESS["Dimensions"]}
    assert [sorted(dimensions) for dimensions in directive["Dimensions"]] == [sorted(watched)]
    assert document["service"] == watched["service"]


def test_the_key_alarm_fires_once_the_key_is_an_hour_overdue_for_two_sweeps() -> None:
    """ServiceAccountKeyDaysLeft is in days, negative once the key is overdue: a due key is
    rotated by the next sweep within minutes, so only one still overdue an hour later alarms."""
    properties = KEY_EXPIRY["Properties"]

    assert (properties["Namespace"], properties["MetricName"]) == (
        "GoogleTokenRotation",
        "ServiceAccountKeyDaysLeft",
    )
    assert (properties["Statistic"], properties["ComparisonOperator"]) == (
        "Minimum",
        "LessThanThreshold",
    )
    assert properties["Threshold"] * 24 == pytest.approx(-1, rel=0.01)
    assert properties["Period"] == SWEEP_PERIOD_SECONDS
    assert (properties["EvaluationPeriods"], properties["DatapointsToAlarm"]) == (2, 2)
    assert properties["Dimensions"] == FRESHNESS["Dimensions"], "the sweep's metric line's"


def test_the_key_alarm_exists_only_while_the_key_rotates_and_leaves_silence_to_the_other() -> None:
    """No point comes from a sweep that does not run, which the freshness alarm reports, nor from
    a key secret that holds no key yet: neither is news about the key."""
    assert KEY_EXPIRY["Condition"] == "RotatesKey"
    assert KEY_EXPIRY["Properties"]["TreatMissingData"] == "ignore"
    assert FRESHNESS["TreatMissingData"] == "breaching"
