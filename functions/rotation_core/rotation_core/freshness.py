"""Whether a pending token can still become AWSCURRENT: pure checks of its stored metadata and
of what Google says about it (tokeninfo for an access token, the verified claims of an ID token)."""

from datetime import datetime
from typing import Final

from rotation_core.config import RotationSettings
from rotation_core.errors import InvalidTokenSecretError, TokenVerificationError
from rotation_core.google_client import IdTokenClaims, TokenInfo
from rotation_core.token_secret import (
    ID_TOKEN_KIND,
    IdTokenSecretValue,
    StoredToken,
    TokenSecretValue,
    format_timestamp,
    parse_token_secret,
    token_kind,
)

GOOGLE_ISSUERS: Final = frozenset({"https://accounts.google.com", "accounts.google.com"})
"""The iss values Google's ID tokens carry (relying parties accept both)."""


def fresh_pending_value(stored: str, settings: RotationSettings, now: datetime) -> StoredToken:
    """The stored pending value, if it could still become AWSCURRENT as far as its own
    metadata tells; TokenVerificationError says why not, without asking Google."""
    try:
        value = parse_token_secret(stored)
    except InvalidTokenSecretError as error:
        raise TokenVerificationError(f"is malformed ({error})") from None
    if token_kind(value) != settings.token_kind:
        raise TokenVerificationError(
            f"holds a token of kind {token_kind(value)!r}, but the secret's settings now ask for "
            f"{settings.token_kind!r}"
        )
    if isinstance(value, IdTokenSecretValue) and value.metadata.audience != (
        settings.id_token_audience
    ):
        raise TokenVerificationError(
            f"holds an ID token for {value.metadata.audience}, but the secret's audience is now "
            f"{settings.id_token_audience}"
        )
    remaining = int((value.metadata.expires_at - now).total_seconds())
    if remaining < settings.min_remaining_seconds:
        state = "expired" if remaining <= 0 else f"has only {remaining} s left"
        raise TokenVerificationError(
            f"holds a token that {state} (expires_at "
            f"{format_timestamp(value.metadata.expires_at)}; at least "
            f"{settings.min_remaining_seconds} s are required)"
        )
    return value


def check_token_info(
    pending: TokenSecretValue, info: TokenInfo, settings: RotationSettings
) -> None:
    """What Google says about the token must match what we expect of it."""
    meta = pending.metadata
    missing = [scope for scope in settings.scopes if scope not in info.scopes]
    if missing:
        raise TokenVerificationError(
            f"holds a token that lacks the scopes {', '.join(missing)} (it has "
            f"{', '.join(sorted(info.scopes)) or 'none'}); check the scopes setting and the "
            "service account's domain-wide delegation or API access"
        )
    if info.authorized_party != meta.service_account_client_id:
        raise TokenVerificationError(
            f"holds a token issued to client {info.authorized_party}, not to "
            f"{meta.service_account} (client {meta.service_account_client_id})"
        )
    expected_account = settings.expected_service_account or meta.service_account
    if meta.subject is not None:
        # A delegated token acts for its user: tokeninfo names the user, not the account.
        if info.email is not None and info.email != meta.subject:
            raise TokenVerificationError(
                f"holds a token that acts for {info.email}, not for the delegated subject "
                f"{meta.subject}"
            )
        info_email = None
    else:
        info_email = info.email
    for account in (meta.service_account, info_email):
        if account is not None and account != expected_account:
            raise TokenVerificationError(
                f"holds a token of {account}, but the expected service account is "
                f"{expected_account}: check the key secret and the "
                "'token-rotation:service-account' setting"
            )
    if info.expires_in_seconds < settings.min_remaining_seconds:
        raise TokenVerificationError(
            f"holds a token that Google says expires in {info.expires_in_seconds} s, less than "
            f"the required {settings.min_remaining_seconds} s"
        )


def check_id_token_claims(
    pending: IdTokenSecretValue, claims: IdTokenClaims, settings: RotationSettings, now: datetime
) -> None:
    """What a relying party checks beyond the signature, and the rotation's own rules: Google
    issued it, for the secret's audience, to the expected account, with life enough left."""
    meta = pending.metadata
    if settings.token_kind != ID_TOKEN_KIND:
        raise TokenVerificationError("holds an ID token, but the secret holds access tokens")
    if claims.issuer not in GOOGLE_ISSUERS:
        raise TokenVerificationError(
            f"holds an ID token issued by {claims.issuer}, not by https://accounts.google.com"
        )
    if claims.audience != settings.id_token_audience or claims.audience != meta.audience:
        raise TokenVerificationError(
            f"holds an ID token for {claims.audience}, not for {settings.id_token_audience}"
        )
    expected = (
        settings.expected_service_account
        or settings.impersonated_service_account
        or meta.service_account
    )
    if claims.email is None:
        raise TokenVerificationError(
            "holds an ID token without an email claim, so its account cannot be checked "
            "(generateIdToken must be asked with includeEmail)"
        )
    if claims.email != expected or meta.service_account != expected:
        raise TokenVerificationError(
            f"holds an ID token of {claims.email}, but the expected service account is "
            f"{expected}: check the key secret and the 'token-rotation:service-account' setting"
        )
    remaining = int((claims.expires_at - now).total_seconds())
    if remaining < settings.min_remaining_seconds:
        raise TokenVerificationError(
            f"holds an ID token that expires in {remaining} s (exp "
            f"{format_timestamp(claims.expires_at)}), less than the required "
            f"{settings.min_remaining_seconds} s"
        )
