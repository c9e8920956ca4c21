"""Which values the rotation may replace: the placeholder a token secret is created with and the
values the rotation writes, nothing else (createSecret's guard against tagged foreign secrets)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from rotation_core.token_secret import (
    PLACEHOLDER,
    TokenMetadata,
    TokenSecretValue,
    is_token_secret_string,
)

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
WRITTEN = TokenSecretValue(
    access_token="ya29." + "a" * 40,
    metadata=TokenMetadata(
        token_type="Bearer",
        expires_at=NOW + timedelta(hours=1),
        issued_at=NOW,
        scopes=("https://www.googleapis.com/auth/calendar.readonly",),
        service_account="rotator@demo-project.iam.gserviceaccount.com",
        service_account_client_id="123456789012345678901",
    ),
)


def test_the_placeholder_is_what_template_yaml_deploys() -> None:
    assert PLACEHOLDER == '{"GOOGLE_ACCESS_TOKEN": ""}'


@pytest.mark.parametrize(
    "secret_string",
    [PLACEHOLDER, '{"GOOGLE_ACCESS_TOKEN":""}', '\n{ "GOOGLE_ACCESS_TOKEN" : "" }\n'],
    ids=["as-deployed", "compact", "spaced"],
)
def test_the_placeholder_however_it_is_spelled_may_be_replaced(secret_string: str) -> None:
    assert is_token_secret_string(secret_string)


def test_a_value_the_rotation_wrote_may_be_replaced() -> None:
    assert is_token_secret_string(WRITTEN.to_secret_string())


@pytest.mark.parametrize(
    "secret_string",
    [
        "",
        "hunter2",
        "{}",
        json.dumps({"username": "app", "password": "hunter2"}),
        # A token put by hand, without the metadata the rotation writes.
        json.dumps({"GOOGLE_ACCESS_TOKEN": "ya29.by-hand"}),
        # The placeholder's key beside someone else's data.
        json.dumps({"GOOGLE_ACCESS_TOKEN": "", "password": "hunter2"}),
        json.dumps({"GOOGLE_ACCESS_TOKEN": None}),
        json.dumps([PLACEHOLDER]),
        json.dumps(PLACEHOLDER),
        # Deeper than the JSON parser recurses: still just not ours.
        "[" * 100_000,
    ],
    ids=[
        "empty",
        "plain-text",
        "empty-object",
        "credentials",
        "token-by-hand",
        "placeholder-and-more",
        "null-token",
        "array",
        "placeholder-as-json-string",
        "deeply-nested",
    ],
)
def test_any_other_value_belongs_to_someone_else(secret_string: str) -> None:
    assert not is_token_secret_string(secret_string)
