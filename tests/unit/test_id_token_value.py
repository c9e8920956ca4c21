"""An ID-token secret's value and the rules it is held to: its JSON (one place for both kinds),
what testSecret demands of a verified token's claims, and what can be checked without Google's
certificates when they cannot be fetched."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from rotation_core.config import RotationSettings
from rotation_core.errors import InvalidTokenSecretError, TokenVerificationError
from rotation_core.failure_notice import compose_refused
from rotation_core.freshness import check_id_token_claims, fresh_pending_value
from rotation_core.google_client import IdTokenClaims
from rotation_core.token_secret import (
    IdTokenMetadata,
    IdTokenSecretValue,
    TokenSecretValue,
    is_token_secret_string,
    parse_token_secret,
)
from rotation_core.unverified import check_without_tokeninfo

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ1bml0LXRlc3QifQ.c2lnbmF0dXJlLW5ldmVyLXNob3du"
AUDIENCE = "https://reports-abc123-ew.a.run.app"
OTHER = "https://payments-zz9-ew.a.run.app"
ACCOUNT = "invoker@demo-project.iam.gserviceaccount.com"
NOW = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
MINIMUM = 900


def value(
    lifetime: timedelta = timedelta(hours=1), token: str = TOKEN, account: str = ACCOUNT
) -> IdTokenSecretValue:
    return IdTokenSecretValue(token, IdTokenMetadata(NOW + lifetime, NOW, AUDIENCE, account))


def settings(audience: str = AUDIENCE, **tags: str) -> RotationSettings:
    return RotationSettings.resolve(
        {"token-rotation:token-kind": "id-token", "token-rotation:audience": audience, **tags},
        {
            "GOOGLE_SCOPES": "https://www.googleapis.com/auth/calendar.readonly",
            "SERVICE_ACCOUNT_KEY_SECRET_ID": "google/key",
            "ID_TOKEN_AUDIENCES": f"{AUDIENCE},{OTHER}",
            "MIN_REMAINING_SECONDS": str(MINIMUM),
        },
    )


def claims(**changes: object) -> IdTokenClaims:
    fields: dict[str, object] = {
        "issuer": "https://accounts.google.com",
        "audience": AUDIENCE,
        "email": ACCOUNT,
        "expires_at": NOW + timedelta(hours=1),
    }
    return IdTokenClaims(**{**fields, **changes})  # type: ignore[arg-type]


# --- the stored value ----------------------------------------------------------------------------


def test_the_value_holds_the_token_and_its_metadata_and_no_access_token() -> None:
    document = json.loads(value().to_secret_string())
    assert document == {
        "GOOGLE_ID_TOKEN": TOKEN,
        "audience": AUDIENCE,
        "expires_at": "2026-01-31T13:00:00Z",
        "issued_at": "2026-01-31T12:00:00Z",
        "service_account": ACCOUNT,
    }
    assert parse_token_secret(value().to_secret_string()) == value()
    assert is_token_secret_string(value().to_secret_string())


def test_repr_str_and_payload_never_show_the_token() -> None:
    stored = value()
    for shown in (repr(stored), str(stored), json.dumps(stored.metadata.as_payload())):
        assert TOKEN not in shown
    assert stored.metadata.as_payload()["Audience"] == AUDIENCE


@pytest.mark.parametrize("field", ["audience", "expires_at", "issued_at", "service_account"])
def test_a_missing_field_is_named_without_echoing_the_value(field: str) -> None:
    document = json.loads(value().to_secret_string())
    del document[field]
    with pytest.raises(InvalidTokenSecretError, match=repr(field)) as error:
        parse_token_secret(json.dumps(document))
    assert TOKEN not in str(error.value)
    assert not is_token_secret_string(json.dumps(document))


def test_a_value_with_both_kinds_of_token_is_refused() -> None:
    both = {**json.loads(value().to_secret_string()), "GOOGLE_ACCESS_TOKEN": "ya29.x"}
    with pytest.raises(InvalidTokenSecretError, match="holds one kind of token"):
        parse_token_secret(json.dumps(both))


def test_the_access_token_reader_refuses_an_id_token_value() -> None:
    with pytest.raises(InvalidTokenSecretError, match="holds an ID token"):
        TokenSecretValue.from_secret_string(value().to_secret_string())


# --- a pending value's freshness -----------------------------------------------------------------


def test_a_fresh_id_token_of_the_secrets_audience_may_become_current() -> None:
    assert fresh_pending_value(value().to_secret_string(), settings(), NOW) == value()


def test_an_id_token_for_an_audience_the_secret_no_longer_has_is_stale() -> None:
    with pytest.raises(TokenVerificationError, match=f"for {AUDIENCE}, but the secret's audience"):
        fresh_pending_value(value().to_secret_string(), settings(OTHER), NOW)


def test_a_pending_token_of_the_other_kind_is_stale() -> None:
    access_settings = RotationSettings.resolve(
        {}, {"GOOGLE_SCOPES": "email", "SERVICE_ACCOUNT_KEY_SECRET_ID": "google/key"}
    )
    with pytest.raises(TokenVerificationError, match=r"kind 'id-token'.*ask for 'access-token'"):
        fresh_pending_value(value().to_secret_string(), access_settings, NOW)


def test_an_id_token_with_less_than_the_minimum_left_is_stale() -> None:
    short = value(timedelta(seconds=MINIMUM - 1)).to_secret_string()
    with pytest.raises(TokenVerificationError, match=f"has only {MINIMUM - 1} s left"):
        fresh_pending_value(short, settings(), NOW)


# --- the verified claims -------------------------------------------------------------------------


@pytest.mark.parametrize("issuer", ["https://accounts.google.com", "accounts.google.com"])
def test_claims_google_issued_for_the_audience_and_account_pass(issuer: str) -> None:
    check_id_token_claims(value(), claims(issuer=issuer), settings(), NOW)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"issuer": "https://evil.example.com"}, "issued by https://evil.example.com"),
        ({"audience": OTHER}, f"for {OTHER}, not for {AUDIENCE}"),
        ({"email": None}, "without an email claim"),
        ({"email": "intruder@demo-project.iam.gserviceaccount.com"}, "of intruder@"),
        ({"expires_at": NOW + timedelta(seconds=MINIMUM - 1)}, f"expires in {MINIMUM - 1} s"),
    ],
    ids=["issuer", "audience", "no-email", "other-account", "short-life"],
)
def test_claims_that_a_relying_party_or_the_rotation_would_refuse_fail(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(TokenVerificationError, match=reason) as error:
        check_id_token_claims(value(), claims(**changes), settings(), NOW)
    assert TOKEN not in str(error.value)


def test_claims_of_another_account_than_the_pinned_one_fail() -> None:
    pinned = settings(**{"token-rotation:service-account": "other@demo.iam.gserviceaccount.com"})
    with pytest.raises(TokenVerificationError, match="expected service account is other@"):
        check_id_token_claims(value(), claims(), pinned, NOW)


# --- without the certificates --------------------------------------------------------------------


def test_a_well_formed_id_token_passes_without_the_certificates() -> None:
    check_without_tokeninfo(value(), settings(), NOW)


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        (value(token="ya29.not-a-jwt"), "not a signed JWT"),
        (value(token=f"{TOKEN}.extra"), "not a signed JWT"),
        (value(lifetime=timedelta(hours=2)), "lifetime cannot be Google's"),
    ],
    ids=["access-token", "five-segments", "two-hours"],
)
def test_what_cannot_be_googles_id_token_fails_without_the_certificates(
    stored: IdTokenSecretValue, reason: str
) -> None:
    with pytest.raises(TokenVerificationError, match=reason):
        check_without_tokeninfo(stored, settings(), NOW)


def test_an_id_token_of_another_account_fails_without_the_certificates() -> None:
    pinned = settings(**{"token-rotation:service-account": ACCOUNT})
    stranger = value(account="intruder@demo-project.iam.gserviceaccount.com")
    with pytest.raises(TokenVerificationError, match="holds an ID token of intruder@"):
        check_without_tokeninfo(stranger, pinned, NOW)


# --- notices -------------------------------------------------------------------------------------


def test_the_refused_notice_of_an_id_token_names_the_certificates_not_tokeninfo() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:google/reports-AbCdEf"
    expires = NOW + timedelta(minutes=40)
    id_notice = json.loads(
        compose_refused(arn, "google/reports", "v" * 36, expires, NOW, id_token=True).message
    )
    access_notice = json.loads(
        compose_refused(arn, "google/reports", "v" * 36, expires, NOW).message
    )

    assert id_notice["Summary"].startswith("Google's certificates no longer verify the ID token")
    assert "a key Google no longer publishes" in id_notice["NextSteps"]
    assert access_notice["Summary"].startswith("Google's tokeninfo refused the token in use")
    assert "no longer publishes" not in access_notice["NextSteps"]
