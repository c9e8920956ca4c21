"""tokeninfo takes the token in every form Google takes it, over real HTTP.

Google reads `access_token` from the query string (GET or POST) or from a posted form, and an
`Authorization: Bearer <token>` header with an empty body: Google's Node library posted a form
from 2020 and posts the Bearer form since 2025 (google-auth-library-nodejs #991, #1938). The
product's own testSecret posts a form (rotation_core.google_client.GoogleClient.token_info).
"""

from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
import urllib3

from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from tests.localcloud.test_google_emulator import EMAIL, FORM, refreshed_token

Ask = Callable[[urllib3.PoolManager, str, str], urllib3.BaseHTTPResponse]


@pytest.fixture(scope="module")
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as running:
        yield running


@pytest.fixture(autouse=True)
def _forget_requests(emulator: GoogleEmulator) -> Iterator[None]:
    yield
    emulator.reset()


@pytest.fixture(scope="module")
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=5), retries=False)


@pytest.fixture(scope="module")
def token(emulator: GoogleEmulator) -> str:
    key: ServiceAccountKey = emulator.create_service_account()
    return refreshed_token(emulator, key, [EMAIL])


def get_query(http: urllib3.PoolManager, url: str, token: str) -> urllib3.BaseHTTPResponse:
    return http.request("GET", url, fields={"access_token": token})


def post_query(http: urllib3.PoolManager, url: str, token: str) -> urllib3.BaseHTTPResponse:
    return http.request("POST", f"{url}?{urlencode({'access_token': token})}")


def post_form(http: urllib3.PoolManager, url: str, token: str) -> urllib3.BaseHTTPResponse:
    """What the product's testSecret sends."""
    return http.request("POST", url, fields={"access_token": token}, encode_multipart=False)


def post_bearer_as_node(
    http: urllib3.PoolManager, url: str, token: str
) -> urllib3.BaseHTTPResponse:
    """Exactly what google-auth-library-nodejs's getTokenInfo sends since 2025: POST, the token
    as a Bearer header, a form content type and an empty body."""
    headers = {**FORM, "Authorization": f"Bearer {token}"}
    return http.request("POST", url, body=b"", headers=headers)


def post_bearer(http: urllib3.PoolManager, url: str, token: str) -> urllib3.BaseHTTPResponse:
    return http.request("POST", url, headers={"Authorization": f"Bearer {token}"})


def get_bearer(http: urllib3.PoolManager, url: str, token: str) -> urllib3.BaseHTTPResponse:
    return http.request("GET", url, headers={"Authorization": f"bearer {token}"})


FORMS: dict[str, tuple[Ask, str]] = {
    "get-query": (get_query, "query"),
    "post-query": (post_query, "query"),
    "post-form": (post_form, "form"),
    "post-bearer-as-node": (post_bearer_as_node, "bearer"),
    "post-bearer": (post_bearer, "bearer"),
    "get-bearer-lowercase-scheme": (get_bearer, "bearer"),
}


@pytest.mark.parametrize("form", FORMS)
def test_every_form_google_accepts_describes_the_token(
    emulator: GoogleEmulator, http: urllib3.PoolManager, token: str, form: str
) -> None:
    ask, carried_in = FORMS[form]
    reference = get_query(http, emulator.tokeninfo_url, token).json()

    response = ask(http, emulator.tokeninfo_url, token)

    assert response.status == 200, response.data
    info = response.json()
    assert {k: v for k, v in info.items() if k != "expires_in"} == {
        k: v for k, v in reference.items() if k != "expires_in"
    }
    assert info["email"].endswith(".iam.gserviceaccount.com")
    request = emulator.requests[-1]
    assert request.status == 200
    assert (
        request.query.get("access_token"),
        request.form.get("access_token"),
        request.bearer,
    ) == (
        token if carried_in == "query" else None,
        token if carried_in == "form" else None,
        token if carried_in == "bearer" else None,
    )


@pytest.mark.parametrize(
    "authorization",
    ["Bearer ya29.never-issued", "Basic {token}", "Bearer ", "Bearer", "{token}"],
    ids=["unknown-token", "basic-scheme", "empty-token", "scheme-only", "no-scheme"],
)
def test_an_authorization_header_without_a_known_bearer_token_is_invalid(
    emulator: GoogleEmulator, http: urllib3.PoolManager, token: str, authorization: str
) -> None:
    headers = {**FORM, "Authorization": authorization.format(token=token)}

    response = http.request("POST", emulator.tokeninfo_url, body=b"", headers=headers)

    assert response.status == 400
    assert response.json() == {"error": "invalid_token", "error_description": "Invalid Value"}


def test_a_revoked_token_is_invalid_in_the_bearer_form_too(
    emulator: GoogleEmulator, http: urllib3.PoolManager
) -> None:
    key = emulator.create_service_account("revoked-bearer@demo-project.iam.gserviceaccount.com")
    revoked = refreshed_token(emulator, key, [EMAIL])
    assert post_bearer_as_node(http, emulator.tokeninfo_url, revoked).status == 200

    emulator.revoke_token(revoked)

    response = post_bearer_as_node(http, emulator.tokeninfo_url, revoked)
    assert response.status == 400
    assert response.json()["error"] == "invalid_token"
