"""The error taxonomy the state machine matches on, step payload validation and step outputs."""

import inspect
from datetime import UTC, datetime, timedelta

import pytest

from rotation_core import errors
from rotation_core.errors import (
    InvalidRequestError,
    PermanentRotationError,
    RotationError,
    TransientRotationError,
    error_names,
)
from rotation_core.rotation import RotationRequest, StepOutcome
from rotation_core.steps import Step
from rotation_core.token_secret import TokenMetadata

TRANSIENT = {
    "GoogleUnavailableError",
    "GoogleTimeoutError",
    "GoogleConnectionError",
    "AwsUnavailableError",
}
PERMANENT = {
    "InvalidRequestError",
    "ConfigurationError",
    "SecretNotFoundError",
    "RotationNotEnabledError",
    "UnknownRotationTokenError",
    "NotPendingVersionError",
    "RotationInProgressError",
    "InvalidTokenSecretError",
    "InvalidServiceAccountKeyError",
    "GoogleGrantRejectedError",
    "GoogleResponseError",
    "TokenVerificationError",
    "AwsAccessError",
}
ABSTRACT = {RotationError, TransientRotationError, PermanentRotationError}
VERSION = "5f0d1c2b-3a4e-4f60-9b8a-7c6d5e4f3a21"
ROTATION_TOKEN = "9b0c8d7e-6f5a-4b3c-2d1e-0f9a8b7c6d5e-rt"


def error_classes() -> dict[str, type[RotationError]]:
    """Every error class that the errors module defines (the one module the ASL draws from)."""
    return {
        name: value
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, RotationError) and value not in ABSTRACT
    }


# --- errors --------------------------------------------------------------------------------------


def test_error_names_lists_exactly_the_concrete_transient_classes() -> None:
    assert error_names(TransientRotationError) >= TRANSIENT
    assert error_names(TransientRotationError) == {
        name for name, cls in error_classes().items() if issubclass(cls, TransientRotationError)
    }


def test_error_names_lists_exactly_the_concrete_permanent_classes() -> None:
    assert error_names(PermanentRotationError) >= PERMANENT
    assert error_names(PermanentRotationError) == {
        name for name, cls in error_classes().items() if issubclass(cls, PermanentRotationError)
    }


def test_every_error_class_is_either_transient_or_permanent() -> None:
    transient = error_names(TransientRotationError)
    permanent = error_names(PermanentRotationError)

    assert not transient & permanent
    assert transient | permanent == error_names(RotationError) == set(error_classes())
    for name, cls in error_classes().items():
        assert cls.transient is (name in transient), name


def test_error_names_are_unique_and_declared_in_the_errors_module() -> None:
    """Step Functions matches by class name only: two classes of one name would be one error."""
    for name in error_names(RotationError):
        assert getattr(errors, name).__module__ == "rotation_core.errors"
    assert len(error_names(RotationError)) == len(error_classes())


def test_error_names_of_a_concrete_class_is_itself() -> None:
    assert error_names(InvalidRequestError) == {"InvalidRequestError"}


def test_errors_carry_only_their_message() -> None:
    error = errors.ConfigurationError("tag 'x' is invalid")
    assert str(error) == "tag 'x' is invalid"
    assert isinstance(error, PermanentRotationError)
    assert not error.transient
    assert errors.AwsUnavailableError("busy").transient


# --- RotationRequest.from_payload ----------------------------------------------------------------


def test_minimal_payload() -> None:
    request = RotationRequest.from_payload(
        {"SecretId": "google/token", "ClientRequestToken": VERSION}
    )
    assert request == RotationRequest("google/token", VERSION, None, manual=False)


def test_full_payload_and_extra_keys() -> None:
    request = RotationRequest.from_payload(
        {
            "SecretId": "arn:aws:secretsmanager:us-east-1:123456789012:secret:google/token-AbCdEf",
            "ClientRequestToken": VERSION,
            "RotationToken": ROTATION_TOKEN,
            "Manual": True,
            "Step": "createSecret",  # the state machine passes more than the step needs
        }
    )
    assert request.rotation_token == ROTATION_TOKEN
    assert request.manual is True
    assert request.secret_id.endswith(":secret:google/token-AbCdEf")


@pytest.mark.parametrize("token", ["a" * 32, "b" * 64, VERSION, VERSION.replace("-", "")])
def test_client_request_token_length_bounds_are_inclusive(token: str) -> None:
    payload = {"SecretId": "s", "ClientRequestToken": token}
    assert RotationRequest.from_payload(payload).token == token


@pytest.mark.parametrize(
    "rotation_token",
    ["a" * 36, "Z9-" * 12, "1" * 256, ROTATION_TOKEN],
    ids=["36", "mixed", "256", "uuid-like"],
)
def test_rotation_token_pattern_accepts_letters_digits_hyphens(rotation_token: str) -> None:
    payload = {"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": rotation_token}
    assert RotationRequest.from_payload(payload).rotation_token == rotation_token


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"ClientRequestToken": VERSION}, "'SecretId' must be"),
        ({"SecretId": "", "ClientRequestToken": VERSION}, "'SecretId' must be"),
        ({"SecretId": None, "ClientRequestToken": VERSION}, "'SecretId' must be"),
        ({"SecretId": ["google/token"], "ClientRequestToken": VERSION}, "'SecretId' must be"),
        ({"SecretId": "s"}, r"'ClientRequestToken' must be .*\(32 to 64 characters\)"),
        ({"SecretId": "s", "ClientRequestToken": "a" * 31}, "'ClientRequestToken' must be"),
        ({"SecretId": "s", "ClientRequestToken": "a" * 65}, "'ClientRequestToken' must be"),
        ({"SecretId": "s", "ClientRequestToken": 12345678901234567890123456789012345}, "'Client"),
        ({"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": ""}, "'RotationToken"),
        (
            {"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": "a" * 35},
            r"'RotationToken' must be .*\(36 to 256 letters, digits and hyphens\)",
        ),
        ({"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": "a" * 257}, "'Rotat"),
        (
            {"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": "a_b" * 12},
            "'RotationToken' must be",
        ),
        (
            {"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": f"{'a' * 40}\n"},
            "'RotationToken' must be",
        ),
        ({"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": 7}, "'RotationToken'"),
        ({"SecretId": "s", "ClientRequestToken": VERSION, "Manual": "true"}, "'Manual' must be"),
        ({"SecretId": "s", "ClientRequestToken": VERSION, "Manual": 1}, "'Manual' must be"),
        ({"SecretId": "s", "ClientRequestToken": VERSION, "Manual": None}, "'Manual' must be"),
    ],
    ids=[
        "secret-id-missing",
        "secret-id-empty",
        "secret-id-null",
        "secret-id-list",
        "token-missing",
        "token-31",
        "token-65",
        "token-number",
        "rotation-token-empty",
        "rotation-token-35",
        "rotation-token-257",
        "rotation-token-underscore",
        "rotation-token-newline",
        "rotation-token-number",
        "manual-string",
        "manual-int",
        "manual-null",
    ],
)
def test_invalid_payload_is_a_clear_invalid_request_error(
    payload: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        RotationRequest.from_payload(payload)


# --- StepOutcome.as_payload ----------------------------------------------------------------------


def test_outcome_without_metadata_holds_ids_and_action() -> None:
    outcome = StepOutcome(Step.SET, "arn:secret", VERSION, "already-current")
    assert outcome.as_payload() == {
        "Step": "setSecret",
        "SecretArn": "arn:secret",
        "VersionId": VERSION,
        "Action": "already-current",
    }


def test_outcome_with_metadata_and_previous_version() -> None:
    issued = datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
    metadata = TokenMetadata(
        "Bearer",
        issued + timedelta(hours=1),
        issued,
        ("openid",),
        "rotator@demo-project.iam.gserviceaccount.com",
        "112233445566778899000",
    )
    outcome = StepOutcome(Step.CREATE, "arn:secret", VERSION, "created", metadata, "old-version")

    assert outcome.as_payload() == {
        "Step": "createSecret",
        "SecretArn": "arn:secret",
        "VersionId": VERSION,
        "Action": "created",
        "ExpiresAt": "2026-01-31T13:00:00Z",
        "IssuedAt": "2026-01-31T12:00:00Z",
        "Scopes": ["openid"],
        "ServiceAccount": "rotator@demo-project.iam.gserviceaccount.com",
        "PreviousVersionId": "old-version",
    }


def test_steps_are_the_secrets_manager_step_names() -> None:
    assert [step.value for step in Step] == [
        "createSecret",
        "setSecret",
        "testSecret",
        "finishSecret",
    ]
