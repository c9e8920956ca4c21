"""The four step Lambdas as Lambda calls them: settings from os.environ, JSON logs on stdout,
outputs with ids and metadata only, errors re-raised under the names the state machine matches."""

import importlib
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

import create_secret as step_create
import finish_secret as step_finish
import lambda_adapter
import lambda_adapter.step_handler as step_glue
import set_secret as step_set
import test_secret as step_test
from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from rotation_core.errors import (
    ConfigurationError,
    GoogleGrantRejectedError,
    InvalidRequestError,
    RotationError,
)
from rotation_core.steps import Step
from tests.support import (
    SCOPE,
    TOKEN_SECRET,
    begin_rotation,
    lambda_context,
    stages,
    stdout_so_far,
)

REPOSITORY = Path(__file__).resolve().parents[2]
HANDLERS: dict[str, step_glue.StepHandler] = {
    "createSecret": step_create.lambda_handler,
    "setSecret": step_set.lambda_handler,
    "testSecret": step_test.lambda_handler,
    "finishSecret": step_finish.lambda_handler,
}


def invoke(step: str, event: dict[str, Any]) -> dict[str, object]:
    return HANDLERS[step](event, lambda_context())


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The JSON log lines written since the last look."""
    out = stdout_so_far(capsys)
    documents = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    # Embedded-metric-format lines (the token-life metric) are JSON too, but not log records.
    return [document for document in documents if "_aws" not in document]


class _CurrentStdout:
    """Writes to whatever sys.stdout is at the moment of writing."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture(autouse=True)
def _logs_to_captured_stdout(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Powertools binds its handler to the sys.stdout of import time, while capsys installs a
    fresh sys.stdout for each test phase: let the handler follow sys.stdout during the test."""
    handler = lambda_adapter.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(_CurrentStdout())
    yield
    handler.setStream(previous)


def step_event(secret_id: str, token: str, **extra: object) -> dict[str, Any]:
    return {"SecretId": secret_id, "ClientRequestToken": token, **extra}


def test_full_rotation_through_the_four_handlers_promotes_the_token(
    lambda_environment: dict[str, str],
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
) -> None:
    token = begin_rotation(token_secret_arn)
    event = step_event(token_secret_arn, token, RotationToken=str(uuid.uuid4()))

    outputs = [invoke(step, event) for step in HANDLERS]

    assert [output["Action"] for output in outputs] == [
        "created",
        "checked",
        "verified",
        "promoted",
    ]
    assert "AWSCURRENT" in stages(secretsmanager, TOKEN_SECRET)[token]
    current = json.loads(
        secretsmanager.get_secret_value(SecretId=TOKEN_SECRET, VersionStage="AWSCURRENT")[
            "SecretString"
        ]
    )
    assert current["GOOGLE_ACCESS_TOKEN"] == google.issued_tokens()[-1].access_token
    assert outputs[0] == {
        "Step": "createSecret",
        "SecretArn": token_secret_arn,
        "VersionId": token,
        "Action": "created",
        "ExpiresAt": current["expires_at"],
        "IssuedAt": current["issued_at"],
        "Scopes": [SCOPE],
        "ServiceAccount": service_account.client_email,
    }
    assert outputs[3]["PreviousVersionId"] in stages(secretsmanager, TOKEN_SECRET)
    assert set(outputs[3]) == {
        "Step",
        "SecretArn",
        "VersionId",
        "Action",
        "PreviousVersionId",
        "ExpiresAt",
        "IssuedAt",
        "Scopes",
        "ServiceAccount",
        "FollowUp",
    }
    follow_up: Any = outputs[3]["FollowUp"]
    assert follow_up["Notice"] is None
    assert follow_up["Schedule"]["TargetInput"] == json.dumps({"SecretId": outputs[3]["SecretArn"]})


def test_outputs_and_logs_never_hold_an_issued_token(
    lambda_environment: dict[str, str],
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = begin_rotation(token_secret_arn)
    event = step_event(TOKEN_SECRET, token)

    outputs = [invoke(step, event) for step in HANDLERS]
    outputs += [invoke(step, event) for step in HANDLERS]  # the already-current answers too
    stdout = stdout_so_far(capsys)

    issued = [t.access_token for t in google.issued_tokens()]
    assert issued
    serialized = json.dumps(outputs)
    assert not [t for t in issued if t in serialized or t in stdout]
    assert [output["Action"] for output in outputs[4:]] == ["already-current"] * 4


def test_each_step_logs_its_identity_and_outcome_as_json(
    lambda_environment: dict[str, str],
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = begin_rotation(token_secret_arn)
    capsys.readouterr()

    for step in HANDLERS:
        output = invoke(step, step_event(token_secret_arn, token))
        done = [line for line in log_lines(capsys) if line["message"] == f"{step} done"]

        assert len(done) == 1, step
        assert done[0]["level"] == "INFO"
        assert done[0]["step"] == step
        assert done[0]["secret_id"] == token_secret_arn
        assert done[0]["client_request_token"] == token
        assert done[0]["manual"] is False
        assert done[0]["outcome"] == output
        assert done[0]["function_request_id"]


def test_core_log_lines_carry_the_step_keys_too(
    lambda_environment: dict[str, str],
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = begin_rotation(token_secret_arn)
    capsys.readouterr()

    invoke("createSecret", step_event(token_secret_arn, token))

    stored = [line for line in log_lines(capsys) if line["message"] == "stored a new pending token"]
    assert len(stored) == 1
    assert stored[0]["step"] == "createSecret"
    assert stored[0]["client_request_token"] == token
    assert stored[0]["version_id"] == token
    assert stored[0]["Scopes"] == [SCOPE]


def test_state_is_cleared_between_invocations(
    lambda_environment: dict[str, str],
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = begin_rotation(token_secret_arn)
    invoke("createSecret", step_event(token_secret_arn, token))
    capsys.readouterr()

    with pytest.raises(InvalidRequestError):
        invoke("setSecret", {"SecretId": token_secret_arn})

    assert all("client_request_token" not in line for line in log_lines(capsys))


def test_failing_step_is_reraised_with_its_class_and_logged_at_error(
    lambda_environment: dict[str, str],
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    google.revoke_key(service_account.private_key_id)
    token = begin_rotation(token_secret_arn)
    capsys.readouterr()

    with pytest.raises(GoogleGrantRejectedError, match="invalid_grant") as raised:
        invoke("createSecret", step_event(token_secret_arn, token))

    assert type(raised.value).__name__ == "GoogleGrantRejectedError"  # the ASL's ErrorEquals
    errors = [line for line in log_lines(capsys) if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["message"] == "createSecret failed"
    assert errors[0]["error_type"] == "GoogleGrantRejectedError"
    assert errors[0]["error_message"] == str(raised.value)
    assert errors[0]["step"] == "createSecret"
    assert errors[0]["secret_id"] == token_secret_arn
    assert errors[0]["client_request_token"] == token
    assert "AWSPENDING" in stages(secretsmanager, TOKEN_SECRET)[token]


@pytest.mark.parametrize("step", list(HANDLERS))
def test_invalid_payload_raises_invalid_request_error(
    lambda_environment: dict[str, str],
    secretsmanager: SecretsManagerClient,
    step: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(InvalidRequestError, match="'ClientRequestToken' must be"):
        invoke(step, {"SecretId": TOKEN_SECRET, "ClientRequestToken": "too-short"})

    errors = [line for line in log_lines(capsys) if line["level"] == "ERROR"]
    assert [(e["error_type"], e["step"], e["secret_id"]) for e in errors] == [
        ("InvalidRequestError", step, TOKEN_SECRET)
    ]


def test_unknown_secret_is_reported_under_its_error_name(
    lambda_environment: dict[str, str],
    secretsmanager: SecretsManagerClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(RotationError) as raised:
        invoke("finishSecret", step_event("google/absent", str(uuid.uuid4())))

    assert type(raised.value).__name__ == "SecretNotFoundError"
    errors = [line for line in log_lines(capsys) if line["level"] == "ERROR"]
    assert errors[0]["error_type"] == "SecretNotFoundError"


@pytest.mark.parametrize("step", ["setSecret", "finishSecret"])
def test_step_before_create_secret_says_what_to_run_first(
    lambda_environment: dict[str, str],
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    step: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = begin_rotation(token_secret_arn)

    with pytest.raises(RotationError, match="has no value: run createSecret") as raised:
        invoke(step, step_event(token_secret_arn, token))

    assert type(raised.value).__name__ == "SecretNotFoundError"
    assert [line["error_type"] for line in log_lines(capsys) if line["level"] == "ERROR"] == [
        "SecretNotFoundError"
    ]


def test_bad_timeout_fails_the_invocation_with_a_configuration_error(
    lambda_environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GOOGLE_HTTP_TIMEOUT_SECONDS", "ten")
    token = begin_rotation(token_secret_arn)

    with pytest.raises(ConfigurationError, match="'GOOGLE_HTTP_TIMEOUT_SECONDS'"):
        invoke("createSecret", step_event(token_secret_arn, token))

    errors = [line for line in log_lines(capsys) if line["level"] == "ERROR"]
    assert errors[0]["error_type"] == "ConfigurationError"
    assert "'ten'" in errors[0]["error_message"]


def test_bad_timeout_does_not_break_the_import() -> None:
    """A cold start imports the handler module before any invocation: that must not fail."""
    environment = {
        **os.environ,
        "GOOGLE_HTTP_TIMEOUT_SECONDS": "ten",
        "GOOGLE_TOKEN_URL": "http://not-local.example/token",
        "PYTHONPATH": os.pathsep.join(
            str(REPOSITORY / "functions" / name) for name in ("rotation_core", "create_secret")
        ),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import create_secret; print(callable(create_secret.lambda_handler))",
        ],
        env=environment,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_settings_are_read_per_invocation_while_clients_stay_warm(
    lambda_environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = begin_rotation(token_secret_arn)
    invoke("createSecret", step_event(token_secret_arn, token))
    warm = step_glue._rotation()

    monkeypatch.setenv("MIN_REMAINING_SECONDS", "not-a-number")
    with pytest.raises(ConfigurationError, match="'MIN_REMAINING_SECONDS'"):
        invoke("testSecret", step_event(token_secret_arn, token))

    assert step_glue._rotation() is warm


@pytest.mark.parametrize("step", sorted(HANDLERS))
@pytest.mark.parametrize("event", [None, [1, 2], "createSecret", 42], ids=repr)
def test_a_non_object_event_is_a_clear_invalid_request(
    lambda_environment: dict[str, str], step: str, event: object
) -> None:
    handler = HANDLERS[step]
    with pytest.raises(InvalidRequestError, match="must be a JSON object"):
        handler(event, lambda_context())


def test_a_huge_secret_id_is_refused_and_logged_bounded(
    lambda_environment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    huge = "x" * 100_000

    with pytest.raises(InvalidRequestError, match="at most 2048") as raised:
        invoke("createSecret", step_event(huge, str(uuid.uuid4())))

    assert huge[:3000] not in str(raised.value)
    errors = [line for line in log_lines(capsys) if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert len(errors[0]["secret_id"]) <= 256


def test_log_event_setting_cannot_log_the_rotation_token(
    lambda_environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    # Built after the setting, as in a Lambda whose environment has it from the start.
    handler = step_glue.step_handler(Step.CREATE)
    rotation_token = "rotation-token-" + uuid.uuid4().hex + "-secret"
    token = begin_rotation(token_secret_arn)
    capsys.readouterr()

    handler(
        step_event(token_secret_arn, token, RotationToken=rotation_token),
        lambda_context(),
    )

    out = stdout_so_far(capsys)
    assert token in out  # the run was logged...
    assert rotation_token not in out  # ...but never its RotationToken


def test_the_failure_notice_function_cannot_log_the_rotation_token_either(
    lambda_environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    token_secret_arn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    # Imported (decorated) after the setting, as in a Lambda whose environment has it.
    describe_failure = importlib.reload(importlib.import_module("describe_failure"))
    rotation_token = "rotation-token-" + uuid.uuid4().hex + "-secret"
    token = str(uuid.uuid4())
    request = step_event(token_secret_arn, token, Step="createSecret", RotationToken=rotation_token)
    capsys.readouterr()

    notice = describe_failure.lambda_handler(
        {
            "Request": request,
            "FailedStep": "createSecret",
            "Failure": {"Error": "GoogleGrantRejectedError", "Cause": "invalid_grant"},
            "ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:rotation:x",
        },
        lambda_context(),
    )

    out = stdout_so_far(capsys)
    assert "failure follow-up decided" in out
    assert rotation_token not in out
    assert rotation_token not in json.dumps(notice)
