"""Google access and ID tokens, read from a Secrets Manager token secret a rotation keeps fresh."""

from google_token_secret.credentials import SecretCredentials, SecretIdTokenCredentials
from google_token_secret.errors import (
    AWSConfigurationError,
    ExpiredTokenError,
    InvalidTokenSecretError,
    PlaceholderTokenError,
    TokenSecretAccessDeniedError,
    TokenSecretError,
    TokenSecretNotFoundError,
    TokenSecretUnavailableError,
)

__all__ = [
    "AWSConfigurationError",
    "ExpiredTokenError",
    "InvalidTokenSecretError",
    "PlaceholderTokenError",
    "SecretCredentials",
    "SecretIdTokenCredentials",
    "TokenSecretAccessDeniedError",
    "TokenSecretError",
    "TokenSecretNotFoundError",
    "TokenSecretUnavailableError",
]
