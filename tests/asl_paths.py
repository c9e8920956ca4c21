"""The states an execution of statemachine/rotation.asl.json enters, walked from the ASL itself.

Step Functions Standard bills every state entered (Choice, Pass, Task, Succeed and Fail alike),
so the list a walk returns is what one execution costs. The walk follows the JSONPath semantics
the rotation's ASL uses (Choice rules with IsPresent, IsString, IsNull, StringEquals,
BooleanEquals, And, Or and Not; Parameters, ResultSelector and ResultPath; Catch) and fails like
Step Functions' States.Runtime when a path it must read is missing, so a walk also proves that
the path can be taken. Task retries are not modelled: a success path has none."""

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localcloud.template import PROJECT_ROOT

ASL_PATH = PROJECT_ROOT / "statemachine" / "rotation.asl.json"
ASL: dict[str, Any] = json.loads(ASL_PATH.read_text())

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:google/access-token-AbCdEf"
VERSION = "3f2b8f3e-5c4d-4b9a-8e7f-0123456789ab"
ROTATION_TOKEN = "0123abcd-4567-89ef-0123-456789abcdef"
SCHEDULE = {
    "Name": "token-refresh-0123456789abcdef",
    "ScheduleExpression": "at(2026-11-26T04:34:49)",
    "Description": "the next rotation",
    "TargetInput": json.dumps({"SecretId": SECRET_ARN}),
}
NOTICE = {"Subject": "Google token rotation recovered (google/access-token)", "Message": "{}"}

SCHEDULED_TRANSITIONS = 10
"""States a scheduled rotation's four executions enter in all (the schedule already exists)."""
MANUAL_TRANSITIONS = 8
"""States a manual rotation's one execution enters (the schedule already exists)."""
BILLED_TRANSITIONS_LIMIT = 16
"""Issue #12: at most this many per scheduled rotation (25 before)."""


class MissingPathError(Exception):
    """A path the state must read is not in its data: States.Runtime on AWS."""


@dataclass(frozen=True)
class Walk:
    states: list[str]
    status: str
    """SUCCEEDED or FAILED."""
    output: Any
    task_inputs: dict[str, Any]
    """Task state → the input it sent (its Parameters, evaluated), the last time it ran."""


@dataclass
class Outcomes:
    """What each Task returns (its raw result, before ResultSelector) or fails with."""

    results: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def result(self, state: str, resource: str) -> Any:
        if state in self.results:
            return self.results[state]
        return {"Payload": {}} if resource.endswith(":lambda:invoke") else {}


def step_input(step: str, *, rotation_token: bool = True) -> dict[str, Any]:
    """The input the rotation-entry Lambda starts a step's execution with."""
    document: dict[str, Any] = {"Step": step, "SecretId": SECRET_ARN, "ClientRequestToken": VERSION}
    if rotation_token:
        document["RotationToken"] = ROTATION_TOKEN
    return document


def finish_result(*, notice: bool = False) -> dict[str, Any]:
    """finishSecret's Lambda result: the outcome with its follow-up."""
    follow_up = {"Schedule": SCHEDULE, "Notice": NOTICE if notice else None}
    return {"Payload": {"Step": "finishSecret", "Action": "promoted", "FollowUp": follow_up}}


def describe_result(*, notice: bool = True, schedule: bool = True) -> dict[str, Any]:
    """DescribeFailure's Lambda result."""
    notice_payload = {"Subject": "Google token rotation failed", "Message": "{}"}
    return {
        "Payload": {
            "Notice": notice_payload if notice else None,
            "Schedule": SCHEDULE if schedule else None,
        }
    }


def succeeding(*, notice: bool = False, first_schedule: bool = False) -> Outcomes:
    """Every step succeeds; `first_schedule`: the secret has no schedule yet."""
    failures = {}
    if first_schedule:
        failures = {
            "ScheduleNextRotation": "Scheduler.ResourceNotFoundException",
        }
    return Outcomes({"FinishSecret": finish_result(notice=notice)}, failures)


CONTEXT = {"Execution": {"Id": "arn:aws:states:us-east-1:123456789012:execution:rotation:e"}}


def walk(execution_input: Any, outcomes: Outcomes | None = None) -> Walk:
    """One execution from StartAt to its end."""
    outcomes = outcomes or Outcomes()
    data = execution_input
    name: str | None = ASL["StartAt"]
    entered: list[str] = []
    sent: dict[str, Any] = {}
    while name is not None:
        if len(entered) > 100:
            raise AssertionError(f"the walk does not end: {entered}")
        entered.append(name)
        state = ASL["States"][name]
        if state["Type"] in {"Succeed", "Fail"}:
            return _ended(entered, state, data, sent)
        if state["Type"] == "Choice":
            name = _chosen(name, state, data)
            continue
        if state["Type"] == "Task":
            sent[name] = _parameters(state["Parameters"], data, CONTEXT)  # read before it runs
            if name in outcomes.failures:
                catch = _catch(state, outcomes.failures[name])
                if catch is None:
                    return Walk(entered, "FAILED", {"Error": outcomes.failures[name]}, sent)
                failure = {"Error": outcomes.failures[name], "Cause": f"{name} failed"}
                data = _place(data, failure, catch.get("ResultPath", "$"))
                name = catch["Next"]
                continue
        data = _place(data, _result(name, state, data, outcomes), state.get("ResultPath", "$"))
        name = None if state.get("End") else state["Next"]
    return Walk(entered, "SUCCEEDED", data, sent)


def _ended(entered: list[str], state: dict[str, Any], data: Any, sent: dict[str, Any]) -> Walk:
    if state["Type"] == "Succeed":
        return Walk(entered, "SUCCEEDED", data, sent)
    failure = {
        "Error": _read(state["ErrorPath"], data, CONTEXT),
        "Cause": _read(state["CausePath"], data, CONTEXT),
    }
    return Walk(entered, "FAILED", failure, sent)


def _chosen(name: str, state: dict[str, Any], data: Any) -> str:
    chosen: str | None = next(
        (rule["Next"] for rule in state["Choices"] if _holds(rule, data)), state.get("Default")
    )
    if chosen is None:
        raise AssertionError(f"{name}: no rule holds and there is no Default")
    return chosen


def _catch(state: dict[str, Any], error: str) -> dict[str, Any] | None:
    return next(
        (
            rule
            for rule in state.get("Catch", [])
            if error in rule["ErrorEquals"] or "States.ALL" in rule["ErrorEquals"]
        ),
        None,
    )


def _result(name: str, state: dict[str, Any], data: Any, outcomes: Outcomes) -> Any:
    """A Pass state's result, or a Task's after its ResultSelector."""
    if state["Type"] == "Pass":
        if "Parameters" in state:
            return _parameters(state["Parameters"], data, CONTEXT)
        return state.get("Result", data)
    if state["Type"] != "Task":
        raise AssertionError(f"{name}: state type {state['Type']} is not modelled")
    result = outcomes.result(name, state["Resource"])
    if "ResultSelector" in state:
        result = _parameters(state["ResultSelector"], result, CONTEXT)
    return result


def transitions(walks: list[Walk]) -> int:
    return sum(len(w.states) for w in walks)


def scheduled_rotation(outcomes: Outcomes | None = None) -> list[Walk]:
    """The four executions of a rotation Secrets Manager drives, each with its own input."""
    return [walk(step_input(step), outcomes or succeeding()) for step in STEPS]


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "IsString": lambda value, expected: isinstance(value, str) == expected,
    "IsNull": lambda value, expected: (value is None) == expected,
    "StringEquals": lambda value, expected: isinstance(value, str) and value == expected,
    "BooleanEquals": lambda value, expected: isinstance(value, bool) and value == expected,
}


def _holds(rule: Mapping[str, Any], data: Any) -> bool:
    if "And" in rule:
        return all(_holds(inner, data) for inner in rule["And"])
    if "Or" in rule:
        return any(_holds(inner, data) for inner in rule["Or"])
    if "Not" in rule:
        return not _holds(rule["Not"], data)
    path = rule["Variable"]
    if "IsPresent" in rule:
        return bool(_present(path, data) == rule["IsPresent"])
    [test] = [key for key in rule if key in _TESTS] or [f"not modelled: {rule}"]
    value = _read(path, data, {})  # any other test of a missing path is States.Runtime
    return _TESTS[test](value, rule[test])


def _parameters(template: Any, data: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(template, dict):
        built = {}
        for key, value in template.items():
            if key.endswith(".$"):
                built[key[:-2]] = _evaluate(value, data, context)
            else:
                built[key] = _parameters(value, data, context)
        return built
    if isinstance(template, list):
        return [_parameters(item, data, context) for item in template]
    return template


def _evaluate(expression: str, data: Any, context: Mapping[str, Any]) -> Any:
    if expression == "States.UUID()":
        return str(uuid.uuid4())
    if expression.startswith("States."):
        # Intrinsic functions: every path among the arguments must exist; the value is text.
        arguments = re.sub(r"'[^']*'|\$\{[A-Za-z0-9_]+\}", "", expression)
        for path in re.findall(r"\$\$?(?:\.[A-Za-z]+)*", arguments):
            _read(path, data, context)
        return f"<{expression.split('(', 1)[0]}>"
    return _read(expression, data, context)


def _read(path: str, data: Any, context: Mapping[str, Any]) -> Any:
    root, *keys = path.split(".")
    value: Any = context if root == "$$" else data
    if root not in {"$", "$$"}:
        raise AssertionError(f"not a path: {path}")
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise MissingPathError(path)
        value = value[key]
    return value


def _present(path: str, data: Any) -> bool:
    try:
        _read(path, data, {})
    except MissingPathError:
        return False
    return True


def _place(data: Any, result: Any, result_path: str | None) -> Any:
    if result_path is None:
        return data
    if result_path == "$":
        return result
    if not isinstance(data, dict):
        raise MissingPathError(result_path)
    _, *keys = result_path.split(".")
    placed = json.loads(json.dumps(data))
    target = placed
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = result
    return placed
