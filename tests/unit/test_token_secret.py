"""The token secret's JSON schema: round trip, redaction, and every malformed stored value."""

import json
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rotation_core.errors import InvalidTokenSecretError
from rotation_core.token_secret import (
    ACCESS_TOKEN_FIELD,
    TokenMetadata,
    TokenSecretValue,
    format_timestamp,
    parse_timestamp,
)

TOKEN = "ya29.c.unit-test-access-token-that-must-never-be-shown"
ISSUED = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
SCOPES = (
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/drive.readonly",
)
METADATA = TokenMetadata(
    token_type="Bearer",
    expires_at=ISSUED + timedelta(hours=1),
    issued_at=ISSUED,
    scopes=SCOPES,
    service_account="rotator@demo-project.iam.gserviceaccount.com",
    service_account_client_id="112233445566778899000",
)
VALUE = TokenSecretValue(TOKEN, METADATA)

Document = dict[str, object]


def stored_document() -> Document:
    document: Document = json.loads(VALUE.to_secret_string())
    return document


# --- format_timestamp / parse_timestamp ----------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC), "2026-01-31T12:00:00Z"),
        (datetime(2026, 1, 31, 12, 0, 0, 999999, tzinfo=UTC), "2026-01-31T12:00:00Z"),
        (datetime(2026, 2, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))), "2026-01-31T23:30:00Z"),
        (
            datetime(2025, 12, 31, 19, 0, tzinfo=timezone(timedelta(hours=-5))),
            "2026-01-01T00:00:00Z",
        ),
        (datetime(2026, 3, 9, 4, 5, 6, tzinfo=UTC), "2026-03-09T04:05:06Z"),
    ],
    ids=["utc", "drops-microseconds", "positive-offset", "negative-offset-new-year", "zero-padded"],
)
def test_format_timestamp_writes_utc_with_z_and_whole_seconds(
    moment: datetime, expected: str
) -> None:
    assert format_timestamp(moment) == expected


@pytest.mark.parametrize(
    "text", ["2026-01-31T12:00:00Z", "2026-01-31T13:00:00+01:00", "2026-01-31T07:00:00-05:00"]
)
def test_parse_timestamp_accepts_any_offset_and_returns_utc(text: str) -> None:
    moment = parse_timestamp(text, "expires_at")
    assert moment == ISSUED
    assert moment.tzinfo is UTC


def test_format_and_parse_round_trip() -> None:
    assert parse_timestamp(format_timestamp(ISSUED), "issued_at") == ISSUED


# --- TokenSecretValue ---------------------------------------------------------------------------


def test_round_trip_keeps_token_and_metadata() -> None:
    assert TokenSecretValue.from_secret_string(VALUE.to_secret_string()) == VALUE


def test_round_trip_normalizes_offsets_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    value = TokenSecretValue(
        TOKEN,
        TokenMetadata(
            "Bearer",
            datetime(2026, 1, 31, 14, 0, tzinfo=paris),
            datetime(2026, 1, 31, 13, 0, tzinfo=paris),
            SCOPES,
            METADATA.service_account,
            METADATA.service_account_client_id,
        ),
    )
    parsed = TokenSecretValue.from_secret_string(value.to_secret_string())

    assert parsed.metadata.issued_at == ISSUED
    assert parsed.metadata.expires_at.tzinfo is UTC
    assert json.loads(value.to_secret_string())["expires_at"] == "2026-01-31T13:00:00Z"


def test_secret_string_is_the_schema_applications_read() -> None:
    assert stored_document() == {
        "GOOGLE_ACCESS_TOKEN": TOKEN,
        "token_type": "Bearer",
        "expires_at": "2026-01-31T13:00:00Z",
        "issued_at": "2026-01-31T12:00:00Z",
        "scopes": list(SCOPES),
        "service_account": "rotator@demo-project.iam.gserviceaccount.com",
        "service_account_client_id": "112233445566778899000",
    }


def test_unknown_fields_are_tolerated() -> None:
    document = {**stored_document(), "added_by_a_newer_version": True}
    assert TokenSecretValue.from_secret_string(json.dumps(document)) == VALUE


@pytest.mark.parametrize("render", [repr, str, "{}".format, lambda v: f"{v!s} {v!r}"])
def test_repr_and_str_never_show_the_token(render: Callable[[object], str]) -> None:
    text = render(VALUE)
    assert TOKEN not in text
    assert "<redacted>" in text
    assert METADATA.service_account in text


def test_repr_of_containers_hides_the_token() -> None:
    assert TOKEN not in repr([VALUE, {"value": VALUE}])


def test_metadata_payload_holds_no_token() -> None:
    assert METADATA.as_payload() == {
        "ExpiresAt": "2026-01-31T13:00:00Z",
        "IssuedAt": "2026-01-31T12:00:00Z",
        "Scopes": list(SCOPES),
        "ServiceAccount": METADATA.service_account,
    }


# --- malformed stored values ---------------------------------------------------------------------


def _with(field: str, value: object) -> Callable[[Document], None]:
    def change(document: Document) -> None:
        document[field] = value

    return change


def _without(field: str) -> Callable[[Document], None]:
    def remove(document: Document) -> None:
        del document[field]

    return remove


MALFORMED_DOCUMENTS: dict[str, tuple[Callable[[Document], None], str]] = {
    "token-missing": (_without(ACCESS_TOKEN_FIELD), "'GOOGLE_ACCESS_TOKEN' must be"),
    "token-empty": (_with(ACCESS_TOKEN_FIELD, ""), "'GOOGLE_ACCESS_TOKEN' must be"),
    "token-null": (_with(ACCESS_TOKEN_FIELD, None), "'GOOGLE_ACCESS_TOKEN' must be"),
    "token-object": (_with(ACCESS_TOKEN_FIELD, {"value": TOKEN}), "'GOOGLE_ACCESS_TOKEN' must be"),
    "scopes-missing": (_without("scopes"), "'scopes' must be"),
    "scopes-string": (_with("scopes", " ".join(SCOPES)), "'scopes' must be"),
    "scopes-empty-list": (_with("scopes", []), "'scopes' must be"),
    "scopes-empty-string": (_with("scopes", [SCOPES[0], ""]), "'scopes' must be"),
    "scopes-number": (_with("scopes", [SCOPES[0], 7]), "'scopes' must be"),
    "token_type-missing": (_without("token_type"), "'token_type' must be"),
    "token_type-empty": (_with("token_type", ""), "'token_type' must be"),
    "service_account-missing": (_without("service_account"), "'service_account' must be"),
    "service_account-number": (_with("service_account", 42), "'service_account' must be"),
    "client_id-missing": (
        _without("service_account_client_id"),
        "'service_account_client_id' must be",
    ),
    "expires_at-missing": (_without("expires_at"), "'expires_at' must be an RFC 3339"),
    "expires_at-epoch-number": (_with("expires_at", 1769864400), "'expires_at' must be an RFC"),
    "expires_at-naive": (_with("expires_at", "2026-01-31T13:00:00"), "'expires_at' has no time"),
    "expires_at-date-only": (_with("expires_at", "2026-01-31"), "'expires_at' has no time zone"),
    "expires_at-garbage": (_with("expires_at", "tomorrow"), "'expires_at' is not an RFC 3339"),
    "expires_at-bad-month": (
        _with("expires_at", "2026-13-01T00:00:00Z"),
        "'expires_at' is not an RFC 3339",
    ),
    "issued_at-naive": (_with("issued_at", "2026-01-31 12:00:00"), "'issued_at' has no time zone"),
    "issued_at-empty": (_with("issued_at", ""), "'issued_at' is not an RFC 3339"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_DOCUMENTS))
def test_malformed_value_names_the_field_and_never_the_token(case: str) -> None:
    damage, message = MALFORMED_DOCUMENTS[case]
    document = stored_document()
    damage(document)

    with pytest.raises(InvalidTokenSecretError, match=message) as raised:
        TokenSecretValue.from_secret_string(json.dumps(document))
    assert TOKEN not in str(raised.value)
    assert TOKEN not in "".join(traceback.format_exception(raised.value))


@pytest.mark.parametrize(
    ("secret_string", "message"),
    [
        ("", "is not JSON"),
        (TOKEN, "is not JSON"),
        ("{'GOOGLE_ACCESS_TOKEN': '" + TOKEN + "'}", "is not JSON"),
        (json.dumps([TOKEN]), "must be a JSON object"),
        (json.dumps(TOKEN), "must be a JSON object"),
        ("null", "must be a JSON object"),
        ("42", "must be a JSON object"),
    ],
    ids=["empty", "bare-token", "python-repr", "array", "json-string", "null", "number"],
)
def test_value_that_is_not_a_json_object_is_refused_without_echoing_it(
    secret_string: str, message: str
) -> None:
    with pytest.raises(InvalidTokenSecretError, match=message) as raised:
        TokenSecretValue.from_secret_string(secret_string)
    assert TOKEN not in str(raised.value)
    # A chained JSONDecodeError would carry the whole document into the logged traceback.
    assert TOKEN not in "".join(traceback.format_exception(raised.value))


def test_first_deployed_placeholder_is_refused() -> None:
    """The template deploys {"GOOGLE_ACCESS_TOKEN": ""} until the first rotation fills it."""
    with pytest.raises(InvalidTokenSecretError, match="'GOOGLE_ACCESS_TOKEN' must be a non-empty"):
        TokenSecretValue.from_secret_string(json.dumps({"GOOGLE_ACCESS_TOKEN": ""}))
