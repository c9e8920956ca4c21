"""Many token secrets in one stack: tools/add-token-secret adds each with the AWS CLI alone, each
rotates with its own tags' settings and on its own refresh schedule, and a secret that asks for
more than the stack allows, or belongs to another stack, fails alone and says why."""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from localcloud.operations import current_value, rotate_on_schedule, token_info, version_stages
from localcloud.scheduler import LocalScheduler
from localcloud.template import PROJECT_ROOT, load_template
from rotation_core import config
from rotation_core.refresh import (
    FAILED_ATTEMPTS_TAG,
    first_refresh_spread,
    next_refresh_at,
    schedule_name,
)
from rotation_core.token_secret import PLACEHOLDER
from tests.e2e.stacks import SCOPE, SecretMaterial, Stack, StackFactory

TOOL = PROJECT_ROOT / "tools" / "add-token-secret"
ALARM = "AWS::CloudWatch::Alarm"
CALENDAR = SCOPE
DRIVE = "https://www.googleapis.com/auth/drive.readonly"
GMAIL = "https://www.googleapis.com/auth/gmail.readonly"
"""Not among the stack's scopes: a tag asking for it widens the ceiling."""
STACK_SCOPES = {"GoogleScopes": f"{CALENDAR} {DRIVE}"}
STACK_LEAD = timedelta(seconds=900)
"""RefreshLeadSeconds as deployed (the template's default)."""
LIFETIME = "3600"
"""A key's own tokens live an hour: the only lifetime within the stack's ceiling."""


@dataclass(frozen=True)
class Added:
    suffix: str
    scopes: tuple[str, ...]
    lead_seconds: int


ADDED = (
    Added("calendar", (CALENDAR,), 1800),
    Added("drive", (DRIVE,), 1200),
    Added("both", (DRIVE, CALENDAR), 1500),
)
"""Each its own subset of the stack's scopes and a lead at least the stack's."""


def add_token_secret(stack: Stack, name: str, *options: str) -> subprocess.CompletedProcess[str]:
    """The tool as an operator runs it, for this stack: the venv's AWS CLI on PATH, the local
    cloud's endpoint and fake credentials exported, no AWS profile of the developer's."""
    environment = {key: value for key, value in os.environ.items() if key != "AWS_PROFILE"}
    environment.update(
        stack.cloud.client_environment(),
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', os.defpath)}",
    )
    return subprocess.run(
        [
            str(TOOL),
            "--name",
            name,
            "--rotation-function",
            stack.deployment.attributes[("RotationEntryFunction", "Arn")],
            "--managed-by",
            stack.deployment.stack_name,
            *options,
        ],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def added(
    stack: Stack, name: str, *options: str, material: SecretMaterial, saying: str = ""
) -> str:
    """Adds a secret with the tool, which must succeed, print no secret and say `saying`; its
    ARN."""
    answer = add_token_secret(stack, name, *options)
    assert answer.returncode == 0, answer.stderr
    assert not material.found_in(answer.stdout + answer.stderr)
    assert saying in answer.stdout
    return arn_of(stack, name)


def arn_of(stack: Stack, name: str) -> str:
    arn: str = stack.cloud.client("secretsmanager").describe_secret(SecretId=name)["ARN"]
    return arn


def current_version(stack: Stack, secret_id: str) -> str:
    stages = version_stages(stack.cloud, secret_id)
    return next(version for version, labels in stages.items() if "AWSCURRENT" in labels)


def tags_of(stack: Stack, secret_id: str) -> dict[str, str]:
    described = stack.cloud.client("secretsmanager").describe_secret(SecretId=secret_id)
    return {tag["Key"]: tag["Value"] for tag in described.get("Tags", [])}


def due_of(stack: Stack, secret_arn: str) -> datetime:
    schedule = stack.cloud.client("scheduler").get_schedule(
        GroupName=stack.deployment.refs["RefreshScheduleGroup"], Name=schedule_name(secret_arn)
    )
    return datetime.strptime(schedule["ScheduleExpression"], "at(%Y-%m-%dT%H:%M:%S)").replace(
        tzinfo=UTC
    )


def expiry_of(stack: Stack, secret_id: str) -> datetime:
    return datetime.fromisoformat(current_value(stack.cloud, secret_id)["expires_at"])


def first_refresh_of(stack: Stack, secret_arn: str, lead: timedelta) -> datetime:
    """When a secret's first token is refreshed: its own moment between 10 minutes after the
    mint and `lead` before the expiry (rotation_core.refresh.first_refresh_spread)."""
    value = current_value(stack.cloud, secret_arn)
    issued = datetime.fromisoformat(value["issued_at"])
    expires = datetime.fromisoformat(value["expires_at"])
    spread = first_refresh_spread(secret_arn)
    return next_refresh_at(issued, expires, int(lead.total_seconds()), issued, spread)


def executions_of(stack: Stack, secret_arn: str) -> list[tuple[str, str, str | None]]:
    """(step, status, error) of the secret's executions, oldest first."""
    return [
        (e.name.split("-", 1)[0], e.status, e.error)
        for e in stack.executions()
        if e.input.get("SecretId") == secret_arn
    ]


def test_each_added_secret_rotates_with_its_own_scopes_and_on_its_own_schedule(
    deploy_stack: StackFactory, secret_material: SecretMaterial
) -> None:
    stack = deploy_stack(parameters=STACK_SCOPES)
    cloud, stack_name = stack.cloud, stack.deployment.stack_name
    assert [e.status for e in rotate_on_schedule(cloud, stack.deployment)] == ["SUCCEEDED"] * 4

    def add(secret: Added) -> str:
        return added(
            stack,
            f"{stack_name}/{secret.suffix}",
            "--scopes",
            " ".join(secret.scopes),
            "--lead-seconds",
            str(secret.lead_seconds),
            "--lifetime-seconds",
            LIFETIME,
            # An older script's option: accepted, and no alarm of the secret's own.
            *(("--alarm-topic", stack.deployment.topic_arn) if secret is ADDED[0] else ()),
            material=secret_material,
            saying="the stack's TokenFreshnessAlarm watches" if secret is ADDED[0] else "",
        )

    # One at a time: run at once, they only compete for this machine's CPUs.
    arns = {secret.suffix: add(secret) for secret in ADDED}

    for secret in ADDED:
        arn = arns[secret.suffix]
        assert executions_of(stack, arn) == [
            (step, "SUCCEEDED", None)
            for step in ("createSecret", "setSecret", "testSecret", "finishSecret")
        ]
        assert (
            tags_of(stack, arn).items()
            >= {
                config.MANAGED_BY_TAG: stack_name,
                config.SCOPES.tag: " ".join(secret.scopes),
                config.REFRESH_LEAD_SECONDS.tag: str(secret.lead_seconds),
                config.TOKEN_LIFETIME_SECONDS.tag: LIFETIME,
            }.items()
        )
        value = current_value(cloud, arn)
        assert sorted(value["scopes"]) == sorted(secret.scopes)
        info = token_info(cloud, value["GOOGLE_ACCESS_TOKEN"])
        assert info is not None, f"Google refuses the token of {secret.suffix}"
        assert sorted(info["scope"].split()) == sorted(secret.scopes)
        lead = timedelta(seconds=secret.lead_seconds)
        assert due_of(stack, arn) == first_refresh_of(stack, arn, lead)
    group = stack.deployment.refs["RefreshScheduleGroup"]
    listed = cloud.client("scheduler").list_schedules(GroupName=group)["Schedules"]
    everyone = [stack.secret_arn, *arns.values()]
    assert sorted(s["Name"] for s in listed) == sorted(map(schedule_name, everyone))
    assert due_of(stack, stack.secret_arn) == first_refresh_of(stack, stack.secret_arn, STACK_LEAD)

    # No alarm per secret: the stack's own alarms, its one freshness alarm among them, are all.
    alarms = cloud.client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{stack_name}-")
    assert sorted(a["AlarmName"] for a in alarms["MetricAlarms"]) == sorted(
        f"{stack_name}-{logical_id}" for logical_id in load_template().of_type(ALARM)
    )

    # The scheduler fires each secret's schedule on its own: at the earliest due time, the
    # secret due then alone rotates.
    versions = {arn: current_version(stack, arn) for arn in everyone}
    dues = {arn: due_of(stack, arn) for arn in everyone}
    earliest = min(dues.values())
    firsts = {arn for arn, due in dues.items() if due == earliest}
    cloud.clock.advance(earliest.timestamp() - cloud.clock.now())

    firings = LocalScheduler(cloud, group=group).fire_due()

    assert sorted((f.name, f.error_code) for f in firings) == sorted(
        (schedule_name(arn), None) for arn in firsts
    )
    rotated = {arn for arn in everyone if current_version(stack, arn) != versions[arn]}
    assert rotated == firsts
    for arn in firsts:
        assert token_info(cloud, current_value(cloud, arn)["GOOGLE_ACCESS_TOKEN"]) is not None
    assert stack.notices() == []


def test_a_secret_asking_for_more_or_tagged_for_another_stack_fails_alone(
    deploy_stack: StackFactory, secret_material: SecretMaterial
) -> None:
    stack = deploy_stack(parameters=STACK_SCOPES)
    cloud, stack_name = stack.cloud, stack.deployment.stack_name
    rotate_on_schedule(cloud, stack.deployment)
    good = added(stack, f"{stack_name}/drive", "--scopes", DRIVE, material=secret_material)
    others = [stack.secret_arn, good]
    before = {arn: (current_version(stack, arn), due_of(stack, arn)) for arn in others}

    # A scope the stack does not grant: the tool cannot know the stack's scopes, the rotation
    # refuses the tag before any key is read, and says which tag and which ceiling.
    wide = added(
        stack, f"{stack_name}/gmail", "--scopes", f"{CALENDAR} {GMAIL}", material=secret_material
    )

    assert executions_of(stack, wide) == [("createSecret", "FAILED", "ConfigurationError")]
    assert current_value(cloud, wide) == {"GOOGLE_ACCESS_TOKEN": ""}
    [notice] = stack.notices()
    message: dict[str, Any] = notice["Message"]
    assert (message["SecretId"], message["Step"], message["Error"]) == (
        wide,
        "createSecret",
        "ConfigurationError",
    )
    cause = message["Cause"]
    assert f"tag '{config.SCOPES.tag}' asks for {GMAIL}, outside the deployer's ceiling" in cause
    assert tags_of(stack, wide)[FAILED_ATTEMPTS_TAG] == "1"
    assert {arn: (current_version(stack, arn), due_of(stack, arn)) for arn in others} == before
    assert all(FAILED_ATTEMPTS_TAG not in tags_of(stack, arn) for arn in others)

    # Another stack's tag: the tool refuses before creating anything, naming both stacks.
    foreign_name = f"{stack_name}/foreign"
    refused = add_token_secret(stack, foreign_name, "--managed-by", "another-stack")
    assert refused.returncode == 1
    assert f"rotates the token secrets of stack {stack_name}, not another-stack" in refused.stderr
    secrets = cloud.client("secretsmanager")
    assert not secrets.list_secrets(Filters=[{"Key": "name", "Values": [foreign_name]}])[
        "SecretList"
    ]
    # Made without the tool, the stack's rotation refuses it before reading or writing a value.
    foreign = secrets.create_secret(
        Name=foreign_name,
        SecretString=PLACEHOLDER,
        Tags=[{"Key": config.MANAGED_BY_TAG, "Value": "another-stack"}],
    )["ARN"]
    secrets.rotate_secret(
        SecretId=foreign,
        RotationLambdaARN=stack.deployment.attributes[("RotationEntryFunction", "Arn")],
        RotationRules={"ScheduleExpression": "rate(4 hours)"},
    )

    assert executions_of(stack, foreign) == [("createSecret", "FAILED", "UnmanagedSecretError")]
    assert current_value(cloud, foreign) == {"GOOGLE_ACCESS_TOKEN": ""}
    [refusal] = stack.notices()
    assert refusal["Message"]["Error"] == "UnmanagedSecretError"
    assert {arn: (current_version(stack, arn), due_of(stack, arn)) for arn in others} == before


def test_the_tool_offers_every_narrowing_tag_and_the_templates_lifetimes() -> None:
    source = TOOL.read_text()
    (lifetimes,) = re.findall(r"\n\s+((?:\d+ \| )+\d+)\) ;;", source)
    allowed = load_template().document["Parameters"]["TokenLifetimeSeconds"]["AllowedValues"]
    assert [int(lifetime) for lifetime in lifetimes.split(" | ")] == allowed
    settings = [s for s in vars(config).values() if isinstance(s, config.Setting)]
    # A tag for these may only repeat the stack's own value: nothing to narrow.
    repeat_only = {config.CREDENTIAL_SOURCE, config.WORKLOAD_IDENTITY_AUDIENCE}
    offered = set(re.findall(r"add_(?:email_)?tag (token-rotation:[a-z-]+)", source))
    assert offered == {s.tag for s in settings if s not in repeat_only}
