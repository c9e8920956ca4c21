"""aws-sdk tasks of a state machine as Step Functions runs them: they reach moto's scheduler,
UpdateSchedule replaces the whole schedule, and a failed task raises `<Service>.<ErrorCode>` as AWS
names it, so Retry and Catch written for AWS match (localcloud.fidelity)."""

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud import fidelity
from localcloud.cloud import ROLE_ARN, LocalCloud

UPDATE = "arn:aws:states:::aws-sdk:scheduler:updateSchedule"
CREATE = "arn:aws:states:::aws-sdk:scheduler:createSchedule"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    """A local cloud of its own; what starting one sets for the process is put back after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MOTO_PORT", raising=False)
        patch.setattr(fidelity.CORRECTIONS, "dispatch", fidelity.CORRECTIONS.dispatch)
        with LocalCloud() as running:
            yield running


def schedule_request(name: str, when: str) -> dict[str, Any]:
    """CreateSchedule's and UpdateSchedule's parameters, as a task's Parameters give them."""
    return {
        "Name": name,
        "ScheduleExpression": f"at({when})",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": "arn:aws:scheduler:::aws-sdk:secretsmanager:rotateSecret",
            "RoleArn": ROLE_ARN,
            "Input": json.dumps({"SecretId": "some-secret"}),
        },
    }


def run_task(
    cloud: LocalCloud, resource: str, parameters: dict[str, Any], errors: list[str]
) -> Any:
    """Runs one task whose Catch sends `errors` to a Pass state: the execution's output."""
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": resource,
                "Parameters": parameters,
                "Catch": [{"ErrorEquals": errors, "ResultPath": "$.caught", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    sfn = cloud.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"sdk-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    deadline = time.monotonic() + 10
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not end"
        time.sleep(0.02)
    assert described["status"] == "SUCCEEDED", described
    return json.loads(described["output"])


def test_an_update_schedule_task_updates_the_schedule_in_moto(cloud: LocalCloud) -> None:
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    scheduler = cloud.client("scheduler")
    scheduler.create_schedule(**schedule_request(name, "2030-01-01T00:00:00"))

    output = run_task(cloud, UPDATE, schedule_request(name, "2031-02-03T04:05:06"), ["States.ALL"])

    assert "caught" not in output
    assert scheduler.get_schedule(Name=name)["ScheduleExpression"] == "at(2031-02-03T04:05:06)"


@pytest.mark.parametrize(
    ("asked", "expected"), [({}, "NONE"), ({"ActionAfterCompletion": "DELETE"}, "DELETE")]
)
def test_an_update_schedule_task_replaces_the_whole_schedule(
    cloud: LocalCloud, asked: dict[str, str], expected: str
) -> None:
    """What UpdateSchedule leaves out takes its default (State ENABLED, ActionAfterCompletion
    NONE), and ActionAfterCompletion is set as asked."""
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    scheduler = cloud.client("scheduler")
    scheduler.create_schedule(
        **schedule_request(name, "2030-01-01T00:00:00"),
        State="DISABLED",
        ActionAfterCompletion="NONE" if asked else "DELETE",
    )

    output = run_task(
        cloud, UPDATE, {**schedule_request(name, "2030-01-01T00:00:00"), **asked}, ["States.ALL"]
    )

    assert "caught" not in output
    schedule = scheduler.get_schedule(Name=name)
    assert (schedule["State"], schedule["ActionAfterCompletion"]) == ("ENABLED", expected)


def test_update_of_a_missing_schedule_is_caught_as_scheduler_resource_not_found(
    cloud: LocalCloud,
) -> None:
    output = run_task(
        cloud,
        UPDATE,
        schedule_request(f"missing-{uuid.uuid4().hex[:8]}", "2030-01-01T00:00:00"),
        ["Scheduler.ResourceNotFoundException"],
    )

    assert output["caught"]["Error"] == "Scheduler.ResourceNotFoundException"
    assert "(Service: Scheduler, Status Code: 404" in output["caught"]["Cause"]


def test_creating_an_existing_schedule_is_caught_as_scheduler_conflict(cloud: LocalCloud) -> None:
    request = schedule_request(f"sdk-{uuid.uuid4().hex[:8]}", "2030-01-01T00:00:00")
    cloud.client("scheduler").create_schedule(**request)

    output = run_task(cloud, CREATE, request, ["Scheduler.ConflictException"])

    assert output["caught"]["Error"] == "Scheduler.ConflictException"


def test_creating_a_schedule_in_a_deleted_group_is_caught_as_scheduler_resource_not_found(
    cloud: LocalCloud,
) -> None:
    """As AWS answers it (moto failed with HTTP 500): the refresh schedule's upsert after its
    group was deleted ends in the state machine's Catch, not in an internal error."""
    group = f"gone-{uuid.uuid4().hex[:8]}"
    scheduler = cloud.client("scheduler")
    scheduler.create_schedule_group(Name=group)
    scheduler.delete_schedule_group(Name=group)

    output = run_task(
        cloud,
        CREATE,
        {
            **schedule_request(f"sdk-{uuid.uuid4().hex[:8]}", "2030-01-01T00:00:00"),
            "GroupName": group,
        },
        ["Scheduler.ResourceNotFoundException"],
    )

    assert output["caught"]["Error"] == "Scheduler.ResourceNotFoundException"
    assert f"Schedule group {group} does not exist." in output["caught"]["Cause"]


def test_a_code_without_the_exception_suffix_gets_it(cloud: LocalCloud) -> None:
    """SNS answers a missing topic with the code NotFound: Step Functions says
    Sns.NotFoundException."""
    output = run_task(
        cloud,
        "arn:aws:states:::aws-sdk:sns:getTopicAttributes",
        {"TopicArn": "arn:aws:sns:us-east-1:123456789012:no-such-topic"},
        ["Sns.NotFoundException"],
    )

    assert output["caught"]["Error"] == "Sns.NotFoundException"


@pytest.mark.parametrize(
    ("boto_service", "named"),
    [
        ("scheduler", "Scheduler"),
        ("secretsmanager", "SecretsManager"),
        ("sns", "Sns"),
        ("stepfunctions", "Sfn"),
        ("dynamodb", "DynamoDb"),
        ("acm-pca", "AcmPca"),
    ],
)
def test_services_are_named_as_step_functions_names_them(boto_service: str, named: str) -> None:
    """The AWS guide's examples (AcmPca, S3) and moto's own table (DynamoDb, Sfn) agree."""
    assert fidelity.sdk_error_service_name(boto_service) == named
