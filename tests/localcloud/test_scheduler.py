"""The local scheduler fires what moto only stores, on the simulated clock: EventBridge Scheduler
one-time and rate() schedules with universal and Lambda targets, and the rotation schedules the
template deploys."""

import datetime
import json
import logging
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import urllib3

from localcloud import fidelity
from localcloud.cloud import ROLE_ARN, LocalCloud
from localcloud.deployment import Deployment
from localcloud.intrinsics import TemplateError
from localcloud.scheduler import LAMBDA_INVOKE, Firing, LocalScheduler
from localcloud.template import Template

HOUR = 3600.0
PERIOD = 4 * HOUR
SLACK = 5.0

ROTATOR = """
import json
import time

import boto3


def handler(event, context):
    secrets = boto3.client("secretsmanager")
    secret, token = event["SecretId"], event["ClientRequestToken"]
    if event["Step"] == "createSecret":
        secrets.put_secret_value(
            SecretId=secret,
            ClientRequestToken=token,
            SecretString=json.dumps({"minted_at": time.time()}),
            VersionStages=["AWSPENDING"],
        )
    elif event["Step"] == "finishSecret":
        stages = secrets.describe_secret(SecretId=secret)["VersionIdsToStages"]
        current = next(v for v, labels in stages.items() if "AWSCURRENT" in labels)
        secrets.update_secret_version_stage(
            SecretId=secret,
            VersionStage="AWSCURRENT",
            MoveToVersionId=token,
            RemoveFromVersionId=current,
        )
"""


RECORDER = """
import time


def handler(event, context):
    if "fail" in event:
        raise RuntimeError(event["fail"])
    return {"event": event, "now": time.time()}
"""
TRUST_SCHEDULER = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
TEMPLATE_INPUT = (
    '{"from": "${AWS::StackName}", "at": "<aws.scheduler.scheduled-time>", '
    '"schedule": "<aws.scheduler.schedule-arn>", "attempt": <aws.scheduler.attempt-number>}'
)


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    """A local cloud of its own, on an empty moto (schedules other tests left would fire too);
    what starting one sets for the process is put back after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MOTO_PORT", raising=False)
        patch.setattr(fidelity.CORRECTIONS, "dispatch", fidelity.CORRECTIONS.dispatch)
        with LocalCloud() as running:
            urllib3.PoolManager().request("POST", f"{running.endpoint}/moto-api/reset")
            yield running


@pytest.fixture
def scheduler(cloud: LocalCloud) -> LocalScheduler:
    return LocalScheduler(cloud)


@pytest.fixture
def group(cloud: LocalCloud) -> Iterator[str]:
    """A schedule group of the test's own, emptied after it (its recurring schedules would
    fire in every later test)."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    scheduler_api = cloud.client("scheduler")
    scheduler_api.create_schedule_group(Name=name)
    yield name
    for page in scheduler_api.get_paginator("list_schedules").paginate(GroupName=name):
        for schedule in page["Schedules"]:
            scheduler_api.delete_schedule(GroupName=name, Name=schedule["Name"])


@pytest.fixture
def queue(cloud: LocalCloud) -> str:
    """A queue the schedules send to: one message per firing."""
    url: str = cloud.client("sqs").create_queue(QueueName=f"fired-{uuid.uuid4().hex[:8]}")[
        "QueueUrl"
    ]
    return url


@pytest.fixture(scope="module")
def recorder(cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """A stack of a function that returns the event it got (or fails when asked), and a
    recurring schedule that invokes it, as template.yaml declares the freshness sweep's."""
    code = tmp_path_factory.mktemp("recorder")
    (code / "recorder.py").write_text(textwrap.dedent(RECORDER))
    return cloud.deploy(
        stack_name=f"recorder-{uuid.uuid4().hex[:8]}",
        template=Template(
            {
                "Resources": {
                    "Recorder": {
                        "Type": "AWS::Serverless::Function",
                        "Properties": {
                            "CodeUri": str(code),
                            "Handler": "recorder.handler",
                            "Runtime": "python3.12",
                            "Timeout": 10,
                        },
                    },
                    "RecorderSchedulerRole": {
                        "Type": "AWS::IAM::Role",
                        "Properties": {"AssumeRolePolicyDocument": TRUST_SCHEDULER},
                    },
                    "RecorderSchedule": {
                        "Type": "AWS::Scheduler::Schedule",
                        "Properties": {
                            "Description": "Invokes the recorder once a day.",
                            "ScheduleExpression": "rate(1 day)",
                            "FlexibleTimeWindow": {"Mode": "OFF"},
                            "State": "ENABLED",
                            "Target": {
                                "Arn": {"Fn::GetAtt": "Recorder.Arn"},
                                "RoleArn": {"Fn::GetAtt": ["RecorderSchedulerRole", "Arn"]},
                                "Input": {"Fn::Sub": TEMPLATE_INPUT},
                            },
                        },
                    },
                }
            }
        ),
    )


def invoke_recorder(recorder: Deployment, event: dict[str, str]) -> dict[str, str]:
    return {
        "Arn": recorder.attributes[("Recorder", "Arn")],
        "RoleArn": ROLE_ARN,
        "Input": json.dumps(event),
    }


def recorded(cloud: LocalCloud, key: str, value: str) -> list[dict[str, Any]]:
    """The events the recorder returned whose `key` is `value`, in order."""
    events = []
    for invocation in list(cloud.invocations):
        result = invocation.result
        if isinstance(result, dict) and result["event"].get(key) == value:
            events.append(result["event"])
    return events


def at(epoch_seconds: float) -> str:
    return f"at({datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC):%Y-%m-%dT%H:%M:%S})"


def send_to(queue: str, body: str = "fired") -> dict[str, str]:
    return {
        "Arn": "arn:aws:scheduler:::aws-sdk:sqs:sendMessage",
        "RoleArn": ROLE_ARN,
        "Input": json.dumps({"QueueUrl": queue, "MessageBody": body}),
    }


def create(
    cloud: LocalCloud, group: str, expression: str, target: dict[str, str], **extra: Any
) -> str:
    name = f"schedule-{uuid.uuid4().hex[:8]}"
    cloud.client("scheduler").create_schedule(
        GroupName=group,
        Name=name,
        ScheduleExpression=expression,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target,
        **extra,
    )
    return name


def of_group(firings: list[Firing], group: str) -> list[Firing]:
    return [firing for firing in firings if firing.group == group]


def received(cloud: LocalCloud, queue: str) -> list[str]:
    messages = cloud.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    return [message["Body"] for message in messages.get("Messages", [])]


def test_an_at_schedule_fires_once_when_due_and_not_before(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str, queue: str
) -> None:
    due = int(cloud.clock.now() + HOUR)
    name = create(cloud, group, at(due), send_to(queue))

    early = scheduler.fire_due()
    cloud.clock.advance_to(due - 10)
    just_before = scheduler.fire_due()
    cloud.clock.advance_to(due)
    when_due = scheduler.fire_due()
    cloud.clock.advance(24 * HOUR)
    later = scheduler.fire_due()

    assert of_group(early + just_before, group) == []
    (firing,) = of_group(when_due, group)
    assert (firing.kind, firing.name, firing.target) == ("schedule", name, "sqs:sendMessage")
    assert firing.due_at == due
    assert due <= firing.fired_at < due + SLACK
    assert not firing.failed
    assert of_group(later, group) == []
    assert received(cloud, queue) == ["fired"]
    assert cloud.client("scheduler").get_schedule(GroupName=group, Name=name)["Name"] == name


def test_a_schedule_updated_after_firing_fires_again_at_its_new_time(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str, queue: str
) -> None:
    first_due = int(cloud.clock.now() + HOUR)
    name = create(cloud, group, at(first_due), send_to(queue, "first"))
    cloud.clock.advance_to(first_due)
    first = of_group(scheduler.fire_due(), group)
    second_due = first_due + 2 * int(HOUR)
    # No State: UpdateSchedule's default is ENABLED.
    cloud.client("scheduler").update_schedule(
        GroupName=group,
        Name=name,
        ScheduleExpression=at(second_due),
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=send_to(queue, "second"),
    )

    before = of_group(scheduler.run_until(second_due - 60, step_seconds=600), group)
    cloud.clock.advance_to(second_due)
    again = of_group(scheduler.fire_due(), group)

    assert [firing.due_at for firing in first] == [first_due]
    assert before == []
    assert [firing.due_at for firing in again] == [second_due]
    assert received(cloud, queue) == ["first", "second"]


def test_a_schedule_an_earlier_firing_updated_fires_at_its_new_time_not_its_old_one(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str, queue: str
) -> None:
    """A jump of the clock makes two schedules due at once; the first one's target moves the
    second one later (as a rotation's finishSecret moves its secret's next rotation)."""
    due = int(cloud.clock.now() + HOUR)
    later = due + int(HOUR)
    moved = create(cloud, group, at(due + 1), send_to(queue, "old time"))
    update = {
        "GroupName": group,
        "Name": moved,
        "ScheduleExpression": at(later),
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": send_to(queue, "new time"),
    }
    mover = create(
        cloud,
        group,
        at(due),
        {
            "Arn": "arn:aws:scheduler:::aws-sdk:scheduler:updateSchedule",
            "RoleArn": ROLE_ARN,
            "Input": json.dumps(update),
        },
    )

    cloud.clock.advance_to(due + 60)
    jumped = of_group(scheduler.fire_due(), group)
    cloud.clock.advance_to(later)
    again = of_group(scheduler.fire_due(), group)

    assert [(firing.name, firing.error_code) for firing in jumped] == [(mover, None)]
    assert [(firing.name, firing.due_at) for firing in again] == [(moved, later)]
    assert received(cloud, queue) == ["new time"]


def test_action_after_completion_delete_deletes_the_schedule_once_fired(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str, queue: str
) -> None:
    due = int(cloud.clock.now() + 60)
    name = create(cloud, group, at(due), send_to(queue), ActionAfterCompletion="DELETE")
    kept = create(cloud, group, at(due), send_to(queue))
    scheduler_api = cloud.client("scheduler")

    cloud.clock.advance_to(due)
    fired = of_group(scheduler.fire_due(), group)

    assert sorted(firing.name for firing in fired) == sorted([name, kept])
    with pytest.raises(scheduler_api.exceptions.ResourceNotFoundException):
        scheduler_api.get_schedule(GroupName=group, Name=name)
    assert scheduler_api.get_schedule(GroupName=group, Name=kept)["Name"] == kept


def test_update_schedule_sets_action_after_completion_as_aws_does(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str, queue: str
) -> None:
    """UpdateSchedule replaces the whole schedule (localcloud.fidelity): ActionAfterCompletion as
    asked, and NONE when left out."""
    due = int(cloud.clock.now() + 60)
    deleted = create(cloud, group, at(due), send_to(queue))
    kept = create(cloud, group, at(due), send_to(queue), ActionAfterCompletion="DELETE")
    scheduler_api = cloud.client("scheduler")
    for name, action in ((deleted, {"ActionAfterCompletion": "DELETE"}), (kept, {})):
        scheduler_api.update_schedule(
            GroupName=group,
            Name=name,
            ScheduleExpression=at(due),
            FlexibleTimeWindow={"Mode": "OFF"},
            Target=send_to(queue),
            **action,
        )

    assert scheduler_api.get_schedule(GroupName=group, Name=kept)["ActionAfterCompletion"] == (
        "NONE"
    )
    cloud.clock.advance_to(due)
    assert len(of_group(scheduler.fire_due(), group)) == 2
    with pytest.raises(scheduler_api.exceptions.ResourceNotFoundException):
        scheduler_api.get_schedule(GroupName=group, Name=deleted)
    assert scheduler_api.get_schedule(GroupName=group, Name=kept)["State"] == "ENABLED"


def test_a_disabled_schedule_does_not_fire(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str, queue: str
) -> None:
    due = int(cloud.clock.now() + 60)
    create(cloud, group, at(due), send_to(queue), State="DISABLED")

    cloud.clock.advance_to(due + 60)

    assert of_group(scheduler.fire_due(), group) == []
    assert received(cloud, queue) == []


def test_at_is_read_in_the_schedule_time_zone(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str, queue: str
) -> None:
    due = int(cloud.clock.now() + HOUR)
    # The same instant on New York's wall clock.
    wall = datetime.datetime.fromtimestamp(due, ZoneInfo("America/New_York"))
    create(
        cloud,
        group,
        f"at({wall:%Y-%m-%dT%H:%M:%S})",
        send_to(queue),
        ScheduleExpressionTimezone="America/New_York",
    )

    cloud.clock.advance_to(due - 1)
    before = of_group(scheduler.fire_due(), group)
    cloud.clock.advance_to(due)
    (firing,) = of_group(scheduler.fire_due(), group)

    assert before == []
    assert firing.due_at == due


def test_a_universal_target_error_is_reported_in_the_firing(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str
) -> None:
    due = int(cloud.clock.now() + 60)
    name = create(
        cloud,
        group,
        at(due),
        {
            "Arn": "arn:aws:scheduler:::aws-sdk:secretsmanager:rotateSecret",
            "RoleArn": ROLE_ARN,
            "Input": json.dumps({"SecretId": "no-such-secret"}),
        },
    )

    cloud.clock.advance_to(due)
    (firing,) = of_group(scheduler.fire_due(), group)

    assert firing.name == name
    assert firing.target == "secretsmanager:rotateSecret"
    assert firing.error_code == "ResourceNotFoundException"
    assert firing.error_message
    assert firing.failed


def test_what_cannot_fire_locally_is_reported_once_and_skipped(
    cloud: LocalCloud,
    scheduler: LocalScheduler,
    group: str,
    queue: str,
    recorder: Deployment,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cron = create(cloud, group, "cron(0 * * * ? *)", send_to(queue))
    weekly = create(cloud, group, "rate(1 week)", send_to(queue))
    templated = create(
        cloud,
        group,
        at(cloud.clock.now() + 60),
        {"Arn": "arn:aws:sqs:us-east-1:123456789012:some-queue", "RoleArn": ROLE_ARN},
    )
    no_input = create(
        cloud,
        group,
        "rate(5 minutes)",
        {"Arn": recorder.attributes[("Recorder", "Arn")], "RoleArn": ROLE_ARN},
    )

    with caplog.at_level(logging.WARNING, logger="localcloud.scheduler"):
        fired = of_group(
            scheduler.run_until(cloud.clock.now() + 3 * HOUR, step_seconds=HOUR), group
        )

    assert fired == []
    unsupported = scheduler.unsupported
    assert set(unsupported) >= {(group, name) for name in (cron, weekly, templated, no_input)}
    assert "not cron(0 * * * ? *)" in unsupported[(group, cron)]
    assert "not rate(1 week)" in unsupported[(group, weekly)]
    assert "universal targets" in unsupported[(group, templated)]
    assert "give the target an Input" in unsupported[(group, no_input)]
    warned = [record.getMessage() for record in caplog.records if group in record.getMessage()]
    assert len(warned) == 4, warned
    assert received(cloud, queue) == []


def test_run_until_moves_the_clock_to_the_end_and_refuses_the_past(
    cloud: LocalCloud, scheduler: LocalScheduler
) -> None:
    end = cloud.clock.now() + 10 * 60

    scheduler.run_until(end, step_seconds=60)

    assert end <= cloud.clock.now() < end + SLACK
    with pytest.raises(ValueError, match="simulated past"):
        scheduler.run_until(end - 3600)


# --- recurring schedules with Lambda targets ----------------------------------------------------

PERIOD_10_MINUTES = 600.0


def iso(epoch_seconds: float) -> str:
    return datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_a_template_schedule_deploys_resolved_and_invokes_its_function_with_its_input(
    cloud: LocalCloud, recorder: Deployment, group: str, queue: str
) -> None:
    stack = recorder.stack_name
    name, arn = recorder.refs["RecorderSchedule"], recorder.attributes[("RecorderSchedule", "Arn")]
    # Another stack's schedule, due now: a scheduler of the recorder's stack leaves it.
    create(cloud, group, at(cloud.clock.now() - 1), send_to(queue))
    own = LocalScheduler(cloud, stack=recorder)

    schedule = cloud.client("scheduler").get_schedule(Name=name)
    (firing,) = own.fire_due()

    assert (name, schedule["GroupName"], schedule["Arn"]) == (
        f"{stack}-RecorderSchedule",
        "default",
        arn,
    )
    assert schedule["ScheduleExpression"] == "rate(1 day)"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["Target"]["Arn"] == recorder.attributes[("Recorder", "Arn")]
    assert schedule["Target"]["RoleArn"] == recorder.attributes[("RecorderSchedulerRole", "Arn")]
    assert (firing.name, firing.group, firing.target) == (name, "default", LAMBDA_INVOKE)
    assert not firing.failed
    assert received(cloud, queue) == []
    # The context attributes replaced, as EventBridge Scheduler does.
    assert recorded(cloud, "from", stack)[-1] == {
        "from": stack,
        "at": iso(firing.due_at),
        "schedule": arn,
        "attempt": 1,
    }


def test_a_rate_schedule_fires_at_creation_then_after_each_period(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str, recorder: Deployment
) -> None:
    marker = uuid.uuid4().hex
    before = cloud.clock.now()
    create(cloud, group, "rate(10 minutes)", invoke_recorder(recorder, {"test": marker}))
    after = cloud.clock.now()

    (first,) = of_group(scheduler.fire_due(), group)
    again_at_once = of_group(scheduler.fire_due(), group)
    cloud.clock.advance_to(first.due_at + PERIOD_10_MINUTES - 1)
    before_the_period = of_group(scheduler.fire_due(), group)
    cloud.clock.advance_to(first.due_at + PERIOD_10_MINUTES)
    (second,) = of_group(scheduler.fire_due(), group)
    cloud.clock.advance_to(first.due_at + 2 * PERIOD_10_MINUTES)
    (third,) = of_group(scheduler.fire_due(), group)

    assert before <= first.due_at <= after
    assert again_at_once == before_the_period == []
    assert second.due_at == first.due_at + PERIOD_10_MINUTES
    assert third.due_at == first.due_at + 2 * PERIOD_10_MINUTES
    for firing in (first, second, third):
        assert firing.due_at <= firing.fired_at < firing.due_at + SLACK
        assert (firing.target, firing.error_code) == (LAMBDA_INVOKE, None)
    assert recorded(cloud, "test", marker) == [{"test": marker}] * 3


def test_a_jump_over_many_periods_fires_once_then_the_schedule_keeps_its_phase(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str, recorder: Deployment
) -> None:
    marker = uuid.uuid4().hex
    create(cloud, group, "rate(5 minutes)", invoke_recorder(recorder, {"test": marker}))
    (created,) = of_group(scheduler.fire_due(), group)
    start = created.due_at

    cloud.clock.advance_to(start + 10 * 300 + 30)
    jumped = of_group(scheduler.fire_due(), group)
    cloud.clock.advance_to(start + 11 * 300 - 1)
    before_next = of_group(scheduler.fire_due(), group)
    cloud.clock.advance_to(start + 11 * 300)
    next_period = of_group(scheduler.fire_due(), group)

    # The first period it missed, once for all ten.
    assert [firing.due_at for firing in jumped] == [start + 300]
    assert before_next == []
    assert [firing.due_at for firing in next_period] == [start + 11 * 300]
    assert len(recorded(cloud, "test", marker)) == 3


def test_a_disabled_rate_schedule_does_not_fire_and_once_enabled_misses_nothing_back(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str, recorder: Deployment
) -> None:
    marker = uuid.uuid4().hex
    start = int(cloud.clock.now()) + 60
    target = invoke_recorder(recorder, {"test": marker})
    timing = {
        "ScheduleExpression": "rate(10 minutes)",
        "StartDate": datetime.datetime.fromtimestamp(start, datetime.UTC),
        "FlexibleTimeWindow": {"Mode": "OFF"},
    }
    name = f"disabled-{marker[:8]}"
    scheduler_api = cloud.client("scheduler")
    scheduler_api.create_schedule(
        GroupName=group, Name=name, Target=target, State="DISABLED", **timing
    )

    while_disabled = of_group(
        scheduler.run_until(start + 3 * PERIOD_10_MINUTES + 30, step_seconds=300), group
    )
    scheduler_api.update_schedule(GroupName=group, Name=name, Target=target, **timing)
    once_enabled = of_group(scheduler.fire_due(), group)
    cloud.clock.advance_to(start + 4 * PERIOD_10_MINUTES)
    (next_period,) = of_group(scheduler.fire_due(), group)

    assert while_disabled == once_enabled == []
    assert next_period.due_at == start + 4 * PERIOD_10_MINUTES
    assert recorded(cloud, "test", marker) == [{"test": marker}]


def test_a_deleted_rate_schedule_stops_and_one_created_again_starts_again(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str, recorder: Deployment
) -> None:
    marker = uuid.uuid4().hex
    target = invoke_recorder(recorder, {"test": marker})
    name = f"recreated-{marker[:8]}"
    scheduler_api = cloud.client("scheduler")
    timing = {"ScheduleExpression": "rate(10 minutes)", "FlexibleTimeWindow": {"Mode": "OFF"}}
    scheduler_api.create_schedule(GroupName=group, Name=name, Target=target, **timing)
    created = of_group(scheduler.fire_due(), group)

    scheduler_api.delete_schedule(GroupName=group, Name=name)
    deleted = of_group(
        scheduler.run_until(cloud.clock.now() + 3 * PERIOD_10_MINUTES, step_seconds=300), group
    )
    again = cloud.clock.now()
    scheduler_api.create_schedule(GroupName=group, Name=name, Target=target, **timing)
    (recreated,) = of_group(scheduler.fire_due(), group)

    assert len(created) == 1
    assert deleted == []
    assert again <= recreated.due_at < again + SLACK
    assert len(recorded(cloud, "test", marker)) == 2


def test_a_failing_function_or_a_missing_one_is_a_failed_firing(
    cloud: LocalCloud, scheduler: LocalScheduler, group: str, recorder: Deployment
) -> None:
    marker = uuid.uuid4().hex
    failing = create(
        cloud, group, "rate(1 hour)", invoke_recorder(recorder, {"test": marker, "fail": "no luck"})
    )
    missing_arn = recorder.attributes[("Recorder", "Arn")] + "-gone"
    missing = create(
        cloud, group, "rate(1 hour)", {"Arn": missing_arn, "RoleArn": ROLE_ARN, "Input": "{}"}
    )

    firings = {firing.name: firing for firing in of_group(scheduler.fire_due(), group)}

    assert firings[failing].target == LAMBDA_INVOKE
    assert (firings[failing].error_code, firings[failing].error_message) == (
        "RuntimeError",
        "no luck",
    )
    assert firings[missing].failed
    assert firings[missing].error_code == "ResourceNotFoundException"


# --- rotation schedules, deployed from a template ----------------------------------------------


def rotation_template(code: Path, rules: dict[str, Any]) -> Template:
    return Template(
        {
            "Resources": {
                "Secret": {
                    "Type": "AWS::SecretsManager::Secret",
                    "Properties": {"SecretString": "{}"},
                },
                "Rotator": {
                    "Type": "AWS::Serverless::Function",
                    "Properties": {
                        "CodeUri": str(code),
                        "Handler": "rotator.handler",
                        "Runtime": "python3.12",
                        "Timeout": 30,
                    },
                },
                "Rotation": {
                    "Type": "AWS::SecretsManager::RotationSchedule",
                    "Properties": {
                        "SecretId": {"Ref": "Secret"},
                        "RotationLambdaARN": {"Fn::GetAtt": "Rotator.Arn"},
                        "RotationRules": rules,
                    },
                },
            }
        }
    )


def current_value(cloud: LocalCloud, secret_arn: str) -> Any:
    return json.loads(
        cloud.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    )


def test_a_rotation_schedule_rotates_every_period_of_simulated_time(
    cloud: LocalCloud, scheduler: LocalScheduler, tmp_path: Path
) -> None:
    (tmp_path / "rotator.py").write_text(textwrap.dedent(ROTATOR))
    rules = {"ScheduleExpression": "rate(4 hours)", "Duration": "1h"}
    deployment = cloud.deploy(
        stack_name=f"rotation-{uuid.uuid4().hex[:8]}", template=rotation_template(tmp_path, rules)
    )
    secret = deployment.refs["Secret"]
    (rule,) = [rule for rule in cloud.rotation_rules if rule.secret_arn == secret]
    assert cloud.client("secretsmanager").describe_secret(SecretId=secret)["RotationRules"] == rules

    firings = scheduler.run_until(rule.deployed_at + 3 * PERIOD + 60, step_seconds=600)

    rotations = [firing for firing in firings if firing.name == secret]
    assert [firing.kind for firing in rotations] == ["rotation"] * 3
    assert [firing.due_at for firing in rotations] == [
        rule.deployed_at + k * PERIOD for k in (1, 2, 3)
    ]
    assert all(
        firing.due_at <= firing.fired_at < firing.due_at + 600 + SLACK for firing in rotations
    )
    assert [firing.error_code for firing in rotations] == [None] * 3
    # The schedule's own RotateSecret (no rules) keeps the rules it fires by.
    assert cloud.client("secretsmanager").describe_secret(SecretId=secret)["RotationRules"] == rules
    # The last rotation's token was minted by the Lambda at the simulated time it ran.
    minted_at = current_value(cloud, secret)["minted_at"]
    assert rotations[-1].fired_at <= minted_at < rotations[-1].fired_at + 60


def test_a_clock_jump_over_several_periods_rotates_once(
    cloud: LocalCloud, scheduler: LocalScheduler, tmp_path: Path
) -> None:
    (tmp_path / "rotator.py").write_text(textwrap.dedent(ROTATOR))
    deployment = cloud.deploy(
        stack_name=f"rotation-{uuid.uuid4().hex[:8]}",
        template=rotation_template(tmp_path, {"AutomaticallyAfterDays": 1}),
    )
    secret = deployment.refs["Secret"]
    (rule,) = [rule for rule in cloud.rotation_rules if rule.secret_arn == secret]

    cloud.clock.advance_to(rule.deployed_at + 3.5 * 86400)
    jumped = [firing for firing in scheduler.fire_due() if firing.name == secret]
    cloud.clock.advance_to(rule.deployed_at + 4 * 86400)
    next_period = [firing for firing in scheduler.fire_due() if firing.name == secret]

    assert [firing.due_at for firing in jumped] == [rule.deployed_at + 86400]
    assert [firing.due_at for firing in next_period] == [rule.deployed_at + 4 * 86400]


def test_a_deleted_secret_takes_its_rotation_schedule_with_it(
    cloud: LocalCloud, scheduler: LocalScheduler, tmp_path: Path
) -> None:
    (tmp_path / "rotator.py").write_text(textwrap.dedent(ROTATOR))
    deployment = cloud.deploy(
        stack_name=f"rotation-{uuid.uuid4().hex[:8]}",
        template=rotation_template(tmp_path, {"ScheduleExpression": "rate(1 day)"}),
    )
    secret = deployment.refs["Secret"]
    cloud.client("secretsmanager").delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)

    firings = scheduler.run_until(cloud.clock.now() + 2 * 86400 + 60, step_seconds=6 * HOUR)

    assert [firing for firing in firings if firing.name == secret] == []


def test_a_cron_rotation_schedule_is_refused_at_deploy(cloud: LocalCloud, tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"rate\(N hours\|days\).*cron\(0 8 \* \* \? \*\)"):
        cloud.deploy(
            stack_name=f"rotation-{uuid.uuid4().hex[:8]}",
            template=rotation_template(tmp_path, {"ScheduleExpression": "cron(0 8 * * ? *)"}),
        )


# --- the template's scheduler resources ----------------------------------------------------------


def policy(resource: object) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:RotateSecret", "Resource": resource}
        ],
    }


def test_schedule_groups_and_roles_deploy_with_their_refs_and_arns(cloud: LocalCloud) -> None:
    stack = f"resources-{uuid.uuid4().hex[:8]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "scheduler.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    template = Template(
        {
            "Resources": {
                "Group": {"Type": "AWS::Scheduler::ScheduleGroup"},
                "Role": {
                    "Type": "AWS::IAM::Role",
                    "Properties": {
                        "AssumeRolePolicyDocument": trust,
                        "Policies": [
                            {
                                "PolicyName": "Inline",
                                "PolicyDocument": policy({"Fn::Sub": "${Group}/${Group.Arn}"}),
                            }
                        ],
                    },
                },
                "Extra": {
                    "Type": "AWS::IAM::Policy",
                    "Properties": {
                        "PolicyName": "Extra",
                        "Roles": [{"Ref": "Role"}],
                        "PolicyDocument": policy({"Fn::GetAtt": ["Role", "Arn"]}),
                    },
                },
            }
        }
    )

    deployment = cloud.deploy(stack_name=stack, template=template)

    group, role = deployment.refs["Group"], deployment.refs["Role"]
    group_arn, role_arn = (deployment.attributes[(name, "Arn")] for name in ("Group", "Role"))
    assert group == f"{stack}-Group"
    assert cloud.client("scheduler").get_schedule_group(Name=group)["Arn"] == group_arn
    iam = cloud.client("iam")
    assert iam.get_role(RoleName=role)["Role"]["Arn"] == role_arn
    assert iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"] == trust
    inline = iam.get_role_policy(RoleName=role, PolicyName="Inline")["PolicyDocument"]
    assert inline == policy(f"{group}/{group_arn}")
    extra = iam.get_role_policy(RoleName=role, PolicyName="Extra")["PolicyDocument"]
    assert extra == policy(role_arn)


def test_a_resource_type_the_local_cloud_cannot_deploy_stops_the_deploy(cloud: LocalCloud) -> None:
    template = Template(
        {"Resources": {"Rule": {"Type": "AWS::Events::Rule", "Properties": {"State": "ENABLED"}}}}
    )

    with pytest.raises(TemplateError, match=r"Rule: cannot deploy AWS::Events::Rule locally"):
        cloud.deploy(stack_name=f"unknown-{uuid.uuid4().hex[:8]}", template=template)
