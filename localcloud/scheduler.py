"""Fires what moto only stores: due EventBridge Scheduler schedules and Secrets Manager rotation
schedules, on the local cloud's simulated clock.

What it fires, and how it differs from AWS:
- EventBridge Scheduler one-time schedules, `at(yyyy-mm-ddThh:mm:ss)` in their
  ScheduleExpressionTimezone, once each when ENABLED and due (simulated now is at or past the
  time); an updated or re-created schedule is a new one, due at its own time. FlexibleTimeWindow
  is ignored (fired when due), and a failed call is reported, not retried (AWS retries along the
  RetryPolicy, then gives up or uses the dead-letter queue). ActionAfterCompletion DELETE deletes
  the schedule after firing, whatever the outcome. rate() and cron() schedules and targets other
  than universal ones are skipped, and each such schedule is reported once (`unsupported`, and a
  warning in the log).
- universal targets `arn:aws:scheduler:::aws-sdk:<service>:<apiAction>`: the API action called
  through the local cloud's boto3 client of the service, the target's Input (JSON) as the
  parameters.
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
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botocore import xform_name
from botocore.exceptions import ClientError, ParamValidationError, UnknownServiceError

from localcloud.cloud import LocalCloud, RotationRule

UNIVERSAL_TARGET_PREFIX: Final = "arn:aws:scheduler:::aws-sdk:"
# Universal targets name a few services as the SDKs' Step Functions names do, not as boto3 does.
_BOTO_SERVICE_NAMES: Final = {"sfn": "stepfunctions"}
_AT: Final = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")

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
    """The API called, as `service:apiAction`."""
    due_at: float
    """Simulated epoch seconds at which it was due."""
    fired_at: float
    """Simulated epoch seconds at which the target was called."""
    error_code: str | None
    """The call's error code (as AWS names it), None when it succeeded."""
    error_message: str | None

    @property
    def failed(self) -> bool:
        return self.error_code is not None


@dataclass(frozen=True)
class _OneTime:
    """A one-time schedule with a universal target, as GetSchedule described one version."""

    due_at: float
    service: str
    action: str
    parameters: dict[str, Any]
    delete_after: bool


_Due = tuple[float, Callable[[], Firing | None]]
"""When something is due, and how to fire it."""


class LocalScheduler:
    """Fires what is due on `cloud.clock`: call `fire_due()` after moving the clock, or let
    `run_until()` move it step by step. One caller at a time fires; others wait."""

    def __init__(self, cloud: LocalCloud, group: str | None = None) -> None:
        """`group` limits it to one schedule group (moto's backends are the process's, shared
        by every local cloud in it); None fires every group's schedules."""
        self.cloud = cloud
        self.group = group
        self.unsupported: dict[ScheduleKey, str] = {}
        """Schedules skipped because the local cloud cannot fire them, with the reason."""
        self._lock = threading.Lock()
        # A schedule version is its (CreationDate, LastModificationDate): any update or
        # re-creation makes a new one, which AWS treats as a new schedule.
        self._plans: dict[ScheduleKey, tuple[tuple[object, ...], _OneTime | str]] = {}
        self._fired: dict[ScheduleKey, tuple[object, ...]] = {}
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
                yield plan.due_at, functools.partial(self._fire_schedule, key, version, plan)
        # Deleted schedules are forgotten: one re-created under the same name is a new one.
        for known in (self._plans, self._fired, self.unsupported):
            for key in set(known) - listed:
                del known[key]

    def _list_schedules(self) -> Iterator[dict[str, Any]]:
        only = {} if self.group is None else {"GroupName": self.group}
        pages = self.cloud.client("scheduler").get_paginator("list_schedules").paginate(**only)
        for page in pages:
            yield from page["Schedules"]

    def _plan(self, key: ScheduleKey, version: tuple[object, ...]) -> _OneTime | str:
        """What firing this schedule version means (or why it cannot fire), asked once."""
        known = self._plans.get(key)
        if known is not None and known[0] == version:
            return known[1]
        group, name = key
        schedule = self.cloud.client("scheduler").get_schedule(GroupName=group, Name=name)
        plan: _OneTime | str
        try:
            plan = _one_time(schedule, self.cloud)
            self.unsupported.pop(key, None)
        except _NotFiredLocallyError as unsupported:
            plan = self.unsupported[key] = str(unsupported)
            _log.warning("schedule %s/%s is not fired locally: %s", group, name, plan)
        self._plans[key] = (version, plan)
        return plan

    def _fire_schedule(
        self, key: ScheduleKey, version: tuple[object, ...], plan: _OneTime
    ) -> Firing:
        group, name = key
        fired_at = self.cloud.clock.now()
        error = _call(self.cloud, plan.service, plan.action, plan.parameters)
        self._fired[key] = version
        if plan.delete_after:
            scheduler = self.cloud.client("scheduler")
            # The target call itself may have deleted it.
            with contextlib.suppress(scheduler.exceptions.ResourceNotFoundException):
                scheduler.delete_schedule(GroupName=group, Name=name)
        return Firing(
            "schedule", name, group, f"{plan.service}:{plan.action}", plan.due_at, fired_at, *error
        )

    # --- Secrets Manager rotation schedules ---------------------------------------------------

    def _due_rotations(self, now: float) -> Iterator[_Due]:
        for rule in list(self.cloud.rotation_rules):
            if rule in self._ended_rules:
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


class _NotFiredLocallyError(Exception):
    """A schedule the local cloud cannot fire; the message says why."""


def _one_time(schedule: dict[str, Any], cloud: LocalCloud) -> _OneTime:
    """A GetSchedule answer as a one-time schedule with a universal target."""
    service, action, parameters = _universal_target(schedule["Target"], cloud)
    return _OneTime(
        due_at=_at_time(schedule),
        service=service,
        action=action,
        parameters=parameters,
        delete_after=schedule.get("ActionAfterCompletion") == "DELETE",
    )


def _at_time(schedule: dict[str, Any]) -> float:
    """The epoch seconds of an at() expression in the schedule's time zone."""
    expression: str = schedule["ScheduleExpression"]
    match = _AT.fullmatch(expression)
    if match is None:
        raise _NotFiredLocallyError(
            f"only one-time at() schedules are fired locally, not {expression}"
        )
    zone_name = schedule.get("ScheduleExpressionTimezone") or "UTC"
    try:
        zone = datetime.UTC if zone_name == "UTC" else ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _NotFiredLocallyError(f"unknown ScheduleExpressionTimezone {zone_name!r}") from None
    return datetime.datetime.fromisoformat(match[1]).replace(tzinfo=zone).timestamp()


def _universal_target(target: dict[str, Any], cloud: LocalCloud) -> tuple[str, str, Any]:
    """(service, API action, parameters) of a universal target."""
    arn: str = target["Arn"]
    service, _, action = arn.removeprefix(UNIVERSAL_TARGET_PREFIX).partition(":")
    if not arn.startswith(UNIVERSAL_TARGET_PREFIX) or not action:
        raise _NotFiredLocallyError(
            f"only universal targets ({UNIVERSAL_TARGET_PREFIX}...) are called, not {arn}"
        )
    try:
        client = cloud.client(_BOTO_SERVICE_NAMES.get(service, service))
    except UnknownServiceError:
        raise _NotFiredLocallyError(f"unknown service in {arn}") from None
    if not hasattr(client, xform_name(action)):
        raise _NotFiredLocallyError(f"unknown API action in {arn}")
    try:
        parameters = json.loads(target.get("Input") or "{}")
    except json.JSONDecodeError as error:
        raise _NotFiredLocallyError(f"the target's Input is not JSON: {error}") from None
    if not isinstance(parameters, dict):
        raise _NotFiredLocallyError("the target's Input is not a JSON object")
    return service, action, parameters


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
