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

from rotation_core.aws_errors import error_code
from rotation_core.errors import InvalidRequestError
from rotation_core.rotation_request import RotationRequest
from rotation_core.steps import Step

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.type_defs import DescribeExecutionOutputTypeDef

logger = logging.getLogger(__name__)

MAX_EXECUTION_NAME_LENGTH: Final = 80
SUCCEEDED: Final = "SUCCEEDED"
RUNNING_STATUSES: Final = frozenset({"RUNNING", "PENDING_REDRIVE"})
FAILED_STATUSES: Final = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
DEFAULT_POLL_FIRST_INTERVAL: Final = 0.5
DEFAULT_POLL_MAX_INTERVAL: Final = 5.0
DEFAULT_DEADLINE_MARGIN: Final = 10.0
POLL_GROWTH: Final = 1.5
HASHED_TOKEN_LENGTH: Final = 40
# botocore's standard retry mode already retries throttling a few times; this is the slower,
# jittered layer on top that keeps a waiting Lambda under DescribeExecution's low quota.
_THROTTLING_CODES: Final = frozenset({"ThrottlingException"})
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_STATE_MACHINE_ARN = re.compile(r"arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[^:\s]+")


class RotationEntryError(Exception):
    """Base of the errors the entry Lambda raises to Secrets Manager; none holds secret values."""


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


def execution_input(request: RotationRequest) -> str:
    """The same text for every attempt, so that a repeated StartExecution of a RUNNING execution
    is idempotent on AWS instead of an ExecutionAlreadyExists."""
    document = {
        "Step": request.step,
        "SecretId": request.secret_id,
        "ClientRequestToken": request.token,
    }
    if request.rotation_token is not None:
        document["RotationToken"] = request.rotation_token
    return json.dumps(document)


@dataclass(frozen=True)
class EntrySettings:
    """The entry Lambda's environment: which state machine to run and how patiently to wait."""

    state_machine_arn: str
    poll_first_interval_seconds: float = DEFAULT_POLL_FIRST_INTERVAL
    poll_max_interval_seconds: float = DEFAULT_POLL_MAX_INTERVAL
    deadline_margin_seconds: float = DEFAULT_DEADLINE_MARGIN

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
        return cls(arn, first, maximum, margin)


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
    """The ARN an execution of that name has, known before it exists, so that any attempt can be
    described (and waited on) whether this invocation started it or not."""
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
    """How the step's execution ended and what waiting for it cost; no secret values. `started`:
    this invocation's StartExecution answered with the execution, which it started or which was
    already running with the same input (StartExecution's answer cannot tell them apart)."""

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
    request: RotationRequest,
    *,
    remaining_seconds: Callable[[], float],
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    uniform: Callable[[float, float], float] = random.uniform,
) -> StepExecutionResult:
    """Run the request's step to its end in Step Functions. Returns when the execution SUCCEEDED;
    raises otherwise, so that Secrets Manager retries the step."""
    if request.step is None:
        raise InvalidRequestError(
            "the entry Lambda runs one step of a Secrets Manager rotation: the request must name "
            "its 'Step'"
        )
    return _Invocation(
        sfn, settings, request, request.step, remaining_seconds, sleep, monotonic, uniform
    ).run()


class _Invocation:
    """The state of one Lambda invocation: its deadline, poll interval and call counts."""

    def __init__(
        self,
        sfn: "SFNClient",
        settings: EntrySettings,
        request: RotationRequest,
        step: Step,
        remaining_seconds: Callable[[], float],
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        uniform: Callable[[float, float], float],
    ) -> None:
        self._sfn = sfn
        self._settings = settings
        self._request = request
        self._step = step
        self._sleep = sleep
        self._monotonic = monotonic
        self._uniform = uniform
        self._started_at = monotonic()
        self._deadline = self._started_at + remaining_seconds() - settings.deadline_margin_seconds
        self._interval = settings.poll_first_interval_seconds
        self._describe_calls = 0
        self._throttled_calls = 0

    def run(self) -> StepExecutionResult:
        # Most invocations are a step's first: starting attempt 1 before any search answers them
        # without a DescribeExecution, the call whose quota binds first. A repeated invocation
        # while attempt 1 runs with the same input gets the same answer (StartExecution is
        # idempotent then) and waits on it, which is attaching.
        attempt = 1
        if self._start(attempt):
            return self._outcome(attempt, self._wait(self._arn(attempt)), started=True)
        # Attempt 1 has closed, or runs with another input: go on from the newest attempt.
        attempt, description = self._newest_attempt()
        while True:
            if description is not None:
                arn, status = description["executionArn"], description["status"]
                if status == SUCCEEDED:
                    logger.info("execution already succeeded", extra={"execution_arn": arn})
                    return self._result(attempt, description, started=False)
                if status in RUNNING_STATUSES:
                    logger.info("attaching to running execution", extra={"execution_arn": arn})
                    return self._outcome(attempt, self._wait(arn), started=False)
                if status not in FAILED_STATUSES:
                    # A status this code does not know may not be an end: starting another
                    # attempt beside it could run the step twice, so it is reported instead.
                    return self._outcome(attempt, description, started=False)
                # It ended before this invocation looked: that failure was already reported to
                # Secrets Manager, whose retry this is, so the step gets a fresh attempt.
                logger.info(
                    "earlier attempt ended without success; starting the next",
                    extra={"execution_arn": arn, "status": status},
                )
            attempt += 1
            if self._start(attempt):
                return self._outcome(attempt, self._wait(self._arn(attempt)), started=True)
            # A concurrent invocation started this attempt after our search: go on from its state.
            description = self._describe(self._arn(attempt))

    def _newest_attempt(self) -> "tuple[int, DescribeExecutionOutputTypeDef | None]":
        """The highest attempt that exists, with its description; (0, None) when none does.
        Attempts are contiguous (k + 1 is only started once k was seen ended), so probing 1, 2,
        4, ... and then bisecting finds it in O(log n) describes, however many have failed."""
        found, newest = 0, None
        missing = 1
        while (description := self._find(self._arn(missing))) is not None:
            found, newest = missing, description
            missing *= 2
        # Now `found` exists (or is 0) and `missing` does not; the newest lies in between.
        while missing - found > 1:
            middle = (found + missing) // 2
            description = self._find(self._arn(middle))
            if description is None:
                missing = middle
            else:
                found, newest = middle, description
        return found, newest

    def _name(self, attempt: int) -> str:
        return execution_name(self._step, self._request.token, attempt)

    def _arn(self, attempt: int) -> str:
        return execution_arn(self._settings.state_machine_arn, self._name(attempt))

    def _start(self, attempt: int) -> bool:
        """True when StartExecution answered with the attempt's execution: this call started it,
        or it was already RUNNING with the same input (AWS answers both alike); False when the
        name is taken by a closed execution or one with another input."""
        arn = self._arn(attempt)
        try:
            self._sfn.start_execution(
                stateMachineArn=self._settings.state_machine_arn,
                name=self._name(attempt),
                input=execution_input(self._request),
            )
        except ClientError as error:
            if error_code(error) != "ExecutionAlreadyExists":
                raise
            return False
        logger.info(
            "execution started, or already running with this input", extra={"execution_arn": arn}
        )
        return True

    def _wait(self, arn: str) -> "DescribeExecutionOutputTypeDef":
        self._interval = self._settings.poll_first_interval_seconds
        while True:
            self._pause(self._interval, arn)
            description = self._describe(arn)
            if description["status"] not in RUNNING_STATUSES:
                return description
            self._interval = next_poll_interval(
                self._interval, self._settings.poll_max_interval_seconds
            )

    def _find(self, arn: str) -> "DescribeExecutionOutputTypeDef | None":
        try:
            return self._describe(arn)
        except ClientError as error:
            if error_code(error) == "ExecutionDoesNotExist":
                return None
            raise

    def _describe(self, arn: str) -> "DescribeExecutionOutputTypeDef":
        while True:
            self._describe_calls += 1
            try:
                return self._sfn.describe_execution(executionArn=arn)
            except ClientError as error:
                if error_code(error) not in _THROTTLING_CODES:
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
                f"{self._step} of {self._request.secret_id!r} {state}; Secrets Manager will "
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
            f"{self._step} of {self._request.secret_id!r} failed: execution {arn} ended "
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
            step=self._step.value,
            execution_arn=description["executionArn"],
            status=description["status"],
            attempt=attempt,
            started=started,
            describe_calls=self._describe_calls,
            throttled_calls=self._throttled_calls,
            elapsed_seconds=self._monotonic() - self._started_at,
        )
