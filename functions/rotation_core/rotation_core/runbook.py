"""Which entry of docs/runbook.md each notice names: one mapping, so no notice points nowhere.

An entry's anchor is its heading's slug (MkDocs and GitHub agree on it for the plain headings the
runbook uses), so the link opens on the site, on GitHub and in a checkout alike.
"""

from enum import StrEnum
from typing import Final

from rotation_core.errors import (
    AwsAccessError,
    AwsUnavailableError,
    ConfigurationError,
    GoogleConnectionError,
    GoogleGrantRejectedError,
    GoogleResponseError,
    GoogleTimeoutError,
    GoogleUnavailableError,
    InvalidRequestError,
    InvalidServiceAccountKeyError,
    InvalidTokenSecretError,
    KeyAdminDeniedError,
    KeyLimitReachedError,
    NewKeyNotYetAcceptedError,
    NotPendingVersionError,
    RotationAbandonedError,
    RotationError,
    RotationInProgressError,
    RotationNotEnabledError,
    SecretNotFoundError,
    TokenVerificationError,
    UnknownRotationTokenError,
    UnmanagedSecretError,
)

RUNBOOK_PAGE: Final = "docs/runbook.md"


class NoticeEntry(StrEnum):
    """The notices whose entry does not depend on an error: the value is the entry's anchor."""

    RECOVERED = "recovered"
    PROMOTED_UNVERIFIED = "promoted-unverified"
    TOKEN_REFUSED = "token-refused-by-google"
    INPUT_VALIDATION = "input-validation"
    UNKNOWN_STEP = "unknown-step"
    NOTICE_NOT_COMPOSED = "notice-not-composed"
    """The state machine's DescribeFailureFallback: a fixed notice when DescribeFailure failed."""
    NEXT_REFRESH_NOT_SCHEDULED = "next-refresh-not-scheduled"
    KEY_REPLACED = "key-replaced"
    """The key in AWSCURRENT was refused at Google and the standby key replaced it."""
    OTHER_ERROR = "other-errors"
    """A failure whose error is not one of the rotation's own (a Lambda crash or timeout, an
    AWS call of the state machine refused)."""


ERROR_ENTRIES: Final[dict[type[RotationError], str]] = {
    GoogleUnavailableError: "googleunavailableerror",
    GoogleTimeoutError: "googletimeouterror",
    GoogleConnectionError: "googleconnectionerror",
    AwsUnavailableError: "awsunavailableerror",
    InvalidRequestError: "invalidrequesterror",
    ConfigurationError: "configurationerror",
    SecretNotFoundError: "secretnotfounderror",
    RotationNotEnabledError: "rotationnotenablederror",
    UnknownRotationTokenError: "unknownrotationtokenerror",
    NotPendingVersionError: "notpendingversionerror",
    RotationInProgressError: "rotationinprogresserror",
    RotationAbandonedError: "rotationabandonederror",
    UnmanagedSecretError: "unmanagedsecreterror",
    InvalidTokenSecretError: "invalidtokensecreterror",
    InvalidServiceAccountKeyError: "invalidserviceaccountkeyerror",
    GoogleGrantRejectedError: "googlegrantrejectederror",
    GoogleResponseError: "googleresponseerror",
    TokenVerificationError: "tokenverificationerror",
    AwsAccessError: "awsaccesserror",
    NewKeyNotYetAcceptedError: "newkeynotyetacceptederror",
    KeyLimitReachedError: "keylimitreachederror",
    KeyAdminDeniedError: "keyadmindeniederror",
}
"""Every error a step raises on purpose (each concrete RotationError) and its entry."""

STEP_LABEL_ENTRIES: Final = {
    "input validation": NoticeEntry.INPUT_VALIDATION,
    "unknown step": NoticeEntry.UNKNOWN_STEP,
    "scheduleNextRotation": NoticeEntry.NEXT_REFRESH_NOT_SCHEDULED,
}
"""Failure labels that say what happened whatever the error: nothing was started, or the
rotation succeeded and only the next refresh's schedule failed."""

ALARM_ENTRIES: Final = {
    "TokenFreshnessAlarm": "tokenfreshnessalarm",
    "RotationFailuresAlarm": "rotationfailuresalarm",
    "RotationEntryFailuresAlarm": "rotationentryfailuresalarm",
    "ServiceAccountKeyExpiryAlarm": "serviceaccountkeyexpiryalarm",
}
"""CloudWatch sends these, not the rotation: each alarm's AlarmDescription names its entry."""

_BY_ERROR_NAME: Final = {kind.__name__: anchor for kind, anchor in ERROR_ENTRIES.items()}


def runbook_link(anchor: str) -> str:
    """What a notice's Runbook field holds: the page in the project and the entry's anchor."""
    return f"{RUNBOOK_PAGE}#{anchor}"


def failure_entry(step: str, error: str) -> str:
    """The anchor for a failure notice (first or reminder alike: the fix is the same)."""
    by_step = STEP_LABEL_ENTRIES.get(step)
    if by_step is not None:
        return by_step.value
    return _BY_ERROR_NAME.get(error, NoticeEntry.OTHER_ERROR.value)


def every_anchor() -> frozenset[str]:
    """Every entry any notice or alarm can name: the runbook holds exactly these."""
    return frozenset(
        {*ERROR_ENTRIES.values(), *(entry.value for entry in NoticeEntry), *ALARM_ENTRIES.values()}
    )
