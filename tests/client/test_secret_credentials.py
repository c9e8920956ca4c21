"""SecretCredentials against moto over HTTP: what it reads, when it reads again, how many calls a
busy process makes, and the errors an application sees. Time moves with time_machine."""

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import time_machine
from botocore.config import Config
from google.auth import exceptions as google_exceptions
from mypy_boto3_secretsmanager import SecretsManagerClient

from google_token_secret import (
    ExpiredTokenError,
    InvalidTokenSecretError,
    PlaceholderTokenError,
    SecretCredentials,
    TokenSecretAccessDeniedError,
    TokenSecretNotFoundError,
    TokenSecretUnavailableError,
)
from google_token_secret.credentials import (
    FAILED_READ_RECHECK_SECONDS,
    LATE_ROTATION_RECHECK_SECONDS,
)
from rotation_core.token_secret import TokenMetadata, TokenSecretValue
from tests.scripted_aws import Answer, ScriptedAws, error_answer, json_answer, scripted_aws
from tests.support import REGION, SCOPE, TOKEN_SECRET, read_from_threads

START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
SERVICE_ACCOUNT = "rotator@demo-project.iam.gserviceaccount.com"


def token_value(token: str, expires_at: datetime) -> str:
    """What the rotation stores: written by the rotation's own schema, so both sides agree."""
    return TokenSecretValue(
        access_token=token,
        metadata=TokenMetadata(
            token_type="Bearer",
            expires_at=expires_at,
            issued_at=expires_at - timedelta(hours=1),
            scopes=(SCOPE,),
            service_account=SERVICE_ACCOUNT,
            service_account_client_id="104234567890123456789",
        ),
    ).to_secret_string()


def new_token() -> str:
    return f"ya29.client-test-{uuid.uuid4().hex}"


class Calls:
    """Every GetSecretValue the credential sends, seen on the client's own event hooks."""

    def __init__(self, client: SecretsManagerClient) -> None:
        self.parameters: list[dict[str, Any]] = []
        client.meta.events.register(
            "provide-client-params.secrets-manager.GetSecretValue", self._seen
        )

    def _seen(self, params: dict[str, Any], **_: Any) -> None:
        self.parameters.append(dict(params))

    def __len__(self) -> int:
        return len(self.parameters)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def calls(secretsmanager: SecretsManagerClient) -> Calls:
    return Calls(secretsmanager)


def rotate(secretsmanager: SecretsManagerClient, token: str, expires_at: datetime) -> str:
    """Stores a new AWSCURRENT version, as finishSecret's promotion leaves the secret."""
    version = str(uuid.uuid4())
    secretsmanager.put_secret_value(
        SecretId=TOKEN_SECRET,
        ClientRequestToken=version,
        SecretString=token_value(token, expires_at),
        VersionStages=["AWSCURRENT"],
    )
    return version


def make_secret(secretsmanager: SecretsManagerClient, secret_string: str) -> None:
    secretsmanager.create_secret(Name=TOKEN_SECRET, SecretString=secret_string)


def test_token_and_expiry_come_from_awscurrent_asked_for_by_name(
    secretsmanager: SecretsManagerClient, calls: Calls, clock: time_machine.Traveller
) -> None:
    current, pending = new_token(), new_token()
    make_secret(secretsmanager, token_value(current, START + timedelta(hours=1)))
    secretsmanager.put_secret_value(
        SecretId=TOKEN_SECRET,
        SecretString=token_value(pending, START + timedelta(hours=2)),
        VersionStages=["AWSPENDING"],
    )
    credentials = SecretCredentials(TOKEN_SECRET, client=secretsmanager)

    assert credentials.token == current
    # Naive UTC, as google-auth compares it: `expired` and `valid` work instead of raising.
    assert credentials.expiry == datetime(2026, 11, 26, 9, 0)
    assert credentials.valid
    assert not credentials.expired
    assert credentials.service_account_email == SERVICE_ACCOUNT
    assert credentials.scopes == (SCOPE,)
    assert [p["VersionStage"] for p in calls.parameters] == ["AWSCURRENT"]


def test_construction_reads_nothing_and_a_fresh_token_is_read_once(
    secretsmanager: SecretsManagerClient, calls: Calls, clock: time_machine.Traveller
) -> None:
    make_secret(secretsmanager, token_value(new_token(), START + timedelta(hours=1)))
    credentials = SecretCredentials(TOKEN_SECRET, client=secretsmanager)
    assert len(calls) == 0

    for _ in range(1000):
        assert credentials.token
    clock.shift(timedelta(minutes=54, seconds=59))
    assert credentials.token
    assert len(calls) == 1


def test_the_rotated_version_is_read_once_the_margin_is_reached(
    secretsmanager: SecretsManagerClient, calls: Calls, clock: time_machine.Traveller
) -> None:
    first, second = new_token(), new_token()
    make_secret(secretsmanager, token_value(first, START + timedelta(hours=1)))
    credentials = SecretCredentials(TOKEN_SECRET, client=secretsmanager)
    assert credentials.token == first

    clock.shift(timedelta(minutes=45))  # the refresh schedule rotates 15 minutes early
    version = rotate(secretsmanager, second, START + timedelta(hours=1, minutes=45))
    assert credentials.token == first  # 15 minutes left: outside the 5-minute margin
    clock.shift(timedelta(minutes=10))  # now inside it
    assert credentials.token == second
    assert credentials.version_id == version
    assert credentials.expiry == datetime(2026, 11, 26, 9, 45)
    assert len(calls) == 2


def test_a_late_rotation_keeps_the_token_and_asks_again_every_half_minute(
    secretsmanager: SecretsManagerClient,
    calls: Calls,
    clock: time_machine.Traveller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = new_token(), new_token()
    make_secret(secretsmanager, token_value(first, START + timedelta(hours=1)))
    credentials = SecretCredentials(TOKEN_SECRET, client=secretsmanager)
    assert credentials.token == first

    clock.shift(timedelta(minutes=56))
    assert credentials.token == first  # no newer version: the old one still works for 4 min
    assert len(calls) == 2
    assert "its rotation is late or failing" in caplog.text
    clock.shift(timedelta(seconds=LATE_ROTATION_RECHECK_SECONDS - 1))
    assert credentials.token == first
    assert len(calls) == 2
    rotate(secretsmanager, second, START + timedelta(hours=2))
    clock.shift(timedelta(seconds=1))
    assert credentials.token == second
    assert len(calls) == 3
    assert first not in caplog.text
    assert second not in caplog.text


def test_a_token_found_with_seconds_left_is_never_handed_out_past_its_expiry(
    secretsmanager: SecretsManagerClient, calls: Calls, clock: time_machine.Traveller
) -> None:
    """A late rotation found the held token with 10 s left: the next use comes at its
    expires_at at the latest, not a whole recheck (30 s) later, so it reads the secret again."""
    token = new_token()
    make_secret(secretsmanager, token_value(token, START + timedelta(hours=1)))
    credentials = SecretCredentials(TOKEN_SECRET, client=secretsmanager)
    assert credentials.token == token

    clock.shift(timedelta(minutes=59, seconds=50))
    assert credentials.token == token  # still the newest version: the rotation is late
    assert len(calls) == 2
    clock.shift(timedelta(seconds=15))

    with pytest.raises(ExpiredTokenError, match="expired at 2026-11-26T09:00:00Z"):
        _ = credentials.token
    assert len(calls) == 3


def test_an_expired_newest_token_says_the_rotation_fails_and_where_to_look(
    secretsmanager: SecretsManagerClient, calls: Calls, clock: time_machine.Traveller
) -> None:
    make_secret(secretsmanager, token_value(new_token(), START - timedelta(minutes=20)))
    credentials = SecretCredentials(TOKEN_SECRET, client=secretsmanager)

    with pytest.raises(ExpiredTokenError) as raised:
        _ = credentials.token
    message = str(raised.value)
    assert "expired at 2026-11-26T07:40:00Z (20 min ago)" in message
    assert "its rotation is failing" in message
    assert "--status-filter FAILED" in message
    assert f"describe-secret --secret-id {TOKEN_SECRET}" in message
    # google-auth transports and Google's libraries report it as a failed refresh.
    assert isinstance(raised.value, google_exceptions.RefreshError)

    # A busy process gets the same answer without flooding Secrets Manager ...
    clock.shift(timedelta(seconds=FAILED_READ_RECHECK_SECONDS - 1))
    with pytest.raises(ExpiredTokenError):
        _ = credentials.token
    assert len(calls) == 1
    # ... and finds a recovered rotation's token soon after.
    fresh = new_token()
    rotate(secretsmanager, fresh, START + timedelta(hours=1))
    clock.shift(timedelta(seconds=1))
    assert credentials.token == fresh
    assert len(calls) == 2


def test_the_deployment_placeholder_says_no_rotation_has_succeeded(
    secretsmanager: SecretsManagerClient,
) -> None:
    make_secret(secretsmanager, '{"GOOGLE_ACCESS_TOKEN": ""}')
    credentials = SecretCredentials(TOKEN_SECRET, client=secretsmanager)

    with pytest.raises(PlaceholderTokenError, match="no rotation has succeeded yet") as raised:
        credentials.refresh(None)
    assert f"aws secretsmanager rotate-secret --secret-id {TOKEN_SECRET}" in str(raised.value)


def test_a_missing_secret_names_the_region_and_the_output_to_check(
    secretsmanager: SecretsManagerClient,
) -> None:
    credentials = SecretCredentials("google/no-such-token", client=secretsmanager)

    with pytest.raises(TokenSecretNotFoundError) as raised:
        _ = credentials.token
    assert str(raised.value) == (
        f"No token secret google/no-such-token in region {REGION}, or it has no AWSCURRENT "
        "version: check the name (the stack's TokenSecretArn output) and AWS_REGION"
    )


@pytest.mark.parametrize(
    ("secret_string", "problem"),
    [
        ('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----"}', "has no"),
        ("not json at all", "holds no JSON string"),
        (
            '{"GOOGLE_ACCESS_TOKEN": "ya29.x", "expires_at": "tomorrow"}',
            "must be an RFC 3339 timestamp",
        ),
        ('{"GOOGLE_ACCESS_TOKEN": "ya29.x", "expires_at": "2026-11-26T09:00:00"}', "in UTC"),
        ('{"GOOGLE_ACCESS_TOKEN": 42}', "must be a string"),
    ],
    ids=["key-secret", "not-json", "bad-expiry", "naive-expiry", "token-not-a-string"],
)
def test_a_value_that_is_not_a_token_secret_is_named_without_echoing_it(
    secretsmanager: SecretsManagerClient, secret_string: str, problem: str
) -> None:
    make_secret(secretsmanager, secret_string)

    with pytest.raises(InvalidTokenSecretError, match=problem) as raised:
        _ = SecretCredentials(TOKEN_SECRET, client=secretsmanager).token
    assert "PRIVATE KEY" not in str(raised.value)
    assert "ya29.x" not in str(raised.value)


def test_refresh_reads_again_even_when_the_token_is_not_due(
    secretsmanager: SecretsManagerClient,
    calls: Calls,
    clock: time_machine.Traveller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = new_token(), new_token()
    make_secret(secretsmanager, token_value(first, START + timedelta(hours=1)))
    credentials = SecretCredentials(TOKEN_SECRET, client=secretsmanager)
    assert credentials.token == first
    credentials.refresh(None)  # Google refused a token the secret still holds: say so
    assert "if Google keeps refusing it, the token was revoked; rotate the secret" in caplog.text
    rotate(secretsmanager, second, START + timedelta(hours=1))

    credentials.refresh(None)  # what a transport does after Google answered 401
    assert credentials.token == second
    headers: dict[str, str] = {}
    credentials.before_request(None, "GET", "https://www.googleapis.com/", headers)
    assert headers == {"authorization": f"Bearer {second}"}
    assert len(calls) == 3


def test_threads_that_find_the_token_due_share_one_read(
    secretsmanager: SecretsManagerClient, calls: Calls
) -> None:
    token = new_token()
    make_secret(secretsmanager, token_value(token, datetime.now(UTC) + timedelta(hours=1)))
    credentials = SecretCredentials(TOKEN_SECRET, client=secretsmanager)
    seen = read_from_threads(lambda: credentials.token)
    assert seen == [token] * 3200
    assert len(calls) == 1


def test_refreshes_after_one_401_seen_by_many_threads_share_one_read(
    secretsmanager: SecretsManagerClient, calls: Calls
) -> None:
    make_secret(secretsmanager, token_value(new_token(), datetime.now(UTC) + timedelta(hours=1)))
    credentials = SecretCredentials(TOKEN_SECRET, client=secretsmanager)
    _ = credentials.token
    threads = [threading.Thread(target=credentials.refresh, args=(None,)) for _ in range(16)]
    # Every thread is queued behind a read in progress when the first finishes.
    with credentials._read_lock:
        for thread in threads:
            thread.start()
        time.sleep(0.2)
    for thread in threads:
        thread.join()
    assert len(calls) == 2


def test_a_margin_of_the_whole_token_life_is_refused() -> None:
    with pytest.raises(ValueError, match="refresh_margin_seconds must be from 0 to 3599"):
        SecretCredentials(TOKEN_SECRET, client=object(), refresh_margin_seconds=3600)
    with pytest.raises(ValueError, match="secret_id must be"):
        SecretCredentials("", client=object())


def test_the_token_cannot_be_set_around_the_secret(secretsmanager: SecretsManagerClient) -> None:
    credentials = SecretCredentials(TOKEN_SECRET, client=secretsmanager)
    with pytest.raises(AttributeError, match="comes from the secret"):
        credentials.token = "ya29.forged"  # type: ignore[assignment]
    with pytest.raises(AttributeError, match="comes from the secret"):
        credentials.expiry = datetime(2030, 1, 1)  # type: ignore[assignment]


# --- refusals and outages, as Secrets Manager answers them over HTTP ----------------------------


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedAws]:
    with scripted_aws() as server:
        yield server


def client_of(server: ScriptedAws) -> SecretsManagerClient:
    client: SecretsManagerClient = boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    return client


def answer(token: str, expires_at: datetime, version: str = "v1") -> Answer:
    return json_answer(
        {
            "ARN": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{TOKEN_SECRET}-AbCdEf",
            "Name": TOKEN_SECRET,
            "VersionId": version,
            "SecretString": token_value(token, expires_at),
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1.0,
        }
    )


DENIED = (
    "User: arn:aws:sts::123456789012:assumed-role/calendar-app/i-0abc is not authorized to "
    "perform: secretsmanager:GetSecretValue on resource: google/access-token"
)


@pytest.mark.parametrize(
    ("error_type", "fix"),
    [
        ("AccessDeniedException", "secretsmanager:GetSecretValue on the secret's ARN"),
        ("DecryptionFailure", "kms:Decrypt on the secret's KMS key"),
    ],
)
def test_a_refusal_names_the_permission_the_role_needs(
    scripted: ScriptedAws, error_type: str, fix: str
) -> None:
    scripted.play(error_answer(400, error_type, DENIED))
    credentials = SecretCredentials(TOKEN_SECRET, client=client_of(scripted))

    with pytest.raises(TokenSecretAccessDeniedError) as raised:
        _ = credentials.token
    assert fix in str(raised.value)
    assert str(raised.value).endswith(f"AWS says: {DENIED}")


def test_an_outage_keeps_serving_the_held_token_until_it_expires(
    scripted: ScriptedAws,
    clock: time_machine.Traveller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = new_token()
    scripted.play(
        answer(token, START + timedelta(hours=1)),
        error_answer(400, "ThrottlingException", "Rate exceeded"),
    )
    credentials = SecretCredentials(TOKEN_SECRET, client=client_of(scripted))
    assert credentials.token == token

    clock.shift(timedelta(minutes=56))
    assert credentials.token == token
    assert "using the token held, which expires in 240 s" in caplog.text
    clock.shift(timedelta(minutes=4))
    with pytest.raises(TokenSecretUnavailableError, match="ThrottlingException") as raised:
        _ = credentials.token
    assert raised.value.retryable
    assert isinstance(raised.value, google_exceptions.TransportError)
    assert token not in caplog.text


def test_a_token_kept_through_an_outage_with_seconds_left_is_never_served_expired(
    scripted: ScriptedAws, clock: time_machine.Traveller
) -> None:
    """Secrets Manager unreachable when the held token has 10 s left: it is kept until its
    expires_at, not for a whole recheck (30 s)."""
    token = new_token()
    scripted.play(
        answer(token, START + timedelta(hours=1)),
        error_answer(400, "ThrottlingException", "Rate exceeded"),
    )
    credentials = SecretCredentials(TOKEN_SECRET, client=client_of(scripted))
    assert credentials.token == token

    clock.shift(timedelta(minutes=59, seconds=50))
    assert credentials.token == token
    clock.shift(timedelta(seconds=15))

    with pytest.raises(TokenSecretUnavailableError, match="ThrottlingException"):
        _ = credentials.token


def test_a_first_read_during_an_outage_is_retryable(
    scripted: ScriptedAws,
) -> None:
    scripted.play(error_answer(503, "ServiceUnavailable", "Service is unavailable"))
    credentials = SecretCredentials(TOKEN_SECRET, client=client_of(scripted))

    with pytest.raises(TokenSecretUnavailableError, match="retry") as raised:
        _ = credentials.token
    assert raised.value.retryable


def test_logs_name_versions_and_times_never_the_token(
    secretsmanager: SecretsManagerClient,
    clock: time_machine.Traveller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = new_token()
    make_secret(secretsmanager, token_value(token, START + timedelta(hours=1)))
    with caplog.at_level(logging.DEBUG, logger="google_token_secret"):
        credentials = SecretCredentials(TOKEN_SECRET, client=secretsmanager)
        assert credentials.token == token
        clock.shift(timedelta(minutes=58))
        assert credentials.token == token

    messages = [r.getMessage() for r in caplog.records if r.name.startswith("google_token_secret")]
    assert len(messages) == 2
    assert "expiring at 2026-11-26T09:00:00" in messages[0]
    assert "expires in 120 s" in messages[1]
    assert not any(token in message for message in messages)
    assert token not in repr(credentials.__dict__)
