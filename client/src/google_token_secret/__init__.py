"""Google API credentials read from a Secrets Manager token secret that a rotation keeps fresh."""

from google_token_secret.credentials import SecretCredentials
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
    "TokenSecretAccessDeniedError",
    "TokenSecretError",
    "TokenSecretNotFoundError",
    "TokenSecretUnavailableError",
]
