"""When Google's tokeninfo (for an ID token, its certificates endpoint) cannot answer: whether the
token in use is bad enough that a fresh mint is promoted unverified, and what can be checked of
that mint without tokeninfo.

Pure logic. Verification protects applications from a bad token; while tokeninfo is unreachable
and the token applications read is expired, missing, refused by Google or about to expire, a
token Google's token endpoint just issued protects them more (docs/unverified-promotion.md). An
explicit refusal by tokeninfo is never overridden: only its silence is.
"""

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final

from rotation_core.config import (
    DEFAULT_TOKEN_LIFETIME_SECONDS,
    SERVICE_ACCOUNT_KEY_SOURCE,
    RotationSettings,
)
from rotation_core.errors import (
    GoogleConnectionError,
    GoogleTimeoutError,
    GoogleUnavailableError,
    InvalidTokenSecretError,
    TokenVerificationError,
)
from rotation_core.refresh import REFUSED_VERSION_TAG
from rotation_core.token_secret import (
    IdTokenSecretValue,
    StoredToken,
    format_timestamp,
    is_token_secret_string,
    parse_token_secret,
)

TOKENINFO_UNREACHABLE: Final = (GoogleUnavailableError, GoogleTimeoutError, GoogleConnectionError)
"""tokeninfo gave no verdict (5xx, 408, 429, timeout, refused or reset connection); any answer it
did give (invalid_token, an unexpected 4xx, a malformed body) is a verdict and still blocks."""
AT_RISK_SHARE_OF_LEAD: Final = 3
"""The token in use is about to expire within a third of the refresh lead: by then the regular
rotation (at the lead) and its retries have failed for two thirds of the lead, and the retries
left before the expiry are few (each waits up to half the remaining life)."""
LIFETIME_SLACK: Final = timedelta(minutes=2)
"""issued_at is taken before the mint's request and expires_at from Google's expires_in after its
answer: the round trips between them (google-auth's own retries included) may add this much."""
_BEARER_TOKEN: Final = re.compile(r"[A-Za-z0-9._~+/-]+=*")
"""RFC 6750's b64token: the only characters an OAuth 2 bearer token may hold."""
_SIGNED_JWT: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
"""A JWS in compact form: header, claims and signature, base64url without padding."""


def current_at_risk(
    current_version: str | None,
    current_value: str | None,
    tags: Mapping[str, str],
    lead_seconds: int,
    now: datetime,
) -> str | None:
    """Why the token applications read now (AWSCURRENT: its version id, its secret string) is
    bad or about to be; None while it is healthy, and the verdict waits for tokeninfo."""
    if current_version is None:
        return "no version of the secret carries AWSCURRENT"
    if tags.get(REFUSED_VERSION_TAG) == current_version:
        return (
            f"Google refused it (status tag {REFUSED_VERSION_TAG} names version {current_version})"
        )
    current = _token_of(current_value)
    if isinstance(current, str):
        return current
    expires_at = current.metadata.expires_at
    remaining = int((expires_at - now).total_seconds())
    if remaining <= 0:
        return f"it expired at {format_timestamp(expires_at)}"
    if remaining * AT_RISK_SHARE_OF_LEAD <= lead_seconds:
        return (
            f"it expires at {format_timestamp(expires_at)}, in {remaining} s, within a third of "
            f"the {lead_seconds} s refresh lead"
        )
    return None


def _token_of(secret_string: str | None) -> StoredToken | str:
    """The token a version holds, or why it holds none."""
    if secret_string is None or not is_token_secret_string(secret_string):
        return "it holds no token this rotation stored"
    try:
        return parse_token_secret(secret_string)
    except InvalidTokenSecretError:
        return "it holds no token yet (the placeholder the secret was created with)"


def check_without_tokeninfo(
    pending: StoredToken, settings: RotationSettings, now: datetime
) -> None:
    """What can be known of a freshly minted token without tokeninfo: it is a bearer token, it
    lives as long as the source can make it live, and it was minted for the scopes and account
    the settings ask for. `pending` has already passed `fresh_pending_value` (a well-formed value
    of the secret's kind and audience, with at least min_remaining_seconds left);
    TokenVerificationError says what does not hold."""
    if isinstance(pending, IdTokenSecretValue):
        _check_id_token_without_certs(pending, settings, now)
        return
    meta = pending.metadata
    if meta.token_type.lower() != "bearer" or not _BEARER_TOKEN.fullmatch(pending.access_token):
        raise TokenVerificationError(
            "holds a value that is not an OAuth 2 bearer token (RFC 6750 token characters, "
            "token_type Bearer)"
        )
    _check_lifetime(meta.issued_at, meta.expires_at, _longest_lifetime(settings), now)
    missing = [scope for scope in settings.scopes if scope not in meta.scopes]
    if missing:
        raise TokenVerificationError(
            f"holds a token minted without the scopes {', '.join(missing)} that the settings "
            "now require"
        )
    for expected in (settings.impersonated_service_account, settings.expected_service_account):
        if expected is not None and meta.service_account != expected:
            raise TokenVerificationError(
                f"holds a token of {meta.service_account}, but the rotation mints for "
                f"{expected}: check the key secret and the 'token-rotation:service-account' "
                "setting"
            )
    if meta.subject != settings.delegated_subject:
        raise TokenVerificationError(
            f"holds a token that acts for {meta.subject or 'no delegated user'}, but the "
            f"settings ask for {settings.delegated_subject or 'none'}"
        )


def _check_id_token_without_certs(
    pending: IdTokenSecretValue, settings: RotationSettings, now: datetime
) -> None:
    """An ID token without Google's certificates: a signed JWT in form, Google's hour of life,
    minted for the account the settings ask for (its audience was checked on reading)."""
    meta = pending.metadata
    if not _SIGNED_JWT.fullmatch(pending.id_token):
        raise TokenVerificationError("holds a value that is not a signed JWT (an ID token)")
    _check_lifetime(meta.issued_at, meta.expires_at, DEFAULT_TOKEN_LIFETIME_SECONDS, now)
    for expected in (settings.impersonated_service_account, settings.expected_service_account):
        if expected is not None and meta.service_account != expected:
            raise TokenVerificationError(
                f"holds an ID token of {meta.service_account}, but the rotation mints for "
                f"{expected}: check the key secret and the 'token-rotation:service-account' "
                "setting"
            )


def _check_lifetime(issued_at: datetime, expires_at: datetime, longest: int, now: datetime) -> None:
    lifetime = expires_at - issued_at
    if issued_at > now + LIFETIME_SLACK or not (
        timedelta(0) < lifetime <= timedelta(seconds=longest) + LIFETIME_SLACK
    ):
        raise TokenVerificationError(
            f"holds a token whose stored lifetime cannot be Google's (issued_at "
            f"{format_timestamp(issued_at)}, expires_at {format_timestamp(expires_at)}; "
            f"this source mints tokens of at most {longest} s)"
        )


def _longest_lifetime(settings: RotationSettings) -> int:
    """A key's own tokens always live Google's hour; impersonated and federated ones what the
    settings ask generateAccessToken for."""
    if settings.credential_source == SERVICE_ACCOUNT_KEY_SOURCE:
        return DEFAULT_TOKEN_LIFETIME_SECONDS
    return settings.token_lifetime_seconds
