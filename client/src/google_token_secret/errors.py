"""Why a token could not be read, each error naming what fixes it."""

from google.auth import exceptions


class TokenSecretError(exceptions.RefreshError):
    """The token secret could not give a usable token.

    A `RefreshError`, so google-auth transports and Google's client libraries report it as a
    failed credential refresh."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message, retryable=retryable)  # type: ignore[no-untyped-call]


class AWSConfigurationError(TokenSecretError):
    """This process has no AWS region, or no AWS credentials, to read the secret with."""


class PlaceholderTokenError(TokenSecretError):
    """The secret still holds the value written at deployment: no rotation has succeeded."""


class ExpiredTokenError(TokenSecretError):
    """The newest token has expired and no fresher one exists: the rotation is failing."""


class TokenSecretAccessDeniedError(TokenSecretError):
    """The application's AWS role may not read the secret (or decrypt it)."""


class TokenSecretNotFoundError(TokenSecretError):
    """No secret of that name or ARN exists where the application looks."""


class InvalidTokenSecretError(TokenSecretError):
    """The secret's value is not a token secret written by the rotation."""


class TokenSecretUnavailableError(TokenSecretError, exceptions.TransportError):
    """Secrets Manager could not be reached or throttled the read; retrying may succeed."""
