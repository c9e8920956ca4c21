"""After a deploy, proof that the stack works end to end: one rotation followed to its end, the
token it stored accepted by Google, the next refresh planned, the alarm and the topic in place.
Each check says ok or FAILED and, when it fails, what fixes it; no check ever shows the token."""

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import urllib3
from botocore.exceptions import BotoCoreError, ClientError

from stacktools.stack import (
    FAILURE_TOPIC_ARN,
    FRESHNESS_METRIC,
    FRESHNESS_NAMESPACE,
    FRESHNESS_STACK_DIMENSION,
    REFRESH_SCHEDULE_GROUP_NAME,
    ROTATION_STATE_MACHINE_ARN,
    TOKEN_SECRET_ARN,
    DeployedStack,
)

GOOGLE_TOKENINFO_URL: Final = "https://oauth2.googleapis.com/tokeninfo"
DEFAULT_TIMEOUT_SECONDS: Final = 600.0
CURRENT: Final = "AWSCURRENT"
PENDING: Final = "AWSPENDING"
RUNBOOK: Final = "docs/runbook.md"
_POLL_SECONDS: Final = 3.0
_RUNNING: Final = "RUNNING"
_AT_EXPRESSION = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_TOKENINFO_TIMEOUT = urllib3.Timeout(connect=5.0, read=10.0)
_MAX_DETAIL: Final = 300
# Error types whose fix is on Google's side: the setup command prints what is missing.
_GOOGLE_SIDE_ERRORS: Final = frozenset(
    {"GoogleGrantRejectedError", "InvalidServiceAccountKeyError", "TokenVerificationError"}
)


Clients = Callable[[str], Any]
"""Hands out boto3 clients of the stack's account and region, by service name."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class CheckSettings:
    tokeninfo_url: str = GOOGLE_TOKENINFO_URL
    rotate: bool = True
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


def run_checks(
    clients: Clients, stack: DeployedStack, settings: CheckSettings
) -> list[CheckResult]:
    """Every check, in order; an AWS or network error fails the check it happened in only."""
    return list(_checks(clients, stack, settings))


def _checks(
    clients: Clients, stack: DeployedStack, settings: CheckSettings
) -> Iterator[CheckResult]:
    secret_arn = stack.output(TOKEN_SECRET_ARN)
    steps: list[tuple[str, Callable[[], CheckResult]]] = []
    if settings.rotate:
        steps.append(("rotation", lambda: _rotation(clients, stack, secret_arn, settings)))
    token: dict[str, str] = {}
    steps += [
        ("token", lambda: _token(clients, secret_arn, settings, token)),
        ("google", lambda: _google(token, secret_arn, settings)),
        ("next refresh", lambda: _next_refresh(clients, stack, secret_arn, settings)),
        ("alarm", lambda: _alarm(clients, stack)),
        ("topic", lambda: _topic(clients, stack)),
    ]
    for name, check in steps:
        try:
            yield check()
        except (ClientError, BotoCoreError) as error:
            yield CheckResult(
                name,
                False,
                f"AWS refused or failed: {_aws_message(error)}",
                "check your AWS credentials and their permissions (docs/post-deploy-check.md "
                "lists what the check calls)",
            )


def format_results(results: list[CheckResult]) -> str:
    lines = []
    for result in results:
        lines.append(f"{'ok' if result.ok else 'FAILED':<7} {result.name}: {result.detail}")
        if not result.ok and result.fix:
            lines.append(f"{'':<7} fix: {result.fix}")
    passed = sum(result.ok for result in results)
    verdict = "all checks passed" if passed == len(results) else "some checks FAILED"
    lines.append(f"{passed}/{len(results)} ok: {verdict}")
    return "\n".join(lines) + "\n"


# --- rotation ------------------------------------------------------------------------------


def _rotation(
    clients: Clients, stack: DeployedStack, secret_arn: str, settings: CheckSettings
) -> CheckResult:
    secretsmanager = clients("secretsmanager")
    reattempted = False
    # Read first: where Secrets Manager re-attempts an unfinished rotation inside the refused
    # call (the local cloud), it may have ended before the refusal arrives.
    pending = _pending_version(secretsmanager, secret_arn)
    try:
        version = secretsmanager.rotate_secret(SecretId=secret_arn)["VersionId"]
    except ClientError as error:
        if _error_code(error) != "InvalidRequestException" or pending is None:
            return CheckResult(
                "rotation",
                False,
                f"RotateSecret refused: {_aws_message(error)}",
                "your AWS identity needs secretsmanager:RotateSecret on the token secret "
                f"({secret_arn}) and lambda:InvokeFunction on the stack's rotation function",
            )
        # Secrets Manager re-attempts the unfinished rotation itself: follow that one.
        version, reattempted = pending, True
    machine = stack.output(ROTATION_STATE_MACHINE_ARN)
    outcome = follow_rotation(clients, machine, secret_arn, version, settings)
    if reattempted and outcome.ok:
        return CheckResult(
            "rotation",
            True,
            f"a rotation was unfinished; Secrets Manager re-attempted it and {outcome.detail}",
        )
    return outcome


def follow_rotation(
    clients: Clients,
    machine: str,
    secret_arn: str,
    version: str,
    settings: CheckSettings,
) -> CheckResult:
    """Waits until the version is AWSCURRENT and its executions have ended, or one failed with
    nothing running after it, or the time is up. On AWS the rotation runs after RotateSecret
    answers; on the local cloud inside it, so the first look finds it ended."""
    secretsmanager = clients("secretsmanager")
    stepfunctions = clients("stepfunctions")
    deadline = settings.monotonic() + settings.timeout_seconds
    while True:
        executions = _executions_of(stepfunctions, machine, version)
        running = [e for e in executions if e["status"] == _RUNNING]
        stages = secretsmanager.describe_secret(SecretId=secret_arn).get("VersionIdsToStages", {})
        if CURRENT in stages.get(version, []) and not running:
            return CheckResult(
                "rotation",
                True,
                f"version {version} is AWSCURRENT after {len(executions)} step executions",
            )
        failed = [e for e in executions if e["status"] not in {_RUNNING, "SUCCEEDED"}]
        if failed and not running:
            return _failed_rotation(stepfunctions, failed[-1])
        if settings.monotonic() >= deadline:
            return CheckResult(
                "rotation",
                False,
                f"version {version} is not AWSCURRENT after {settings.timeout_seconds:g} s "
                f"({len(running)} step executions still running)",
                f"follow the executions of {machine} in the Step Functions console, or run the "
                "check again with a longer --timeout",
            )
        settings.sleep(_POLL_SECONDS)


def _executions_of(stepfunctions: Any, machine: str, version: str) -> list[dict[str, Any]]:
    """The step executions of one rotation, oldest first: the entry function names each
    `<step>-<ClientRequestToken>-<attempt>`."""
    found = []
    for page in stepfunctions.get_paginator("list_executions").paginate(stateMachineArn=machine):
        found += [e for e in page["executions"] if f"-{version}-" in e["name"]]
    return sorted(found, key=lambda e: e["startDate"])


def _failed_rotation(stepfunctions: Any, execution: dict[str, Any]) -> CheckResult:
    described = stepfunctions.describe_execution(executionArn=execution["executionArn"])
    error = described.get("error") or execution["status"]
    message = _cause_message(described.get("cause", ""))
    fix = (
        "Google refused: run `python -m stacktools google-setup` and compare each step with "
        "your Google project (docs/google-setup.md)"
        if error in _GOOGLE_SIDE_ERRORS
        else f"the failure notice on the stack's topic says the same; the entry for {error} in "
        f"{RUNBOOK} says what to do"
    )
    return CheckResult(
        "rotation",
        False,
        f"{execution['name']} ended {execution['status']}: {error}: {message}",
        f"{fix}; then run this check again",
    )


def _cause_message(cause: str) -> str:
    """A Lambda error's message from an execution's cause (JSON), shortened; the steps never
    put secret material in their errors."""
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    text = str(parsed.get("errorMessage", cause)) if isinstance(parsed, dict) else cause
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _pending_version(secretsmanager: Any, secret_arn: str) -> str | None:
    stages = secretsmanager.describe_secret(SecretId=secret_arn).get("VersionIdsToStages", {})
    for version, labels in stages.items():
        if PENDING in labels and CURRENT not in labels:
            return str(version)
    return None


# --- the token -----------------------------------------------------------------------------


def _token(
    clients: Clients, secret_arn: str, settings: CheckSettings, token: dict[str, str]
) -> CheckResult:
    answer = clients("secretsmanager").get_secret_value(SecretId=secret_arn, VersionStage=CURRENT)
    fix = (
        f"rotate again (aws secretsmanager rotate-secret --secret-id {secret_arn}) and read "
        "the rotation's result above"
    )
    try:
        value = json.loads(answer["SecretString"])
    except ValueError:
        return CheckResult("token", False, "AWSCURRENT is not JSON", fix)
    access_token = value.get("GOOGLE_ACCESS_TOKEN") if isinstance(value, dict) else None
    if not isinstance(access_token, str) or not access_token:
        return CheckResult("token", False, "AWSCURRENT holds no GOOGLE_ACCESS_TOKEN yet", fix)
    token["access_token"] = access_token
    expires_at = _timestamp(value.get("expires_at"))
    if expires_at is None:
        return CheckResult("token", False, "AWSCURRENT has no valid expires_at", fix)
    left = (expires_at - settings.now()).total_seconds()
    if left <= 0:
        return CheckResult(
            "token", False, f"AWSCURRENT's token expired at {_when(expires_at)}", fix
        )
    account = value.get("service_account", "?")
    return CheckResult(
        "token",
        True,
        f"AWSCURRENT holds a token of {account}, valid until {_when(expires_at)} "
        f"({_duration(left)} left)",
    )


def _google(token: dict[str, str], secret_arn: str, settings: CheckSettings) -> CheckResult:
    access_token = token.get("access_token")
    if access_token is None:
        return CheckResult("google", False, "no token to ask Google about", "see the token check")
    try:
        answer = urllib3.PoolManager().request(
            "POST",
            settings.tokeninfo_url,
            fields={"access_token": access_token},
            encode_multipart=False,
            timeout=_TOKENINFO_TIMEOUT,
            retries=False,
        )
    except urllib3.exceptions.HTTPError as error:
        return CheckResult(
            "google",
            False,
            f"Google's tokeninfo ({settings.tokeninfo_url}) could not be reached: "
            f"{type(error).__name__}",
            "check this machine's network path to Google and run the check again",
        )
    if answer.status == 200:
        info = json.loads(answer.data)
        return CheckResult(
            "google",
            True,
            f"Google's tokeninfo accepts it (scopes {info.get('scope', '?')}, "
            f"{info.get('expires_in', '?')} s left)",
        )
    if answer.status == 400:
        return CheckResult(
            "google",
            False,
            "Google's tokeninfo says the token is not valid (revoked, or its account or key "
            "was disabled or deleted)",
            "check the account in the Google console, then rotate again "
            f"(aws secretsmanager rotate-secret --secret-id {secret_arn}); the freshness sweep "
            "also replaces a refused token within 5 minutes",
        )
    return CheckResult(
        "google",
        False,
        f"Google's tokeninfo answered HTTP {answer.status}",
        "Google may be having an outage: run the check again later",
    )


# --- what keeps it fresh -------------------------------------------------------------------


def _next_refresh(
    clients: Clients, stack: DeployedStack, secret_arn: str, settings: CheckSettings
) -> CheckResult:
    scheduler = clients("scheduler")
    group = stack.output(REFRESH_SCHEDULE_GROUP_NAME)
    fix = (
        "the freshness sweep re-creates it within 5 minutes; or rotate once "
        f"(aws secretsmanager rotate-secret --secret-id {secret_arn}), which plans the next"
    )
    schedule = _schedule_of(scheduler, group, secret_arn)
    if schedule is None:
        return CheckResult(
            "next refresh", False, f"no schedule in group {group} rotates the token secret", fix
        )
    due = _AT_EXPRESSION.fullmatch(schedule.get("ScheduleExpression", ""))
    if due is None:
        return CheckResult(
            "next refresh",
            False,
            f"{group}/{schedule['Name']} is not a one-time at() schedule",
            f"delete it (aws scheduler delete-schedule --group-name {group} --name "
            f"{schedule['Name']}); {fix}",
        )
    when = datetime.fromisoformat(due.group(1)).replace(tzinfo=UTC)
    if schedule.get("State") == "DISABLED":
        return CheckResult("next refresh", False, f"{group}/{schedule['Name']} is disabled", fix)
    ahead = (when - settings.now()).total_seconds()
    if ahead <= 0:
        return CheckResult(
            "next refresh",
            False,
            f"{group}/{schedule['Name']} was due at {_when(when)} and has not run",
            f"check the schedule's role RefreshSchedulerRole in the IAM console; {fix}",
        )
    return CheckResult(
        "next refresh",
        True,
        f"the next rotation is planned for {_when(when)} (in {_duration(ahead)})",
    )


def _schedule_of(scheduler: Any, group: str, secret_arn: str) -> dict[str, Any] | None:
    """The schedule of the group whose target input names the secret (one per secret)."""
    paginator = scheduler.get_paginator("list_schedules")
    for page in paginator.paginate(GroupName=group):
        for listed in page["Schedules"]:
            schedule: dict[str, Any] = scheduler.get_schedule(GroupName=group, Name=listed["Name"])
            target_input = schedule.get("Target", {}).get("Input", "")
            try:
                target = json.loads(target_input)
            except ValueError:
                continue
            if isinstance(target, dict) and target.get("SecretId") == secret_arn:
                return schedule
    return None


def _alarm(clients: Clients, stack: DeployedStack) -> CheckResult:
    topic = stack.output(FAILURE_TOPIC_ARN)
    cloudwatch = clients("cloudwatch")
    for page in cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=stack.name, AlarmTypes=["MetricAlarm"]
    ):
        for alarm in page["MetricAlarms"]:
            dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
            if (
                alarm.get("Namespace") == FRESHNESS_NAMESPACE
                and alarm.get("MetricName") == FRESHNESS_METRIC
                and dimensions.get(FRESHNESS_STACK_DIMENSION) == stack.name
            ):
                if topic not in alarm.get("AlarmActions", []):
                    return CheckResult(
                        "alarm",
                        False,
                        f"{alarm['AlarmName']} does not notify the failure topic",
                        "deploy the stack again (make deploy) to restore its alarm actions",
                    )
                return CheckResult(
                    "alarm",
                    True,
                    f"{alarm['AlarmName']} watches the tokens (state {alarm['StateValue']})",
                )
    return CheckResult(
        "alarm",
        False,
        f"no freshness alarm of stack {stack.name} ({FRESHNESS_NAMESPACE}/{FRESHNESS_METRIC})",
        "deploy the stack again (make deploy): CloudFormation re-creates TokenFreshnessAlarm",
    )


def _topic(clients: Clients, stack: DeployedStack) -> CheckResult:
    topic = stack.output(FAILURE_TOPIC_ARN)
    sns = clients("sns")
    try:
        attributes = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    except ClientError as error:
        if _error_code(error) not in {"NotFound", "NotFoundException"}:
            raise
        return CheckResult(
            "topic",
            False,
            f"the failure topic {topic} does not exist",
            "deploy the stack again (make deploy): CloudFormation re-creates FailureTopic",
        )
    confirmed = int(attributes.get("SubscriptionsConfirmed", "0"))
    pending = int(attributes.get("SubscriptionsPending", "0"))
    listeners = f"{confirmed} confirmed subscriptions"
    if pending:
        listeners += f", {pending} awaiting confirmation (open the e-mail AWS sent)"
    return CheckResult("topic", True, f"{topic} exists ({listeners})")


# --- small helpers -------------------------------------------------------------------------


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _aws_message(error: ClientError | BotoCoreError) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', '?')}: {details.get('Message', '')}".rstrip(": ")
    return str(error)


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
