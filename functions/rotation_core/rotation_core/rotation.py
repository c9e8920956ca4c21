"""The four rotation steps and their preconditions, as the Secrets Manager contract demands."""

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from rotation_core.config import RotationSettings
from rotation_core.credential_sources import credential_source_for
from rotation_core.errors import (
    InvalidRequestError,
    NotPendingVersionError,
    RotationInProgressError,
    RotationNotEnabledError,
    SecretNotFoundError,
    TokenVerificationError,
    UnknownRotationTokenError,
)
from rotation_core.google_client import GoogleClient
from rotation_core.secrets import CURRENT, PENDING, SecretDescription, SecretsGateway
from rotation_core.steps import Step
from rotation_core.token_secret import TokenMetadata, TokenSecretValue

logger = logging.getLogger(__name__)
_ROTATION_TOKEN = re.compile(r"[A-Za-z0-9-]{36,256}")


@dataclass(frozen=True)
class RotationRequest:
    """One step of one rotation. `manual` is a run started by a person rather than by Secrets
    Manager: rotation need not be enabled, and createSecret makes the pending version itself."""

    secret_id: str
    token: str
    rotation_token: str | None = None
    manual: bool = False

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> "RotationRequest":
        """Validate a step payload: {SecretId, ClientRequestToken, RotationToken?, Manual?}."""
        secret_id = payload.get("SecretId")
        token = payload.get("ClientRequestToken")
        rotation_token = payload.get("RotationToken")
        manual = payload.get("Manual", False)
        if not isinstance(secret_id, str) or not secret_id:
            raise InvalidRequestError("'SecretId' must be the token secret's name or ARN")
        if not isinstance(token, str) or not 32 <= len(token) <= 64:
            raise InvalidRequestError(
                "'ClientRequestToken' must be the rotation's version id (32 to 64 characters)"
            )
        if rotation_token is not None and not (
            isinstance(rotation_token, str) and _ROTATION_TOKEN.fullmatch(rotation_token)
        ):
            raise InvalidRequestError(
                "'RotationToken' must be the opaque token from the rotation event "
                "(36 to 256 letters, digits and hyphens) when present"
            )
        if not isinstance(manual, bool):
            raise InvalidRequestError("'Manual' must be true or false when present")
        return cls(secret_id, token, rotation_token, manual)


@dataclass(frozen=True)
class StepOutcome:
    """What a step reports: ids and non-secret metadata only, safe for logs and payloads."""

    step: Step
    secret_arn: str
    version_id: str
    action: str
    metadata: TokenMetadata | None = None
    previous_version_id: str | None = None

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
        return payload


class Rotation:
    """Runs rotation steps against Secrets Manager and Google; every step is idempotent."""

    def __init__(
        self, secrets: SecretsGateway, google: GoogleClient, environment: Mapping[str, str]
    ) -> None:
        self._secrets = secrets
        self._google = google
        self._environment = environment

    def run(self, step: Step, request: RotationRequest) -> StepOutcome:
        handlers = {
            Step.CREATE: self.create_secret,
            Step.SET: self.set_secret,
            Step.TEST: self.test_secret,
            Step.FINISH: self.finish_secret,
        }
        return handlers[step](request)

    def create_secret(self, request: RotationRequest) -> StepOutcome:
        """Mint a token and store it as AWSPENDING, unless this rotation already did."""
        secret = self._secrets.describe(request.secret_id)
        if request.manual and request.token not in secret.version_stages:
            _refuse_if_rotation_in_progress(secret, request.token)
        elif _already_current(secret, request, Step.CREATE):
            return StepOutcome(Step.CREATE, secret.arn, request.token, "already-current")
        else:
            existing = self._read_pending(secret, request.token)
            if existing is not None:
                return StepOutcome(
                    Step.CREATE, secret.arn, request.token, "already-created", existing.metadata
                )
        settings = self._settings(secret)
        minted = credential_source_for(settings, self._secrets, self._google).mint(settings.scopes)
        written = self._secrets.put_pending(
            secret.arn, request.token, minted.to_secret_string(), request.rotation_token
        )
        if not written:
            # A concurrent attempt stored its own token first: keep that one, discard ours.
            stored = self._require_pending(secret, request.token)
            return StepOutcome(
                Step.CREATE, secret.arn, request.token, "already-created", stored.metadata
            )
        logger.info(
            "stored a new pending token",
            extra={"version_id": request.token, **minted.metadata.as_payload()},
        )
        return StepOutcome(Step.CREATE, secret.arn, request.token, "created", minted.metadata)

    def set_secret(self, request: RotationRequest) -> StepOutcome:
        """Nothing to set at Google for an access token: prove the pending value is well formed."""
        secret = self._secrets.describe(request.secret_id)
        if _already_current(secret, request, Step.SET):
            return StepOutcome(Step.SET, secret.arn, request.token, "already-current")
        pending = self._require_pending(secret, request.token)
        return StepOutcome(Step.SET, secret.arn, request.token, "checked", pending.metadata)

    def test_secret(self, request: RotationRequest) -> StepOutcome:
        """Ask Google whether the pending token is valid, scoped, ours and long-lived enough."""
        secret = self._secrets.describe(request.secret_id)
        if _already_current(secret, request, Step.TEST):
            return StepOutcome(Step.TEST, secret.arn, request.token, "already-current")
        pending = self._require_pending(secret, request.token)
        settings = self._settings(secret)
        _verify(pending, self._google, settings)
        return StepOutcome(Step.TEST, secret.arn, request.token, "verified", pending.metadata)

    def finish_secret(self, request: RotationRequest) -> StepOutcome:
        """Move AWSCURRENT onto the tested version."""
        secret = self._secrets.describe(request.secret_id)
        if _already_current(secret, request, Step.FINISH):
            return StepOutcome(Step.FINISH, secret.arn, request.token, "already-current")
        previous = secret.version_with(CURRENT)
        self._secrets.promote(secret.arn, request.token, previous)
        logger.info("promoted the pending token to AWSCURRENT", extra={"previous": previous})
        return StepOutcome(
            Step.FINISH, secret.arn, request.token, "promoted", previous_version_id=previous
        )

    def _settings(self, secret: SecretDescription) -> RotationSettings:
        return RotationSettings.resolve(secret.tags, self._environment)

    def _read_pending(self, secret: SecretDescription, token: str) -> TokenSecretValue | None:
        stored = self._secrets.read_pending(secret.arn, token)
        return None if stored is None else TokenSecretValue.from_secret_string(stored)

    def _require_pending(self, secret: SecretDescription, token: str) -> TokenSecretValue:
        pending = self._read_pending(secret, token)
        if pending is None:
            raise SecretNotFoundError(
                f"the pending version {token} of {secret.name!r} has no value: "
                "run createSecret for this rotation first"
            )
        return pending


def _already_current(secret: SecretDescription, request: RotationRequest, step: Step) -> bool:
    """The contract's checks at the start of every step; True means the work is already done."""
    if not request.manual and not secret.rotation_enabled:
        raise RotationNotEnabledError(
            f"rotation is not enabled for {secret.name!r}: enable it with RotateSecret or "
            "start a manual rotation instead"
        )
    stages = secret.version_stages.get(request.token)
    if stages is None:
        raise UnknownRotationTokenError(
            f"{step.value}: version {request.token} is not a version of {secret.name!r} "
            "(has no stage for rotation)"
        )
    if CURRENT in stages:
        logger.info("version is already AWSCURRENT: nothing to do", extra={"step": step.value})
        return True
    if PENDING not in stages:
        raise NotPendingVersionError(
            f"{step.value}: version {request.token} of {secret.name!r} is not AWSPENDING "
            f"(stages: {', '.join(stages) or 'none'}); this rotation was superseded or abandoned"
        )
    return False


def _refuse_if_rotation_in_progress(secret: SecretDescription, token: str) -> None:
    for version, stages in secret.version_stages.items():
        if version != token and PENDING in stages and CURRENT not in stages:
            raise RotationInProgressError(
                f"another rotation of {secret.name!r} is in progress: version {version} holds "
                "AWSPENDING. Wait for it to finish; if it is stale, remove the label with "
                f"'aws secretsmanager update-secret-version-stage --secret-id {secret.name} "
                f"--version-stage AWSPENDING --remove-from-version-id {version}'"
            )


def _verify(pending: TokenSecretValue, google: GoogleClient, settings: RotationSettings) -> None:
    meta = pending.metadata
    info = google.token_info(pending.access_token)
    missing = [scope for scope in settings.scopes if scope not in info.scopes]
    if missing:
        raise TokenVerificationError(
            f"the pending token lacks the scopes {', '.join(missing)} (it has "
            f"{', '.join(sorted(info.scopes)) or 'none'}); check the scopes setting and the "
            "service account's domain-wide delegation or API access"
        )
    if info.authorized_party != meta.service_account_client_id:
        raise TokenVerificationError(
            f"the pending token was issued to client {info.authorized_party}, not to "
            f"{meta.service_account} (client {meta.service_account_client_id})"
        )
    expected_account = settings.expected_service_account or meta.service_account
    for account in (meta.service_account, info.email):
        if account is not None and account != expected_account:
            raise TokenVerificationError(
                f"the pending token belongs to {account}, but the expected service account is "
                f"{expected_account}: check the key secret and the "
                "'token-rotation:service-account' setting"
            )
    if info.expires_in_seconds < settings.min_remaining_seconds:
        raise TokenVerificationError(
            f"the pending token expires in {info.expires_in_seconds} s, less than the required "
            f"{settings.min_remaining_seconds} s"
        )
