"""Every parameter and output the operator tools read, and the freshness alarm's metric they look
for, exist in template.yaml as the tools expect them."""

from localcloud.template import load_template
from stacktools.stack import (
    CONDITIONAL_OUTPUTS,
    FRESHNESS_METRIC,
    FRESHNESS_NAMESPACE,
    FRESHNESS_STACK_DIMENSION,
    OUTPUTS_READ,
    PARAMETERS_READ,
)


def test_every_parameter_read_is_a_template_parameter() -> None:
    parameters = load_template().document["Parameters"]

    assert [name for name in PARAMETERS_READ if name not in parameters] == []


def test_every_output_read_is_a_template_output_unconditional_unless_known() -> None:
    outputs = load_template().document["Outputs"]

    assert [name for name in OUTPUTS_READ if name not in outputs] == []
    conditional = {name for name in OUTPUTS_READ if "Condition" in outputs[name]}
    assert conditional == CONDITIONAL_OUTPUTS


def test_the_freshness_alarm_watches_the_metric_the_check_looks_for() -> None:
    alarm = load_template().resources["TokenFreshnessAlarm"]["Properties"]

    assert (alarm["Namespace"], alarm["MetricName"]) == (FRESHNESS_NAMESPACE, FRESHNESS_METRIC)
    stack_dimensions = [d for d in alarm["Dimensions"] if d["Name"] == FRESHNESS_STACK_DIMENSION]
    assert stack_dimensions == [{"Name": "Stack", "Value": {"Ref": "AWS::StackName"}}]
