"""Whether a pending token can still become AWSCURRENT: pure checks of its stored metadata and
of what Google's tokeninfo says about it."""

from datetime import datetime

from rotation_core.config import RotationSettings
from rotation_core.errors import InvalidTokenSecretError, TokenVerificationError
from rotation_core.google_client import TokenInfo
from rotation_core.token_secret import TokenSecretValue, format_timestamp


def fresh_pending_value(stored: str, settings: RotationSettings, now: datetime) -> TokenSecretValue:
    """The stored pending value, if it could still become AWSCURRENT as far as its own
    metadata tells; TokenVerificationError says why not, without asking Google."""
    try:
        value = TokenSecretValue.from_secret_string(stored)
    except InvalidTokenSecretError as error:
        raise TokenVerificationError(f"is malformed ({error})") from None
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
