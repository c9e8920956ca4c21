"""Whether a pending token may still become AWSCURRENT: the pure checks, at their boundaries."""

from datetime import UTC, datetime, timedelta

import pytest

from rotation_core.config import RotationSettings
from rotation_core.errors import TokenVerificationError
from rotation_core.freshness import check_token_info, fresh_pending_value
from rotation_core.google_client import TokenInfo
from rotation_core.token_secret import TokenMetadata, TokenSecretValue

SCOPE = "https://www.googleapis.com/auth/calendar.readonly"
ACCOUNT = "rotator@demo-project.iam.gserviceaccount.com"
CLIENT_ID = "104234567890123456789"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MINIMUM = 900


def settings(expected_account: str | None = None) -> RotationSettings:
    return RotationSettings((SCOPE,), "service-account-key", "key", expected_account, MINIMUM, 900)


def pending(expires_in: timedelta) -> TokenSecretValue:
    metadata = TokenMetadata(
        "Bearer", NOW + expires_in, NOW - timedelta(minutes=5), (SCOPE,), ACCOUNT, CLIENT_ID
    )
    return TokenSecretValue("ya29.pending", metadata)


def info(expires_in: int = 3000, email: str | None = ACCOUNT) -> TokenInfo:
    return TokenInfo(CLIENT_ID, frozenset({SCOPE}), expires_in, email)


def test_google_saying_exactly_the_minimum_life_passes() -> None:
    check_token_info(pending(timedelta(hours=1)), info(expires_in=MINIMUM), settings())


def test_google_saying_one_second_less_than_the_minimum_fails() -> None:
    with pytest.raises(TokenVerificationError, match=f"expires in {MINIMUM - 1} s, less than"):
        check_token_info(pending(timedelta(hours=1)), info(expires_in=MINIMUM - 1), settings())


def test_tokeninfo_naming_another_account_fails_even_when_the_metadata_is_ours() -> None:
    other = "intruder@demo-project.iam.gserviceaccount.com"
    with pytest.raises(TokenVerificationError, match=f"holds a token of {other}"):
        check_token_info(pending(timedelta(hours=1)), info(email=other), settings(ACCOUNT))


def test_stored_expiry_exactly_the_minimum_away_is_fresh() -> None:
    stored = pending(timedelta(seconds=MINIMUM)).to_secret_string()
    assert fresh_pending_value(stored, settings(), NOW) == pending(timedelta(seconds=MINIMUM))


@pytest.mark.parametrize(
    ("expires_in", "reason"),
    [
        (timedelta(seconds=MINIMUM - 1), f"has only {MINIMUM - 1} s left"),
        (timedelta(0), "expired"),
        (timedelta(hours=-2), "expired"),
    ],
    ids=["one-second-short", "expiring-now", "long-expired"],
)
def test_stored_expiry_below_the_minimum_is_stale(expires_in: timedelta, reason: str) -> None:
    stored = pending(expires_in).to_secret_string()
    with pytest.raises(TokenVerificationError, match=reason):
        fresh_pending_value(stored, settings(), NOW)


@pytest.mark.parametrize(
    "stored",
    ['{"GOOGLE_ACCESS_TOKEN": ""}', "not json", '{"GOOGLE_ACCESS_TOKEN": "ya29.x"}', "[]"],
    ids=["first-deploy-placeholder", "not-json", "no-metadata", "array"],
)
def test_a_malformed_stored_value_is_stale_and_never_echoed(stored: str) -> None:
    with pytest.raises(TokenVerificationError, match="is malformed") as raised:
        fresh_pending_value(stored, settings(), NOW)
    assert "ya29.x" not in str(raised.value)
