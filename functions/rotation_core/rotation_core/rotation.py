"""The four rotation steps and their preconditions, as the Secrets Manager contract demands."""

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, NoReturn

from rotation_core.config import (
    MANAGED_BY_TAG,
    RotationSettings,
    is_rotating_key_secret,
    managed_secret_check,
)
from rotation_core.credential_sources import CredentialSource, credential_source_for
from rotation_core.errors import (
    InvalidTokenSecretError,
    NotPendingVersionError,
    RotationAbandonedError,
    RotationInProgressError,
    TokenVerificationError,
    UnmanagedSecretError,
)
from rotation_core.follow_up import Clock, FollowUps
from rotation_core.freshness import check_id_token_claims, check_token_info, fresh_pending_value
from rotation_core.google_client import GoogleClient
from rotation_core.key_rotation import KeyRotation
from rotation_core.refresh import UNVERIFIED_VERSION_TAG
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import CURRENT, PENDING, SecretDescription, SecretsGateway
from rotation_core.step_outcome import StepOutcome, already_current, no_pending_value
from rotation_core.steps import Step
from rotation_core.token_secret import (
    ID_TOKEN_KIND,
    PLACEHOLDER,
    IdTokenSecretValue,
    StoredMetadata,
    StoredToken,
    TokenMetadata,
    is_token_secret_string,
    parse_token_secret,
)
from rotation_core.unverified import (
    TOKENINFO_UNREACHABLE,
    check_without_tokeninfo,
    current_at_risk,
)

logger = logging.getLogger(__name__)
ACCEPTED_UNVERIFIED: Final = "accepted-unverified"
"""testSecret's action when tokeninfo could not answer and the token in use was bad or about to be:
the pending token passed every check that needs no tokeninfo."""
PROMOTED_UNVERIFIED: Final = "promoted-unverified"
"""finishSecret's action when the token it promoted was accepted unverified (the step handlers
count these in the UnverifiedPromotions metric)."""


class Rotation:
    """Runs rotation steps against Secrets Manager and Google; every step is idempotent, and a
    pending version that can never pass is abandoned instead of blocking the secret."""

    def __init__(
        self,
        secrets: SecretsGateway,
        google: GoogleClient,
        environment: Mapping[str, str],
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._secrets = secrets
        self._google = google
        self._environment = environment
        self._clock = clock
        self._follow_ups = FollowUps(secrets, environment, clock)
        self._keys = KeyRotation(secrets, google, environment, clock, self._follow_ups)

    def run(self, step: Step, request: RotationRequest) -> StepOutcome:
        """The step for a token secret of this stack, or for the stack's own key secret when
        it renews itself (KEY_ROTATION_DAYS above 0)."""
        secret = self._secrets.describe(request.secret_id)
        if is_rotating_key_secret(secret.arn, secret.name, self._environment):
            return self._keys.run(step, request, secret)
        handlers = {
            Step.CREATE: self.create_secret,
            Step.SET: self.set_secret,
            Step.TEST: self.test_secret,
            Step.FINISH: self.finish_secret,
        }
        return handlers[step](request, secret)

    def create_secret(
        self, request: RotationRequest, described: SecretDescription | None = None
    ) -> StepOutcome:
        """Mint a token and store it as AWSPENDING, unless this rotation already did."""
        secret = self._describe_managed(request.secret_id, described)
        in_use = self._refuse_a_foreign_value(secret)
        settings = self._settings(secret)
        superseded = None
        if request.manual and request.token not in secret.version_stages:
            superseded = self._supersede_stale_rotation(secret, request.token, settings)
        elif already_current(secret, request, Step.CREATE):
            return StepOutcome(Step.CREATE, secret.arn, request.token, "already-current")
        else:
            stored = self._secrets.read_pending(secret.arn, request.token)
            if stored is not None:
                existing = self._fresh_or_abandon(
                    Step.CREATE, secret, request.token, stored, settings
                )
                return StepOutcome(
                    Step.CREATE, secret.arn, request.token, "already-created", existing.metadata
                )
        known = in_use if isinstance(in_use, TokenMetadata) else None
        source = credential_source_for(settings, self._secrets, self._google, known)
        minted = _mint(source, settings)
        _check_account(minted.metadata.service_account, settings)
        written = self._secrets.put_pending(
            secret.arn, request.token, minted.to_secret_string(), request.rotation_token
        )
        if not written:
            # A concurrent attempt stored its own token first: keep that one, discard ours.
            winner = self._require_fresh_pending(Step.CREATE, secret, request.token, settings)
            return StepOutcome(
                Step.CREATE, secret.arn, request.token, "already-created", winner.metadata
            )
        logger.info(
            "stored a new pending token",
            extra={"version_id": request.token, **minted.metadata.as_payload()},
        )
        return StepOutcome(
            Step.CREATE,
            secret.arn,
            request.token,
            "created",
            minted.metadata,
            superseded_version_id=superseded,
        )

    def set_secret(
        self, request: RotationRequest, described: SecretDescription | None = None
    ) -> StepOutcome:
        """Nothing to set at Google for an access token: prove the pending value is well formed
        and still fresh."""
        secret = self._describe_managed(request.secret_id, described)
        if already_current(secret, request, Step.SET):
            return StepOutcome(Step.SET, secret.arn, request.token, "already-current")
        settings = self._settings(secret)
        pending = self._require_fresh_pending(Step.SET, secret, request.token, settings)
        return StepOutcome(Step.SET, secret.arn, request.token, "checked", pending.metadata)

    def test_secret(
        self, request: RotationRequest, described: SecretDescription | None = None
    ) -> StepOutcome:
        """Ask Google whether the pending token is valid, scoped, ours and long-lived enough (an
        ID token: verify it as a relying party does, with Google's certificates).
        When tokeninfo (or the certificates endpoint) cannot answer, a token in use that is bad
        or about to be is worse than an unverified fresh one: the pending token is then accepted
        on what can be checked without tokeninfo, and the secret's status tag says so
        (docs/unverified-promotion.md)."""
        secret = self._describe_managed(request.secret_id, described)
        if already_current(secret, request, Step.TEST):
            return StepOutcome(Step.TEST, secret.arn, request.token, "already-current")
        settings = self._settings(secret)
        stored = self._secrets.read_pending(secret.arn, request.token)
        if stored is None and not request.manual:
            # RotateSecret(RotateImmediately=false) runs testSecret alone on an empty pending
            # version: the settings resolved above are what there is to test.
            logger.info("no pending value: the rotation's configuration was checked")
            return StepOutcome(Step.TEST, secret.arn, request.token, "configuration-checked")
        if stored is None:
            raise no_pending_value(Step.TEST, secret, request.token)
        try:
            pending = fresh_pending_value(stored, settings, self._clock())
            try:
                self._verify(pending, settings)
            except TOKENINFO_UNREACHABLE as unreachable:
                if not self._accepted_unverified(
                    secret, request.token, pending, settings, unreachable
                ):
                    raise
                return StepOutcome(
                    Step.TEST, secret.arn, request.token, ACCEPTED_UNVERIFIED, pending.metadata
                )
        except TokenVerificationError as error:
            # The stored value can never change: a token that fails now never will pass.
            self._abandon(Step.TEST, secret, request.token, str(error))
        if secret.tags.get(UNVERIFIED_VERSION_TAG) == request.token:
            # An earlier attempt accepted it unverified; tokeninfo has now vouched for it.
            self._secrets.untag(secret.arn, [UNVERIFIED_VERSION_TAG])
        return StepOutcome(Step.TEST, secret.arn, request.token, "verified", pending.metadata)

    def finish_secret(
        self, request: RotationRequest, described: SecretDescription | None = None
    ) -> StepOutcome:
        """Move AWSCURRENT onto the tested version, never onto an empty or stale one, then plan
        the next rotation before the token in use expires."""
        secret = self._describe_managed(request.secret_id, described)
        if already_current(secret, request, Step.FINISH):
            current = parse_token_secret(self._secrets.read_current(secret.arn))
            return self._finished(secret, request, "already-current", current.metadata, None)
        settings = self._settings(secret)
        pending = self._require_fresh_pending(Step.FINISH, secret, request.token, settings)
        previous = secret.version_with(CURRENT)
        self._secrets.promote(secret.arn, request.token, previous)
        if secret.tags.get(UNVERIFIED_VERSION_TAG) == request.token:
            logger.warning(
                "promoted a token to AWSCURRENT that Google's tokeninfo did not verify",
                extra={"previous": previous, "version_id": request.token},
            )
            return self._finished(secret, request, PROMOTED_UNVERIFIED, pending.metadata, previous)
        logger.info("promoted the pending token to AWSCURRENT", extra={"previous": previous})
        return self._finished(secret, request, "promoted", pending.metadata, previous)

    def _finished(
        self,
        secret: SecretDescription,
        request: RotationRequest,
        action: str,
        current: StoredMetadata,
        previous: str | None,
    ) -> StepOutcome:
        lead = self._settings(secret).refresh_lead_seconds
        return StepOutcome(
            Step.FINISH,
            secret.arn,
            request.token,
            action,
            current,
            previous_version_id=previous,
            follow_up=self._follow_ups.after_success(secret, request.token, current, lead),
        )

    def _accepted_unverified(
        self,
        secret: SecretDescription,
        token: str,
        pending: StoredToken,
        settings: RotationSettings,
        unreachable: Exception,
    ) -> bool:
        """True when the pending token may be promoted without tokeninfo's verdict, recorded on
        the secret; False while the token in use is healthy (tokeninfo's silence then stays a
        transient failure); TokenVerificationError when the pending token fails a check that
        needs no tokeninfo."""
        now = self._clock()
        current_version = secret.version_with(CURRENT)
        current = None if current_version is None else self._secrets.read_current_string(secret.arn)
        risk = current_at_risk(
            current_version, current, secret.tags, settings.refresh_lead_seconds, now
        )
        if risk is None:
            return False
        check_without_tokeninfo(pending, settings, now)
        # Before the step reports success: an unverified promotion is never a silent one.
        self._secrets.tag(secret.arn, {UNVERIFIED_VERSION_TAG: token})
        logger.warning(
            "tokeninfo could not answer and the token in use is at risk: the pending token is "
            "accepted unverified",
            extra={
                "version_id": token,
                "tokeninfo_error": str(unreachable),
                "token_in_use": risk,
                **pending.metadata.as_payload(),
            },
        )
        return True

    def _describe_managed(
        self, secret_id: str, described: SecretDescription | None
    ) -> SecretDescription:
        """Before anything is read or written: the secret must be a token secret of this stack
        (`described`: the run's own DescribeSecret, not repeated)."""
        secret = described or self._secrets.describe(secret_id)
        managed_secret_check(secret.arn, secret.name, secret.tags, self._environment)
        return secret

    def _refuse_a_foreign_value(self, secret: SecretDescription) -> StoredMetadata | None:
        """The tag alone does not make a token secret: before anything is written, AWSCURRENT
        must hold the placeholder or a token the rotation stored. Otherwise whoever may tag a
        secret could have the rotation overwrite a value it never wrote (docs/trust-boundary.md).
        The value is never shown. Returns the stored token's metadata (None for the
        placeholder)."""
        current = (
            None
            if secret.version_with(CURRENT) is None
            else self._secrets.read_current_string(secret.arn)
        )
        if current is not None and is_token_secret_string(current):
            try:
                return parse_token_secret(current).metadata
            except InvalidTokenSecretError:
                return None
        raise UnmanagedSecretError(
            f"createSecret: secret {secret.name!r} carries the tag "
            f"{MANAGED_BY_TAG}={secret.tags[MANAGED_BY_TAG]} but is not a token secret: its "
            "AWSCURRENT version holds neither a token this rotation stored nor the placeholder "
            f"{PLACEHOLDER}. Nothing was written. A token secret is created with that "
            "placeholder as its value (docs/many-secrets.md); if this secret "
            f"is not meant to be one, remove its {MANAGED_BY_TAG} tag"
        )

    def _verify(self, pending: StoredToken, settings: RotationSettings) -> None:
        """Google's verdict on a token of either kind; TokenVerificationError says why not, and
        the errors of TOKENINFO_UNREACHABLE that Google could not answer."""
        if isinstance(pending, IdTokenSecretValue):
            claims = self._google.verify_id_token(pending.id_token, pending.metadata.audience)
            check_id_token_claims(pending, claims, settings, self._clock())
        else:
            check_token_info(pending, self._google.token_info(pending.access_token), settings)

    def _settings(self, secret: SecretDescription) -> RotationSettings:
        return RotationSettings.resolve(secret.tags, self._environment)

    def _require_fresh_pending(
        self, step: Step, secret: SecretDescription, token: str, settings: RotationSettings
    ) -> StoredToken:
        stored = self._secrets.read_pending(secret.arn, token)
        if stored is None:
            raise no_pending_value(step, secret, token)
        return self._fresh_or_abandon(step, secret, token, stored, settings)

    def _fresh_or_abandon(
        self,
        step: Step,
        secret: SecretDescription,
        token: str,
        stored: str,
        settings: RotationSettings,
    ) -> StoredToken:
        """The stored pending value if it can still become AWSCURRENT; else the rotation is
        abandoned, because a version's value can never be replaced."""
        try:
            return fresh_pending_value(stored, settings, self._clock())
        except TokenVerificationError as error:
            self._abandon(step, secret, token, str(error))

    def _abandon(self, step: Step, secret: SecretDescription, token: str, reason: str) -> NoReturn:
        self._secrets.remove_pending(secret.arn, token)
        logger.warning("abandoned a stale rotation", extra={"version_id": token, "reason": reason})
        raise RotationAbandonedError(
            f"{step.value}: abandoned the rotation of {secret.name!r}: its pending version "
            f"{token} {reason}. AWSPENDING was removed from it, so the next rotation (the "
            "schedule, RotateSecret or a manual execution) starts fresh; AWSCURRENT was not "
            "touched"
        )

    def _supersede_stale_rotation(
        self, secret: SecretDescription, token: str, settings: RotationSettings
    ) -> str | None:
        """A manual run takes over from a pending version that holds no usable token, and
        refuses while another rotation's pending token is still fit to be promoted."""
        blocking = next(
            (
                version
                for version, stages in secret.version_stages.items()
                if version != token and PENDING in stages and CURRENT not in stages
            ),
            None,
        )
        if blocking is None:
            return None
        reason = self._why_stale(secret, blocking, settings)
        if reason is None:
            raise RotationInProgressError(
                f"another rotation of {secret.name!r} is in progress: its pending version "
                f"{blocking} holds a token that is still fresh and valid. Wait for that "
                "rotation to finish (or fail) and start again"
            )
        self._secrets.remove_pending(secret.arn, blocking)
        logger.warning(
            "superseded a stale pending version",
            extra={"version_id": blocking, "reason": reason},
        )
        return blocking

    def _why_stale(
        self, secret: SecretDescription, version: str, settings: RotationSettings
    ) -> str | None:
        try:
            stored = self._secrets.read_pending(secret.arn, version)
        except NotPendingVersionError:
            return "lost its AWSPENDING label meanwhile (its own run or another took it off)"
        if stored is None:
            return "holds no token (its createSecret never stored one)"
        try:
            self._verify(fresh_pending_value(stored, settings, self._clock()), settings)
        except TokenVerificationError as error:
            return str(error)
        return None


def _mint(source: CredentialSource, settings: RotationSettings) -> StoredToken:
    """A token of the secret's kind: an ID token for its audience, or an access token."""
    if settings.token_kind == ID_TOKEN_KIND and settings.id_token_audience is not None:
        return source.mint_id_token(settings.id_token_audience)
    return source.mint(settings.scopes)


def _check_account(account: str, settings: RotationSettings) -> None:
    """A token of another account is refused before it is ever stored."""
    expected = settings.expected_service_account
    if expected is not None and account != expected:
        raise TokenVerificationError(
            f"the minted token belongs to {account}, but the expected service account is "
            f"{expected}: store that account's key in the key secret; nothing was stored"
        )
