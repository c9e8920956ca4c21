"""SecretIdTokenCredentials against moto over HTTP: the ID token of an ID-token secret, read once
per version under the same margin and thread rules as an access token, and the errors that
name the fix when the secret is of the other kind or for another audience."""

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import service_account
from mypy_boto3_secretsmanager import SecretsManagerClient

from google_token_secret import (
    ExpiredTokenError,
    InvalidTokenSecretError,
    PlaceholderTokenError,
    SecretCredentials,
    SecretIdTokenCredentials,
)
from localcloud.google_emulator import GoogleEmulator
from rotation_core.token_secret import IdTokenMetadata, IdTokenSecretValue
from tests.client.test_secret_credentials import Calls, token_value
from tests.support import TOKEN_SECRET, read_from_threads

START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
SERVICE_ACCOUNT = "caller@demo-project.iam.gserviceaccount.com"
AUDIENCE = "https://invoices-4k2j3h5g6a-ew.a.run.app"


def id_token_value(token: str, expires_at: datetime, audience: str = AUDIENCE) -> str:
    """What the rotation stores for an ID-token secret (no access token): written by the
    rotation's own schema, so both sides agree."""
    return IdTokenSecretValue(
        id_token=token,
        metadata=IdTokenMetadata(
            expires_at=expires_at,
            issued_at=expires_at - timedelta(hours=1),
            audience=audience,
            service_account=SERVICE_ACCOUNT,
        ),
    ).to_secret_string()


def new_id_token() -> str:
    """Opaque to the reader: only Cloud Run decodes it (the e2e tests send emulator-signed ones)."""
    return f"eyJhbGciOiJSUzI1NiJ9.client-test-{uuid.uuid4().hex}.c2lnbmF0dXJl"


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def calls(secretsmanager: SecretsManagerClient) -> Calls:
    return Calls(secretsmanager)


def make_secret(secretsmanager: SecretsManagerClient, secret_string: str) -> None:
    secretsmanager.create_secret(Name=TOKEN_SECRET, SecretString=secret_string)


def rotate(secretsmanager: SecretsManagerClient, token: str, expires_at: datetime) -> str:
    version = str(uuid.uuid4())
    secretsmanager.put_secret_value(
        SecretId=TOKEN_SECRET,
        ClientRequestToken=version,
        SecretString=id_token_value(token, expires_at),
        VersionStages=["AWSCURRENT"],
    )
    return version


def test_the_id_token_audience_and_expiry_come_from_awscurrent(
    secretsmanager: SecretsManagerClient, calls: Calls, clock: time_machine.Traveller
) -> None:
    current, pending = new_id_token(), new_id_token()
    make_secret(secretsmanager, id_token_value(current, START + timedelta(hours=1)))
    secretsmanager.put_secret_value(
        SecretId=TOKEN_SECRET,
        SecretString=id_token_value(pending, START + timedelta(hours=2)),
        VersionStages=["AWSPENDING"],
    )
    credentials = SecretIdTokenCredentials(TOKEN_SECRET, audience=AUDIENCE, client=secretsmanager)
    assert len(calls) == 0

    assert credentials.token == current
    assert credentials.expiry == datetime(2026, 11, 26, 9, 0)  # naive UTC, as google-auth wants
    assert credentials.valid
    assert credentials.audience == AUDIENCE
    assert credentials.service_account_email == SERVICE_ACCOUNT
    headers: dict[str, str] = {}
    credentials.before_request(None, "GET", f"{AUDIENCE}/invoices", headers)
    assert headers == {"authorization": f"Bearer {current}"}
    assert [p["VersionStage"] for p in calls.parameters] == ["AWSCURRENT"]
    assert credentials.get_cred_info() == {
        "credential_source": f"AWS Secrets Manager secret {TOKEN_SECRET}",
        "credential_type": "ID token read from AWS Secrets Manager",
        "principal": SERVICE_ACCOUNT,
    }


def test_each_version_is_read_once_and_the_next_as_the_margin_opens(
    secretsmanager: SecretsManagerClient, calls: Calls, clock: time_machine.Traveller
) -> None:
    first, second = new_id_token(), new_id_token()
    make_secret(secretsmanager, id_token_value(first, START + timedelta(hours=1)))
    credentials = SecretIdTokenCredentials(TOKEN_SECRET, client=secretsmanager)
    for _ in range(1000):
        assert credentials.token == first

    clock.shift(timedelta(minutes=45))  # the rotation stores the next one 15 minutes early
    version = rotate(secretsmanager, second, START + timedelta(hours=1, minutes=45))
    assert credentials.token == first  # 15 minutes left: outside the 5-minute margin
    assert len(calls) == 1
    clock.shift(timedelta(minutes=10))
    assert credentials.token == second
    assert credentials.version_id == version
    assert len(calls) == 2


def test_threads_that_find_the_id_token_due_share_one_read(
    secretsmanager: SecretsManagerClient, calls: Calls
) -> None:
    token = new_id_token()
    make_secret(secretsmanager, id_token_value(token, datetime.now(UTC) + timedelta(hours=1)))
    credentials = SecretIdTokenCredentials(TOKEN_SECRET, client=secretsmanager)
    seen = read_from_threads(lambda: credentials.token)
    assert seen == [token] * 3200
    assert len(calls) == 1


def test_refresh_reads_again_as_a_transport_does_after_a_401(
    secretsmanager: SecretsManagerClient, calls: Calls, clock: time_machine.Traveller
) -> None:
    first, second = new_id_token(), new_id_token()
    make_secret(secretsmanager, id_token_value(first, START + timedelta(hours=1)))
    credentials = SecretIdTokenCredentials(TOKEN_SECRET, client=secretsmanager)
    assert credentials.token == first
    rotate(secretsmanager, second, START + timedelta(hours=1))

    credentials.refresh(None)
    assert credentials.token == second
    assert len(calls) == 2


def test_an_access_token_secret_names_the_reader_for_it(
    secretsmanager: SecretsManagerClient,
) -> None:
    make_secret(secretsmanager, token_value("ya29.an-access-token", START + timedelta(hours=1)))

    with pytest.raises(InvalidTokenSecretError) as raised:
        _ = SecretIdTokenCredentials(TOKEN_SECRET, client=secretsmanager).token
    assert str(raised.value) == (
        f"The secret {TOKEN_SECRET} holds an access token (GOOGLE_ACCESS_TOKEN), not an ID "
        "token: read it with SecretCredentials, or point SecretIdTokenCredentials at a token "
        "secret that holds an ID token (one tagged token-rotation:token-kind=id-token and "
        "token-rotation:audience=<the service's URL>: for Cloud Run, Cloud Functions or IAP)"
    )
    assert "ya29.an-access-token" not in str(raised.value)


def test_an_id_token_secret_read_as_an_access_token_names_the_reader_for_it(
    secretsmanager: SecretsManagerClient,
) -> None:
    token = new_id_token()
    make_secret(secretsmanager, id_token_value(token, START + timedelta(hours=1)))

    with pytest.raises(InvalidTokenSecretError) as raised:
        _ = SecretCredentials(TOKEN_SECRET, client=secretsmanager).token
    assert str(raised.value) == (
        f"The secret {TOKEN_SECRET} holds an ID token (GOOGLE_ID_TOKEN), not an access token: "
        "read it with SecretIdTokenCredentials, or point SecretCredentials at a token secret "
        "that holds an access token (one without the tag token-rotation:token-kind=id-token: "
        "for Google APIs)"
    )
    assert token not in str(raised.value)


def test_a_secret_for_another_audience_is_refused_before_the_service_would(
    secretsmanager: SecretsManagerClient, clock: time_machine.Traveller
) -> None:
    other = "https://reports-4k2j3h5g6a-ew.a.run.app"
    make_secret(secretsmanager, id_token_value(new_id_token(), START + timedelta(hours=1), other))
    credentials = SecretIdTokenCredentials(TOKEN_SECRET, audience=AUDIENCE, client=secretsmanager)

    with pytest.raises(InvalidTokenSecretError) as raised:
        _ = credentials.token
    assert str(raised.value) == (
        f"The ID-token secret {TOKEN_SECRET} holds tokens for the audience {other}, not "
        f"{AUDIENCE}: point SecretIdTokenCredentials at the secret minted for {AUDIENCE}, or "
        f"pass audience='{other}' if that is the service you call"
    )
    # Without an expected audience, the secret's own is taken.
    reader = SecretIdTokenCredentials(TOKEN_SECRET, client=secretsmanager)
    assert reader.audience == other


@pytest.mark.parametrize(
    "placeholder",
    ['{"GOOGLE_ACCESS_TOKEN": ""}', '{"GOOGLE_ID_TOKEN": ""}'],
    ids=["as-deployed", "id-token-field"],
)
def test_the_deployment_placeholder_says_no_rotation_has_succeeded(
    secretsmanager: SecretsManagerClient, placeholder: str
) -> None:
    make_secret(secretsmanager, placeholder)

    with pytest.raises(PlaceholderTokenError, match="no rotation has succeeded yet") as raised:
        _ = SecretIdTokenCredentials(TOKEN_SECRET, client=secretsmanager).token
    assert f"aws secretsmanager rotate-secret --secret-id {TOKEN_SECRET}" in str(raised.value)


def test_an_id_token_placeholder_is_a_placeholder_to_the_access_token_reader_too(
    secretsmanager: SecretsManagerClient,
) -> None:
    make_secret(secretsmanager, '{"GOOGLE_ID_TOKEN": ""}')

    with pytest.raises(PlaceholderTokenError):
        _ = SecretCredentials(TOKEN_SECRET, client=secretsmanager).token


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"GOOGLE_ID_TOKEN": "eyJ.x.y", "expires_at": "2026-11-26T09:00:00Z"}, "no audience"),
        ({"GOOGLE_ID_TOKEN": 42, "audience": AUDIENCE}, "must be a string"),
        ({"GOOGLE_ID_TOKEN": "eyJ.x.y", "expires_at": "soon"}, "must be an RFC 3339"),
        ({"audience": AUDIENCE}, "has no GOOGLE_ID_TOKEN field"),
    ],
    ids=["no-audience", "token-not-a-string", "bad-expiry", "no-token"],
)
def test_a_value_the_rotation_did_not_write_is_named_without_echoing_it(
    secretsmanager: SecretsManagerClient,
    clock: time_machine.Traveller,
    document: dict[str, Any],
    problem: str,
) -> None:
    make_secret(secretsmanager, json.dumps(document))

    with pytest.raises(InvalidTokenSecretError, match=problem) as raised:
        _ = SecretIdTokenCredentials(TOKEN_SECRET, client=secretsmanager).token
    assert "eyJ.x.y" not in str(raised.value)


def test_an_expired_newest_id_token_says_the_rotation_fails(
    secretsmanager: SecretsManagerClient, calls: Calls, clock: time_machine.Traveller
) -> None:
    make_secret(secretsmanager, id_token_value(new_id_token(), START - timedelta(minutes=20)))
    credentials = SecretIdTokenCredentials(TOKEN_SECRET, client=secretsmanager)

    for _ in range(3):  # one read: a busy caller gets the same answer for a while
        with pytest.raises(ExpiredTokenError, match="its rotation is failing"):
            _ = credentials.token
    assert len(calls) == 1


def test_bad_arguments_are_refused_when_constructed() -> None:
    with pytest.raises(ValueError, match="audience must be the URL"):
        SecretIdTokenCredentials(TOKEN_SECRET, audience="", client=object())
    with pytest.raises(ValueError, match="refresh_margin_seconds must be from 0 to 3599"):
        SecretIdTokenCredentials(TOKEN_SECRET, client=object(), refresh_margin_seconds=-1)
    with pytest.raises(AttributeError, match=r"SecretIdTokenCredentials\.token comes from"):
        SecretIdTokenCredentials(TOKEN_SECRET, client=object()).token = "eyJ.forged"  # type: ignore[assignment]


def test_logs_name_versions_never_the_id_token(
    secretsmanager: SecretsManagerClient,
    clock: time_machine.Traveller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = new_id_token()
    make_secret(secretsmanager, id_token_value(token, START + timedelta(hours=1)))
    with caplog.at_level(logging.DEBUG, logger="google_token_secret"):
        credentials = SecretIdTokenCredentials(TOKEN_SECRET, client=secretsmanager)
        assert credentials.token == token
        clock.shift(timedelta(minutes=58))
        assert credentials.token == token  # late rotation: the warning names the version

    messages = [r.getMessage() for r in caplog.records if r.name.startswith("google_token_secret")]
    assert len(messages) == 2
    assert "its rotation is late or failing" in messages[1]
    assert not any(token in message for message in messages)
    assert token not in repr(credentials.__dict__)


# --- AuthorizedSession against the Google emulator's Cloud Run, with tokens Google signed -------

CALLER = "invoices-caller@demo-project.iam.gserviceaccount.com"


def minted_id_token(google: GoogleEmulator, audience: str) -> str:
    """An ID token for `audience` as the key source mints it: google-auth's JWT-bearer grant with
    `target_audience`, answered and signed by the emulator."""
    key_file = google.create_service_account(CALLER).key_file(google.token_url)
    minter = service_account.IDTokenCredentials.from_service_account_info(
        key_file, target_audience=audience
    )
    minter.refresh(Request())
    token: str = minter.token
    return token


def store(secretsmanager: SecretsManagerClient, token: str, audience: str) -> None:
    """The token as the rotation stores it, as a new AWSCURRENT version (created if need be)."""
    value = id_token_value(token, datetime.now(UTC) + timedelta(hours=1), audience)
    try:
        make_secret(secretsmanager, value)
    except secretsmanager.exceptions.ResourceExistsException:
        secretsmanager.put_secret_value(SecretId=TOKEN_SECRET, SecretString=value)


def cloud_run_bearers(google: GoogleEmulator) -> list[tuple[str | None, int | None]]:
    return [(r.bearer, r.status) for r in google.requests if r.path.startswith("/run/")]


def test_an_authorized_session_calls_cloud_run_with_the_secrets_id_token(
    secretsmanager: SecretsManagerClient, google: GoogleEmulator
) -> None:
    url = google.deploy_cloud_run("invoices", invokers=[CALLER])
    token = minted_id_token(google, url)
    store(secretsmanager, token, url)
    session = AuthorizedSession(
        SecretIdTokenCredentials(TOKEN_SECRET, audience=url, client=secretsmanager)
    )

    answer = session.get(f"{url}/invoices")

    assert (answer.status_code, answer.json()["email"]) == (200, CALLER)
    assert cloud_run_bearers(google) == [(token, 200)]


def test_a_token_cloud_run_refuses_is_read_again_and_the_request_sent_once_more(
    secretsmanager: SecretsManagerClient, google: GoogleEmulator
) -> None:
    """Google stopped publishing the key that signed the held token: Cloud Run answers 401, the
    transport calls refresh, which reads the version the rotation stored meanwhile."""
    url = google.deploy_cloud_run("invoices", invokers=[CALLER])
    first = minted_id_token(google, url)
    store(secretsmanager, first, url)
    credentials = SecretIdTokenCredentials(TOKEN_SECRET, client=secretsmanager)
    session = AuthorizedSession(credentials)
    assert session.get(url).status_code == 200
    old_key = google.signing_key_ids[-1]
    google.rotate_signing_key()
    second = minted_id_token(google, url)
    store(secretsmanager, second, url)
    google.retire_signing_key(old_key)

    assert session.get(url).status_code == 200
    assert cloud_run_bearers(google) == [(first, 200), (first, 401), (second, 200)]
    assert credentials.token == second


def test_a_token_for_another_audience_gets_cloud_runs_401(
    secretsmanager: SecretsManagerClient, google: GoogleEmulator
) -> None:
    url = google.deploy_cloud_run("invoices", invokers=[CALLER])
    other = google.deploy_cloud_run("reports", invokers=[CALLER])
    store(secretsmanager, minted_id_token(google, other), other)
    session = AuthorizedSession(SecretIdTokenCredentials(TOKEN_SECRET, client=secretsmanager))

    assert session.get(url).status_code == 401
