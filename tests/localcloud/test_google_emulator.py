"""The Google emulator must look like Google to unmodified clients and fail like it on demand."""

import base64
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import google.auth.exceptions
import google.auth.transport.urllib3
import pytest
import urllib3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.oauth2 import service_account

from localcloud.google_emulator import JWT_BEARER_GRANT, GoogleEmulator, ServiceAccountKey

AUDIENCE = GoogleEmulator.GOOGLE_TOKEN_AUDIENCE
CALENDAR = "https://www.googleapis.com/auth/calendar.readonly"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

AssertionBuilder = Callable[[GoogleEmulator, ServiceAccountKey], str]


@pytest.fixture(scope="module")
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as running:
        yield running


@pytest.fixture(autouse=True)
def _restore_emulator(emulator: GoogleEmulator) -> Iterator[None]:
    yield
    emulator.reset()
    emulator.clock_offset_seconds = 0.0
    emulator.token_lifetime_seconds = 3600


@pytest.fixture(scope="module")
def key(emulator: GoogleEmulator) -> ServiceAccountKey:
    return emulator.create_service_account()


@pytest.fixture(scope="module")
def http() -> urllib3.PoolManager:
    # No urllib3 retries: each test must see exactly what the emulator answered.
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=5), retries=False)


def _segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _json_segment(value: dict[str, object]) -> str:
    return _segment(json.dumps(value).encode())


@functools.cache
def _private_key(pem: str) -> rsa.RSAPrivateKey:
    # Loading validates the RSA key, which costs tens of milliseconds: do it once per key.
    private_key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private_key, rsa.RSAPrivateKey)
    return private_key


def sign(key: ServiceAccountKey, claims: dict[str, object], header: dict[str, object]) -> str:
    signing_input = f"{_json_segment(header)}.{_json_segment(claims)}"
    private_key = _private_key(key.private_key_pem)
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_segment(signature)}"


def header_for(key: ServiceAccountKey, **overrides: object) -> dict[str, object]:
    return {"alg": "RS256", "typ": "JWT", "kid": key.private_key_id, **overrides}


def claims_for(key: ServiceAccountKey, **overrides: object) -> dict[str, object]:
    iat = int(time.time())
    claims: dict[str, object] = {
        "iss": key.client_email,
        "aud": AUDIENCE,
        "scope": CALENDAR,
        "iat": iat,
        "exp": iat + 3600,
    }
    return claims | overrides


def assertion_for(key: ServiceAccountKey, **claim_overrides: object) -> str:
    return sign(key, claims_for(key, **claim_overrides), header_for(key))


def post_token(
    http: urllib3.PoolManager,
    emulator: GoogleEmulator,
    assertion: str,
    grant_type: str = JWT_BEARER_GRANT,
    **kwargs: Any,
) -> urllib3.BaseHTTPResponse:
    body = urlencode({"grant_type": grant_type, "assertion": assertion})
    return http.request("POST", emulator.token_url, body=body, headers=FORM, **kwargs)


def token_info(
    http: urllib3.PoolManager, emulator: GoogleEmulator, access_token: str
) -> urllib3.BaseHTTPResponse:
    return http.request("GET", emulator.tokeninfo_url, fields={"access_token": access_token})


def google_credentials(
    emulator: GoogleEmulator, key: ServiceAccountKey, scopes: list[str]
) -> service_account.Credentials:
    info = key.key_file(emulator.token_url)
    credentials: service_account.Credentials = (
        service_account.Credentials.from_service_account_info(info, scopes=scopes)
    )
    return credentials


def refreshed_token(
    emulator: GoogleEmulator,
    key: ServiceAccountKey,
    scopes: list[str],
    http: urllib3.PoolManager | None = None,
) -> str:
    credentials = google_credentials(emulator, key, scopes)
    credentials.refresh(google.auth.transport.urllib3.Request(http or urllib3.PoolManager()))
    token = credentials.token
    assert isinstance(token, str)
    return token


# --- the unmodified google-auth library against the emulator ---------------------------------


def test_key_file_looks_like_googles(emulator: GoogleEmulator, key: ServiceAccountKey) -> None:
    info = key.key_file(emulator.token_url)

    assert info["type"] == "service_account"
    assert info["project_id"] == "demo-project"
    assert info["token_uri"] == emulator.token_url
    assert len(info["private_key_id"]) == 40
    assert int(info["private_key_id"], 16) >= 0
    assert info["client_id"].isdigit()
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n")
    assert info["client_x509_cert_url"].endswith("rotator%40demo-project.iam.gserviceaccount.com")
    assert key.private_key_pem not in repr(key)


def test_google_auth_gets_a_token_that_tokeninfo_describes(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    credentials = google_credentials(emulator, key, [CALENDAR])
    credentials.refresh(google.auth.transport.urllib3.Request(http))
    token = credentials.token

    assert isinstance(token, str)
    assert token.startswith("ya29.")
    assert len(token) > 100
    assert credentials.valid
    info = token_info(http, emulator, token).json()
    assert info["azp"] == key.client_id
    assert info["aud"] == key.client_id
    assert info["scope"] == CALENDAR
    assert int(info["exp"]) == pytest.approx(time.time() + 3600, abs=5)
    assert 3590 <= int(info["expires_in"]) <= 3600
    assert info["access_type"] == "online"
    assert "email" not in info
    [issued] = [t for t in emulator.issued_tokens() if t.access_token == token]
    assert issued.client_email == key.client_email
    assert issued.scopes == (CALENDAR,)
    assert issued.expires_at - issued.issued_at == 3600


def test_tokeninfo_shows_the_email_only_with_an_email_scope(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    token = refreshed_token(emulator, key, [CALENDAR, EMAIL], http)

    info = token_info(http, emulator, token).json()

    assert info["scope"] == f"{CALENDAR} {EMAIL}"
    assert info["email"] == key.client_email
    assert info["email_verified"] == "true"


def test_tokeninfo_also_takes_a_posted_form(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    token = refreshed_token(emulator, key, ["email"], http)

    response = http.request(
        "POST", emulator.tokeninfo_url, body=urlencode({"access_token": token}), headers=FORM
    )

    assert response.status == 200
    assert response.json()["email"] == key.client_email


def test_token_lifetime_is_configurable(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    emulator.token_lifetime_seconds = 600

    response = post_token(http, emulator, assertion_for(key))

    assert response.status == 200
    assert response.json()["expires_in"] == 600
    assert response.json()["token_type"] == "Bearer"


def test_second_key_of_an_account_keeps_its_client_id(
    emulator: GoogleEmulator, http: urllib3.PoolManager
) -> None:
    old = emulator.create_service_account("two-keys@demo-project.iam.gserviceaccount.com")
    new = emulator.create_service_account(old.client_email)
    emulator.revoke_key(old.private_key_id)

    response = post_token(http, emulator, assertion_for(new))

    assert new.client_id == old.client_id
    assert new.private_key_id != old.private_key_id
    assert response.status == 200
    assert post_token(http, emulator, assertion_for(old)).status == 400


def test_header_without_kid_is_checked_against_the_issuers_keys(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    header: dict[str, object] = {"alg": "RS256", "typ": "JWT"}

    response = post_token(http, emulator, sign(key, claims_for(key), header))

    assert response.status == 200


def test_small_clock_skew_is_tolerated(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    iat = int(time.time()) + 200

    response = post_token(http, emulator, assertion_for(key, iat=iat, exp=iat + 3600))

    assert response.status == 200


# --- assertions Google would refuse ----------------------------------------------------------


def _tampered_signature(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    head, claims, signature = assertion_for(key).split(".")
    # The first characters carry whole signature bytes; the last may only carry padding bits.
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    return f"{head}.{claims}.{flipped}"


def _tampered_claims(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    head, _, signature = assertion_for(key).split(".")
    forged = _json_segment(claims_for(key, scope="https://mail.google.com/"))
    return f"{head}.{forged}.{signature}"


def _unsigned(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    return f"{_json_segment(header_for(key, alg='none'))}.{_json_segment(claims_for(key))}."


def _unknown_kid(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    return sign(key, claims_for(key), header_for(key, kid="0" * 40))


def _disabled_key(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    disabled = emulator.create_service_account("disabled@demo-project.iam.gserviceaccount.com")
    emulator.disable_key(disabled.private_key_id)
    return assertion_for(disabled)


def _revoked_key(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    revoked = emulator.create_service_account("revoked@demo-project.iam.gserviceaccount.com")
    emulator.revoke_key(revoked.private_key_id)
    return assertion_for(revoked)


def _issuer_of_another_account(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    other = emulator.create_service_account("other@demo-project.iam.gserviceaccount.com")
    return assertion_for(key, iss=other.client_email)


def _unknown_issuer(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    return assertion_for(key, iss="nobody@demo-project.iam.gserviceaccount.com")


def _wrong_audience(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    return assertion_for(key, aud=emulator.token_url)


def _expired(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    now = int(time.time())
    return assertion_for(key, iat=now - 7200, exp=now - 3600)


def _issued_in_the_future(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    now = int(time.time())
    return assertion_for(key, iat=now + 3600, exp=now + 7200)


def _longer_than_an_hour(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    now = int(time.time())
    return assertion_for(key, iat=now, exp=now + 3601)


def _exp_not_after_iat(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    now = int(time.time())
    return assertion_for(key, iat=now, exp=now)


def _string_times(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    now = int(time.time())
    return assertion_for(key, iat=str(now), exp=str(now + 3600))


def _empty_scope(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    return assertion_for(key, scope=" ")


def _no_scope(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    claims = claims_for(key)
    del claims["scope"]
    return sign(key, claims, header_for(key))


def _not_a_jwt(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    return "not-a-jwt"


def _padded_segments(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    return ".".join(part + "==" for part in assertion_for(key).split("."))


@pytest.mark.parametrize(
    ("build", "error", "description"),
    [
        pytest.param(_tampered_signature, "invalid_grant", "Invalid JWT Signature.", id="sig"),
        pytest.param(_tampered_claims, "invalid_grant", "Invalid JWT Signature.", id="claims"),
        pytest.param(_unsigned, "invalid_grant", "Invalid JWT Signature.", id="alg-none"),
        pytest.param(_unknown_kid, "invalid_grant", "Invalid JWT Signature.", id="unknown-kid"),
        pytest.param(_disabled_key, "invalid_grant", "Invalid JWT Signature.", id="disabled"),
        pytest.param(_revoked_key, "invalid_grant", "Invalid JWT Signature.", id="revoked"),
        pytest.param(
            _issuer_of_another_account, "invalid_grant", "Invalid JWT Signature.", id="iss"
        ),
        pytest.param(_unknown_issuer, "invalid_grant", "account not found", id="unknown-iss"),
        pytest.param(_wrong_audience, "invalid_grant", "audience", id="aud"),
        pytest.param(_expired, "invalid_grant", "short-lived", id="expired"),
        pytest.param(_issued_in_the_future, "invalid_grant", "short-lived", id="future-iat"),
        pytest.param(_longer_than_an_hour, "invalid_grant", "short-lived", id="over-an-hour"),
        pytest.param(_exp_not_after_iat, "invalid_grant", "short-lived", id="exp-eq-iat"),
        pytest.param(_string_times, "invalid_grant", "short-lived", id="string-times"),
        pytest.param(_empty_scope, "invalid_scope", "scope", id="empty-scope"),
        pytest.param(_no_scope, "invalid_scope", "scope", id="no-scope"),
        pytest.param(_not_a_jwt, "invalid_grant", "Invalid JWT", id="not-a-jwt"),
        pytest.param(_padded_segments, "invalid_grant", "Invalid JWT", id="padded"),
    ],
)
def test_rejected_assertions(
    emulator: GoogleEmulator,
    key: ServiceAccountKey,
    http: urllib3.PoolManager,
    *,
    build: AssertionBuilder,
    error: str,
    description: str,
) -> None:
    assertion = build(emulator, key)
    issued = len(emulator.issued_tokens())

    response = post_token(http, emulator, assertion)

    assert response.status == 400
    assert response.json()["error"] == error
    assert description in response.json()["error_description"]
    assert len(emulator.issued_tokens()) == issued


def test_wrong_grant_type_is_unsupported(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    response = post_token(http, emulator, assertion_for(key), grant_type="client_credentials")

    assert response.status == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_token_requests_must_be_forms(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    body = json.dumps({"grant_type": JWT_BEARER_GRANT, "assertion": assertion_for(key)})

    response = http.request(
        "POST", emulator.token_url, body=body, headers={"Content-Type": "application/json"}
    )

    assert response.status == 400
    assert response.json()["error"] == "invalid_request"


def test_emulator_clock_offset_makes_google_auth_assertions_look_skewed(
    emulator: GoogleEmulator, key: ServiceAccountKey
) -> None:
    emulator.clock_offset_seconds = -1000.0
    credentials = google_credentials(emulator, key, [CALENDAR])

    with pytest.raises(google.auth.exceptions.RefreshError) as raised:
        credentials.refresh(google.auth.transport.urllib3.Request(urllib3.PoolManager()))

    assert "invalid_grant" in str(raised.value)
    assert raised.value.retryable is False


# --- tokeninfo for tokens that are no longer good --------------------------------------------


def test_tokeninfo_rejects_unknown_and_missing_tokens(
    emulator: GoogleEmulator, http: urllib3.PoolManager
) -> None:
    unknown = token_info(http, emulator, "ya29.never-issued")
    missing = http.request("GET", emulator.tokeninfo_url)

    for response in (unknown, missing):
        assert response.status == 400
        assert response.json() == {"error": "invalid_token", "error_description": "Invalid Value"}


def test_tokeninfo_counts_down_and_then_rejects_expired_tokens(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    emulator.token_lifetime_seconds = 60
    token = refreshed_token(emulator, key, [CALENDAR], http)

    emulator.clock_offset_seconds = 30.0
    halfway = token_info(http, emulator, token)
    emulator.clock_offset_seconds = 61.0
    expired = token_info(http, emulator, token)

    assert halfway.status == 200
    assert 28 <= int(halfway.json()["expires_in"]) <= 30
    assert expired.status == 400
    assert expired.json()["error"] == "invalid_token"


def test_tokeninfo_rejects_revoked_tokens(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    token = refreshed_token(emulator, key, [CALENDAR], http)
    assert token_info(http, emulator, token).status == 200

    emulator.revoke_token(token)

    response = token_info(http, emulator, token)
    assert response.status == 400
    assert response.json()["error"] == "invalid_token"


def test_unknown_paths_answer_404_json(emulator: GoogleEmulator, http: urllib3.PoolManager) -> None:
    response = http.request("GET", emulator.base_url + "/oauth2/v4/token")

    assert response.status == 404
    assert response.json()["error"] == "not_found"


# --- failure injection -----------------------------------------------------------------------


def test_injected_503s_then_success(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    emulator.fail_next("/token", status=503, count=2)

    statuses = [post_token(http, emulator, assertion_for(key)) for _ in range(3)]

    assert [r.status for r in statuses] == [503, 503, 200]
    assert statuses[0].json()["error"] == "internal_failure"


def test_google_auth_retries_through_an_injected_503(
    emulator: GoogleEmulator, key: ServiceAccountKey
) -> None:
    emulator.fail_next("/token", status=503)

    token = refreshed_token(emulator, key, [CALENDAR])

    assert token.startswith("ya29.")
    assert [r.status for r in emulator.requests] == [503, 200]


def test_queued_failures_are_consumed_in_order(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    emulator.fail_next("/token", status=500)
    emulator.fail_next("/token", status=502, body="<html>Bad Gateway</html>")
    emulator.fail_next("/token", status=400, body={"error": "invalid_grant"})

    responses = [post_token(http, emulator, assertion_for(key)) for _ in range(4)]

    assert [r.status for r in responses] == [500, 502, 400, 200]
    assert responses[1].data == b"<html>Bad Gateway</html>"
    assert responses[1].headers["Content-Type"].startswith("text/html")
    assert responses[2].json() == {"error": "invalid_grant"}


def test_hang_makes_the_client_time_out(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    emulator.fail_next("/token", hang_seconds=2)
    started = time.monotonic()

    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        post_token(http, emulator, assertion_for(key), timeout=urllib3.Timeout(connect=1, read=0.5))

    assert time.monotonic() - started < 1.5
    assert emulator.requests[-1].status is None
    assert post_token(http, emulator, assertion_for(key)).status == 200


def test_connection_reset_reaches_the_client(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    emulator.fail_next("/token", reset_connection=True)

    with pytest.raises(urllib3.exceptions.ProtocolError) as raised:
        post_token(http, emulator, assertion_for(key))

    assert isinstance(raised.value.args[1], ConnectionResetError)
    assert emulator.requests[-1].status is None


def test_google_auth_turns_a_reset_into_a_transport_error(
    emulator: GoogleEmulator, key: ServiceAccountKey
) -> None:
    emulator.fail_next("/token", reset_connection=True)
    credentials = google_credentials(emulator, key, [CALENDAR])

    with pytest.raises(google.auth.exceptions.TransportError):
        credentials.refresh(google.auth.transport.urllib3.Request(urllib3.PoolManager()))


def test_failures_stay_on_their_route(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    token = refreshed_token(emulator, key, [CALENDAR], http)
    emulator.fail_next("/token", status=503)

    info = token_info(http, emulator, token)
    refused = post_token(http, emulator, assertion_for(key))
    emulator.fail_next("/tokeninfo", status=500)
    granted = post_token(http, emulator, assertion_for(key))

    assert (info.status, refused.status, granted.status) == (200, 503, 200)
    assert token_info(http, emulator, token).status == 500


def test_fail_next_rejects_unknown_routes(emulator: GoogleEmulator) -> None:
    with pytest.raises(ValueError, match="route"):
        emulator.fail_next("/oauth2/v4/token")


def test_request_log_and_reset(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    assertion = assertion_for(key)
    post_token(http, emulator, assertion)
    emulator.fail_next("/tokeninfo", status=503)
    token_info(http, emulator, "ya29.x")

    token_request, info_request = emulator.requests
    assert (token_request.method, token_request.path, token_request.status) == (
        "POST",
        "/token",
        200,
    )
    assert token_request.form == {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
    assert (info_request.method, info_request.query, info_request.status) == (
        "GET",
        {"access_token": "ya29.x"},
        503,
    )
    assert token_request.time <= info_request.time

    issued = len(emulator.issued_tokens())
    emulator.fail_next("/token", status=503)
    emulator.reset()

    assert emulator.requests == []
    assert post_token(http, emulator, assertion_for(key)).status == 200
    assert len(emulator.issued_tokens()) == issued + 1


def test_concurrent_requests(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    token = refreshed_token(emulator, key, [CALENDAR], http)

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: token_info(http, emulator, token).status, range(48)))

    assert statuses == [200] * 48
    assert len(emulator.requests) == 49


def test_stop_does_not_wait_for_a_hang_in_progress() -> None:
    own = GoogleEmulator().start()
    own.fail_next("/tokeninfo", hang_seconds=30)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            urllib3.request("GET", own.tokeninfo_url, timeout=10, retries=False)
        except urllib3.exceptions.HTTPError as error:
            outcome.append(error)

    client = threading.Thread(target=call, daemon=True)
    client.start()
    deadline = time.monotonic() + 5
    while not own.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    own.stop()
    client.join(timeout=5)

    assert time.monotonic() - started < 1
    assert not client.is_alive()
    assert len(outcome) == 1
