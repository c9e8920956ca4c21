"""Where moto differs from AWS in ways that matter here, corrected in one place (one patch each).

Every correction names the AWS behaviour it restores; tests/localcloud/test_*fidelity*.py show
each. Patches are process-wide and idempotent: one local cloud per process.

Every moto attribute a correction replaces is a `PatchTarget` in `PATCH_TARGETS`. `apply()`
checks them all against the installed moto before it patches anything (a method: the parameters
it takes; a module attribute: which module it is; an instance attribute: that it still is one
and that moto's methods still read or set it) and raises `MotoChangedError`, naming the moto
version and the attribute, when one no longer matches: an upgrade that moves them fails loudly
instead of silently leaving moto uncorrected.

Corrected:
- Lambda runs the function's code (`CORRECTIONS.dispatch`) and reports a handler error as
  FunctionError "Unhandled" with errorType/errorMessage (moto without Docker echoes the payload).
- RotateSecret stops at the first failing step and leaves AWSPENDING for the retry; the call
  itself succeeds and names the new version (moto went on to the next step regardless).
- GetSecretValue (and BatchGetSecretValue) without VersionId or VersionStage, as applications,
  the AWS CLI and every SDK call it, returns the version AWSCURRENT is on. moto kept a default
  version of its own, which UpdateSecretVersionStage never moved (after a promotion by the state
  machine a default read returned AWSPREVIOUS) and RotateSecret moved to the new version once
  every step returned, promoted or not. moto's default version now is the AWSCURRENT version,
  so a default read, DescribeSecret and ListSecretVersionIds agree; RotateSecret still names the
  new version.
- A new version that takes AWSCURRENT (PutSecretValue with the default stages, or naming
  AWSCURRENT) moves the label from the version holding it and AWSPREVIOUS to that version, and
  takes every other label it names from the versions holding them; other labels stay where
  they are. moto relabelled only its own default version: after a promotion by
  UpdateSecretVersionStage two versions held AWSCURRENT, and a custom label could be on two.
- RotateSecret refuses while AWSPENDING is on a version that is not AWSCURRENT, and treats
  AWSPENDING on the AWSCURRENT version as a finished rotation (moto's check was inverted). As
  its refusal says ("That rotation will be reattempted"), it then runs that unfinished rotation
  again with its ClientRequestToken (here before answering; AWS in the background).
- RotateSecret without RotationLambdaARN rotates with the configured function (moto forgot it
  and promoted the new, empty version straight to AWSCURRENT).
- RotateSecret with RotationRules switches rotation on whatever the rules' form (moto did so
  for AutomaticallyAfterDays only: with a ScheduleExpression, as `aws secretsmanager
  rotate-secret --rotation-rules ScheduleExpression=...` sends, the steps found rotation off and
  refused with RotationNotEnabledError).
- RotationRules are kept as given and DescribeSecret and ListSecrets show them (moto showed
  {"AutomaticallyAfterDays": 0} for a ScheduleExpression); a RotateSecret without rules keeps
  them. Rules AWS refuses are refused with InvalidParameterException before anything changes:
  a rate() more often than every 4 hours or longer than 999 days, a rate() in other units, an
  expression that is neither rate() nor cron(), and AutomaticallyAfterDays together with a
  ScheduleExpression (moto accepted them all).
- rotation events name the secret by ARN and carry a RotationToken (moto: name, no token).
- `configure_rotation` is what AWS::SecretsManager::RotationSchedule leaves: rotation
  enabled with the function's ARN and its rules, nothing rotated yet (moto drops a
  ScheduleExpression and shows rotation disabled). `begin_rotation` makes the empty AWSPENDING
  version Secrets Manager creates before createSecret (no API does that).
- RotateSecret(RotateImmediately=false) runs testSecret alone on an AWSPENDING version with no
  value and then removes that label whatever the outcome (moto copied the current value into
  the version and left the label, which locked the secret).
- PutSecretValue on a pending version holding a different value raises ResourceExistsException;
  the same value again is a no-op (moto overwrote it).
- ListSecretVersionIds dates each version by its creation (moto answered the time of the call
  for every version, so a rotation never looked older than a second) and leaves NextToken out of
  its last page (moto sent an empty one).
- StartExecution without a name names the execution with a UUID, as AWS does, so an unnamed
  start (`aws stepfunctions start-execution --state-machine-arn X --input ...`) works any
  number of times (moto's executing backend named it "None": its ARN ended in ":None" and the
  second unnamed start failed with ExecutionAlreadyExists).
- StartExecution refuses an input of more than 262,144 bytes of UTF-8 with InvalidExecutionInput
  and starts nothing (moto accepted any size).
- Retry waits in moto's ASL interpreter go through a clock that records them in
  `CORRECTIONS.retry_waits` and sleeps them only when `CORRECTIONS.sleep_retries` is set; else,
  with `CORRECTIONS.retry_clock` (the soak's), they pass on that simulated clock instead, as the
  wait would pass in AWS (a new key's NewKeyNotYetAccepted retry waits for Google to accept it).
- Secrets Manager dates what it stores (a version's CreatedDate, LastChangedDate,
  LastRotatedDate) on the local cloud's simulated clock (`CORRECTIONS.clock`), the one the
  Lambda handlers compare them with (moto stamped real time: once the clock had moved, a version
  made a second ago looked as old as the jump, and a new key's rotation was abandoned at once).
- SNS Publish refuses a Subject that is not ASCII, holds a line break or another control
  character, or is longer than 100 characters, with InvalidParameter (moto checked the length
  only, so an e-mail notice AWS would refuse went out locally).
- A failed aws-sdk task (`arn:aws:states:::aws-sdk:<service>:<action>`) raises the error
  `<Service>.<ErrorCode>`, `Exception` appended unless the code ends with it, the service in
  PascalCase as the SDKs name it: `Scheduler.ResourceNotFoundException`,
  `SecretsManager.ResourceNotFoundException`, `Sns.NotFoundException` (SNS's code NotFound).
  moto named the service by its lower-case ARN name (`scheduler.ResourceNotFoundException`),
  so a Retry or Catch written for AWS never matched.
- UpdateSchedule replaces the whole schedule, as AWS does: it sets ActionAfterCompletion as
  asked, and a State or ActionAfterCompletion left out is ENABLED or NONE (moto ignored
  ActionAfterCompletion, keeping CreateSchedule's, and left State empty, which no API shows).
- CreateSchedule in a schedule group that does not exist (deleted, say) answers
  ResourceNotFoundException "Schedule group <name> does not exist.", as UpdateSchedule and
  GetSchedule already did (moto failed with a KeyError: HTTP 500).

Not a correction, for speed alone:
- an execution's program is parsed once per definition and kept (moto's interpreter parsed the
  whole definition again for every StartExecution, about 0.1 s of CPU each, which a rotation
  pays four times). The parsed program holds no state of an execution (that is in its
  Environment), so executions may share it.

Not corrected (worked around where it matters):
- RotateSecret runs the whole rotation inside the API call (AWS: in the background), so
  callers need a long read timeout and no botocore retries (LocalCloud.client).
- schedules never fire in moto: localcloud.scheduler fires due EventBridge Scheduler at() and
  rate() schedules and rotation schedules on the simulated clock (localcloud.clock) when a test,
  the soak or `localcloud up` asks it to; it fires the rotation schedules a deploy made, not rules
  a later RotateSecret set.
- cron() schedules are kept as given but not checked (AWS refuses one more often than every 4
  hours); nor is RotationRules.Duration checked against the schedule.
- moto keeps real time outside Secrets Manager: what it records (execution and metric times,
  schedules' CreationDate) does not follow the simulated clock that the Lambda workers and Google
  see.
- RotateSecret on a secret with no rotation function configured or given promotes a new, empty
  version to AWSCURRENT (AWS refuses the call).
- PutSecretValue accepts a RotationToken and does not check it.
- DescribeSecret and ListSecretVersionIds also list versions that hold no label (AWS leaves
  these deprecated versions out, ListSecretVersionIds unless IncludeDeprecated is set), and
  ListSecretVersionIds answers the secret's name as its ARN.
- moto's CloudFormation deploys nothing; localcloud.cloud deploys template.yaml through the
  APIs, then records the stack there (parameters and resolved outputs, no resources) so that
  DescribeStacks answers as CloudFormation would.
- no IAM or Lambda resource-policy checks.
"""

import functools
import inspect
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final

import botocore.session
import moto
from botocore.exceptions import ClientError
from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.backends import get_backend
from moto.scheduler.models import EventBridgeSchedulerBackend
from moto.scheduler.responses import EventBridgeSchedulerResponse
from moto.secretsmanager import models as secretsmanager_models
from moto.secretsmanager.exceptions import (
    InvalidParameterException,
    InvalidRequestException,
    ResourceExistsException,
)
from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend
from moto.sns.exceptions import SNSInvalidParameter
from moto.sns.models import SNSBackend
from moto.stepfunctions.exceptions import InvalidExecutionInput
from moto.stepfunctions.models import StepFunctionBackend
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk,
)
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from localcloud.clock import SimulatedClock
from localcloud.deployment import CURRENT, PENDING, PREVIOUS

SNS_SUBJECT_LIMIT = 100
EXECUTION_INPUT_LIMIT_BYTES: Final = 262_144
"""StartExecution's input: at most this many bytes of UTF-8 (botocore's model and the API
reference; the model's limit is not enforced by botocore)."""
VERIFIED_MOTO_VERSION: Final = "5.2.5"
"""The moto these corrections were written against (the project pins it)."""

LambdaDispatcher = Callable[[LambdaFunction, Any], tuple[bytes, str | None]]
"""Runs a function's real handler on a payload: (response body, errorType or None)."""


@dataclass
class Corrections:
    """The state the patches share: who runs Lambda code, and the recorded retry waits."""

    dispatch: LambdaDispatcher | None = None
    retry_waits: list[float] = field(default_factory=list)
    sleep_retries: bool = True
    retry_clock: SimulatedClock | None = None
    """Where Retry waits pass when they are not slept (None: they take no time at all)."""
    clock: SimulatedClock | None = None
    """The running local cloud's clock, which Secrets Manager dates on (None: real time)."""
    rotations: threading.local = field(default_factory=threading.local)


CORRECTIONS = Corrections()


class MotoChangedError(RuntimeError):
    """The installed moto no longer has an attribute a correction replaces, as that correction
    expects it: a moto upgrade moved or changed it, and the correction would silently miss."""


class _Absent:
    """What a class holds for an attribute its instances set themselves."""

    def __repr__(self) -> str:
        return "missing"


_ABSENT: Final = _Absent()


@dataclass(frozen=True)
class PatchTarget:
    """One moto attribute a correction replaces, and what moto's own must be for the replacement
    to stand in for it: a method taking `parameters`; a module attribute that is the module
    named `module`; or an instance attribute (no class attribute) that moto's methods `used_by`
    read or set."""

    owner: type | ModuleType
    attribute: str
    parameters: tuple[str, ...] | None = None
    module: str | None = None
    used_by: tuple[tuple[type, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{_qualified_name(self.owner)}.{self.attribute}"

    def resolve(self) -> Any:
        """The attribute as the owner holds it now (inherited ones too), descriptors unbound."""
        return inspect.getattr_static(self.owner, self.attribute, _ABSENT)

    def check(self, found: Any) -> None:
        """Raises MotoChangedError unless `found` (moto's attribute) is what the correction
        replaces."""
        if self.parameters is not None:
            if not inspect.isfunction(found):
                self._changed(f"is {found!r}, not a function")
            taking = tuple(inspect.signature(found).parameters)
            if taking != self.parameters:
                self._changed(f"takes {taking}, not {self.parameters}")
        elif self.module is not None:
            if not (inspect.ismodule(found) and found.__name__ == self.module):
                self._changed(f"is {found!r}, not the module {self.module}")
        else:
            if found is not _ABSENT:
                self._changed(f"is a class attribute ({found!r}), no longer set by instances")
            for owner, method in self.used_by:
                user = inspect.getattr_static(owner, method, _ABSENT)
                code = getattr(user, "__code__", None)
                if code is None or self.attribute not in code.co_names:
                    self._changed(f"is no longer used by {_qualified_name(owner)}.{method}")

    def _changed(self, problem: str) -> None:
        raise MotoChangedError(
            f"localcloud.fidelity cannot correct moto {moto.__version__} (written against moto "
            f"{VERIFIED_MOTO_VERSION}): {self.name} {problem}. Check the difference its "
            "correction restores (localcloud/fidelity.py) against this moto, or pin moto back."
        )


_LAMBDA_INVOKE = PatchTarget(
    LambdaFunction, "invoke", ("self", "body", "request_headers", "response_headers")
)
_LAMBDA_BACKEND_INVOKE = PatchTarget(
    LambdaBackend,
    "invoke",
    ("self", "function_name", "qualifier", "body", "headers", "response_headers"),
)
_ROTATE_SECRET = PatchTarget(
    SecretsManagerBackend,
    "rotate_secret",
    (
        "self",
        "secret_id",
        "client_request_token",
        "rotation_lambda_arn",
        "rotation_rules",
        "rotate_immediately",
    ),
)
_CHECK_VERSIONS = PatchTarget(
    SecretsManagerBackend,
    "_check_with_existing_secrets_and_versions",
    ("self", "secret_name", "client_request_token", "secret_string", "secret_binary", "on_create"),
)
_DEFAULT_VERSION = PatchTarget(
    FakeSecret,
    "default_version_id",
    used_by=(
        (SecretsManagerBackend, "get_secret_value"),
        (FakeSecret, "to_short_dict"),
        (FakeSecret, "set_default_version_id"),
    ),
)
_LIST_VERSIONS = PatchTarget(
    SecretsManagerBackend, "list_secret_version_ids", ("self", "secret_id")
)
_MAKE_CURRENT = PatchTarget(
    FakeSecret, "reset_default_version", ("self", "secret_version", "version_id")
)
_SECRET_DESCRIPTION = PatchTarget(FakeSecret, "to_dict", ("self",))
_START_EXECUTION = PatchTarget(
    StepFunctionBackend, "start_execution", ("self", "state_machine_arn", "name", "execution_input")
)
_START_EXECUTION_EXECUTING = PatchTarget(
    StepFunctionsParserBackend,
    "start_execution",
    ("self", "state_machine_arn", "name", "execution_input", "trace_header"),
)
_RETRY_TIME = PatchTarget(retrier_decl, "time", module="time")
_SECRETS_TIME = PatchTarget(secretsmanager_models, "time", module="time")
_SNS_PUBLISH = PatchTarget(
    SNSBackend,
    "publish",
    (
        "self",
        "message",
        "arn",
        "phone_number",
        "subject",
        "message_attributes",
        "group_id",
        "deduplication_id",
        "message_structure",
    ),
)
_AWS_SDK_TASK_ERROR = PatchTarget(
    state_task_service_aws_sdk.StateTaskServiceAwsSdk, "_from_error", ("self", "env", "ex")
)
_UPDATE_SCHEDULE = PatchTarget(EventBridgeSchedulerResponse, "update_schedule", ("self",))
_CREATE_SCHEDULE = PatchTarget(
    EventBridgeSchedulerBackend,
    "create_schedule",
    (
        "self",
        "description",
        "end_date",
        "flexible_time_window",
        "group_name",
        "kms_key_arn",
        "name",
        "schedule_expression",
        "schedule_expression_timezone",
        "start_date",
        "state",
        "target",
        "action_after_completion",
    ),
)
_EXECUTION_PROGRAM = PatchTarget(ExecutionWorker, "_get_evaluation_entrypoint", ("self",))

PATCH_TARGETS: Final = (
    _LAMBDA_INVOKE,
    _LAMBDA_BACKEND_INVOKE,
    _ROTATE_SECRET,
    _CHECK_VERSIONS,
    _DEFAULT_VERSION,
    _LIST_VERSIONS,
    _MAKE_CURRENT,
    _SECRET_DESCRIPTION,
    _START_EXECUTION,
    _START_EXECUTION_EXECUTING,
    _RETRY_TIME,
    _SECRETS_TIME,
    _SNS_PUBLISH,
    _AWS_SDK_TASK_ERROR,
    _UPDATE_SCHEDULE,
    _CREATE_SCHEDULE,
    _EXECUTION_PROGRAM,
)
"""Every moto attribute `apply()` replaces."""

_CHECKED: set[PatchTarget] = set()
_ORIGINALS: dict[PatchTarget, Any] = {}


class _RotationStepFailedError(Exception):
    """Stops moto's rotation loop at the first failing step, as AWS stops the rotation."""


def check_moto(targets: tuple[PatchTarget, ...] = PATCH_TARGETS) -> tuple[PatchTarget, ...]:
    """Checks every target against the moto installed (before it is patched): the targets, or
    MotoChangedError naming the first that no longer matches."""
    for target in targets:
        target.check(target.resolve())
        _CHECKED.add(target)
    return targets


def patched_targets() -> dict[PatchTarget, Any]:
    """What `apply()` replaced: each target with moto's own attribute."""
    return dict(_ORIGINALS)


def apply() -> Corrections:
    if _ORIGINALS:
        return CORRECTIONS
    # All checked before anything is patched: a changed moto is left untouched, not half patched.
    check_moto()
    _patch(_LAMBDA_INVOKE, _invoke_real_handler)
    _patch(_LAMBDA_BACKEND_INVOKE, _invoke_within_rotation)
    _patch(_ROTATE_SECRET, _rotate_secret_as_aws)
    _patch(_CHECK_VERSIONS, _refuse_rewriting_pending)
    _patch(_DEFAULT_VERSION, property(_current_version_id, _ignore_default_version))
    _patch(_LIST_VERSIONS, _list_versions_with_their_dates)
    _patch(_MAKE_CURRENT, _make_current)
    _patch(_SECRET_DESCRIPTION, _description_with_rules_as_given)
    _patch(_START_EXECUTION, _start_execution_as_aws(_START_EXECUTION))
    _patch(_START_EXECUTION_EXECUTING, _start_execution_as_aws(_START_EXECUTION_EXECUTING))
    _patch(_RETRY_TIME, _RetryClock())
    _patch(_SECRETS_TIME, _SecretsClock())
    _patch(_SNS_PUBLISH, _publish_with_a_valid_subject)
    _patch(_AWS_SDK_TASK_ERROR, _aws_sdk_task_error)
    _patch(_UPDATE_SCHEDULE, _update_whole_schedule)
    _patch(_CREATE_SCHEDULE, _create_schedule_in_an_existing_group)
    _patch(_EXECUTION_PROGRAM, _program_parsed_once)
    return CORRECTIONS


def _patch(target: PatchTarget, replacement: object) -> None:
    if target not in _CHECKED:
        raise RuntimeError(f"{target.name} would be patched unchecked: add it to PATCH_TARGETS")
    _ORIGINALS[target] = target.resolve()
    setattr(target.owner, target.attribute, replacement)


def _original(target: PatchTarget) -> Any:
    return _ORIGINALS[target]


@functools.lru_cache(maxsize=32)
def parsed_program(definition: str) -> EvalComponent:
    """The program of a state machine definition, parsed on its first execution."""
    program: EvalComponent = AmazonStateLanguageParser.parse(definition)[0]
    return program


def _program_parsed_once(self: ExecutionWorker) -> EvalComponent:
    return parsed_program(self._evaluation_details.state_machine_details.definition)


def _qualified_name(owner: type | ModuleType) -> str:
    if isinstance(owner, ModuleType):
        return owner.__name__
    return f"{owner.__module__}.{owner.__qualname__}"


def configure_rotation(
    backend: SecretsManagerBackend,
    secret_id: str,
    rotation_lambda_arn: str,
    rotation_rules: Mapping[str, object] | None = None,
) -> None:
    """AWS::SecretsManager::RotationSchedule: rotation switched on with a schedule. moto accepts
    a ScheduleExpression and drops it (rotation shows disabled), and RotateSecret would rotate at
    once; this only records the configuration, as a schedule does. Rules AWS refuses raise
    InvalidParameterException, as the resource's RotateSecret would fail."""
    secret = backend.secrets[secret_id]
    assert isinstance(secret, FakeSecret)
    if rotation_rules:
        _check_rotation_rules(rotation_rules)
        _keep_rotation_rules(secret, rotation_rules)
    secret.rotation_lambda_arn = rotation_lambda_arn
    secret.rotation_enabled = True
    secret.rotation_requested = True


def begin_rotation(backend: SecretsManagerBackend, secret_id: str, token: str) -> None:
    """What Secrets Manager does before it calls createSecret: an AWSPENDING version with no
    value yet (no API makes one; RotateSecret would go on to call the rotation function)."""
    secret = backend.secrets[secret_id]
    assert isinstance(secret, FakeSecret)
    secret.remove_version_stages_from_old_versions([PENDING])
    secret.versions[token] = {
        "createdate": int(time.time()),
        "version_id": token,
        "version_stages": [PENDING],
    }


def _invoke_real_handler(
    self: LambdaFunction, body: str, _request_headers: Any, response_headers: Any
) -> str | bytes:
    """Lambda runs the function's code (moto without Docker cannot) and reports a handler error
    as FunctionError "Unhandled" with errorType/errorMessage, so Retry/Catch can match it."""
    if CORRECTIONS.dispatch is None:
        raise RuntimeError("no local Lambda runtime is attached to moto")
    payload = json.loads(body) if body else {}
    response, error_type = CORRECTIONS.dispatch(self, payload)
    if error_type is not None:
        response_headers["x-amz-function-error"] = "Unhandled"
    return response


def _invoke_within_rotation(
    self: LambdaBackend,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> str | bytes | None:
    rotation: _Rotation | None = getattr(CORRECTIONS.rotations, "current", None)
    if rotation is not None:
        body = rotation.event(body)
    result: str | bytes | None = _original(_LAMBDA_BACKEND_INVOKE)(
        self, function_name, qualifier, body, headers, response_headers
    )
    if rotation is not None and response_headers.get("x-amz-function-error"):
        raise _RotationStepFailedError(json.loads(body)["Step"])
    return result


@dataclass
class _Rotation:
    """One RotateSecret call as AWS makes it: the event names the secret by ARN and carries a
    RotationToken (moto sends the name and no token)."""

    arn: str
    rotation_token: str = field(default_factory=lambda: f"{uuid.uuid4()}-{uuid.uuid4()}")
    version_id: str | None = None
    """The new version, as the first event named it."""

    def event(self, body: str) -> str:
        event = json.loads(body)
        event.update(SecretId=self.arn, RotationToken=self.rotation_token)
        self.version_id = event.get("ClientRequestToken")
        return json.dumps(event)


def _rotate_secret_as_aws(
    self: SecretsManagerBackend,
    secret_id: str,
    client_request_token: str | None = None,
    rotation_lambda_arn: str | None = None,
    rotation_rules: dict[str, Any] | None = None,
    rotate_immediately: bool = True,
) -> str:
    """RotateSecret as AWS does it: refuses while another rotation's AWSPENDING is on a version that
    is not AWSCURRENT (moto checks the opposite); treats AWSPENDING left on the current version as
    finished; keeps the configured rotation function when none is given (moto forgets it); stops
    at the first failing step and leaves AWSPENDING for the retry (moto goes on regardless)."""
    if rotation_rules:
        _check_rotation_rules(rotation_rules)
    secret = self.secrets.get(secret_id)
    if isinstance(secret, FakeSecret):
        for version_id, version in list(secret.versions.items()):
            stages = version["version_stages"]
            if PENDING in stages and CURRENT not in stages:
                _reattempt(self, secret, version_id)
                raise InvalidRequestException(
                    f"A previous rotation isn't complete. That rotation will be reattempted. "
                    f"(version {version_id} holds AWSPENDING)"
                )
            if PENDING in stages:
                stages.remove(PENDING)
        rotation_lambda_arn = rotation_lambda_arn or secret.rotation_lambda_arn or None
        if rotation_rules:
            # Before the steps run: each one checks DescribeSecret's RotationEnabled first.
            secret.rotation_enabled = True
            _keep_rotation_rules(secret, rotation_rules)
    if not rotate_immediately and isinstance(secret, FakeSecret):
        return _test_rotation_configuration(
            self, secret, client_request_token, rotation_lambda_arn, rotation_rules
        )
    rotation = _Rotation(arn=secret.arn if secret is not None else secret_id)
    CORRECTIONS.rotations.current = rotation
    try:
        response: str = _original(_ROTATE_SECRET)(
            self,
            secret_id,
            client_request_token,
            rotation_lambda_arn,
            rotation_rules,
            rotate_immediately,
        )
    except _RotationStepFailedError:
        # AWS answers RotateSecret before the rotation runs, so the caller sees success; the
        # failed step leaves AWSPENDING where it is and Secrets Manager retries later.
        response = ""
    finally:
        CORRECTIONS.rotations.current = None
    if isinstance(secret, FakeSecret) and rotation.version_id is not None:
        # The answer names the new version, promoted or not, also when the caller sent no
        # ClientRequestToken (moto made one); moto's names its default, the AWSCURRENT version.
        return secret.to_short_dict(version_id=rotation.version_id)
    return response


STEP_EVENTS: Final = ("createSecret", "setSecret", "testSecret", "finishSecret")
_RATE: Final = re.compile(r"rate\((?P<count>[0-9]+) (?P<unit>hours?|days?)\)")
SHORTEST_ROTATION_HOURS: Final = 4
"""Secrets Manager rotates a secret at most every four hours (its user guide, "Rotation
schedules", and the RotationRulesType reference)."""
LONGEST_ROTATION_DAYS: Final = 999
"""The longest rotation period the user guide ("Rotation schedules") allows."""
_ROTATION_RULES_ATTRIBUTE: Final = "_localcloud_rotation_rules"


def rate_hours(expression: str) -> int | None:
    """The interval of a Secrets Manager rate() expression, rate(<value> hour|hours|day|days),
    in hours; None for anything else."""
    rate = _RATE.fullmatch(expression.strip())
    if rate is None:
        return None
    return int(rate["count"]) * (1 if rate["unit"].startswith("hour") else 24)


def _check_rotation_rules(rules: Mapping[str, object]) -> None:
    """Raises InvalidParameterException for RotationRules Secrets Manager refuses. The code is
    RotateSecret's for invalid parameters; the first message is AWS's own (quoted in
    hashicorp/terraform-provider-aws#33329), the others are ours: AWS's wording is unverified."""
    expression = rules.get("ScheduleExpression")
    if expression is None:
        return
    if "AutomaticallyAfterDays" in rules:
        raise InvalidParameterException(
            "You cannot specify both rotation frequency and schedule expression together."
        )
    text = str(expression).strip()
    if text.startswith("cron(") and text.endswith(")"):
        return
    hours = rate_hours(text)
    if hours is None:
        raise InvalidParameterException(
            f"Invalid ScheduleExpression {expression!r}: use rate(<value> hours|days) or "
            "cron(<minutes> <hours> <day-of-month> <month> <day-of-week> <year>)."
        )
    if not SHORTEST_ROTATION_HOURS <= hours <= LONGEST_ROTATION_DAYS * 24:
        raise InvalidParameterException(
            f"Invalid ScheduleExpression {expression!r}: Secrets Manager rotates a secret at "
            f"most every {SHORTEST_ROTATION_HOURS} hours and at least every "
            f"{LONGEST_ROTATION_DAYS} days."
        )


def _keep_rotation_rules(secret: FakeSecret, rules: Mapping[str, object]) -> None:
    setattr(secret, _ROTATION_RULES_ATTRIBUTE, dict(rules))


def _description_with_rules_as_given(self: FakeSecret) -> dict[str, Any]:
    """DescribeSecret and ListSecrets show RotationRules as RotateSecret or the rotation
    schedule gave them; moto showed {"AutomaticallyAfterDays": 0} for a ScheduleExpression.
    (AWS also computes AutomaticallyAfterDays from a schedule after each rotation: unverified
    for which schedules, so it is not added.)"""
    description: dict[str, Any] = _original(_SECRET_DESCRIPTION)(self)
    rules = getattr(self, _ROTATION_RULES_ATTRIBUTE, None)
    if rules is not None and "RotationRules" in description:
        description["RotationRules"] = dict(rules)
    return description


def _reattempt(backend: SecretsManagerBackend, secret: FakeSecret, version_id: str) -> None:
    """What the refusal's message promises: Secrets Manager runs the unfinished rotation again,
    every step with its ClientRequestToken, until one fails (AWS: in the background; here before
    the refusal is answered)."""
    if not secret.rotation_lambda_arn:
        return
    lambda_backend = get_backend("lambda")[backend.account_id][backend.region_name]
    rotation = _Rotation(arn=secret.arn)
    CORRECTIONS.rotations.current = rotation
    try:
        for step in STEP_EVENTS:
            event = {"Step": step, "SecretId": secret.arn, "ClientRequestToken": version_id}
            lambda_backend.invoke(
                secret.rotation_lambda_arn,
                qualifier=None,
                body=json.dumps(event),
                headers={},
                response_headers={},
            )
    except _RotationStepFailedError:
        pass
    finally:
        CORRECTIONS.rotations.current = None


def _test_rotation_configuration(
    backend: SecretsManagerBackend,
    secret: FakeSecret,
    client_request_token: str | None,
    rotation_lambda_arn: str | None,
    rotation_rules: dict[str, Any] | None,
) -> str:
    """RotateSecret(RotateImmediately=false) as AWS does it: an AWSPENDING version with no value,
    testSecret alone on it, and the label removed afterwards whatever the outcome. moto copied
    the current value into AWSPENDING and left the label, which locked the secret."""
    saved = secret.secret_string, secret.secret_binary
    # moto copies these into the new version; AWS's pending version holds no value.
    secret.secret_string = secret.secret_binary = None
    CORRECTIONS.rotations.current = _Rotation(arn=secret.arn)
    try:
        response: str = _original(_ROTATE_SECRET)(
            backend, secret.name, client_request_token, rotation_lambda_arn, rotation_rules, False
        )
    except _RotationStepFailedError:
        response = secret.to_short_dict()
    finally:
        CORRECTIONS.rotations.current = None
        secret.secret_string, secret.secret_binary = saved
        for version in secret.versions.values():
            if CURRENT not in version["version_stages"] and PENDING in version["version_stages"]:
                version["version_stages"].remove(PENDING)
    return response


def _list_versions_with_their_dates(self: SecretsManagerBackend, secret_id: str) -> str:
    """ListSecretVersionIds as AWS answers it: each version's own CreatedDate, and no NextToken
    on the last page."""
    answer = json.loads(_original(_LIST_VERSIONS)(self, secret_id))
    versions = self.secrets[secret_id].versions
    for version in answer["Versions"]:
        version["CreatedDate"] = versions[version["VersionId"]]["createdate"]
    if not answer.get("NextToken"):
        answer.pop("NextToken", None)
    return json.dumps(answer)


def _refuse_rewriting_pending(
    self: SecretsManagerBackend,
    secret_name: str,
    client_request_token: str | None,
    secret_string: str | None,
    secret_binary: str | None,
    on_create: bool = False,
) -> FakeSecret | None:
    """PutSecretValue may fill the empty AWSPENDING version a rotation created, but not overwrite
    one that holds a different value: AWS raises ResourceExistsException (moto overwrites)."""
    secret = self.secrets.get(secret_name)
    if isinstance(secret, FakeSecret) and client_request_token in secret.versions:
        version = secret.versions[client_request_token]
        if PENDING in version["version_stages"] and "secret_string" in version:
            if version["secret_string"] == secret_string:
                return secret
            raise ResourceExistsException(
                f"You can't use ClientRequestToken {client_request_token} because that value is "
                f"already in use for a version of secret {secret.arn}."
            )
    result: FakeSecret | None = _original(_CHECK_VERSIONS)(
        self, secret_name, client_request_token, secret_string, secret_binary, on_create
    )
    return result


class _RetryClock:
    """Stands in for the `time` module of moto's retrier, so tests record Retry waits instead of
    sleeping them; the demo sleeps them for real."""

    def sleep(self, seconds: float) -> None:
        CORRECTIONS.retry_waits.append(seconds)
        if CORRECTIONS.sleep_retries:
            _original(_RETRY_TIME).sleep(seconds)
        elif CORRECTIONS.retry_clock is not None:
            CORRECTIONS.retry_clock.advance(seconds)


class _SecretsClock:
    """Stands in for the `time` module of moto's Secrets Manager, which calls only time(): the
    dates it stores are read on the running local cloud's simulated clock."""

    def time(self) -> float:
        clock = CORRECTIONS.clock
        return time.time() if clock is None else clock.now()


def _publish_with_a_valid_subject(
    self: SNSBackend, message: str, *args: Any, subject: str | None = None, **kwargs: Any
) -> str:
    """SNS Publish refuses a Subject that is not printable ASCII on one line, or is longer than
    100 characters, with InvalidParameter "Invalid parameter: Subject". The Publish reference
    long said "ASCII text ..., must not include line breaks or control characters", and Amazon
    Managed Prometheus' SNS receiver rewrites non-ASCII subjects because SNS refuses them; the
    current text says UTF-8, so this follows what SNS enforces, the stricter reading. 100
    characters are accepted (moto's own note, getmoto/moto#1503). moto checked the length only."""
    if subject is not None and (
        len(subject) > SNS_SUBJECT_LIMIT or not all(" " <= c <= "~" for c in subject)
    ):
        raise SNSInvalidParameter("Invalid parameter: Subject")
    message_id: str = _original(_SNS_PUBLISH)(self, message, *args, subject=subject, **kwargs)
    return message_id


def _current_version_id(self: FakeSecret) -> str | None:
    """moto's default version, read where moto reads it (GetSecretValue without VersionId or
    VersionStage, and the version its answers name by default): the version AWSCURRENT is on,
    which is what AWS returns."""
    versions: dict[str, dict[str, Any]] = vars(self).get("versions", {})
    return next(
        (v for v, version in versions.items() if CURRENT in version["version_stages"]), None
    )


def _ignore_default_version(self: FakeSecret, version_id: str | None) -> None:
    """moto's own moves of its default version (RotateSecret moved it to the new version once
    every step returned, promoted or not): the AWSCURRENT label alone decides."""


def _make_current(self: FakeSecret, secret_version: dict[str, Any], version_id: str) -> None:
    """A new version takes AWSCURRENT (moto's `reset_default_version`, which PutSecretValue and
    UpdateSecret go through): AWSCURRENT leaves the version holding it, which
    gets AWSPREVIOUS, and every other label the new version names leaves the version holding
    it; a label is on one version at most. Labels the new version does not name stay put."""
    previous = _current_version_id(self)
    labels = list(dict.fromkeys([*secret_version["version_stages"], CURRENT]))
    self.remove_version_stages_from_old_versions(labels)
    if previous is not None and previous != version_id:
        self.remove_version_stages_from_old_versions([PREVIOUS])
        self.versions[previous]["version_stages"].append(PREVIOUS)
    secret_version["version_stages"] = [label for label in labels if label != PREVIOUS]
    self.versions[version_id] = secret_version


def _start_execution_as_aws(target: PatchTarget) -> Callable[..., Any]:
    """StartExecution as AWS answers it, for one of moto's two Step Functions backends."""

    def start_execution(
        self: StepFunctionBackend,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Refuses an input of more than 262,144 bytes of UTF-8 with InvalidExecutionInput (moto
        accepted any), and names an unnamed execution with a UUID (moto's executing backend
        named it "None", so the second unnamed start already existed)."""
        if execution_input is not None:
            size = len(execution_input.encode("utf-8", "surrogatepass"))
            if size > EXECUTION_INPUT_LIMIT_BYTES:
                raise InvalidExecutionInput(
                    f"The execution input of {size} bytes exceeds the maximum allowed size of "
                    f"{EXECUTION_INPUT_LIMIT_BYTES} bytes (UTF-8)."
                )
        return _original(target)(
            self, state_machine_arn, name or str(uuid.uuid4()), execution_input, *args, **kwargs
        )

    return start_execution


def _aws_sdk_task_error(
    self: state_task_service_aws_sdk.StateTaskServiceAwsSdk, env: Environment, ex: Exception
) -> FailureEvent:
    """A failed aws-sdk task's error as Step Functions names it: `<Service>.<ErrorCode>`, with
    `Exception` appended unless the code ends with it (the Step Functions guide: "Both the
    service name and error name are in PascalCase"; S3's BucketAlreadyExists is caught as
    S3.BucketAlreadyExistsException). moto named the service by its lower-case ARN name."""
    if not isinstance(ex, ClientError):
        failure: FailureEvent = _original(_AWS_SDK_TASK_ERROR)(self, env, ex)
        return failure
    service = sdk_error_service_name(self._get_boto_service_name())
    code: str = ex.response["Error"]["Code"]
    error = code if code.endswith("Exception") else f"{code}Exception"
    metadata = ex.response["ResponseMetadata"]
    cause = (
        f"{ex.response['Error']['Message']} (Service: {service}, "
        f"Status Code: {metadata['HTTPStatusCode']}, Request ID: {metadata['RequestId']})"
    )
    event: FailureEvent = self._get_task_failure_event(
        env=env, error=f"{service}.{error}", cause=cause
    )
    return event


@functools.cache
def sdk_error_service_name(boto_service: str) -> str:
    """How Step Functions names a service in aws-sdk task errors: the service's id (botocore's
    serviceId, as every SDK derives its names from it) in PascalCase words: "Secrets Manager"
    SecretsManager, "SNS" Sns, "SFN" Sfn, "DynamoDB" DynamoDb, "ACM PCA" AcmPca."""
    service_id: str = (
        botocore.session.get_session().get_service_model(boto_service).metadata["serviceId"]
    )
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z]*|[a-z]+|[0-9]+", service_id)
    return "".join(word[0].upper() + word[1:].lower() for word in words)


def _update_whole_schedule(self: EventBridgeSchedulerResponse) -> str:
    """UpdateSchedule as AWS does it: every field the request leaves out takes its default, State
    ENABLED and ActionAfterCompletion NONE, and ActionAfterCompletion is updated (moto ignored
    it and set State to none when it was left out)."""
    response: str = _original(_UPDATE_SCHEDULE)(self)
    schedule = self.scheduler_backend.get_schedule(
        self._get_param("GroupName"), self.uri.split("?")[0].split("/")[-1]
    )
    schedule.state = self._get_param("State") or "ENABLED"
    schedule.action_after_completion = self._get_param("ActionAfterCompletion") or "NONE"
    return response


def _create_schedule_in_an_existing_group(
    self: EventBridgeSchedulerBackend, *args: Any, **kwargs: Any
) -> Any:
    """CreateSchedule as AWS answers it in a missing group: ResourceNotFoundException."""
    request = inspect.signature(_original(_CREATE_SCHEDULE)).bind(self, *args, **kwargs)
    # Raises moto's own ResourceNotFoundException for a missing group.
    self.get_schedule_group(request.arguments["group_name"])
    return _original(_CREATE_SCHEDULE)(self, *args, **kwargs)
