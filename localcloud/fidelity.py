"""Where moto differs from AWS in ways that matter here, corrected in one place (one patch each).

Every correction names the AWS behaviour it restores; tests/localcloud/test_fidelity.py shows each.
Patches are process-wide and idempotent: one local cloud per process.

Corrected (numbers are those of the differences list in the project's moto notes):
- Lambda runs the function's code (`CORRECTIONS.dispatch`) and reports a handler error as
  FunctionError "Unhandled" with errorType/errorMessage (moto without Docker echoes the payload).
- 1: RotateSecret stops at the first failing step and leaves AWSPENDING for the retry; the call
  itself succeeds and names the new version (moto went on to the next step regardless).
- 3: RotateSecret refuses while AWSPENDING is on a version that is not AWSCURRENT, and treats
  AWSPENDING on the AWSCURRENT version as a finished rotation (moto's check was inverted).
- RotateSecret without RotationLambdaARN rotates with the configured function (moto forgot it
  and promoted the new, empty version straight to AWSCURRENT).
- 4: rotation events name the secret by ARN and carry a RotationToken (moto: name, no token).
- 5: `configure_rotation` is what AWS::SecretsManager::RotationSchedule leaves: rotation
  enabled with the function's ARN, nothing rotated yet (moto drops a ScheduleExpression and
  shows rotation disabled). `begin_rotation` makes the empty AWSPENDING version Secrets Manager
  creates before createSecret (no API does that).
- RotateSecret(RotateImmediately=false) runs testSecret alone on an AWSPENDING version with no
  value and then removes that label whatever the outcome (moto copied the current value into
  the version and left the label, which locked the secret).
- PutSecretValue on a pending version holding a different value raises ResourceExistsException;
  the same value again is a no-op (moto overwrote it).
- Retry waits in moto's ASL interpreter go through a clock that records them in
  `CORRECTIONS.retry_waits` and sleeps them only when `CORRECTIONS.sleep_retries` is set.
- SNS Publish refuses a Subject that is not ASCII, holds a line break or another control
  character, or is longer than 100 characters, with InvalidParameter (moto checked the length
  only, so an e-mail notice AWS would refuse went out locally).

Not corrected (worked around where it matters):
- 1: RotateSecret runs the whole rotation inside the API call (AWS: in the background), so
  callers need a long read timeout and no botocore retries (LocalCloud.client).
- 2: GetSecretValue without VersionStage/VersionId returns moto's internal default version,
  which RotateSecret moves to the new version once every step returned (promoted or not) and
  UpdateSecretVersionStage never moves; AWS returns AWSCURRENT. Product code names VersionStage.
- 5: schedules never fire; rotations start through RotateSecret or the state machine only.
  DescribeSecret shows RotationRules {"AutomaticallyAfterDays": 0}, not the schedule.
- RotateSecret on a secret with no rotation function configured or given promotes a new, empty
  version to AWSCURRENT (AWS refuses the call).
- PutSecretValue accepts a RotationToken and does not check it.
- 6: StartExecution without a name yields an ARN ending in ":None": always name executions.
- 7: moto's CloudFormation is not used; localcloud.cloud deploys template.yaml through the APIs.
- 8: no IAM or Lambda resource-policy checks.
"""

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.secretsmanager.exceptions import InvalidRequestException, ResourceExistsException
from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend
from moto.sns.exceptions import SNSInvalidParameter
from moto.sns.models import SNSBackend
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
SNS_SUBJECT_LIMIT = 100

LambdaDispatcher = Callable[[LambdaFunction, Any], tuple[bytes, str | None]]
"""Runs a function's real handler on a payload: (response body, errorType or None)."""


@dataclass
class Corrections:
    """The state the patches share: who runs Lambda code, and the recorded retry waits."""

    dispatch: LambdaDispatcher | None = None
    retry_waits: list[float] = field(default_factory=list)
    sleep_retries: bool = True
    rotations: threading.local = field(default_factory=threading.local)


CORRECTIONS = Corrections()
_ORIGINALS: dict[str, Any] = {}


class _RotationStepFailedError(Exception):
    """Stops moto's rotation loop at the first failing step, as AWS stops the rotation."""


def apply() -> Corrections:
    if _ORIGINALS:
        return CORRECTIONS
    _ORIGINALS["invoke"] = LambdaFunction.invoke
    _ORIGINALS["backend_invoke"] = LambdaBackend.invoke
    _ORIGINALS["rotate_secret"] = SecretsManagerBackend.rotate_secret
    _ORIGINALS["check_versions"] = SecretsManagerBackend._check_with_existing_secrets_and_versions
    _ORIGINALS["retry_time"] = vars(retrier_decl)["time"]
    _ORIGINALS["sns_publish"] = SNSBackend.publish
    LambdaFunction.invoke = _invoke_real_handler  # type: ignore[method-assign,assignment]
    LambdaBackend.invoke = _invoke_within_rotation  # type: ignore[method-assign]
    SecretsManagerBackend.rotate_secret = _rotate_secret_as_aws  # type: ignore[method-assign]
    SecretsManagerBackend._check_with_existing_secrets_and_versions = _refuse_rewriting_pending  # type: ignore[method-assign]
    vars(retrier_decl)["time"] = _RetryClock()
    SNSBackend.publish = _publish_with_a_valid_subject  # type: ignore[method-assign]
    return CORRECTIONS


def configure_rotation(
    backend: SecretsManagerBackend, secret_id: str, rotation_lambda_arn: str
) -> None:
    """AWS::SecretsManager::RotationSchedule: rotation switched on with a schedule. moto accepts
    a ScheduleExpression and drops it (rotation shows disabled), and RotateSecret would rotate at
    once; this only records the configuration, as a schedule does."""
    secret = backend.secrets[secret_id]
    assert isinstance(secret, FakeSecret)
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
    result: str | bytes | None = _ORIGINALS["backend_invoke"](
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
    failed_step: str | None = None

    def event(self, body: str) -> str:
        event = json.loads(body)
        event.update(SecretId=self.arn, RotationToken=self.rotation_token)
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
    secret = self.secrets.get(secret_id)
    if isinstance(secret, FakeSecret):
        for version_id, version in secret.versions.items():
            stages = version["version_stages"]
            if PENDING in stages and CURRENT not in stages:
                raise InvalidRequestException(
                    f"A previous rotation isn't complete. That rotation will be reattempted. "
                    f"(version {version_id} holds AWSPENDING)"
                )
            if PENDING in stages:
                stages.remove(PENDING)
        rotation_lambda_arn = rotation_lambda_arn or secret.rotation_lambda_arn or None
    if not rotate_immediately and isinstance(secret, FakeSecret):
        return _test_rotation_configuration(
            self, secret, client_request_token, rotation_lambda_arn, rotation_rules
        )
    rotation = _Rotation(arn=secret.arn if secret is not None else secret_id)
    CORRECTIONS.rotations.current = rotation
    try:
        response: str = _ORIGINALS["rotate_secret"](
            self,
            secret_id,
            client_request_token,
            rotation_lambda_arn,
            rotation_rules,
            rotate_immediately,
        )
    except _RotationStepFailedError:
        # AWS answers RotateSecret before the rotation runs, so the caller sees success; the
        # failed step leaves AWSPENDING where it is and Secrets Manager retries later. The answer
        # names the new version, also when the caller sent no ClientRequestToken (moto made one).
        assert isinstance(secret, FakeSecret)
        new_version = client_request_token or next(
            (v for v, version in secret.versions.items() if PENDING in version["version_stages"]),
            None,
        )
        return secret.to_short_dict(version_id=new_version)
    finally:
        CORRECTIONS.rotations.current = None
    return response


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
        response: str = _ORIGINALS["rotate_secret"](
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
    result: FakeSecret | None = _ORIGINALS["check_versions"](
        self, secret_name, client_request_token, secret_string, secret_binary, on_create
    )
    return result


class _RetryClock:
    """Stands in for the `time` module of moto's retrier, so tests record Retry waits instead of
    sleeping them; the demo sleeps them for real."""

    def sleep(self, seconds: float) -> None:
        CORRECTIONS.retry_waits.append(seconds)
        if CORRECTIONS.sleep_retries:
            _ORIGINALS["retry_time"].sleep(seconds)


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
    message_id: str = _ORIGINALS["sns_publish"](self, message, *args, subject=subject, **kwargs)
    return message_id
