"""The error taxonomy the state machine matches on, and the step outputs (the step requests are
in test_rotation_request.py)."""

import inspect
from datetime import UTC, datetime, timedelta

from rotation_core import errors
from rotation_core.errors import (
    InvalidRequestError,
    PermanentRotationError,
    RotationError,
    TransientRotationError,
    error_names,
)
from rotation_core.step_outcome import StepOutcome
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
    "RotationAbandonedError",
    "UnmanagedSecretError",
    "InvalidTokenSecretError",
    "InvalidServiceAccountKeyError",
    "GoogleGrantRejectedError",
    "GoogleResponseError",
    "TokenVerificationError",
    "AwsAccessError",
}
ABSTRACT = {RotationError, TransientRotationError, PermanentRotationError}
VERSION = "5f0d1c2b-3a4e-4f60-9b8a-7c6d5e4f3a21"


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
