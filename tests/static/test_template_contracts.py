"""The project's own checks on template.yaml, the ASL and events/: what SAM, cfn-lint and
statelint cannot see."""

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import SecretsManagerEvent

from localcloud.template import PROJECT_ROOT, FunctionSpec, load_template
from rotation_core import config
from rotation_core.config import MANAGED_BY_TAG, TAG_PREFIX
from rotation_core.errors import PermanentRotationError, TransientRotationError, error_names
from rotation_core.failure_notice import NEXT_ROTATION_NOT_SCHEDULED
from rotation_core.key_rotation import KEY_ACCEPTANCE_BOUND
from rotation_core.refresh import (
    FAILED_ATTEMPTS_TAG,
    REFUSED_VERSION_TAG,
    STATUS_TAG_PREFIX,
    UNVERIFIED_VERSION_TAG,
)
from rotation_core.rotation_request import RotationRequest
from rotation_core.steps import Step
from rotation_core.sweep import ENTRY_FUNCTION_TIMEOUT, PACING_WINDOW, SWEEP_INTERVAL
from rotation_core.sweep_run import DEADLINE_MARGIN
from rotation_core.token_secret import PLACEHOLDER

TEMPLATE = load_template()
STATE_MACHINE = TEMPLATE.state_machine()
ASL_TEXT = STATE_MACHINE.definition_path.read_text()
ASL = json.loads(ASL_TEXT)
EVENTS = PROJECT_ROOT / "events"

# Errors Step Functions and Lambda raise themselves, as AWS documents them.
AWS_LAMBDA_TRANSIENT = frozenset(
    {
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Lambda.ClientExecutionTimeoutException",
    }
)
AWS_LAMBDA_CRASH = "Runtime.ExitError"
"""Lambda's errorType when the function's process exits before it answers (a crash)."""
AWS_STATES_ERRORS = frozenset({"States.ALL", "States.TaskFailed"})
# What the optimized arn:aws:states:::sns:publish integration fails with: "SNS." + the SDK's
# exception name. Throttled (HTTP 429) and InternalError (500) are SNS's own codes in botocore's
# SNS model (ThrottledException, InternalErrorException); moto's ASL interpreter names a failure
# "SNS." + code + "Exception" (moto/stepfunctions/parser/.../state_task_service_sns.py,
# _from_error), so a generic Throttling answer is SNS.ThrottlingException there. On AWS,
# unmodelled service errors and client-side failures follow the Java SDK's classes, as the
# Lambda names above do: SNS.AmazonSNSException, SNS.SdkClientException.
AWS_SNS_TRANSIENT = frozenset(
    {
        "SNS.ThrottledException",
        "SNS.ThrottlingException",
        "SNS.InternalErrorException",
        "SNS.AmazonSNSException",
        "SNS.SdkClientException",
    }
)
# EventBridge Scheduler's own error codes (botocore's model of UpdateSchedule and CreateSchedule),
# named as Step Functions names an aws-sdk integration's errors: the service, a dot, the code.
AWS_SCHEDULER_TRANSIENT = frozenset(
    {"Scheduler.ThrottlingException", "Scheduler.InternalServerException"}
)
AWS_SCHEDULER_MISSING = "Scheduler.ResourceNotFoundException"
SCHEDULE_UPSERTS = {
    "ScheduleNextRotation": ("CreateNextRotationSchedule", "$.FinishSecret.Outcome.FollowUp"),
    "ScheduleRetry": ("CreateRetrySchedule", "$.FollowUp"),
}
STEP_TASKS = {"CreateSecret", "SetSecret", "TestSecret", "FinishSecret"}
# Twin states, identical but for Next/End (and a Catch's target, which is the other twin):
# the first of each pair goes on, the second ends the execution. A twin saves billed
# transitions: a step's execution ends at its Task, with no Choice and Succeed after it.
TWINS = {
    "ManualCreateSecret": "CreateSecret",
    "ManualSetSecret": "SetSecret",
    "ManualTestSecret": "TestSecret",
}
STEP_FAILURE_READS = {"$.SecretId", "$.ClientRequestToken", "$.Failure"}
# States on the way from a failure to the notice, and what each may read from the state data.
FAILURE_PATH_READS = {
    "InvalidInput": {"$"},
    "UnknownStep": {"$"},
    **{f"{name}Failed": STEP_FAILURE_READS for name in STEP_TASKS},
    "NextRotationNotScheduled": STEP_FAILURE_READS,
    "DescribeFailure": {"$.Request", "$.FailedStep", "$.Failure", "$$.Execution.Id"},
    "DescribeFailureFallback": {"$.FailedStep", "$.Failure.Error", "$$.Execution.Id"},
    "FallbackNotice": {"$.FallbackNotice"},
    "NotifyFailure": {"$.FollowUp.Notice.Subject", "$.FollowUp.Notice.Message"},
}
SCOPED_SERVICES = ("secretsmanager:", "states:", "sns:", "scheduler:", "iam:", "lambda:", "kms:")
ANY_SECRET = {
    "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"
}
"""Every secret of the account and region: allowed only with MANAGED_HERE."""
MANAGED_HERE = {f"aws:ResourceTag/{MANAGED_BY_TAG}": {"Ref": "AWS::StackName"}}
"""The StringEquals condition that limits a statement to the secrets tagged as this stack's."""
KEY_SECRET = {
    "Fn::If": [
        "CreateKeySecret",
        {"Ref": "ServiceAccountKeySecret"},
        {"Ref": "ServiceAccountKeySecretArn"},
    ]
}
KEY_SECRET_FOR_CFN_LINT = {
    "Fn::If": [
        "CreateKeySecret",
        {"Ref": "ServiceAccountKeySecret"},
        {"Fn::Sub": "${ServiceAccountKeySecretArn}"},
    ]
}
"""The same, as a plain IAM policy names it (cfn-lint would check the parameter's default)."""
KEY_ROTATION_CONDITIONS = {"RotatesKey", "RotatesKeyUnderKmsKey"}
"""Whatever only the key's own rotation needs is kept by one of these conditions."""
STEP_ONLY_TRANSIENT = {"TestSecret": frozenset({"NewKeyNotYetAcceptedError"})}
"""Transient errors only one step raises, retried by that step alone and on their own terms."""
STEP_FUNCTION_IDS = (
    "CreateSecretFunction",
    "SetSecretFunction",
    "TestSecretFunction",
    "FinishSecretFunction",
    "DescribeFailureFunction",
)
"""What the state machine invokes."""


def retriers_and_catchers(states: dict[str, Any]) -> Iterator[tuple[str, str, list[str]]]:
    for name, state in states.items():
        for kind in ("Retry", "Catch"):
            for rule in state.get(kind, []):
                yield name, kind, rule["ErrorEquals"]


def test_every_placeholder_is_substituted_and_every_substitution_used() -> None:
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", ASL_TEXT))
    assert placeholders == set(STATE_MACHINE.substitutions)


def test_every_error_name_is_a_core_error_or_a_documented_aws_error() -> None:
    known = (
        error_names(TransientRotationError)
        | error_names(PermanentRotationError)
        | AWS_LAMBDA_TRANSIENT
        | {AWS_LAMBDA_CRASH}
        | AWS_STATES_ERRORS
        | AWS_SNS_TRANSIENT
        | AWS_SCHEDULER_TRANSIENT
        | {AWS_SCHEDULER_MISSING}
    )
    for state, kind, names in retriers_and_catchers(ASL["States"]):
        assert set(names) <= known, f"{state}.{kind} names unknown errors {set(names) - known}"


def test_step_tasks_retry_exactly_the_transient_errors_with_full_jitter() -> None:
    tasks = {
        name: state
        for name, state in ASL["States"].items()
        if state.get("Parameters", {}).get("FunctionName", "").endswith("FunctionArn}")
    }
    step_twins = {twin for twin, base in TWINS.items() if base in STEP_TASKS}
    assert set(tasks) == STEP_TASKS | step_twins | {"DescribeFailure"}
    tasks = {name: tasks[name] for name in STEP_TASKS | step_twins}
    step_only = frozenset().union(*STEP_ONLY_TRANSIENT.values())
    assert step_only <= error_names(TransientRotationError)
    for name, task in tasks.items():
        own = STEP_ONLY_TRANSIENT.get(TWINS.get(name, name), frozenset())
        retried = {error for rule in task["Retry"] for error in rule["ErrorEquals"]}
        expected = (
            error_names(TransientRotationError) - step_only
            | own
            | AWS_LAMBDA_TRANSIENT
            | {AWS_LAMBDA_CRASH}
        )
        assert retried == expected, name
        # Every step is idempotent: a crash, even after its write, runs it again at once.
        [crash] = [rule for rule in task["Retry"] if AWS_LAMBDA_CRASH in rule["ErrorEquals"]]
        assert crash["ErrorEquals"] == [AWS_LAMBDA_CRASH]
        assert crash["MaxAttempts"] >= 1
        assert crash["MaxDelaySeconds"] <= 4
        for rule in task["Retry"]:
            assert isinstance(rule["BackoffRate"], float)
            assert rule["JitterStrategy"] == ("NONE" if set(rule["ErrorEquals"]) <= own else "FULL")
            assert rule["MaxDelaySeconds"] > 0
        assert [c["ErrorEquals"] for c in task["Catch"]] == [["States.ALL"]]
        assert task["ResultSelector"] == {"Outcome.$": "$.Payload"}


def test_every_failure_path_notifies_once_before_failing() -> None:
    states = ASL["States"]
    step_tasks = STEP_TASKS | {twin for twin, base in TWINS.items() if base in STEP_TASKS}
    step_failures = {c["Next"] for name in step_tasks for c in states[name]["Catch"]}
    assert step_failures == {f"{name}Failed" for name in STEP_TASKS}
    for target in step_failures | {"InvalidInput", "UnknownStep", "NextRotationNotScheduled"}:
        assert states[target]["Type"] == "Pass"
        assert states[target]["Next"] == "DescribeFailure"
        # What DescribeFailure and the fallback read is there on every way in.
        assert {"Request", "FailedStep", "Failure"} <= {
            key.removesuffix(".$") for key in states[target]["Parameters"]
        }
    for name in STEP_TASKS:
        # The label is this machine's literal; the request is named by its two ids only.
        assert states[f"{name}Failed"]["Parameters"]["FailedStep"] == name[0].lower() + name[1:]
        assert set(states[f"{name}Failed"]["Parameters"]["Request"]) == {
            "SecretId.$",
            "ClientRequestToken.$",
        }
    describe = states["DescribeFailure"]
    assert describe["Resource"] == "arn:aws:states:::lambda:invoke"
    assert describe["Parameters"]["FunctionName"] == "${DescribeFailureFunctionArn}"
    assert describe["Next"] == "FailureNoticeDue"
    assert [c["ErrorEquals"] for c in describe["Catch"]] == [["States.ALL"]]
    assert describe["Catch"][0]["Next"] == "DescribeFailureFallback"
    assert {e for rule in describe["Retry"] for e in rule["ErrorEquals"]} == AWS_LAMBDA_TRANSIENT
    assert states["DescribeFailureFallback"]["Next"] == "FallbackNotice"
    assert states["FallbackNotice"]["Next"] == "NotifyFailure"
    fallback = states["FallbackNotice"]["Parameters"]
    assert fallback["Schedule"] is None, "the fallback knows no streak: it schedules nothing"
    fallback_subject = fallback["Notice"]["Subject"]
    assert fallback_subject.isascii()
    assert fallback_subject.isprintable()
    assert len(fallback_subject) <= 100
    # The notice goes out only when DescribeFailure says one is due (no notice storm).
    assert states["FailureNoticeDue"]["Choices"] == [
        {"Variable": "$.FollowUp.Notice", "IsNull": True, "Next": "RetryDue"}
    ]
    assert states["FailureNoticeDue"]["Default"] == "NotifyFailure"
    notify = states["NotifyFailure"]
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    assert notify["Next"] == "RetryDue"
    assert [(c["ErrorEquals"], c["Next"]) for c in notify["Catch"]] == [
        (["States.ALL"], "RetryDue")
    ]
    # After the notice: the retry schedule when there is one, and whatever happens, the end
    # (a success for a rotation that only could not schedule its next refresh).
    assert states["RetryDue"]["Choices"][1:] == [
        {"Variable": "$.FollowUp.Schedule", "IsNull": True, "Next": "RotationFailed"}
    ]
    assert states["RetryDue"]["Default"] == "ScheduleRetry"
    for name in ("ScheduleRetry", "CreateRetrySchedule"):
        assert states[name]["Next"] == "RotationFailed"
        assert states[name]["Catch"][-1] == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.ScheduleError",
            "Next": "RotationFailed",
        }
    # Every way out of a failure ends with the step's own error and cause.
    assert states["RotationFailed"] == {
        "Type": "Fail",
        "Comment": states["RotationFailed"].get("Comment"),
        "ErrorPath": "$.Failure.Error",
        "CausePath": "$.Failure.Cause",
    }
    failure_path = (
        "DescribeFailure",
        "DescribeFailureFallback",
        "FallbackNotice",
        "NotifyFailure",
        "ScheduleRetry",
        "CreateRetrySchedule",
    )
    for name in failure_path:
        result_path = states[name].get("ResultPath")
        assert result_path is None or result_path not in {"$", "$.Failure"}, name


@pytest.mark.parametrize("update", sorted(SCHEDULE_UPSERTS))
def test_schedules_are_upserted_where_and_as_whom_the_template_says(update: str) -> None:
    """UpdateSchedule first (the steady state: one call), CreateSchedule when the secret has no
    schedule yet. A function chooses only the time, the name and the secret; the group, the
    role and the target are the template's, so no function can aim a schedule elsewhere."""
    states = ASL["States"]
    create, follow_up = SCHEDULE_UPSERTS[update]
    for name, api in ((update, "updateSchedule"), (create, "createSchedule")):
        state = states[name]
        assert state["Resource"] == f"arn:aws:states:::aws-sdk:scheduler:{api}"
        parameters = state["Parameters"]
        assert parameters["GroupName"] == "${RefreshScheduleGroupName}"
        assert parameters["Target"]["RoleArn"] == "${RefreshSchedulerRoleArn}"
        assert (
            parameters["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:secretsmanager:rotateSecret"
        )
        assert parameters["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert set(_reads(parameters)) == {
            f"{follow_up}.Schedule.{field}"
            for field in ("Name", "ScheduleExpression", "Description", "TargetInput")
        }
        assert state["ResultPath"] is None
        retried = {error for rule in state["Retry"] for error in rule["ErrorEquals"]}
        assert retried == AWS_SCHEDULER_TRANSIENT
        assert state["Retry"][0]["JitterStrategy"] == "FULL"
    assert states[update]["Parameters"] == states[create]["Parameters"]
    missing = states[update]["Catch"][0]
    assert missing == {"ErrorEquals": [AWS_SCHEDULER_MISSING], "ResultPath": None, "Next": create}
    assert _exit(states[create]) == _exit(states[update])


def _exit(state: dict[str, Any]) -> tuple[str | None, bool]:
    return state.get("Next"), state.get("End", False)


def test_finish_secret_notice_goes_out_before_the_upsert_that_ends_the_execution() -> None:
    """finishSecret's follow-up: its notice (recovered, or promoted unverified) is sent before the
    schedule upsert, so that no upsert failure can lose it, and losing the notice itself never
    stops the upsert; the upsert is the last state either way."""
    states = ASL["States"]
    assert states["FinishSecret"]["Next"] == "RecoveredNoticeDue"
    assert states["RecoveredNoticeDue"]["Choices"] == [
        {
            "Variable": "$.FinishSecret.Outcome.FollowUp.Notice",
            "IsNull": False,
            "Next": "NotifyRecovered",
        }
    ]
    assert states["RecoveredNoticeDue"]["Default"] == "ScheduleNextRotation"
    recovered = states["NotifyRecovered"]
    assert _exit(recovered) == ("ScheduleNextRotation", False)
    assert recovered["Parameters"]["Subject.$"] == "$.FinishSecret.Outcome.FollowUp.Notice.Subject"
    [lost] = recovered["Catch"]
    assert lost == {
        "ErrorEquals": ["States.ALL"],
        "ResultPath": "$.NotifyError",
        "Next": "ScheduleNextRotation",
    }
    for name in ("ScheduleNextRotation", "CreateNextRotationSchedule"):
        assert _exit(states[name]) == (None, True)


def test_a_rotation_that_cannot_schedule_its_successor_succeeds_and_says_so() -> None:
    """A failed upsert after a successful promotion is not a failed rotation: it goes through
    DescribeFailure as `scheduleNextRotation` (a notice, no streak, no retry) and the execution
    then succeeds, so that Secrets Manager sees the rotation it completed as completed."""
    states = ASL["States"]
    for name in ("ScheduleNextRotation", "CreateNextRotationSchedule"):
        assert states[name]["Catch"][-1] == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.Failure",
            "Next": "NextRotationNotScheduled",
        }
    unscheduled = states["NextRotationNotScheduled"]
    assert unscheduled["Parameters"]["FailedStep"] == NEXT_ROTATION_NOT_SCHEDULED
    assert unscheduled["Next"] == "DescribeFailure"
    assert states["RetryDue"]["Choices"][0] == {
        "Variable": "$.FailedStep",
        "StringEquals": NEXT_ROTATION_NOT_SCHEDULED,
        "Next": "NextRotationNotScheduledEnd",
    }
    assert states["NextRotationNotScheduledEnd"]["Type"] == "Succeed"


def _without_exit(state: dict[str, Any]) -> dict[str, Any]:
    """A state as its twin must be: no Next or End, and Catch targets named by the base twin."""
    kept = {key: value for key, value in state.items() if key not in {"Next", "End"}}
    if "Catch" in kept:
        kept["Catch"] = [
            {**rule, "Next": TWINS.get(rule["Next"], rule["Next"])} for rule in kept["Catch"]
        ]
    return kept


@pytest.mark.parametrize(("twin", "base"), sorted(TWINS.items()))
def test_twin_states_are_identical_but_for_where_they_go(twin: str, base: str) -> None:
    """A twin exists only so that one of the pair can end the execution (End) where the other
    goes on (Next); everything that does the work (resource, parameters, result handling, retries,
    catches, comment) is the same, so the two cannot drift apart."""
    states = ASL["States"]
    assert _without_exit(states[twin]) == _without_exit(states[base])
    assert _exit(states[base]) == (None, True)
    assert states[twin]["Next"] not in {None, base}
    assert "End" not in states[twin]


def test_no_task_is_duplicated_outside_the_declared_twins() -> None:
    """Every pair of Task states with the same resource and parameters is a declared twin."""
    tasks = {name: state for name, state in ASL["States"].items() if state["Type"] == "Task"}
    pairs = {
        frozenset((one, other))
        for one, first in tasks.items()
        for other, second in tasks.items()
        if one < other
        and (first["Resource"], first["Parameters"]) == (second["Resource"], second["Parameters"])
    }
    assert pairs == {frozenset(pair) for pair in TWINS.items()}


def _reads(value: Any) -> Iterator[str]:
    """Every path a Parameters block reads, intrinsic functions' arguments included."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith(".$"):
                unsubstituted = re.sub(r"\$\{[A-Za-z0-9_]+\}", "", item)
                yield from re.findall(r"\$\$?(?:\.[A-Za-z]+)*", unsubstituted)
            else:
                yield from _reads(item)


@pytest.mark.parametrize("name", sorted(FAILURE_PATH_READS))
def test_the_failure_path_copies_no_caller_text(name: str) -> None:
    """A 100 kB SecretId or a 200-character Step reaches DescribeFailure as the request it was,
    never copied into the state data again, and never into a Subject or a formatted string."""
    state = ASL["States"][name]
    assert set(_reads(state.get("Parameters", {}))) == FAILURE_PATH_READS[name]


def test_notify_failure_retries_throttling_for_minutes_within_the_execution_timeout() -> None:
    states = ASL["States"]
    [retry] = states["NotifyFailure"]["Retry"]
    assert set(retry["ErrorEquals"]) == AWS_SNS_TRANSIENT
    assert retry["JitterStrategy"] == "FULL"
    assert retry["MaxAttempts"] >= 8
    bounds = [
        min(retry["IntervalSeconds"] * retry["BackoffRate"] ** n, retry["MaxDelaySeconds"])
        for n in range(retry["MaxAttempts"])
    ]
    assert max(bounds) == retry["MaxDelaySeconds"] == 60
    assert 120 <= sum(bounds) <= 300, "minutes of retries, not the whole execution"
    # The whole failure path, at its slowest, leaves most of the execution's time to the steps.
    [describe_retry] = states["DescribeFailure"]["Retry"]
    describe_worst = (
        states["DescribeFailure"]["TimeoutSeconds"] * (describe_retry["MaxAttempts"] + 1)
        + describe_retry["MaxDelaySeconds"] * describe_retry["MaxAttempts"]
    )
    notify_worst = sum(bounds) + states["NotifyFailure"]["TimeoutSeconds"] * (
        retry["MaxAttempts"] + 1
    )
    assert describe_worst + notify_worst <= ASL["TimeoutSeconds"] / 2


@pytest.mark.parametrize("spec", TEMPLATE.functions().values(), ids=lambda spec: spec.logical_id)
def test_every_handler_resolves_to_a_callable(spec: FunctionSpec) -> None:
    source = spec.code_uri / f"{spec.module_name}.py"
    assert source.is_file(), f"{spec.logical_id}: no {source}"
    module_spec = importlib.util.spec_from_file_location(f"handler_{spec.logical_id}", source)
    assert module_spec is not None
    assert module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    assert callable(getattr(module, spec.function_name, None))
    assert spec.runtime == "python3.12"


def policy_statements(policies: tuple[Any, ...]) -> Iterator[dict[str, Any]]:
    """Every statement, including one that only a condition keeps (`Fn::If` with NoValue)."""
    for policy in policies:
        if isinstance(policy, dict):
            for statement in policy.get("Statement", []):
                yield from _kept(statement)


def _kept(statement: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "Fn::If" in statement:
        _, when_true, when_false = statement["Fn::If"]
        for branch in (when_true, when_false):
            if branch != {"Ref": "AWS::NoValue"}:
                yield from _kept(branch)
    else:
        yield statement


def all_policies() -> Iterator[tuple[str, dict[str, Any]]]:
    for spec in TEMPLATE.functions().values():
        for statement in policy_statements(spec.policies):
            yield spec.logical_id, statement
    for statement in policy_statements(STATE_MACHINE.policies):
        yield STATE_MACHINE.logical_id, statement
    for logical_id, resource in TEMPLATE.resources.items():
        if resource["Type"] == "AWS::IAM::Policy":
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                yield logical_id, statement
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield logical_id, statement


def conditioned_policies() -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """Every statement with the template condition that keeps it (an `Fn::If` around it, or the
    policy resource's own Condition), None for a statement always there."""
    for owner, policies in [
        *((spec.logical_id, spec.policies) for spec in TEMPLATE.functions().values()),
        (STATE_MACHINE.logical_id, STATE_MACHINE.policies),
    ]:
        for policy in policies:
            if isinstance(policy, dict):
                for statement in policy.get("Statement", []):
                    yield from _conditioned(owner, None, statement)
    for logical_id, resource in TEMPLATE.resources.items():
        documents = []
        if resource["Type"] == "AWS::IAM::Policy":
            documents = [resource["Properties"]["PolicyDocument"]]
        if resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
        for document in documents:
            for statement in document["Statement"]:
                yield from _conditioned(logical_id, resource.get("Condition"), statement)


def _conditioned(
    owner: str, condition: str | None, statement: dict[str, Any]
) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    if "Fn::If" in statement:
        name, kept, otherwise = statement["Fn::If"]
        assert condition is None, f"{owner}: a condition inside a conditional resource"
        assert otherwise == {"Ref": "AWS::NoValue"}, f"{owner}: {name} chooses between statements"
        yield from _conditioned(owner, name, kept)
    else:
        yield owner, condition, statement


KEY_ROTATION_GRANTS = {
    ("CreateSecretFunction", "StoreTheNewServiceAccountKey"),
    ("CreateSecretFunction", "AbandonAStalePendingKey"),
    ("CreateSecretFunction", "RecordTheKeyCreation"),
    ("CreateSecretFunction", "StartTheKeyRotation"),
    ("SetSecretFunction", "DescribeTheServiceAccountKeySecret"),
    ("SetSecretFunction", "ReadThePendingServiceAccountKey"),
    ("SetSecretFunction", "AbandonAStalePendingKey"),
    ("TestSecretFunction", "DescribeTheServiceAccountKeySecret"),
    ("TestSecretFunction", "ReadThePendingServiceAccountKey"),
    ("TestSecretFunction", "AbandonAStalePendingKey"),
    ("FinishSecretFunction", "DescribeTheServiceAccountKeySecret"),
    ("FinishSecretFunction", "ReadThePendingServiceAccountKey"),
    ("FinishSecretFunction", "PromoteThePendingKey"),
    ("FinishSecretFunction", "RecordTheKeyRotation"),
    ("DescribeFailureFunction", "DescribeTheServiceAccountKeySecret"),
    ("DescribeFailureFunction", "RecordTheKeyFailureStreak"),
    ("FreshnessSweepFunction", "ReadTheKeyRotationDates"),
    ("FreshnessSweepFunction", "RotateTheServiceAccountKey"),
    ("RefreshSchedulerKeyPolicy", "RotateTheServiceAccountKey"),
}
"""The statements on the key secret that its own rotation adds, by owner and Sid."""


def limited_to_this_stacks_secrets(statement: dict[str, Any]) -> bool:
    equals = statement.get("Condition", {}).get("StringEquals", {})
    return all(equals.get(key) == value for key, value in MANAGED_HERE.items())


def secret_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    for owner, statement in all_policies():
        if any(action.startswith("secretsmanager:") for action in statement["Action"]):
            yield owner, statement


def test_token_secrets_are_chosen_by_this_stacks_tag_and_the_key_secret_by_its_arn() -> None:
    """Any number of token secrets: every statement on secrets covers any secret of the account
    that carries token-rotation:managed-by=<this stack>, whatever its name; only the statement
    that reads the key names one secret, and no statement names the stack's own token secret."""
    exact = []
    for owner, condition, statement in conditioned_policies():
        if not any(action.startswith("secretsmanager:") for action in statement["Action"]):
            continue
        if statement["Resource"] == ANY_SECRET:
            assert limited_to_this_stacks_secrets(statement), f"{owner}: {statement}"
        elif (owner, statement["Sid"]) not in RESOURCELESS:
            assert statement["Resource"] in (KEY_SECRET, KEY_SECRET_FOR_CFN_LINT), owner
            exact.append((owner, statement["Sid"], condition))
    # Beyond createSecret's read of the key, only the key's own rotation names the key secret.
    assert [entry for entry in exact if entry[2] not in KEY_ROTATION_CONDITIONS] == [
        ("CreateSecretFunction", "ReadTheServiceAccountKey", "UsesKey")
    ]
    assert {(owner, sid) for owner, sid, _ in exact} == {
        ("CreateSecretFunction", "ReadTheServiceAccountKey"),
        *KEY_ROTATION_GRANTS,
    }
    assert "TokenSecret" not in json.dumps([s["Resource"] for _, s in secret_statements()])


RESOURCELESS = {
    (STATE_MACHINE.logical_id, "DeliverExecutionLogs"): "logs:*",
    ("FreshnessSweepFunction", "ListTheSecrets"): "secretsmanager:ListSecrets",
}
"""The only statements on `*`, each with the actions it may hold: actions that support no
resource-level permission (CloudWatch Logs delivery; ListSecrets, which answers no value)."""


def test_no_statement_reaches_every_resource_or_every_secret_without_the_tag() -> None:
    """`*` only where the actions take no resource (RESOURCELESS); a wildcard secret ARN only
    with the managed-by condition."""
    checked = 0
    for owner, statement in all_policies():
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        checked += 1
        if "*" in resources:
            allowed = RESOURCELESS.get((owner, statement["Sid"]))
            assert allowed is not None, f"{owner}: {statement['Sid']} reaches every resource"
            assert all(_iam_like(allowed, action) for action in actions), statement
        for resource in resources:
            if "secretsmanager" in json.dumps(resource) and "*" in json.dumps(resource):
                assert resource == ANY_SECRET, f"{owner}: {resource}"
                assert limited_to_this_stacks_secrets(statement), f"{owner}: {statement}"
        if any(action.startswith(SCOPED_SERVICES) for action in actions):
            assert not any("*" in a for a in actions), f"{owner}: wildcard action {actions}"
    assert checked >= 15


def _iam_like(pattern: str, value: str) -> bool:
    """IAM's StringLike and action matching: * any run of characters, ? one character."""
    expression = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(expression, value) is not None


def _may_name_tag_key(condition: dict[str, Any], key: str) -> bool:
    """Whether a TagResource/UntagResource that names only `key` passes the statement's
    conditions on aws:TagKeys (no such condition: any key passes)."""
    for operator, tests in condition.items():
        if "aws:TagKeys" not in tests:
            continue
        allowed = tests["aws:TagKeys"]
        allowed = [allowed] if isinstance(allowed, str) else allowed
        if operator == "ForAllValues:StringLike":
            if not any(_iam_like(pattern, key) for pattern in allowed):
                return False
        elif operator == "ForAllValues:StringEquals":
            if key not in allowed:
                return False
        else:
            # ForAnyValue and plain operators would not limit every key of a request.
            raise AssertionError(f"aws:TagKeys under {operator} limits no tag key")
    return True


TAGGING_ACTIONS = ("secretsmanager:TagResource", "secretsmanager:UntagResource")
SETTING_TAGS = sorted(
    value.tag for value in vars(config).values() if isinstance(value, config.Setting)
)
"""The deployer's per-secret settings (token-rotation:key-secret-id among them)."""


def test_no_role_of_the_stack_may_set_or_remove_the_managed_by_tag() -> None:
    """Whoever may set token-rotation:managed-by decides what the stack rotates: none of the
    stack's own roles may, nor change a setting tag; they may write status tags only."""
    status_tags = {
        "CreateSecretFunction": f"{TAG_PREFIX}key-create-started",
        "FinishSecretFunction": FAILED_ATTEMPTS_TAG,
        "DescribeFailureFunction": FAILED_ATTEMPTS_TAG,
        "FreshnessSweepFunction": REFUSED_VERSION_TAG,
        "TestSecretFunction": UNVERIFIED_VERSION_TAG,
    }
    taggers = set()
    for owner, statement in all_policies():
        granted = [a for a in TAGGING_ACTIONS if any(_iam_like(g, a) for g in statement["Action"])]
        assert not any(_iam_like(g, "secretsmanager:CreateSecret") for g in statement["Action"])
        if not granted:
            continue
        taggers.add(owner)
        condition = statement.get("Condition", {})
        assert not _may_name_tag_key(condition, MANAGED_BY_TAG), f"{owner}: {granted}"
        for setting in SETTING_TAGS:
            assert not _may_name_tag_key(condition, setting), f"{owner}: {granted} {setting}"
        assert _may_name_tag_key(condition, status_tags[owner]), owner
    assert taggers == set(status_tags)


def test_test_secret_may_write_no_status_tag_but_its_unverified_acceptance() -> None:
    """testSecret records that it accepted a token unverified (and removes that record when
    tokeninfo vouches for the token after all); the streak is not its to write."""
    [statement] = [
        statement
        for owner, statement in all_policies()
        if owner == "TestSecretFunction" and "secretsmanager:TagResource" in statement["Action"]
    ]
    assert statement["Action"] == ["secretsmanager:TagResource", "secretsmanager:UntagResource"]
    assert limited_to_this_stacks_secrets(statement)
    condition = statement["Condition"]
    assert _may_name_tag_key(condition, UNVERIFIED_VERSION_TAG)
    assert not _may_name_tag_key(condition, FAILED_ATTEMPTS_TAG)
    assert not _may_name_tag_key(condition, f"{STATUS_TAG_PREFIX}refused-version")


def test_the_scheduler_role_may_only_rotate_this_stacks_token_secrets() -> None:
    role = TEMPLATE.resources["RefreshSchedulerRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert set(trust["Condition"]) == {"StringEquals", "ArnEquals"}
    assert "Policies" not in role
    assert "ManagedPolicyArns" not in role
    policy = TEMPLATE.resources["RefreshSchedulerPolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "RefreshSchedulerRole"}]
    granted = [
        (statement["Action"], statement["Resource"], statement.get("Condition"))
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    assert granted == [
        (["secretsmanager:RotateSecret"], ANY_SECRET, {"StringEquals": MANAGED_HERE}),
        (["lambda:InvokeFunction"], {"Fn::GetAtt": ["RotationEntryFunction", "Arn"]}, None),
    ]


def test_secrets_manager_may_invoke_the_entry_function_for_this_accounts_secrets_only() -> None:
    permission = TEMPLATE.resources["SecretsManagerMayInvokeRotationEntry"]["Properties"]
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["FunctionName"] == {"Fn::GetAtt": ["RotationEntryFunction", "Arn"]}
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert permission["SourceArn"] == ANY_SECRET


def test_the_state_machine_may_invoke_exactly_the_functions_its_definition_calls() -> None:
    """Exact ARNs, not SAM's LambdaInvokePolicy (function:<name>*, which matches other functions
    named alike). Exact ARNs suffice because every task invokes an unqualified ARN: no version,
    alias or Qualifier, which would need the :* form."""
    assert all(set(policy) == {"Statement"} for policy in STATE_MACHINE.policies), (
        "no SAM templates"
    )
    invoking = [
        statement
        for statement in policy_statements(STATE_MACHINE.policies)
        if any(action.startswith("lambda:") for action in statement["Action"])
    ]
    [statement] = invoking
    assert statement["Action"] == ["lambda:InvokeFunction"]
    assert "Condition" not in statement
    granted = [resource["Fn::GetAtt"] for resource in statement["Resource"]]
    assert granted == [[logical_id, "Arn"] for logical_id in STEP_FUNCTION_IDS]
    tasks = [
        s for s in ASL["States"].values() if s.get("Resource") == "arn:aws:states:::lambda:invoke"
    ]
    invoked = set()
    for task in tasks:
        parameters = task["Parameters"]
        assert "Qualifier" not in parameters
        placeholder = re.fullmatch(r"\$\{([A-Za-z]+)\}", parameters["FunctionName"])
        assert placeholder is not None, parameters["FunctionName"]
        substituted = STATE_MACHINE.substitutions[placeholder[1]]
        invoked.add(substituted["Fn::GetAtt"][0])
        assert substituted["Fn::GetAtt"][1] == "Arn", "the unqualified ARN"
    assert invoked == set(STEP_FUNCTION_IDS)
    assert not any(
        any(action.startswith("lambda:") for action in statement["Action"])
        for owner, statement in all_policies()
        if owner
        not in {
            STATE_MACHINE.logical_id,
            "RefreshSchedulerPolicy",
            "FreshnessSweepFunction",
            "FreshnessSweepSchedulerRole",
            # RotateSecret on the key secret needs it (createSecret's standby-key fallback).
            "CreateSecretKeyRotationPolicy",
        }
    )


def test_only_the_state_machine_upserts_schedules_and_only_in_the_stacks_group() -> None:
    upserts = [
        (owner, statement)
        for owner, statement in all_policies()
        if any(action.startswith(("scheduler:", "iam:")) for action in statement["Action"])
    ]
    assert [owner for owner, _ in upserts] == [STATE_MACHINE.logical_id] * 2
    (_, schedules), (_, pass_role) = upserts
    assert schedules["Action"] == ["scheduler:UpdateSchedule", "scheduler:CreateSchedule"]
    assert schedules["Resource"]["Fn::Sub"].endswith(":schedule/${RefreshScheduleGroup}/*")
    assert pass_role["Action"] == ["iam:PassRole"]
    assert pass_role["Resource"] == {"Fn::GetAtt": ["RefreshSchedulerRole", "Arn"]}
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
    }


def _conditional_statements(logical_id: str) -> dict[str, list[Any]]:
    """A function's statements that a template condition keeps, by Sid: [condition, kept, else]."""
    spec = TEMPLATE.functions()[logical_id]
    conditional = [
        statement["Fn::If"]
        for policy in spec.policies
        if isinstance(policy, dict)
        for statement in policy.get("Statement", [])
        if "Fn::If" in statement
    ]
    return {kept["Sid"]: [condition, kept, otherwise] for condition, kept, otherwise in conditional}


def test_keyless_federation_leaves_no_function_able_to_read_or_decrypt_a_key() -> None:
    """Every statement that names the key secret or its KMS key is kept only by a condition that
    needs a key: federation keeps none of them."""
    for owner, condition, statement in conditioned_policies():
        named = json.dumps(statement["Resource"])
        if "ServiceAccountKeySecret" in named or "ServiceAccountKeyKmsKeyArn" in named:
            assert condition in {"UsesKey", "DecryptsTheKeySecret", *KEY_ROTATION_CONDITIONS}, (
                f"{owner}: {statement['Sid']}"
            )
    conditions = TEMPLATE.document["Conditions"]
    assert conditions["UsesKey"] == {"Fn::Not": [{"Condition": "Keyless"}]}
    assert conditions["Keyless"] == {
        "Fn::Equals": [{"Ref": "CredentialSource"}, "workload-identity-federation"]
    }
    assert conditions["DecryptsTheKeySecret"] == {
        "Fn::And": [{"Condition": "UsesKey"}, {"Condition": "HasKeySecretKmsKey"}]
    }
    assert conditions["RotatesKey"] == {
        "Fn::And": [
            {"Condition": "UsesKey"},
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "KeyRotationDays"}, "0"]}]},
        ]
    }
    assert conditions["RotatesKeyUnderKmsKey"] == {
        "Fn::And": [{"Condition": "RotatesKey"}, {"Condition": "HasKeySecretKmsKey"}]
    }
    assert TEMPLATE.resources["ServiceAccountKeySecret"]["Condition"] == "CreateKeySecret"


def test_the_key_secrets_kms_key_serves_only_through_secrets_manager_and_its_rotation() -> None:
    """createSecret decrypts the key it reads; with the key's own rotation, createSecret also
    encrypts the new key (PutSecretValue asks for a data key) and the later steps decrypt the
    pending one. Nothing else, and never directly."""
    via_secrets_manager = {
        "StringEquals": {
            "kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}
        }
    }
    using = [
        (owner, condition, statement["Sid"], statement["Action"])
        for owner, condition, statement in conditioned_policies()
        if any(action.startswith("kms:") for action in statement["Action"])
        and statement["Resource"] == {"Ref": "ServiceAccountKeyKmsKeyArn"}
        and statement["Condition"] == via_secrets_manager
    ]
    assert using == [
        (
            "CreateSecretFunction",
            "DecryptsTheKeySecret",
            "DecryptTheServiceAccountKey",
            ["kms:Decrypt"],
        ),
        (
            "CreateSecretFunction",
            "RotatesKeyUnderKmsKey",
            "EncryptTheNewServiceAccountKey",
            ["kms:GenerateDataKey"],
        ),
        *(
            (owner, "RotatesKeyUnderKmsKey", "DecryptThePendingServiceAccountKey", ["kms:Decrypt"])
            for owner in ("SetSecretFunction", "TestSecretFunction", "FinishSecretFunction")
        ),
    ]
    assert len(using) == sum(
        1 for _, s in all_policies() if any(a.startswith("kms:") for a in s["Action"])
    )
    key_secret = TEMPLATE.resources["ServiceAccountKeySecret"]["Properties"]
    assert key_secret["KmsKeyId"] == {
        "Fn::If": [
            "HasKeySecretKmsKey",
            {"Ref": "ServiceAccountKeyKmsKeyArn"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert TEMPLATE.document["Conditions"]["HasKeySecretKmsKey"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ServiceAccountKeyKmsKeyArn"}, ""]}]
    }


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        ("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", True),
        (
            "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab",
            True,
        ),
        # kms:Decrypt is granted on the key's ARN: an alias or a bare key id would grant nothing.
        ("arn:aws:kms:eu-west-1:123456789012:alias/google-key", False),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", False),
        ("arn:aws:kms:eu-west-1:123456789012:key/*", False),
    ],
)
def test_the_kms_key_parameter_takes_a_key_arn_or_nothing(value: str, accepted: bool) -> None:
    pattern = TEMPLATE.document["Parameters"]["ServiceAccountKeyKmsKeyArn"]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is accepted


def test_both_secrets_go_with_the_stack() -> None:
    """No credential outlives the stack that looks after it (the reasons: template.yaml)."""
    for logical_id in ("TokenSecret", "ServiceAccountKeySecret"):
        resource = TEMPLATE.resources[logical_id]
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Delete"


def test_the_token_secret_is_deployed_as_a_managed_token_secret_holding_the_placeholder() -> None:
    """createSecret replaces only the placeholder or its own tokens: the template deploys the
    first, with the tag that puts the secret in this stack's care."""
    properties = TEMPLATE.resources["TokenSecret"]["Properties"]
    assert properties["SecretString"] == PLACEHOLDER
    assert {"Key": MANAGED_BY_TAG, "Value": {"Ref": "AWS::StackName"}} in properties["Tags"]


def test_only_create_secret_reads_the_key_in_use_and_only_the_steps_read_a_pending_key() -> None:
    """The key's value: createSecret reads it to mint (and, rotating the key, to reach IAM with
    the current or standby key); setSecret, testSecret and finishSecret read the pending key of
    the key's own rotation, AWSPENDING only. No one else, the sweep included."""
    readers = {
        (owner, condition, json.dumps(statement.get("Condition"), sort_keys=True))
        for owner, condition, statement in conditioned_policies()
        if "secretsmanager:GetSecretValue" in statement["Action"]
        and statement["Resource"] in (KEY_SECRET, KEY_SECRET_FOR_CFN_LINT)
    }
    pending_only = json.dumps(
        {"StringEquals": {"secretsmanager:VersionStage": "AWSPENDING"}}, sort_keys=True
    )
    assert readers == {
        ("CreateSecretFunction", "UsesKey", "null"),
        ("SetSecretFunction", "RotatesKey", pending_only),
        ("TestSecretFunction", "RotatesKey", pending_only),
        ("FinishSecretFunction", "RotatesKey", pending_only),
    }


def test_describe_failure_may_only_read_labels_and_tag_their_status() -> None:
    """Token secrets by the stack's tag; the key secret, when it renews itself, by its ARN."""
    spec = TEMPLATE.functions()["DescribeFailureFunction"]
    status_only = {"ForAllValues:StringLike": {"aws:TagKeys": f"{STATUS_TAG_PREFIX}*"}}
    assert list(policy_statements(spec.policies)) == [
        {
            "Sid": "ReadTheTokenSecretStages",
            "Effect": "Allow",
            "Action": ["secretsmanager:DescribeSecret"],
            "Resource": ANY_SECRET,
            "Condition": {"StringEquals": MANAGED_HERE},
        },
        {
            "Sid": "RecordTheFailureStreak",
            "Effect": "Allow",
            "Action": ["secretsmanager:TagResource"],
            "Resource": ANY_SECRET,
            "Condition": {"StringEquals": MANAGED_HERE, **status_only},
        },
        {
            "Sid": "DescribeTheServiceAccountKeySecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:DescribeSecret"],
            "Resource": KEY_SECRET,
        },
        {
            "Sid": "RecordTheKeyFailureStreak",
            "Effect": "Allow",
            "Action": ["secretsmanager:TagResource"],
            "Resource": KEY_SECRET,
            "Condition": status_only,
        },
    ]
    assert len(spec.policies) == 1
    assert STATE_MACHINE.substitutions["DescribeFailureFunctionArn"] == {
        "Fn::GetAtt": ["DescribeFailureFunction", "Arn"]
    }


def _condition(**stages: object) -> dict[str, object]:
    return {"StringEquals": {**MANAGED_HERE, **stages}}


ENTRY_FUNCTION_ARN = {"Fn::GetAtt": ["RotationEntryFunction", "Arn"]}


def test_the_sweep_may_only_list_read_rotate_and_tag_this_stacks_token_secrets() -> None:
    """Never the key secret's value, never a token but AWSCURRENT's and AWSPENDING's, one status
    tag, and RotateSecret (with the entry function it invokes) as its only way to change a token
    or, when it is due, the key."""
    spec = TEMPLATE.functions()["FreshnessSweepFunction"]
    statements = {s["Sid"]: s for s in policy_statements(spec.policies)}
    granted = {
        sid: (statement["Action"], statement["Resource"], statement.get("Condition"))
        for sid, statement in statements.items()
    }
    assert granted == {
        "ListTheSecrets": (["secretsmanager:ListSecrets"], "*", None),
        "ReadTheTokenSecretVersions": (
            ["secretsmanager:ListSecretVersionIds"],
            ANY_SECRET,
            _condition(),
        ),
        "ReadTheCurrentAndPendingTokens": (
            ["secretsmanager:GetSecretValue"],
            ANY_SECRET,
            _condition(**{"secretsmanager:VersionStage": ["AWSCURRENT", "AWSPENDING"]}),
        ),
        "RotateTheTokenSecrets": (["secretsmanager:RotateSecret"], ANY_SECRET, _condition()),
        "RotationInvokesTheEntryFunction": (["lambda:InvokeFunction"], ENTRY_FUNCTION_ARN, None),
        "AbandonAStalePendingVersion": (
            ["secretsmanager:UpdateSecretVersionStage"],
            ANY_SECRET,
            _condition(**{"secretsmanager:VersionStage": "AWSPENDING"}),
        ),
        "RecordARefusedToken": (
            ["secretsmanager:TagResource"],
            ANY_SECRET,
            {
                "StringEquals": MANAGED_HERE,
                "ForAllValues:StringEquals": {"aws:TagKeys": REFUSED_VERSION_TAG},
            },
        ),
        "PublishRefusedTokenNotices": (["sns:Publish"], {"Ref": "FailureTopic"}, None),
        # The key secret's due time from its tags and versions' dates, never its value.
        "ReadTheKeyRotationDates": (
            ["secretsmanager:DescribeSecret", "secretsmanager:ListSecretVersionIds"],
            KEY_SECRET,
            None,
        ),
        "RotateTheServiceAccountKey": (["secretsmanager:RotateSecret"], KEY_SECRET, None),
    }
    assert all(statement["Effect"] == "Allow" for statement in statements.values())
    assert not _may_name_tag_key(granted["RecordARefusedToken"][2] or {}, FAILED_ATTEMPTS_TAG), (
        "the sweep keeps no failure streak"
    )


def test_the_sweep_function_fits_a_paced_run_and_reports_to_the_failure_topic() -> None:
    spec = TEMPLATE.functions()["FreshnessSweepFunction"]
    properties = TEMPLATE.resources["FreshnessSweepFunction"]["Properties"]
    # A run spreads its starts over the pacing window and ends before the next run begins.
    deadline = PACING_WINDOW + DEADLINE_MARGIN
    assert deadline.total_seconds() < spec.timeout_seconds < SWEEP_INTERVAL.total_seconds()
    assert properties["EventInvokeConfig"] == {"MaximumRetryAttempts": 0}
    assert spec.environment["FAILURE_TOPIC_ARN"] == {"Ref": "FailureTopic"}
    assert properties["LoggingConfig"] == {
        "LogFormat": "JSON",
        "LogGroup": {"Ref": "FreshnessSweepLogGroup"},
    }
    assert TEMPLATE.resources["FreshnessSweepLogGroup"]["Type"] == "AWS::Logs::LogGroup"
    # What the sweep counts on: no step of a rotation runs longer than the entry function.
    entry = TEMPLATE.functions()["RotationEntryFunction"]
    assert entry.timeout_seconds == ENTRY_FUNCTION_TIMEOUT.total_seconds()


def test_the_sweep_runs_every_interval_on_time_outside_the_refresh_group() -> None:
    """Deleting the refresh schedules' group (or any of its schedules) leaves the sweep that
    repairs what they would have done."""
    schedule = TEMPLATE.resources["FreshnessSweepSchedule"]
    assert schedule["Type"] == "AWS::Scheduler::Schedule"
    properties = schedule["Properties"]
    minutes = int(SWEEP_INTERVAL.total_seconds() // 60)
    assert properties["ScheduleExpression"] == f"rate({minutes} minutes)"
    assert properties["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert properties["State"] == "ENABLED"
    assert properties["GroupName"] == "default"
    target = properties["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["FreshnessSweepFunction", "Arn"]}
    assert target["RoleArn"] == {"Fn::GetAtt": ["FreshnessSweepSchedulerRole", "Arn"]}
    assert target["Input"] == "{}"
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] < SWEEP_INTERVAL.total_seconds()


def test_the_sweep_scheduler_role_may_only_invoke_the_sweep() -> None:
    role = TEMPLATE.resources["FreshnessSweepSchedulerRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnEquals": {
            "aws:SourceArn": {
                "Fn::Sub": (
                    "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:"
                    "schedule-group/default"
                )
            }
        },
    }
    assert "ManagedPolicyArns" not in role
    [policy] = role["Policies"]
    granted = [(s["Action"], s["Resource"]) for s in policy["PolicyDocument"]["Statement"]]
    assert granted == [
        (["lambda:InvokeFunction"], {"Fn::GetAtt": ["FreshnessSweepFunction", "Arn"]})
    ]


ENTRY_EVENTS = sorted((EVENTS / "rotation_entry").glob("*.json"))
STEP_EVENTS = sorted((EVENTS / "steps").glob("*.json"))


def test_there_is_an_event_for_every_step_and_function() -> None:
    expected = {"create_secret", "set_secret", "test_secret", "finish_secret"}
    assert {path.stem for path in ENTRY_EVENTS} == expected
    assert {path.stem for path in STEP_EVENTS} == expected
    assert (EVENTS / "statemachine" / "manual_rotation.json").is_file()
    handlers = {spec.code_uri.name for spec in TEMPLATE.functions().values()}
    assert expected <= handlers


@pytest.mark.parametrize("path", ENTRY_EVENTS, ids=lambda path: path.stem)
def test_entry_events_are_secrets_manager_rotation_events(path: Path) -> None:
    raw = json.loads(path.read_text())
    event = SecretsManagerEvent(raw)
    assert event.step in {step.value for step in Step}
    assert event.step == _camel(path.stem)
    assert event.secret_id.startswith("arn:aws:secretsmanager:")
    assert isinstance(raw["RotationToken"], str)
    assert RotationRequest.from_rotation_event(raw).step == event.step


@pytest.mark.parametrize("path", STEP_EVENTS, ids=lambda path: path.stem)
def test_step_events_are_valid_step_payloads(path: Path) -> None:
    step = Step(_camel(path.stem))
    request = RotationRequest.for_step(json.loads(path.read_text()), step)
    assert request.secret_id.startswith("arn:aws:secretsmanager:")


def test_manual_input_starts_a_whole_rotation() -> None:
    manual = json.loads((EVENTS / "statemachine" / "manual_rotation.json").read_text())
    assert set(manual) == {"SecretId"}


def _camel(snake: str) -> str:
    first, *rest = snake.split("_")
    return first + "".join(part.title() for part in rest)


# The key secret renews itself (KeyRotationDays).
KEY_TAGS_OF = {
    "CreateSecretFunction": {f"{TAG_PREFIX}key-create-started", f"{TAG_PREFIX}key-refused"},
    "FinishSecretFunction": {
        f"{TAG_PREFIX}key-valid-before",
        f"{TAG_PREFIX}key-rotated-at",
        f"{TAG_PREFIX}key-refused",
    },
}
"""The key rotation's own tags each step writes or removes on the key secret."""


def _grants(owner: str) -> dict[str, tuple[str | None, dict[str, Any]]]:
    return {
        statement["Sid"]: (condition, statement)
        for found, condition, statement in conditioned_policies()
        if found == owner
    }


def test_key_rotation_days_is_a_whole_number_of_days_up_to_googles_90() -> None:
    parameter = TEMPLATE.document["Parameters"]["KeyRotationDays"]
    assert (parameter["Type"], parameter["Default"]) == ("Number", 30)
    assert (parameter["MinValue"], parameter["MaxValue"]) == (0, 90)
    description = " ".join(parameter["Description"].split())
    for needed in ("Default 30", "90 days", "0 switches", "Keyless", "no key at all"):
        assert needed in description
    interface = TEMPLATE.document["Metadata"]["AWS::CloudFormation::Interface"]
    [group] = [g for g in interface["ParameterGroups"] if "KeyRotationDays" in g["Parameters"]]
    assert group["Label"]["default"] == "Google credential source"
    assert interface["ParameterLabels"]["KeyRotationDays"]["default"]
    # A Number also takes 7.5 or 030, which rate() refuses: the rule lists the whole days.
    [assertion] = TEMPLATE.document["Rules"]["KeyRotationDaysAreWholeDays"]["Assertions"]
    allowed, value = assertion["Assert"]["Fn::Contains"]
    assert allowed == [str(days) for days in range(91)]
    assert value == {"Ref": "KeyRotationDays"}


def test_every_step_and_the_sweep_know_whether_the_key_renews_itself() -> None:
    """0 for a keyless stack, whatever KeyRotationDays says: no key, no key rotation."""
    days = {"Fn::If": ["RotatesKey", {"Ref": "KeyRotationDays"}, "0"]}
    functions = TEMPLATE.functions()
    for logical_id in (*STEP_FUNCTION_IDS, "FreshnessSweepFunction"):
        assert functions[logical_id].environment["KEY_ROTATION_DAYS"] == days, logical_id


def test_the_key_secret_renews_itself_on_its_own_schedule_never_at_deploy() -> None:
    """Through the entry function and the state machine of the token secrets. Not at deploy
    (RotateImmediatelyOnUpdate false): the key secret the stack creates holds {} until the
    deployer puts a key in it, so a rotation then could only fail."""
    schedule = TEMPLATE.resources["KeyRotationSchedule"]
    assert schedule["Type"] == "AWS::SecretsManager::RotationSchedule"
    assert schedule["Condition"] == "RotatesKey"
    assert schedule["DependsOn"] == "SecretsManagerMayInvokeRotationEntry"
    assert schedule["Properties"] == {
        "SecretId": KEY_SECRET,
        "RotationLambdaARN": ENTRY_FUNCTION_ARN,
        "RotateImmediatelyOnUpdate": False,
        "RotationRules": {"AutomaticallyAfterDays": {"Ref": "KeyRotationDays"}},
    }
    # The token secret's schedule rotates at once: its first token is wanted right away.
    assert TEMPLATE.resources["TokenRotationSchedule"]["Properties"]["RotateImmediatelyOnUpdate"]


def test_the_key_is_written_promoted_and_given_up_by_the_steps_that_must() -> None:
    """PutSecretValue by createSecret alone; AWSPENDING taken off by the steps that may abandon a
    new key, AWSCURRENT moved by finishSecret alone."""
    pending = {"StringEquals": {"secretsmanager:VersionStage": "AWSPENDING"}}
    writes = {
        (owner, action, json.dumps(statement.get("Condition"), sort_keys=True))
        for owner, _, statement in conditioned_policies()
        if statement["Resource"] == KEY_SECRET
        for action in statement["Action"]
        if action in {"secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"}
    }
    give_up = json.dumps(pending, sort_keys=True)
    assert writes == {
        ("CreateSecretFunction", "secretsmanager:PutSecretValue", "null"),
        ("CreateSecretFunction", "secretsmanager:UpdateSecretVersionStage", give_up),
        ("SetSecretFunction", "secretsmanager:UpdateSecretVersionStage", give_up),
        ("TestSecretFunction", "secretsmanager:UpdateSecretVersionStage", give_up),
        (
            "FinishSecretFunction",
            "secretsmanager:UpdateSecretVersionStage",
            # AWSPREVIOUS: back onto the standby once a key Google refused was replaced;
            # AWSPENDING: off the promoted key.
            json.dumps(
                {
                    "StringEquals": {
                        "secretsmanager:VersionStage": ["AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"]
                    }
                }
            ),
        ),
    }


@pytest.mark.parametrize("owner", sorted(KEY_TAGS_OF))
def test_the_key_rotations_tags_are_written_only_by_their_steps(owner: str) -> None:
    [(condition, statement)] = [
        (condition, statement)
        for condition, statement in _grants(owner).values()
        if statement["Resource"] == KEY_SECRET
        and any(action in TAGGING_ACTIONS for action in statement["Action"])
    ]
    assert condition == "RotatesKey"
    assert statement["Action"] == list(TAGGING_ACTIONS)
    for tag in (tag for tags in KEY_TAGS_OF.values() for tag in tags):
        assert _may_name_tag_key(statement["Condition"], tag) is (tag in KEY_TAGS_OF[owner]), tag
    assert _may_name_tag_key(statement["Condition"], FAILED_ATTEMPTS_TAG) is (
        owner == "FinishSecretFunction"
    ), "finishSecret ends the key's failure streak; createSecret keeps none"


def test_the_key_rotation_is_started_by_its_schedules_the_sweep_and_the_standby_fallback() -> None:
    """RotateSecret on the key secret, with the entry function it invokes: the retry and due-time
    schedules (as the scheduler role), the sweep, and a token's createSecret whose key Google
    refused. The policies apart from their roles avoid a cycle through the state machine."""
    for logical_id, role in (
        ("RefreshSchedulerKeyPolicy", "RefreshSchedulerRole"),
        ("CreateSecretKeyRotationPolicy", "CreateSecretFunctionRole"),
    ):
        resource = TEMPLATE.resources[logical_id]
        assert resource["Condition"] == "RotatesKey"
        assert resource["Properties"]["Roles"] == [{"Ref": role}]
    [scheduler] = TEMPLATE.resources["RefreshSchedulerKeyPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert (scheduler["Action"], scheduler["Resource"]) == (
        ["secretsmanager:RotateSecret"],
        KEY_SECRET_FOR_CFN_LINT,
    )
    [invoke] = TEMPLATE.resources["CreateSecretKeyRotationPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert (invoke["Action"], invoke["Resource"]) == (["lambda:InvokeFunction"], ENTRY_FUNCTION_ARN)
    condition, rotate = _grants("CreateSecretFunction")["StartTheKeyRotation"]
    assert condition == "RotatesKey"
    assert (rotate["Action"], rotate["Resource"]) == (["secretsmanager:RotateSecret"], KEY_SECRET)
    condition, rotate = _grants("FreshnessSweepFunction")["RotateTheServiceAccountKey"]
    assert condition == "RotatesKey"
    assert (rotate["Action"], rotate["Resource"]) == (["secretsmanager:RotateSecret"], KEY_SECRET)
    # Secrets Manager may invoke the entry function for the key secret too: any of the
    # account's secrets (test_secrets_manager_may_invoke_the_entry_function_...).


@pytest.mark.parametrize("name", ["TestSecret", "ManualTestSecret"])
def test_test_secret_waits_for_a_new_key_within_the_cores_bound(name: str) -> None:
    """Google accepts a new key a short while after creating it: testSecret tries again at
    fixed, growing waits (no jitter: the wait is for Google, not to spread load), about 100 s,
    and its last try comes before the core gives the key up. Each try mints once and asks
    tokeninfo once, each bounded by the Google timeout: all of it fits the entry function's
    wait for one step, so Secrets Manager's call sees the step end."""
    [rule] = [
        rule
        for rule in ASL["States"][name]["Retry"]
        if rule["ErrorEquals"] == ["NewKeyNotYetAcceptedError"]
    ]
    assert (rule["IntervalSeconds"], rule["BackoffRate"], rule["MaxAttempts"]) == (5, 1.5, 6)
    assert rule["JitterStrategy"] == "NONE"
    waits = [
        min(rule["IntervalSeconds"] * rule["BackoffRate"] ** n, rule["MaxDelaySeconds"])
        for n in range(rule["MaxAttempts"])
    ]
    assert waits[-1] < rule["MaxDelaySeconds"], "the cap never shortens a wait"
    assert 90 <= sum(waits) < KEY_ACCEPTANCE_BOUND.total_seconds()
    google_timeout = float(
        TEMPLATE.document["Globals"]["Function"]["Environment"]["Variables"][
            "GOOGLE_HTTP_TIMEOUT_SECONDS"
        ]
    )
    entry = TEMPLATE.functions()["RotationEntryFunction"]
    entry_wait = entry.timeout_seconds - float(entry.environment["DEADLINE_MARGIN_SECONDS"])
    tries = rule["MaxAttempts"] + 1
    assert sum(waits) + tries * 2 * google_timeout <= entry_wait
