"""What every rotation step reports and the contract's checks at each step's start, shared by
the token secrets' steps and the key secret's."""

import logging
from dataclasses import dataclass

from rotation_core.errors import (
    NotPendingVersionError,
    RotationNotEnabledError,
    SecretNotFoundError,
    UnknownRotationTokenError,
)
from rotation_core.follow_up import FollowUp
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import CURRENT, PENDING, SecretDescription
from rotation_core.service_account_key import KeyMetadata
from rotation_core.steps import Step
from rotation_core.token_secret import StoredMetadata

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepOutcome:
    """What a step reports: ids and non-secret metadata only, safe for logs and payloads."""

    step: Step
    secret_arn: str
    version_id: str
    action: str
    metadata: StoredMetadata | KeyMetadata | None = None
    previous_version_id: str | None = None
    superseded_version_id: str | None = None
    follow_up: FollowUp | None = None
    """finishSecret only: what the state machine does next (schedule, notice)."""

    def as_payload(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "Step": self.step.value,
            "SecretArn": self.secret_arn,
            "VersionId": self.version_id,
            "Action": self.action,
        }
        if self.metadata is not None:
            payload |= self.metadata.as_payload()
        if self.previous_version_id is not None:
            payload["PreviousVersionId"] = self.previous_version_id
        if self.superseded_version_id is not None:
            payload["SupersededVersionId"] = self.superseded_version_id
        if self.follow_up is not None:
            payload["FollowUp"] = self.follow_up.as_payload()
        return payload


def no_pending_value(step: Step, secret: SecretDescription, token: str) -> SecretNotFoundError:
    return SecretNotFoundError(
        f"{step.value}: the pending version {token} of {secret.name!r} has no value: run "
        "createSecret for this rotation first"
    )


def already_current(secret: SecretDescription, request: RotationRequest, step: Step) -> bool:
    """The contract's checks at the start of every step; True means the work is already done."""
    if not request.manual and not secret.rotation_enabled:
        raise RotationNotEnabledError(
            f"rotation is not enabled for {secret.name!r}: enable it with RotateSecret or "
            "start a manual rotation instead"
        )
    stages = secret.version_stages.get(request.token)
    if not stages:
        raise UnknownRotationTokenError(
            f"{step.value}: version {request.token} of {secret.name!r} has no stage for "
            "rotation (never started, or abandoned or superseded earlier); nothing to do for it"
        )
    if CURRENT in stages:
        logger.info("version is already AWSCURRENT: nothing to do", extra={"step": step.value})
        return True
    if PENDING not in stages:
        raise NotPendingVersionError(
            f"{step.value}: version {request.token} of {secret.name!r} is not AWSPENDING "
            f"(stages: {', '.join(stages)}); this rotation was superseded or abandoned"
        )
    return False
