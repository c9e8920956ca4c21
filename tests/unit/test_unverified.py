"""Promotion through a tokeninfo outage: when the token in use counts as at risk, what a fresh
mint must pass without tokeninfo, and the one notice that says so (pure logic, at the
boundaries)."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rotation_core.config import RotationSettings
from rotation_core.errors import (
    AwsUnavailableError,
    GoogleConnectionError,
    GoogleResponseError,
    GoogleTimeoutError,
    GoogleUnavailableError,
    RotationError,
    TokenVerificationError,
)
from rotation_core.failure_notice import SUBJECT_LIMIT, compose_unverified
from rotation_core.refresh import (
    REFUSED_VERSION_TAG,
    UNVERIFIED_VERSION_TAG,
    FailureStreak,
    retry_at,
)
from rotation_core.secrets import SecretDescription
from rotation_core.token_secret import PLACEHOLDER, TokenMetadata, TokenSecretValue
from rotation_core.unverified import (
    TOKENINFO_UNREACHABLE,
    check_without_tokeninfo,
    current_at_risk,
)

SCOPE = "https://www.googleapis.com/auth/calendar.readonly"
ACCOUNT = "rotator@demo-project.iam.gserviceaccount.com"
TARGET = "calendar-reader@demo-project.iam.gserviceaccount.com"
CLIENT_ID = "104234567890123456789"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LEAD = 900
CURRENT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
PENDING = "5f0d1c2b-3a4e-4f60-9b8a-7c6d5e4f3a21"
ISSUED_SHAPE = "ya29." + "a0AfB_byC1x2y3z4" * 8
NAME = "google/access-token"
ARN = f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{NAME}-AbCdEf"


def settings(**changes: Any) -> RotationSettings:
    base = RotationSettings((SCOPE,), "service-account-key", "key", None, 900, LEAD)
    return replace(base, **changes)


def token(
    expires_in: timedelta = timedelta(hours=1),
    lifetime: timedelta = timedelta(hours=1),
    account: str = ACCOUNT,
    scopes: tuple[str, ...] = (SCOPE,),
    subject: str | None = None,
    access_token: str = ISSUED_SHAPE,
    token_type: str = "Bearer",
) -> TokenSecretValue:
    expires_at = NOW + expires_in
    metadata = TokenMetadata(
        token_type, expires_at, expires_at - lifetime, scopes, account, CLIENT_ID, subject
    )
    return TokenSecretValue(access_token, metadata)


def at_risk(value: str | None, tags: dict[str, str] | None = None) -> str | None:
    return current_at_risk(CURRENT, value, tags or {}, LEAD, NOW)


def in_use(expires_in: timedelta) -> str:
    return token(expires_in=expires_in).to_secret_string()


# --- When the token in use is at risk --------------------------------------------------------


def test_a_token_in_use_a_second_beyond_a_third_of_the_lead_is_healthy() -> None:
    assert at_risk(in_use(timedelta(seconds=LEAD // 3 + 1))) is None


def test_a_token_in_use_exactly_a_third_of_the_lead_from_expiry_is_at_risk() -> None:
    reason = at_risk(in_use(timedelta(seconds=LEAD // 3)))
    assert reason == (
        "it expires at 2026-11-26T12:05:00Z, in 300 s, within a third of the 900 s refresh lead"
    )


@pytest.mark.parametrize("expired_for", [timedelta(0), timedelta(hours=3)], ids=["now", "hours"])
def test_an_expired_token_in_use_is_at_risk(expired_for: timedelta) -> None:
    assert at_risk(in_use(-expired_for)) == (
        f"it expired at {(NOW - expired_for).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )


def test_the_third_follows_a_longer_lead() -> None:
    value = in_use(timedelta(seconds=1000))
    assert current_at_risk(CURRENT, value, {}, 3000, NOW) is not None
    assert current_at_risk(CURRENT, value, {}, 2999, NOW) is None


@pytest.mark.parametrize(
    ("version", "value", "reason"),
    [
        (None, None, "no version of the secret carries AWSCURRENT"),
        (CURRENT, PLACEHOLDER, "it holds no token yet (the placeholder"),
        (CURRENT, None, "it holds no token this rotation stored"),
        (CURRENT, '{"password": "hunter2"}', "it holds no token this rotation stored"),
    ],
    ids=["no-current-version", "placeholder", "binary", "foreign-value"],
)
def test_a_secret_without_a_token_in_use_is_at_risk(
    version: str | None, value: str | None, reason: str
) -> None:
    found = current_at_risk(version, value, {}, LEAD, NOW)
    assert found is not None
    assert found.startswith(reason)
    assert "hunter2" not in found


def test_a_healthy_token_google_refused_is_at_risk() -> None:
    reason = at_risk(in_use(timedelta(hours=1)), {REFUSED_VERSION_TAG: CURRENT})
    assert reason == f"Google refused it (status tag {REFUSED_VERSION_TAG} names version {CURRENT})"


def test_a_refusal_of_an_earlier_version_leaves_a_healthy_token_in_use_healthy() -> None:
    assert at_risk(in_use(timedelta(hours=1)), {REFUSED_VERSION_TAG: PENDING}) is None


def test_the_status_tags_keep_the_names_the_sweep_and_finish_secret_share() -> None:
    assert REFUSED_VERSION_TAG == "token-rotation-status:refused-version"
    assert UNVERIFIED_VERSION_TAG == "token-rotation-status:unverified-version"


@pytest.mark.parametrize("streak_before", [0, 3, 11])
def test_the_retry_chain_always_lands_an_attempt_within_the_third_before_the_expiry(
    streak_before: int,
) -> None:
    """What makes the rule reach applications in time: from any failure while the token in use
    is still healthy, retries come at most half its remaining life apart, so one of them finds
    it within a third of the lead and not yet expired."""
    expires_at = NOW + timedelta(seconds=LEAD)
    value = in_use(timedelta(seconds=LEAD))
    for healthy_for in range(LEAD // 3 + 1, LEAD + 1):
        moment, attempts = expires_at - timedelta(seconds=healthy_for), streak_before + 1
        while current_at_risk(CURRENT, value, {}, LEAD, moment) is None:
            moment, attempts = retry_at(attempts, moment, expires_at), attempts + 1
        assert moment < expires_at, f"no attempt in time after a failure {healthy_for} s before"


# --- Which failures of tokeninfo are silence, not a verdict ----------------------------------


@pytest.mark.parametrize(
    ("error", "silence"),
    [
        (GoogleUnavailableError, True),
        (GoogleTimeoutError, True),
        (GoogleConnectionError, True),
        (TokenVerificationError, False),
        (GoogleResponseError, False),
        (AwsUnavailableError, False),
    ],
)
def test_only_an_unreachable_tokeninfo_is_silence(
    error: type[RotationError], silence: bool
) -> None:
    assert isinstance(error("x"), TOKENINFO_UNREACHABLE) is silence


# --- What a fresh mint must pass without tokeninfo -------------------------------------------


def test_a_fresh_key_minted_token_passes() -> None:
    check_without_tokeninfo(token(), settings(), NOW)


def test_a_fresh_token_with_the_pinned_account_and_a_narrower_setting_passes() -> None:
    check_without_tokeninfo(
        token(scopes=(SCOPE, "email")), settings(expected_service_account=ACCOUNT), NOW
    )


def test_an_impersonated_token_may_live_what_the_settings_ask_for() -> None:
    twelve_hours = timedelta(hours=12)
    impersonating = settings(
        credential_source="impersonation",
        impersonated_service_account=TARGET,
        token_lifetime_seconds=43200,
    )
    check_without_tokeninfo(
        token(expires_in=twelve_hours, lifetime=twelve_hours, account=TARGET), impersonating, NOW
    )
    with pytest.raises(TokenVerificationError, match="at most 3600 s"):
        check_without_tokeninfo(
            token(expires_in=twelve_hours, lifetime=twelve_hours, account=TARGET),
            replace(impersonating, token_lifetime_seconds=3600),
            NOW,
        )


@pytest.mark.parametrize(
    ("pending", "reason"),
    [
        (token(access_token="ya29.has space"), "not an OAuth 2 bearer token"),
        (token(access_token="ya29.x\n"), "not an OAuth 2 bearer token"),
        (token(token_type="mac"), "not an OAuth 2 bearer token"),
        (token(lifetime=timedelta(hours=1, minutes=2, seconds=1)), "lifetime cannot be Google's"),
        (token(lifetime=timedelta(0)), "lifetime cannot be Google's"),
        (
            token(expires_in=timedelta(hours=2), lifetime=timedelta(minutes=57)),
            "lifetime cannot be Google's",
        ),
        (token(scopes=("email",)), f"minted without the scopes {SCOPE}"),
        (token(subject="someone@example.com"), "acts for someone@example.com"),
    ],
    ids=[
        "space",
        "line-break",
        "not-bearer",
        "longer-than-google-mints",
        "no-lifetime",
        "issued-in-the-future",
        "scope-missing",
        "unexpected-delegation",
    ],
)
def test_a_mint_that_fails_a_check_of_its_own_is_refused(
    pending: TokenSecretValue, reason: str
) -> None:
    with pytest.raises(TokenVerificationError, match=reason) as raised:
        check_without_tokeninfo(pending, settings(), NOW)
    assert pending.access_token not in str(raised.value)


def test_a_token_one_second_within_the_lifetime_slack_passes() -> None:
    check_without_tokeninfo(token(lifetime=timedelta(hours=1, minutes=2)), settings(), NOW)


@pytest.mark.parametrize(
    "changed",
    [
        {"expected_service_account": "other@demo-project.iam.gserviceaccount.com"},
        {
            "credential_source": "impersonation",
            "impersonated_service_account": "other@demo-project.iam.gserviceaccount.com",
        },
    ],
    ids=["pinned-account", "impersonation-target"],
)
def test_a_token_of_another_account_than_the_rotation_mints_for_is_refused(
    changed: dict[str, str],
) -> None:
    with pytest.raises(TokenVerificationError, match=f"holds a token of {ACCOUNT}, but the"):
        check_without_tokeninfo(token(), settings(**changed), NOW)


def test_a_delegated_token_for_the_configured_user_passes() -> None:
    user = "someone@example.com"
    check_without_tokeninfo(token(subject=user), settings(delegated_subject=user), NOW)
    with pytest.raises(TokenVerificationError, match="acts for no delegated user"):
        check_without_tokeninfo(token(), settings(delegated_subject=user), NOW)


# --- The one notice --------------------------------------------------------------------------


def description(name: str = NAME) -> SecretDescription:
    return SecretDescription(
        arn=f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{name}-AbCdEf",
        name=name,
        rotation_enabled=True,
        version_stages={CURRENT: ("AWSPREVIOUS",), PENDING: ("AWSCURRENT", "AWSPENDING")},
        tags={UNVERIFIED_VERSION_TAG: PENDING},
    )


def unverified_notice(
    streak: FailureStreak | None = None, name: str = NAME
) -> tuple[str, dict[str, Any]]:
    notice = compose_unverified(
        description(name),
        PENDING,
        streak,
        NOW,
        NOW + timedelta(hours=1),
        NOW + timedelta(minutes=45),
    )
    message: dict[str, Any] = json.loads(notice.message)
    return notice.subject, message


def test_the_notice_says_the_token_in_use_was_promoted_without_verification() -> None:
    subject, message = unverified_notice()

    assert subject == "Google token rotation promoted an unverified token (google/access-token)"
    assert "without tokeninfo's verification" in message["Summary"]
    assert "tokeninfo could not be reached" in message["Summary"]
    assert message["SecretId"] == ARN
    assert message["PromotedVersionId"] == PENDING
    assert message["PromotedAt"] == "2026-11-26T12:00:00Z"
    assert message["CurrentTokenExpiresAt"] == "2026-11-26T13:00:00Z"
    assert message["NextRefreshAt"] == "2026-11-26T12:45:00Z"
    assert "over TLS" in message["Checked"]
    assert "tokeninfo" in message["NotChecked"]
    assert f"--secret-id {NAME} " in message["NextSteps"]
    assert "401" in message["NextSteps"]
    assert "FailedAttempts" not in message


def test_the_notice_ends_a_streak_in_place_of_recovered() -> None:
    streak = FailureStreak(NOW - timedelta(minutes=11, seconds=30), 4, NOW - timedelta(minutes=11))

    _, message = unverified_notice(streak)

    assert message["Summary"].endswith("This ends 4 failed attempts over 11 minutes.")
    assert message["FailedAttempts"] == 4
    assert message["FailingSince"] == "2026-11-26T11:48:30Z"


def test_the_notice_subject_fits_sns_and_names_no_odd_secret() -> None:
    long_name = "team/" + "n-" * 253 + "xx"
    subject, message = unverified_notice(name=long_name)
    assert len(subject) <= SUBJECT_LIMIT
    assert subject.startswith("Google token rotation promoted an unverified token (team/n-")

    token_shaped = "ya29." + "a0AfB_byC1x2y3z4" * 4
    subject, message = unverified_notice(name=token_shaped)
    assert subject == "Google token rotation promoted an unverified token"
    assert token_shaped not in message["NextSteps"]
