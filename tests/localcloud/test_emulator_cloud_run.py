"""The emulator's Cloud Run services answer Bearer ID tokens over real HTTP as Cloud Run's front
end does: 200 for an invoker's valid token, 401 for a token it cannot trust, 403 otherwise."""

from collections.abc import Iterator

import pytest
import requests
from google.auth import crypt
from google.auth import jwt as google_jwt
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import service_account

from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey

CALLER = "caller@demo-project.iam.gserviceaccount.com"
INVALID_TOKEN = (
    'Bearer error="invalid_token" error_description="The access token could not be verified"'
)


@pytest.fixture(scope="module")
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as running:
        yield running


@pytest.fixture(scope="module")
def caller(emulator: GoogleEmulator) -> ServiceAccountKey:
    return emulator.create_service_account(CALLER)


@pytest.fixture
def url(emulator: GoogleEmulator) -> Iterator[str]:
    deployed = emulator.deploy_cloud_run("hello", invokers=[CALLER])
    yield deployed
    emulator.reset()
    emulator.clock_offset_seconds = 0.0


def id_token_credentials(
    emulator: GoogleEmulator, key: ServiceAccountKey, audience: str
) -> service_account.IDTokenCredentials:
    credentials: service_account.IDTokenCredentials = (
        service_account.IDTokenCredentials.from_service_account_info(
            key.key_file(emulator.token_url), target_audience=audience, token_uri=emulator.token_url
        )
    )
    return credentials


def id_token(emulator: GoogleEmulator, key: ServiceAccountKey, audience: str) -> str:
    credentials = id_token_credentials(emulator, key, audience)
    credentials.refresh(Request())
    token = credentials.token
    assert isinstance(token, str)
    return token


def call(url: str, token: str | None) -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.get(url, headers=headers, timeout=10)


def google_claims(
    emulator: GoogleEmulator, key: ServiceAccountKey, audience: str
) -> dict[str, object]:
    now = int(emulator.now())
    return {
        "iss": "https://accounts.google.com",
        "aud": audience,
        "azp": key.client_id,
        "sub": key.client_id,
        "email": key.client_email,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    }


def assert_unauthorized(answer: requests.Response, path: str = "/") -> None:
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == INVALID_TOKEN
    assert answer.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert "<title>401 Unauthorized</title>" in answer.text
    assert (
        f"Your client does not have permission to the requested URL <code>{path}</code>."
        in answer.text
    )


def assert_forbidden(answer: requests.Response, path: str = "/") -> None:
    assert answer.status_code == 403
    assert "WWW-Authenticate" not in answer.headers
    assert "<title>403 Forbidden</title>" in answer.text
    assert (
        f"Your client does not have permission to get URL <code>{path}</code> from this server."
        in answer.text
    )


def test_an_invokers_id_token_is_served_and_names_the_caller(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    session = AuthorizedSession(id_token_credentials(emulator, caller, url))

    answer = session.get(url + "/api/greeting")

    assert answer.status_code == 200
    assert answer.json() == {"message": "hello", "email": CALLER}
    assert emulator.cloud_run_url("hello") == url


def test_without_a_token_cloud_run_answers_403(emulator: GoogleEmulator, url: str) -> None:
    assert_forbidden(call(url + "/api", None), "/api")


def test_an_access_token_is_not_an_id_token(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    credentials = service_account.Credentials.from_service_account_info(
        caller.key_file(emulator.token_url),
        scopes=["https://www.googleapis.com/auth/cloud-platform"],
    )
    credentials.refresh(Request())

    assert_unauthorized(call(url, credentials.token))


def test_a_malformed_token_is_unauthorized(emulator: GoogleEmulator, url: str) -> None:
    assert_unauthorized(call(url, "not.a.jwt"))


def test_a_token_for_another_audience_is_unauthorized(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    emulator.deploy_cloud_run("other", invokers=[CALLER])

    answer = call(url, id_token(emulator, caller, emulator.cloud_run_url("other")))

    assert_unauthorized(answer)


def test_the_audience_may_differ_by_a_trailing_slash(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    assert call(url, id_token(emulator, caller, url + "/")).status_code == 200
    assert_unauthorized(call(url, id_token(emulator, caller, url + "/api")))


def test_a_custom_audience_is_accepted(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    emulator.deploy_cloud_run("hello", invokers=[CALLER], custom_audiences=["https://api.example"])

    assert call(url, id_token(emulator, caller, "https://api.example")).status_code == 200
    assert call(url, id_token(emulator, caller, url)).status_code == 200


def test_an_expired_token_is_unauthorized(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    token = id_token(emulator, caller, url)
    assert call(url, token).status_code == 200

    emulator.clock_offset_seconds = 3600.0

    assert_unauthorized(call(url, token))


def test_a_token_signed_by_the_callers_own_key_is_unauthorized(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    signer = crypt.RSASigner.from_string(caller.private_key_pem, key_id=caller.private_key_id)
    forged = google_jwt.encode(signer, google_claims(emulator, caller, url)).decode()

    assert_unauthorized(call(url, forged))


def test_a_tampered_token_is_unauthorized(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    other = emulator.create_service_account("other@demo-project.iam.gserviceaccount.com")
    emulator.grant_run_invoker("hello", other.client_email)
    header, _, signature = id_token(emulator, other, url).split(".")
    claims = google_jwt.encode(
        crypt.RSASigner.from_string(caller.private_key_pem), google_claims(emulator, caller, url)
    ).split(b".")[1]

    assert_unauthorized(call(url, f"{header}.{claims.decode()}.{signature}"))


def test_a_token_google_did_not_issue_is_unauthorized(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    claims = google_claims(emulator, caller, url)
    assert call(url, emulator.sign_id_token(claims)).status_code == 200

    token = emulator.sign_id_token({**claims, "iss": "https://example.com"})

    assert_unauthorized(call(url, token))


def test_a_token_of_a_retired_signing_key_is_unauthorized(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    token = id_token(emulator, caller, url)
    old_kid = emulator.signing_key_ids[-1]
    emulator.rotate_signing_key()
    assert call(url, token).status_code == 200

    emulator.retire_signing_key(old_kid)

    assert_unauthorized(call(url, token))


def test_a_valid_token_without_run_invoker_is_forbidden(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    emulator.revoke_run_invoker("hello", CALLER)
    token = id_token(emulator, caller, url)

    assert_forbidden(call(url + "/x", token), "/x")

    emulator.grant_run_invoker("hello", CALLER)
    assert call(url + "/x", token).status_code == 200


def test_a_token_without_a_verified_email_is_forbidden(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    claims = google_claims(emulator, caller, url)
    unverified = {**claims, "email_verified": False}
    without = {name: value for name, value in claims.items() if not name.startswith("email")}

    assert_forbidden(call(url, emulator.sign_id_token(unverified)))
    assert_forbidden(call(url, emulator.sign_id_token(without)))


def test_an_unknown_service_is_not_found(emulator: GoogleEmulator, url: str) -> None:
    answer = call(emulator.cloud_run_url("absent"), None)

    assert answer.status_code == 404
    assert "<title>404 Page not found</title>" in answer.text


def test_an_injected_failure_of_cloud_run_reaches_the_caller(
    emulator: GoogleEmulator, caller: ServiceAccountKey, url: str
) -> None:
    token = id_token(emulator, caller, url)
    emulator.fail_next("/run", status=503)

    assert call(url, token).status_code == 503
    assert call(url, token).status_code == 200


def test_a_service_name_cloud_run_would_refuse_is_named_with_the_rule(
    emulator: GoogleEmulator,
) -> None:
    with pytest.raises(ValueError, match="lowercase letters, digits and hyphens"):
        emulator.deploy_cloud_run("Hello_World")
    with pytest.raises(TypeError, match="collections"):
        emulator.deploy_cloud_run("hello", invokers=CALLER)
