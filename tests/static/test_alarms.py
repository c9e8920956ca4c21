"""The alarms operators rely on: every way a rotation can go wrong reaches the failure topic,
including the failures that happen before any execution exists."""

from collections.abc import Mapping
from typing import Any

from localcloud.template import load_template

TEMPLATE = load_template()
ALARMS = TEMPLATE.of_type("AWS::CloudWatch::Alarm")


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
        "TokenNearExpiryAlarm",
    }
    for alarm in ALARMS.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "FailureTopic"}]
    for logical_id in ("RotationFailuresAlarm", "RotationEntryFailuresAlarm"):
        properties = ALARMS[logical_id]["Properties"]
        assert properties["Threshold"] == 1
        assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert properties["EvaluationPeriods"] == 1
