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
from rotation_core.errors import PermanentRotationError, TransientRotationError, error_names
from rotation_core.refresh import STATUS_TAG_PREFIX
from rotation_core.rotation_request import RotationRequest
from rotation_core.steps import Step

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
# States on the way from a failure to the notice, and what each may read from the state data.
FAILURE_PATH_READS = {
    "InvalidInput": {"$"},
    "UnknownStep": {"$.Request"},
    "DescribeFailure": {"$.Request", "$.FailedStep", "$.Failure", "$$.Execution.Id"},
    "DescribeFailureFallback": {"$.FailedStep", "$.Failure.Error", "$$.Execution.Id"},
    "FallbackNotice": {"$.FallbackNotice"},
    "NotifyFailure": {"$.FollowUp.Notice.Subject", "$.FollowUp.Notice.Message"},
}
SCOPED_SERVICES = ("secretsmanager:", "states:", "sns:", "scheduler:", "iam:", "lambda:")


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
    assert set(tasks) == STEP_TASKS | {"DescribeFailure"}
    tasks = {name: tasks[name] for name in STEP_TASKS}
    for name, task in tasks.items():
        retried = {error for rule in task["Retry"] for error in rule["ErrorEquals"]}
        assert retried == error_names(TransientRotationError) | AWS_LAMBDA_TRANSIENT, name
        for rule in task["Retry"]:
            assert isinstance(rule["BackoffRate"], float)
            assert rule["JitterStrategy"] == "FULL"
            assert rule["MaxDelaySeconds"] > 0
        assert [c["ErrorEquals"] for c in task["Catch"]] == [["States.ALL"]]
        assert task["ResultSelector"] == {"Outcome.$": "$.Payload"}


def test_every_failure_path_notifies_once_before_failing() -> None:
    states = ASL["States"]
    step_failures = {c["Next"] for name in STEP_TASKS for c in states[name]["Catch"]}
    assert step_failures == {f"{name}Failed" for name in STEP_TASKS}
    for target in step_failures | {"InvalidInput", "UnknownStep"}:
        assert states[target]["Type"] == "Pass"
        assert states[target]["Next"] == "DescribeFailure"
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
    # After the notice: the retry schedule when there is one, and whatever happens, the end.
    assert states["RetryDue"]["Choices"] == [
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
    assert states[create]["Next"] == states[update]["Next"]


def test_a_rotation_that_cannot_schedule_its_successor_is_reported_as_finish_secret() -> None:
    states = ASL["States"]
    assert states["FinishSecret"]["Next"] == "ScheduleNextRotation"
    for name in ("ScheduleNextRotation", "CreateNextRotationSchedule"):
        assert states[name]["Catch"][-1] == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.Failure",
            "Next": "FinishSecretFailed",
        }
        assert states[name]["Next"] == "RecoveredNoticeDue"
    assert states["RecoveredNoticeDue"]["Choices"] == [
        {
            "Variable": "$.FinishSecret.Outcome.FollowUp.Notice",
            "IsNull": False,
            "Next": "NotifyRecovered",
        }
    ]
    assert states["RecoveredNoticeDue"]["Default"] == "StepDone"
    recovered = states["NotifyRecovered"]
    assert recovered["Next"] == "StepDone"
    assert [(c["ErrorEquals"], c["Next"]) for c in recovered["Catch"]] == [
        (["States.ALL"], "StepDone")
    ]


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


def test_whoever_tags_the_token_secret_may_write_status_tags_only() -> None:
    """The managed-by and settings tags decide what the rotation may do: no role of this stack
    may change them, only the status tags the refresh chain keeps."""
    taggers = set()
    for owner, statement in all_policies():
        if {"secretsmanager:TagResource", "secretsmanager:UntagResource"} & set(
            statement["Action"]
        ):
            taggers.add(owner)
            assert statement["Condition"] == STATUS_TAGS_ONLY, owner
    assert taggers == {"FinishSecretFunction", "DescribeFailureFunction"}


def test_the_scheduler_role_may_only_rotate_the_token_secret() -> None:
    role = TEMPLATE.resources["RefreshSchedulerRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert set(trust["Condition"]) == {"StringEquals", "ArnEquals"}
    assert "Policies" not in role
    assert "ManagedPolicyArns" not in role
    policy = TEMPLATE.resources["RefreshSchedulerPolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "RefreshSchedulerRole"}]
    granted = [
        (statement["Action"], statement["Resource"])
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    assert granted == [
        (["secretsmanager:RotateSecret"], {"Ref": "TokenSecret"}),
        (["lambda:InvokeFunction"], {"Fn::GetAtt": ["RotationEntryFunction", "Arn"]}),
    ]


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


def test_no_wildcard_resource_on_secret_state_or_topic_actions() -> None:
    checked = 0
    for owner, statement in all_policies():
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        if any(action.startswith(SCOPED_SERVICES) for action in actions):
            checked += 1
            resources = statement["Resource"]
            resources = resources if isinstance(resources, list) else [resources]
            assert all(resource != "*" for resource in resources), f"{owner}: {statement}"
            assert not any("*" in a for a in actions), f"{owner}: wildcard action {actions}"
    assert checked >= 7


def test_keyless_federation_leaves_no_function_able_to_read_a_key() -> None:
    spec = TEMPLATE.functions()["CreateSecretFunction"]
    [conditional] = [
        statement
        for policy in spec.policies
        if isinstance(policy, dict)
        for statement in policy.get("Statement", [])
        if "Fn::If" in statement
    ]
    condition, reading, otherwise = conditional["Fn::If"]
    assert condition == "UsesKey"
    assert reading["Sid"] == "ReadTheServiceAccountKey"
    assert otherwise == {"Ref": "AWS::NoValue"}
    conditions = TEMPLATE.document["Conditions"]
    assert conditions["UsesKey"] == {"Fn::Not": [{"Condition": "Keyless"}]}
    assert conditions["Keyless"] == {
        "Fn::Equals": [{"Ref": "CredentialSource"}, "workload-identity-federation"]
    }
    assert TEMPLATE.resources["ServiceAccountKeySecret"]["Condition"] == "CreateKeySecret"


def test_only_create_secret_may_read_the_key_secret() -> None:
    readers = {
        owner
        for owner, statement in all_policies()
        if "ServiceAccountKeySecret" in json.dumps(statement["Resource"], default=str)
    }
    assert readers == {"CreateSecretFunction"}


STATUS_TAGS_ONLY = {"ForAllValues:StringLike": {"aws:TagKeys": f"{STATUS_TAG_PREFIX}*"}}


def test_describe_failure_may_only_read_the_token_secrets_labels_and_tag_its_status() -> None:
    spec = TEMPLATE.functions()["DescribeFailureFunction"]
    assert list(policy_statements(spec.policies)) == [
        {
            "Sid": "ReadTheTokenSecretStages",
            "Effect": "Allow",
            "Action": ["secretsmanager:DescribeSecret"],
            "Resource": {"Ref": "TokenSecret"},
        },
        {
            "Sid": "RecordTheFailureStreak",
            "Effect": "Allow",
            "Action": ["secretsmanager:TagResource"],
            "Resource": {"Ref": "TokenSecret"},
            "Condition": STATUS_TAGS_ONLY,
        },
    ]
    assert len(spec.policies) == 1
    invoked = [
        policy["LambdaInvokePolicy"]["FunctionName"]
        for policy in STATE_MACHINE.policies
        if isinstance(policy, dict) and "LambdaInvokePolicy" in policy
    ]
    assert {"Ref": "DescribeFailureFunction"} in invoked
    assert STATE_MACHINE.substitutions["DescribeFailureFunctionArn"] == {
        "Fn::GetAtt": ["DescribeFailureFunction", "Arn"]
    }


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
