"""One rotation step as one Step Functions execution: start or attach, then wait for its end."""

import hashlib
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from botocore.exceptions import ClientError

from rotation_core.steps import STEP_NAMES

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.type_defs import DescribeExecutionOutputTypeDef

logger = logging.getLogger(__name__)

MAX_EXECUTION_NAME_LENGTH: Final = 80
MAX_EXECUTION_ATTEMPTS_LIMIT: Final = 100
SUCCEEDED: Final = "SUCCEEDED"
RUNNING_STATUSES: Final = frozenset({"RUNNING", "PENDING_REDRIVE"})
FAILED_STATUSES: Final = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
DEFAULT_POLL_FIRST_INTERVAL: Final = 0.5
DEFAULT_POLL_MAX_INTERVAL: Final = 5.0
DEFAULT_DEADLINE_MARGIN: Final = 10.0
DEFAULT_MAX_EXECUTION_ATTEMPTS: Final = 10
POLL_GROWTH: Final = 1.5
HASHED_TOKEN_LENGTH: Final = 40
# botocore's standard retry mode already retries throttling a few times; this is the slower,
# jittered layer on top that keeps a waiting Lambda under DescribeExecution's low quota.
_THROTTLING_CODES: Final = frozenset({"ThrottlingException"})
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_STATE_MACHINE_ARN = re.compile(r"arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[^:\s]+")


class RotationEntryError(Exception):
    """Base of the errors the entry Lambda raises to Secrets Manager; none holds secret values."""


class InvalidRotationEventError(RotationEntryError):
    """The rotation event is malformed; nothing was started."""


class EntrySettingsError(RotationEntryError):
    """An environment variable of the entry Lambda is missing or invalid; nothing was started."""


class ExecutionStillRunningError(RotationEntryError):
    """The Lambda's deadline came before the execution ended; the retry attaches to it."""

    def __init__(self, message: str, execution_arn: str) -> None:
        super().__init__(message)
        self.execution_arn = execution_arn


class StepExecutionFailedError(RotationEntryError):
    """The step's execution ended FAILED, TIMED_OUT or ABORTED (or in a status we do not know)."""

    def __init__(
        self, message: str, execution_arn: str, status: str, error: str | None, cause: str | None
    ) -> None:
        super().__init__(message)
        self.execution_arn = execution_arn
        self.status = status
        self.error = error
        self.cause = cause


class ExecutionAttemptsExhaustedError(RotationEntryError):
    """Every allowed attempt of the step already ended without success; nothing more is started."""


@dataclass(frozen=True)
class RotationEvent:
    """The validated Secrets Manager rotation event. RotationToken is opaque and never logged."""

    step: str
    secret_id: str
    client_request_token: str
    rotation_token: str | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, object]) -> "RotationEvent":
        step = event.get("Step")
        secret_id = event.get("SecretId")
        token = event.get("ClientRequestToken")
        rotation_token = event.get("RotationToken")
        if not isinstance(step, str) or step not in STEP_NAMES:
            raise InvalidRotationEventError(
                f"'Step' must be one of {', '.join(STEP_NAMES)} (camelCase), got {step!r}"
            )
        if not isinstance(secret_id, str) or not secret_id.strip():
            raise InvalidRotationEventError(
                "'SecretId' must be the token secret's ARN or name (a non-empty string)"
            )
        if not isinstance(token, str) or not token.strip():
            raise InvalidRotationEventError(
                "'ClientRequestToken' must be the rotation's version id (a non-empty string)"
            )
        # The value itself stays out of the message: it is opaque and not ours to echo.
        if rotation_token is not None and (
            not isinstance(rotation_token, str) or not rotation_token
        ):
            raise InvalidRotationEventError(
                "'RotationToken' must be the opaque string from the rotation event when present, "
                f"got a value of type {type(rotation_token).__name__}"
            )
        return cls(step, secret_id, token, rotation_token)

    def execution_input(self) -> str:
        """The same text for every attempt, so that a repeated StartExecution of a RUNNING
        execution is idempotent on AWS instead of an ExecutionAlreadyExists."""
        document = {
            "Step": self.step,
            "SecretId": self.secret_id,
            "ClientRequestToken": self.client_request_token,
        }
        if self.rotation_token is not None:
            document["RotationToken"] = self.rotation_token
        return json.dumps(document)


@dataclass(frozen=True)
class EntrySettings:
    """The entry Lambda's environment: which state machine to run and how patiently to wait."""

    state_machine_arn: str
    poll_first_interval_seconds: float = DEFAULT_POLL_FIRST_INTERVAL
    poll_max_interval_seconds: float = DEFAULT_POLL_MAX_INTERVAL
    deadline_margin_seconds: float = DEFAULT_DEADLINE_MARGIN
    max_execution_attempts: int = DEFAULT_MAX_EXECUTION_ATTEMPTS

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> "EntrySettings":
        arn = environment.get("STATE_MACHINE_ARN", "").strip()
        if not arn:
            raise EntrySettingsError(
                "environment variable 'STATE_MACHINE_ARN' is not set: it must be the rotation "
                "state machine's ARN (arn:aws:states:<region>:<account>:stateMachine:<name>)"
            )
        if not _STATE_MACHINE_ARN.fullmatch(arn):
            raise EntrySettingsError(
                "environment variable 'STATE_MACHINE_ARN' must be a state machine ARN "
                f"(arn:aws:states:<region>:<account>:stateMachine:<name>, no version or alias), "
                f"got {arn!r}"
            )
        first = _seconds(environment, "POLL_FIRST_INTERVAL_SECONDS", DEFAULT_POLL_FIRST_INTERVAL)
        maximum = _seconds(environment, "POLL_MAX_INTERVAL_SECONDS", DEFAULT_POLL_MAX_INTERVAL)
        if maximum < first:
            raise EntrySettingsError(
                "environment variable 'POLL_MAX_INTERVAL_SECONDS' must not be below "
                f"POLL_FIRST_INTERVAL_SECONDS ({first:g}), got {maximum:g}"
            )
        margin = _seconds(
            environment, "DEADLINE_MARGIN_SECONDS", DEFAULT_DEADLINE_MARGIN, allow_zero=True
        )
        raw_attempts = environment.get("MAX_EXECUTION_ATTEMPTS", "").strip()
        attempts = DEFAULT_MAX_EXECUTION_ATTEMPTS
        if raw_attempts:
            # isdigit() alone admits digits such as '²' that int() refuses.
            valid = raw_attempts.isascii() and raw_attempts.isdigit()
            attempts = int(raw_attempts) if valid else 0
            if not 1 <= attempts <= MAX_EXECUTION_ATTEMPTS_LIMIT:
                raise EntrySettingsError(
                    "environment variable 'MAX_EXECUTION_ATTEMPTS' must be a whole number from 1 "
                    f"to {MAX_EXECUTION_ATTEMPTS_LIMIT}, got {raw_attempts!r}"
                )
        return cls(arn, first, maximum, margin, attempts)


def _seconds(
    environment: Mapping[str, str], variable: str, default: float, *, allow_zero: bool = False
) -> float:
    raw = environment.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "above 0"
        raise EntrySettingsError(
            f"environment variable {variable!r} must be a number of seconds {bound}, got {raw!r}"
        )
    return value


def execution_name(step: str, client_request_token: str, attempt: int) -> str:
    """Deterministic in (token, step, attempt) so that every invocation of a step finds the
    executions earlier invocations started. Tokens that Step Functions would refuse in a name, or
    that make it too long, are replaced by a digest."""
    name = f"{step}-{client_request_token}-{attempt}"
    if _PLAIN_TOKEN.fullmatch(client_request_token) and len(name) <= MAX_EXECUTION_NAME_LENGTH:
        return name
    digest = hashlib.sha256(client_request_token.encode()).hexdigest()[:HASHED_TOKEN_LENGTH]
    return f"{step}-{digest}-{attempt}"


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN an execution of that name has, known before it exists, so that it can be
    described first and started only when absent."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def next_poll_interval(interval: float, maximum: float) -> float:
    return min(interval * POLL_GROWTH, maximum)


def throttle_backoff(
    interval: float, maximum: float, uniform: Callable[[float, float], float]
) -> float:
    """Full jitter: concurrent waiters that were throttled together spread out again."""
    return uniform(0.0, min(interval * 2, maximum))


@dataclass(frozen=True)
class StepExecutionResult:
    """How the step's execution ended and what waiting for it cost; no secret values."""

    step: str
    execution_arn: str
    status: str
    attempt: int
    started: bool
    describe_calls: int
    throttled_calls: int
    elapsed_seconds: float

    def as_payload(self) -> dict[str, object]:
        return {
            "Step": self.step,
            "ExecutionArn": self.execution_arn,
            "Status": self.status,
            "Attempt": self.attempt,
            "Started": self.started,
            "DescribeCalls": self.describe_calls,
        }


def run_step_execution(
    sfn: "SFNClient",
    settings: EntrySettings,
    event: RotationEvent,
    *,
    remaining_seconds: Callable[[], float],
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    uniform: Callable[[float, float], float] = random.uniform,
) -> StepExecutionResult:
    """Run the event's step to its end in Step Functions. Returns when the execution SUCCEEDED;
    raises otherwise, so that Secrets Manager retries the step."""
    return _Invocation(sfn, settings, event, remaining_seconds, sleep, monotonic, uniform).run()


class _Invocation:
    """The state of one Lambda invocation: its deadline, poll interval and call counts."""

    def __init__(
        self,
        sfn: "SFNClient",
        settings: EntrySettings,
        event: RotationEvent,
        remaining_seconds: Callable[[], float],
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        uniform: Callable[[float, float], float],
    ) -> None:
        self._sfn = sfn
        self._settings = settings
        self._event = event
        self._sleep = sleep
        self._monotonic = monotonic
        self._uniform = uniform
        self._started_at = monotonic()
        self._deadline = self._started_at + remaining_seconds() - settings.deadline_margin_seconds
        self._interval = settings.poll_first_interval_seconds
        self._describe_calls = 0
        self._throttled_calls = 0

    def run(self) -> StepExecutionResult:
        step, token = self._event.step, self._event.client_request_token
        last_failure: DescribeExecutionOutputTypeDef | None = None
        for attempt in range(1, self._settings.max_execution_attempts + 1):
            name = execution_name(step, token, attempt)
            arn = execution_arn(self._settings.state_machine_arn, name)
            description = self._describe(arn, missing_ok=True)
            if description is None:
                if self._start(name, arn):
                    return self._outcome(attempt, self._wait(arn), started=True)
                # A concurrent invocation started this name between our describe and start.
                description = self._describe(arn)
                assert description is not None
            status = description["status"]
            if status == SUCCEEDED:
                logger.info("execution already succeeded", extra={"execution_arn": arn})
                return self._result(attempt, description, started=False)
            if status in RUNNING_STATUSES:
                logger.info("attaching to running execution", extra={"execution_arn": arn})
                return self._outcome(attempt, self._wait(arn), started=False)
            if status not in FAILED_STATUSES:
                return self._outcome(attempt, description, started=False)
            # It ended before this invocation looked: that failure was already reported to
            # Secrets Manager, whose retry this is, so the step gets a fresh attempt.
            logger.info(
                "earlier attempt ended without success; starting the next",
                extra={"execution_arn": arn, "status": status},
            )
            last_failure = description
        assert last_failure is not None
        raise ExecutionAttemptsExhaustedError(
            f"all {self._settings.max_execution_attempts} attempts of {step} for "
            f"{self._event.secret_id!r} have ended without success (MAX_EXECUTION_ATTEMPTS); "
            f"the last, {last_failure['executionArn']}, ended {last_failure['status']} with "
            f"error {last_failure.get('error')!r}: {last_failure.get('cause')!r}"
        )

    def _start(self, name: str, arn: str) -> bool:
        """True when this call started the execution (or, on AWS, found it RUNNING with the same
        input, which is the same thing to us); False when the name is taken."""
        try:
            self._sfn.start_execution(
                stateMachineArn=self._settings.state_machine_arn,
                name=name,
                input=self._event.execution_input(),
            )
        except ClientError as error:
            if _code(error) != "ExecutionAlreadyExists":
                raise
            return False
        logger.info("execution started", extra={"execution_arn": arn})
        return True

    def _wait(self, arn: str) -> "DescribeExecutionOutputTypeDef":
        self._interval = self._settings.poll_first_interval_seconds
        while True:
            self._pause(self._interval, arn)
            description = self._describe(arn)
            assert description is not None
            if description["status"] not in RUNNING_STATUSES:
                return description
            self._interval = next_poll_interval(
                self._interval, self._settings.poll_max_interval_seconds
            )

    def _describe(
        self, arn: str, *, missing_ok: bool = False
    ) -> "DescribeExecutionOutputTypeDef | None":
        while True:
            self._describe_calls += 1
            try:
                return self._sfn.describe_execution(executionArn=arn)
            except ClientError as error:
                code = _code(error)
                if code == "ExecutionDoesNotExist" and missing_ok:
                    return None
                if code not in _THROTTLING_CODES:
                    raise
            self._throttled_calls += 1
            maximum = self._settings.poll_max_interval_seconds
            delay = throttle_backoff(self._interval, maximum, self._uniform)
            self._interval = next_poll_interval(self._interval, maximum)
            logger.warning(
                "DescribeExecution throttled; backing off",
                extra={"execution_arn": arn, "delay_seconds": round(delay, 3)},
            )
            self._pause(delay, arn, throttled=True)

    def _pause(self, seconds: float, arn: str, *, throttled: bool = False) -> None:
        """Sleep, but never into the margin before the Lambda's own timeout."""
        left = self._deadline - self._monotonic()
        if left <= 0:
            state = (
                "may still be running (DescribeExecution was throttled until the deadline)"
                if throttled
                else "is still running"
            )
            raise ExecutionStillRunningError(
                f"the rotation entry Lambda reached its deadline: execution {arn} for "
                f"{self._event.step} of {self._event.secret_id!r} {state}; Secrets Manager will "
                "retry and the retry attaches to it",
                arn,
            )
        self._sleep(min(seconds, left))

    def _outcome(
        self, attempt: int, description: "DescribeExecutionOutputTypeDef", *, started: bool
    ) -> StepExecutionResult:
        status = description["status"]
        if status == SUCCEEDED:
            return self._result(attempt, description, started=started)
        arn = description["executionArn"]
        error, cause = description.get("error"), description.get("cause")
        raise StepExecutionFailedError(
            f"{self._event.step} of {self._event.secret_id!r} failed: execution {arn} ended "
            f"{status} with error {error!r}, cause {cause!r}",
            arn,
            status,
            error,
            cause,
        )

    def _result(
        self, attempt: int, description: "DescribeExecutionOutputTypeDef", *, started: bool
    ) -> StepExecutionResult:
        return StepExecutionResult(
            step=self._event.step,
            execution_arn=description["executionArn"],
            status=description["status"],
            attempt=attempt,
            started=started,
            describe_calls=self._describe_calls,
            throttled_calls=self._throttled_calls,
            elapsed_seconds=self._monotonic() - self._started_at,
        )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
