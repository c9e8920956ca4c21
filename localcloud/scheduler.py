"""Fires what moto only stores: due EventBridge Scheduler schedules and Secrets Manager rotation
schedules, on the local cloud's simulated clock.

What it fires, and how it differs from AWS:
- EventBridge Scheduler schedules of any group, when ENABLED:
  - one-time `at(yyyy-mm-ddThh:mm:ss)` in its ScheduleExpressionTimezone: once, when simulated
    now is at or past the time; an updated or re-created schedule is a new one, due at its own
    time (also when a firing earlier in the same `fire_due()` updated it: a jump of the clock
    makes both due at once, where AWS fired the old version at its own moment, before).
    ActionAfterCompletion DELETE deletes the schedule after firing, whatever the outcome.
  - recurring `rate(N minute|minutes|hour|hours|day|days)`: as AWS, first at its StartDate, or
    at its creation without one (moto's CreationDate, read on the simulated clock), then every
    N units from there until its EndDate. An update keeps that phase, and what fell due before
    the update is not fired (so periods that passed while it was DISABLED are not made up).
    Local difference: when the clock jumps over several periods (tests and the soak jump minutes
    or hours), the schedule fires ONCE for the jump, reporting the first period it missed as
    `due_at`; AWS would have fired once per period as time passed.
  - a deleted schedule stops firing; one re-created under the same name is a new schedule.
  - fired within the call to `fire_due()` that first sees it due: FlexibleTimeWindow OFF is
    honoured to the tick, and a window (FLEXIBLE) is ignored (fired at the start of the window).
    A failed call is reported in its Firing, not retried (AWS retries along the RetryPolicy,
    then drops the event or sends it to the dead-letter queue).
  - what cannot be fired locally is never fired silently: `cron()` expressions, templated
    targets other than Lambda, a target without the Input it needs. Each such schedule is kept
    in `unsupported` with the reason, and a warning is logged once per version.
- targets:
  - universal `arn:aws:scheduler:::aws-sdk:<service>:<apiAction>`: the API action called through
    the local cloud's boto3 client of the service, the target's Input (a JSON object) as the
    parameters;
  - a Lambda function's ARN (templated target Lambda Invoke): the function invoked with the
    target's Input (JSON) as its event. AWS invokes asynchronously and Lambda retries a failed
    event itself; here the invocation is synchronous, so the function's error (its errorType and
    errorMessage) is the firing's, and is not retried;
  - in both, the context attributes `<aws.scheduler.schedule-arn>`, `<aws.scheduler.scheduled-
    time>` (the firing's `due_at`), `<aws.scheduler.execution-id>` and
    `<aws.scheduler.attempt-number>` (always 1) are replaced in the Input, as AWS does.
- rotation schedules (`LocalCloud.rotation_rules`): RotateSecret every period of simulated time
  from the deploy (see RotationRule for AWS's way); periods missed by a jump of the clock fire
  once, not once each. A rule whose secret was deleted ends; while rotation is off
  (CancelRotateSecret) its periods pass without a rotation.
RotateSecret runs the whole rotation inside the call here (localcloud.fidelity), so a firing
returns once the rotation has ended.
"""

import contextlib
import datetime
import functools
import json
import logging
import math
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botocore import xform_name
from botocore.exceptions import ClientError, ParamValidationError, UnknownServiceError

from localcloud.cloud import LocalCloud, RotationRule
from localcloud.deployment import Deployment

UNIVERSAL_TARGET_PREFIX: Final = "arn:aws:scheduler:::aws-sdk:"
LAMBDA_INVOKE: Final = "lambda:invoke"
"""A Lambda target's Firing.target."""
# Universal targets name a few services as the SDKs' Step Functions names do, not as boto3 does.
_BOTO_SERVICE_NAMES: Final = {"sfn": "stepfunctions"}
_AT: Final = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_RATE: Final = re.compile(r"rate\((?P<count>[1-9][0-9]*) (?P<unit>minutes?|hours?|days?)\)")
_UNIT_SECONDS: Final = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}
_LAMBDA_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]+)?"
)
_CONTEXT_ATTRIBUTE: Final = re.compile(r"<aws\.scheduler\.([a-z-]+)>")
_SCHEDULE_ARN: Final = re.compile(r"arn:aws[a-z-]*:scheduler:[^:]*:[0-9]*:schedule/([^/]+)/(.+)")
_GROUP_ARN: Final = re.compile(r"arn:aws[a-z-]*:scheduler:[^:]*:[0-9]*:schedule-group/(.+)")

_log = logging.getLogger(__name__)

ScheduleKey = tuple[str, str]
"""(group name, schedule name)."""


@dataclass(frozen=True)
class Firing:
    """One thing the scheduler fired and how its target call ended."""

    kind: Literal["schedule", "rotation"]
    name: str
    """The schedule's name, or the ARN of the secret a rotation rule rotates."""
    group: str | None
    """The schedule's group; None for a rotation rule."""
    target: str
    """The API called, as `service:apiAction` (`lambda:invoke` for a Lambda target)."""
    due_at: float
    """Simulated epoch seconds at which it was due (a recurring schedule that missed several
    periods in a jump of the clock: the first it missed)."""
    fired_at: float
    """Simulated epoch seconds at which the target was called."""
    error_code: str | None
    """The call's error code (as AWS names it; a Lambda target's: the function's errorType),
    None when it succeeded."""
    error_message: str | None

    @property
    def failed(self) -> bool:
        return self.error_code is not None


@dataclass(frozen=True)
class _Universal:
    """A universal target: an API action of a service, its Input the parameters."""

    service: str
    action: str
    input: str

    @property
    def name(self) -> str:
        return f"{self.service}:{self.action}"


@dataclass(frozen=True)
class _Lambda:
    """A Lambda function's ARN as the target: Invoke with the Input as the event."""

    function_arn: str
    input: str

    @property
    def name(self) -> str:
        return LAMBDA_INVOKE


_Target = _Universal | _Lambda


@dataclass(frozen=True)
class _OneTime:
    """An at() schedule, as GetSchedule described one version."""

    arn: str
    due_at: float
    target: _Target
    delete_after: bool


@dataclass(frozen=True)
class _Recurring:
    """A rate() schedule, as GetSchedule described one version: it is due at
    `start + k * period` (k = 0, 1, ...), from `not_before` (the version's making) to `end`."""

    arn: str
    start: float
    period: float
    not_before: float
    end: float | None
    target: _Target

    def due(self, now: float, done: float | None) -> tuple[float, float] | None:
        """(the first period not fired yet, the latest one) when a period later than `done`
        (the latest fired) is due at `now`; None otherwise."""
        until = now if self.end is None else min(now, self.end)
        if until < self.start:
            return None
        latest = self._at(math.floor((until - self.start) / self.period))
        if latest < self.not_before or (done is not None and latest <= done):
            return None
        first = max(0, math.ceil((self.not_before - self.start) / self.period))
        if done is not None:
            first = max(first, math.floor((done - self.start) / self.period) + 1)
        return self._at(first), latest

    def _at(self, k: int) -> float:
        return self.start + k * self.period


_Plan = _OneTime | _Recurring
_Due = tuple[float, Callable[[], Firing | None]]
"""When something is due, and how to fire it."""


class LocalScheduler:
    """Fires what is due on `cloud.clock`: call `fire_due()` after moving the clock, or let
    `run_until()` move it step by step. One caller at a time fires; others wait."""

    def __init__(
        self, cloud: LocalCloud, group: str | None = None, *, stack: Deployment | None = None
    ) -> None:
        """moto's backends are the process's, shared by every local cloud in it: `group` limits
        it to one schedule group; `stack` to what one deploy made (the schedules of its schedule
        groups, the schedules it made in others, such as the shared default group, and its
        rotation schedules). With neither, it fires every group's schedules."""
        if group is not None and stack is not None:
            raise ValueError("give a group or a stack, not both")
        self.cloud = cloud
        self.group = group
        self.stack = stack
        self.unsupported: dict[ScheduleKey, str] = {}
        """Schedules skipped because the local cloud cannot fire them, with the reason."""
        self._lock = threading.Lock()
        # A schedule version is its (CreationDate, LastModificationDate): any update or
        # re-creation makes a new one, which AWS treats as a new schedule.
        self._plans: dict[ScheduleKey, tuple[tuple[object, ...], _Plan | str]] = {}
        self._fired: dict[ScheduleKey, tuple[object, ...]] = {}
        self._done: dict[ScheduleKey, float] = {}
        """The latest period each recurring schedule has fired for."""
        self._next_rotation: dict[RotationRule, float] = {}
        self._ended_rules: set[RotationRule] = set()

    def fire_due(self) -> list[Firing]:
        """Fires everything due at simulated now that has not fired yet, earliest first."""
        with self._lock:
            now = self.cloud.clock.now()
            due = sorted([*self._due_schedules(now), *self._due_rotations(now)], key=lambda d: d[0])
            return [firing for _, fire in due if (firing := fire()) is not None]

    def run_until(self, epoch_seconds: float, step_seconds: float = 60.0) -> list[Firing]:
        """Fires what is due now, then moves the clock `step_seconds` at a time up to
        `epoch_seconds` (simulated), firing what is due after each step."""
        if step_seconds <= 0:
            raise ValueError("step_seconds must be positive")
        clock = self.cloud.clock
        if epoch_seconds < clock.now():
            raise ValueError(f"{epoch_seconds} is in the simulated past: the clock only moves on")
        firings = self.fire_due()
        while (left := epoch_seconds - clock.now()) > 0:
            clock.advance(min(step_seconds, left))
            firings += self.fire_due()
        return firings

    # --- EventBridge Scheduler ---------------------------------------------------------------

    def _due_schedules(self, now: float) -> Iterator[_Due]:
        listed: set[ScheduleKey] = set()
        for summary in self._list_schedules():
            key = (summary["GroupName"], summary["Name"])
            version = (summary["CreationDate"], summary["LastModificationDate"])
            listed.add(key)
            if summary["State"] != "ENABLED" or self._fired.get(key) == version:
                continue
            plan = self._plan(key, version)
            if isinstance(plan, _OneTime) and plan.due_at <= now:
                fire = functools.partial(self._fire_one_time, key, version, plan)
                yield plan.due_at, fire
            elif isinstance(plan, _Recurring) and (due := plan.due(now, self._done.get(key))):
                first, latest = due
                yield first, functools.partial(self._fire_recurring, key, plan, first, latest)
        # Deleted schedules are forgotten: one re-created under the same name is a new one.
        for known in (self._plans, self._fired, self._done, self.unsupported):
            for key in set(known) - listed:
                del known[key]

    def _list_schedules(self) -> Iterator[dict[str, Any]]:
        only = {} if self.group is None else {"GroupName": self.group}
        pages = self.cloud.client("scheduler").get_paginator("list_schedules").paginate(**only)
        owned = None if self.stack is None else _scheduler_resources(self.stack)
        for page in pages:
            for summary in page["Schedules"]:
                if owned is None or _owned(summary, *owned):
                    yield summary

    def _plan(self, key: ScheduleKey, version: tuple[object, ...]) -> _Plan | str:
        """What firing this schedule version means (or why it cannot fire), asked once."""
        known = self._plans.get(key)
        if known is not None and known[0] == version:
            return known[1]
        group, name = key
        schedule = self.cloud.client("scheduler").get_schedule(GroupName=group, Name=name)
        plan: _Plan | str
        try:
            plan = _plan_of(schedule, self.cloud)
            self.unsupported.pop(key, None)
        except _NotFiredLocallyError as unsupported:
            plan = self.unsupported[key] = str(unsupported)
            _log.warning("schedule %s/%s is not fired locally: %s", group, name, plan)
        self._plans[key] = (version, plan)
        return plan

    def _fire_one_time(
        self, key: ScheduleKey, version: tuple[object, ...], plan: _OneTime
    ) -> Firing | None:
        if self._version_now(key) != version:
            # An earlier firing of this call updated or deleted it: the new version is a new
            # schedule, due at its own time, and the old one never fires (as on AWS, where it
            # would have fired at its own moment, before that firing).
            return None
        firing = self._fire_schedule(key, plan.arn, plan.target, plan.due_at)
        self._fired[key] = version
        if plan.delete_after:
            scheduler = self.cloud.client("scheduler")
            # The target call itself may have deleted it.
            with contextlib.suppress(scheduler.exceptions.ResourceNotFoundException):
                scheduler.delete_schedule(GroupName=key[0], Name=key[1])
        return firing

    def _version_now(self, key: ScheduleKey) -> tuple[object, ...] | None:
        scheduler = self.cloud.client("scheduler")
        try:
            schedule = scheduler.get_schedule(GroupName=key[0], Name=key[1])
        except scheduler.exceptions.ResourceNotFoundException:
            return None
        return (schedule["CreationDate"], schedule["LastModificationDate"])

    def _fire_recurring(
        self, key: ScheduleKey, plan: _Recurring, first: float, latest: float
    ) -> Firing:
        firing = self._fire_schedule(key, plan.arn, plan.target, first)
        self._done[key] = latest
        return firing

    def _fire_schedule(self, key: ScheduleKey, arn: str, target: _Target, due_at: float) -> Firing:
        fired_at = self.cloud.clock.now()
        text = _with_context(target.input, arn, due_at)
        if isinstance(target, _Lambda):
            error = _invoke(self.cloud, target.function_arn, text)
        else:
            error = _call(self.cloud, target.service, target.action, json.loads(text))
        group, name = key
        return Firing("schedule", name, group, target.name, due_at, fired_at, *error)

    # --- Secrets Manager rotation schedules ---------------------------------------------------

    def _due_rotations(self, now: float) -> Iterator[_Due]:
        secrets = None if self.stack is None else set(self.stack.refs.values())
        for rule in list(self.cloud.rotation_rules):
            if rule in self._ended_rules or (
                secrets is not None and rule.secret_arn not in secrets
            ):
                continue
            due_at = self._next_rotation.setdefault(rule, rule.deployed_at + rule.period_seconds)
            if due_at <= now:
                yield due_at, functools.partial(self._fire_rotation, rule, due_at, now)

    def _fire_rotation(self, rule: RotationRule, due_at: float, now: float) -> Firing | None:
        periods_passed = (now - rule.deployed_at) // rule.period_seconds
        self._next_rotation[rule] = rule.deployed_at + (periods_passed + 1) * rule.period_seconds
        secrets = self.cloud.client("secretsmanager")
        try:
            secret = secrets.describe_secret(SecretId=rule.secret_arn)
        except secrets.exceptions.ResourceNotFoundException:
            secret = None
        if secret is None or "DeletedDate" in secret:
            # The schedule is part of the secret and goes with it.
            self._ended_rules.add(rule)
            return None
        if not secret.get("RotationEnabled"):
            return None
        fired_at = self.cloud.clock.now()
        error = _call(self.cloud, "secretsmanager", "rotateSecret", {"SecretId": rule.secret_arn})
        return Firing(
            "rotation",
            rule.secret_arn,
            None,
            "secretsmanager:rotateSecret",
            due_at,
            fired_at,
            *error,
        )


def _scheduler_resources(stack: Deployment) -> tuple[set[str], set[ScheduleKey]]:
    """(schedule groups, schedules) a deploy made, from the ARNs it recorded."""
    groups: set[str] = set()
    schedules: set[ScheduleKey] = set()
    for value in stack.attributes.values():
        if match := _GROUP_ARN.fullmatch(value):
            groups.add(match[1])
        elif match := _SCHEDULE_ARN.fullmatch(value):
            schedules.add((match[1], match[2]))
    return groups, schedules


def _owned(summary: dict[str, Any], groups: set[str], schedules: set[ScheduleKey]) -> bool:
    return summary["GroupName"] in groups or (summary["GroupName"], summary["Name"]) in schedules


class _NotFiredLocallyError(Exception):
    """A schedule the local cloud cannot fire; the message says why."""


def _plan_of(schedule: dict[str, Any], cloud: LocalCloud) -> _Plan:
    """A GetSchedule answer as what the local cloud fires."""
    target = _target(schedule["Target"], cloud)
    expression: str = schedule["ScheduleExpression"]
    if expression.startswith("at("):
        return _OneTime(
            arn=schedule["Arn"],
            due_at=_at_time(schedule),
            target=target,
            delete_after=schedule.get("ActionAfterCompletion") == "DELETE",
        )
    rate = _RATE.fullmatch(expression)
    if rate is None:
        raise _NotFiredLocallyError(
            f"only at() and rate(N minutes|hours|days) schedules are fired locally, "
            f"not {expression}"
        )
    clock = cloud.clock
    created = clock.simulated_at(schedule["CreationDate"].timestamp())
    start, end = schedule.get("StartDate"), schedule.get("EndDate")
    return _Recurring(
        arn=schedule["Arn"],
        start=created if start is None else start.timestamp(),
        period=int(rate["count"]) * _UNIT_SECONDS[rate["unit"].removesuffix("s")],
        not_before=clock.simulated_at(schedule["LastModificationDate"].timestamp()),
        end=None if end is None else end.timestamp(),
        target=target,
    )


def _at_time(schedule: dict[str, Any]) -> float:
    """The epoch seconds of an at() expression in the schedule's time zone."""
    expression: str = schedule["ScheduleExpression"]
    match = _AT.fullmatch(expression)
    if match is None:
        raise _NotFiredLocallyError(f"{expression} is not at(yyyy-mm-ddThh:mm:ss)")
    zone_name = schedule.get("ScheduleExpressionTimezone") or "UTC"
    try:
        zone = datetime.UTC if zone_name == "UTC" else ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _NotFiredLocallyError(f"unknown ScheduleExpressionTimezone {zone_name!r}") from None
    return datetime.datetime.fromisoformat(match[1]).replace(tzinfo=zone).timestamp()


def _target(target: dict[str, Any], cloud: LocalCloud) -> _Target:
    """A schedule's target as the local cloud calls it: a universal target or a Lambda
    function; its Input checked now, so that a firing cannot fail for want of it."""
    arn: str = target["Arn"]
    text: str | None = target.get("Input")
    if _LAMBDA_ARN.fullmatch(arn):
        if text is None:
            raise _NotFiredLocallyError(
                f"the Lambda target {arn} has no Input: EventBridge Scheduler then sends a "
                "default event the local cloud does not know; give the target an Input"
            )
        _json_input(text)
        return _Lambda(arn, text)
    service, _, action = arn.removeprefix(UNIVERSAL_TARGET_PREFIX).partition(":")
    if not arn.startswith(UNIVERSAL_TARGET_PREFIX) or not action:
        raise _NotFiredLocallyError(
            f"only universal targets ({UNIVERSAL_TARGET_PREFIX}...) and Lambda functions are "
            f"called, not {arn}"
        )
    try:
        client = cloud.client(_BOTO_SERVICE_NAMES.get(service, service))
    except UnknownServiceError:
        raise _NotFiredLocallyError(f"unknown service in {arn}") from None
    if not hasattr(client, xform_name(action)):
        raise _NotFiredLocallyError(f"unknown API action in {arn}")
    text = text or "{}"
    if not isinstance(_json_input(text), dict):
        raise _NotFiredLocallyError("the target's Input is not a JSON object")
    return _Universal(service, action, text)


def _json_input(text: str) -> object:
    """The Input as its target gets it (context attributes replaced), or why it is not JSON."""
    try:
        return json.loads(_with_context(text, "arn", 0.0))
    except json.JSONDecodeError as error:
        raise _NotFiredLocallyError(f"the target's Input is not JSON: {error}") from None


def _with_context(text: str, schedule_arn: str, due_at: float) -> str:
    """The Input with EventBridge Scheduler's context attributes replaced, as AWS does before
    each invocation; an unknown attribute is left as it is."""
    values = {
        "schedule-arn": schedule_arn,
        "scheduled-time": datetime.datetime.fromtimestamp(due_at, datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "execution-id": uuid.uuid4().hex[:16],
        "attempt-number": "1",
    }
    return _CONTEXT_ATTRIBUTE.sub(lambda match: values.get(match[1], match[0]), text)


def _call(
    cloud: LocalCloud, service: str, action: str, parameters: dict[str, Any]
) -> tuple[str | None, str | None]:
    """Calls a universal target's API action: (error code, message), or (None, None)."""
    client = cloud.client(_BOTO_SERVICE_NAMES.get(service, service))
    try:
        getattr(client, xform_name(action))(**parameters)
    except ClientError as error:
        return error.response["Error"]["Code"], error.response["Error"]["Message"]
    except ParamValidationError as error:
        # What the API would answer for parameters its model refuses.
        return "ValidationException", str(error)
    return None, None


def _invoke(cloud: LocalCloud, function_arn: str, event: str) -> tuple[str | None, str | None]:
    """Invokes a Lambda target and waits for its end: (error code, message), or (None, None);
    a function error is (its errorType, its errorMessage)."""
    try:
        answer = cloud.client("lambda").invoke(FunctionName=function_arn, Payload=event.encode())
    except ClientError as error:
        return error.response["Error"]["Code"], error.response["Error"]["Message"]
    payload = answer["Payload"].read()
    if "FunctionError" not in answer:
        return None, None
    with contextlib.suppress(ValueError):
        described = json.loads(payload)
        if isinstance(described, dict):
            code = described.get("errorType", answer["FunctionError"])
            return str(code), str(described.get("errorMessage", ""))
    return answer["FunctionError"], payload.decode(errors="replace")
