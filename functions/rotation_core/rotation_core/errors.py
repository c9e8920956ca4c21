"""Every error the rotation raises; the class names are the state machine's ErrorEquals values."""

from typing import ClassVar


class RotationError(Exception):
    """Base of every error the core raises on purpose; messages never hold secret material."""

    transient: ClassVar[bool] = False


class TransientRotationError(RotationError):
    """A failure that may pass by itself: the state machine retries these with backoff."""

    transient = True


class GoogleUnavailableError(TransientRotationError):
    """Google answered 5xx, 408 or 429, or a retryable OAuth error code."""


class GoogleTimeoutError(TransientRotationError):
    """Google did not answer within the bounded HTTP timeout."""


class GoogleConnectionError(TransientRotationError):
    """The connection to Google failed or was reset before an answer arrived."""


class NewKeyNotYetAcceptedError(TransientRotationError):
    """Google does not accept a service-account key it created moments ago: new keys take a
    short while to work everywhere, so testSecret waits for it within a bound."""


class AwsUnavailableError(TransientRotationError):
    """An AWS API throttled us, failed on its side (5xx) or could not be reached."""


class PermanentRotationError(RotationError):
    """A failure that retrying cannot fix: the state machine fails fast and notifies."""


class InvalidRequestError(PermanentRotationError):
    """The step payload or rotation event is malformed: a field is missing or of the wrong kind."""


class ConfigurationError(PermanentRotationError):
    """A setting (function environment variable or secret tag) is missing or invalid."""


class SecretNotFoundError(PermanentRotationError):
    """The token secret, one of its versions, or the service-account key secret does not exist."""


class RotationNotEnabledError(PermanentRotationError):
    """Secrets Manager drives a rotation of a secret whose rotation is switched off."""


class UnknownRotationTokenError(PermanentRotationError):
    """The ClientRequestToken is not a version of the secret."""


class NotPendingVersionError(PermanentRotationError):
    """The version named by the token carries neither AWSCURRENT nor AWSPENDING."""


class RotationInProgressError(PermanentRotationError):
    """Another rotation of the secret holds AWSPENDING on a version that is not AWSCURRENT."""


class RotationAbandonedError(PermanentRotationError):
    """The pending version can never pass (its token expired, too short-lived, rejected by Google
    or malformed): its AWSPENDING label was removed, so the next rotation starts fresh."""


class UnmanagedSecretError(PermanentRotationError):
    """The SecretId is not a token secret this stack manages: it lacks the stack's tag, it is a
    key secret, or it carries the tag but holds a value the rotation did not write."""


class InvalidTokenSecretError(PermanentRotationError):
    """A token secret value does not follow the schema (GOOGLE_ACCESS_TOKEN plus metadata)."""


class InvalidServiceAccountKeyError(PermanentRotationError):
    """The service-account key file is malformed: missing field, bad PEM, encrypted or not JSON."""


class GoogleGrantRejectedError(PermanentRotationError):
    """Google refused to mint a token (invalid_grant, invalid_scope, unauthorized_client...)."""


class GoogleResponseError(PermanentRotationError):
    """Google answered with something that is not a usable token (no expiry, not JSON, 4xx)."""


class TokenVerificationError(PermanentRotationError):
    """The pending token failed testSecret: invalid, expired, wrong scopes or service account."""


class KeyLimitReachedError(PermanentRotationError):
    """The service account already holds Google's maximum of 10 user-managed keys: no new key
    can be created until one is deleted."""


class KeyAdminDeniedError(PermanentRotationError):
    """Google's IAM refused to create, list or delete the account's keys: the account lacks
    roles/iam.serviceAccountKeyAdmin on itself (or the token lacks the scope)."""


class AwsAccessError(PermanentRotationError):
    """AWS refused a call for a reason that retrying cannot fix (access denied, bad request)."""


def error_names(kind: type[RotationError]) -> frozenset[str]:
    """Names of the concrete error classes under `kind`, as the state machine must list them."""
    names: set[str] = set()
    pending = [kind]
    while pending:
        current = pending.pop()
        subclasses = current.__subclasses__()
        if not subclasses:
            names.add(current.__name__)
        pending.extend(subclasses)
    return frozenset(names)
