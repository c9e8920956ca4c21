"""The IAM service-account keys API answers over real HTTP as Google's does, and the keys it
makes are accepted by the token endpoint only while Google would accept them."""

import base64
import datetime
import itertools
import json
import re
from collections.abc import Iterator, Mapping

import google.auth.exceptions
import google.auth.transport.urllib3
import pytest
import urllib3
from google.oauth2 import service_account

from localcloud.google_emulator import ROUTES, GoogleEmulator, ServiceAccountKey
from localcloud.google_keys import NO_EXPIRY

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
IAM = "https://www.googleapis.com/auth/iam"
CALENDAR = "https://www.googleapis.com/auth/calendar.readonly"
PROPAGATION_SECONDS = 5.0
KEY_ID = re.compile(r"[0-9a-f]{40}")
_names = itertools.count()


@pytest.fixture(scope="module")
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(key_propagation_seconds=PROPAGATION_SECONDS) as running:
        yield running


@pytest.fixture(autouse=True)
def _restore_emulator(emulator: GoogleEmulator) -> Iterator[None]:
    yield
    emulator.reset()
    emulator.clock_offset_seconds = 0.0


@pytest.fixture(scope="module")
def admin(emulator: GoogleEmulator) -> ServiceAccountKey:
    """The identity that manages other accounts' keys (the rotation's, in the product)."""
    return emulator.create_service_account("key-admin@demo-project.iam.gserviceaccount.com")


@pytest.fixture
def target(emulator: GoogleEmulator, admin: ServiceAccountKey) -> str:
    """A fresh keyless account on which `admin` holds roles/iam.serviceAccountKeyAdmin."""
    email = f"keyed-{next(_names)}@demo-project.iam.gserviceaccount.com"
    emulator.create_keyless_service_account(email)
    emulator.grant_key_admin(email, f"serviceAccount:{admin.client_email}")
    return email


@pytest.fixture(scope="module")
def http() -> urllib3.PoolManager:
    # No urllib3 retries: each test must see exactly what the emulator answered.
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=10), retries=False)


def request() -> google.auth.transport.urllib3.Request:
    return google.auth.transport.urllib3.Request(urllib3.PoolManager())


def mint(key_file: dict[str, str], scopes: list[str]) -> str:
    credentials = service_account.Credentials.from_service_account_info(key_file, scopes=scopes)
    credentials.refresh(request())
    token = credentials.token
    assert isinstance(token, str)
    return token


def refusal(key_file: dict[str, str]) -> str:
    """What the token endpoint answers a grant signed with the key it refuses."""
    with pytest.raises(google.auth.exceptions.RefreshError) as raised:
        mint(key_file, [CLOUD_PLATFORM])
    return str(raised.value)


def bearer(
    emulator: GoogleEmulator, admin: ServiceAccountKey, scopes: list[str] | None = None
) -> str:
    return mint(admin.key_file(emulator.token_url), scopes or [CLOUD_PLATFORM])


def call(
    http: urllib3.PoolManager,
    method: str,
    url: str,
    token: str | None,
    body: Mapping[str, object] | None = None,
) -> urllib3.BaseHTTPResponse:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    encoded = None if body is None else json.dumps(body)
    return http.request(method, url, body=encoded, headers=headers)


def create(
    http: urllib3.PoolManager, emulator: GoogleEmulator, email: str, token: str
) -> dict[str, str]:
    body = {"privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE", "keyAlgorithm": "KEY_ALG_RSA_2048"}
    response = call(http, "POST", emulator.keys_url(email), token, body)
    assert response.status == 200, response.data
    created: dict[str, str] = response.json()
    return created


def key_file_of(created: dict[str, str]) -> dict[str, str]:
    decoded: dict[str, str] = json.loads(base64.b64decode(created["privateKeyData"]))
    return decoded


def key_id_of(resource: dict[str, str]) -> str:
    return resource["name"].rpartition("/")[2]


def rfc3339(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(int(epoch), tz=datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def error_of(response: urllib3.BaseHTTPResponse) -> dict[str, object]:
    answer = response.json()
    assert set(answer) == {"error"}
    error: dict[str, object] = answer["error"]
    return error


# --- keys.create ----------------------------------------------------------------------------


def test_a_created_key_is_googles_resource_with_the_key_file(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    client_id = emulator.create_keyless_service_account(target)

    created = create(http, emulator, target, bearer(emulator, admin))

    key_id = key_id_of(created)
    assert KEY_ID.fullmatch(key_id)
    assert created == {
        "name": f"projects/demo-project/serviceAccounts/{target}/keys/{key_id}",
        "privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
        "privateKeyData": created["privateKeyData"],
        "validAfterTime": rfc3339(emulator.now()),
        "validBeforeTime": NO_EXPIRY,
        "keyAlgorithm": "KEY_ALG_RSA_2048",
        "keyOrigin": "GOOGLE_PROVIDED",
        "keyType": "USER_MANAGED",
    }
    key_file = key_file_of(created)
    assert key_file["private_key_id"] == key_id
    assert key_file["client_email"] == target
    assert key_file["client_id"] == client_id
    assert key_file["token_uri"] == emulator.token_url
    assert key_file["type"] == "service_account"


def test_a_created_key_mints_only_after_the_propagation_delay(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    key_file = key_file_of(create(http, emulator, target, bearer(emulator, admin)))

    assert "Invalid JWT Signature." in refusal(key_file)
    emulator.clock_offset_seconds = PROPAGATION_SECONDS - 1
    assert "Invalid JWT Signature." in refusal(key_file)
    emulator.clock_offset_seconds = PROPAGATION_SECONDS
    token = mint(key_file, [CLOUD_PLATFORM])

    assert emulator.token_info(token) is not None


def test_the_key_body_is_optional(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    response = call(http, "POST", emulator.keys_url(target), bearer(emulator, admin))

    assert response.status == 200
    assert response.json()["privateKeyType"] == "TYPE_GOOGLE_CREDENTIALS_FILE"


@pytest.mark.parametrize(
    "body",
    [{"privateKeyType": "TYPE_PKCS12_FILE"}, {"keyAlgorithm": "KEY_ALG_RSA_1024"}, {"x": 1}],
)
def test_keys_the_emulator_cannot_make_are_invalid_arguments(
    http: urllib3.PoolManager,
    emulator: GoogleEmulator,
    admin: ServiceAccountKey,
    target: str,
    body: dict[str, object],
) -> None:
    response = call(http, "POST", emulator.keys_url(target), bearer(emulator, admin), body)

    assert response.status == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"
    assert emulator.user_managed_keys(target) == []


# --- keys.list and keys.get -----------------------------------------------------------------


def test_list_shows_every_key_of_the_account_without_private_key_data(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    token = bearer(emulator, admin)
    set_up = emulator.create_service_account(target)
    created = create(http, emulator, target, token)

    for url in (emulator.keys_url(target), emulator.keys_url(target) + "?keyTypes=USER_MANAGED"):
        response = call(http, "GET", url, token)
        assert response.status == 200
        keys = response.json()["keys"]
        assert [key_id_of(key) for key in keys] == [set_up.private_key_id, key_id_of(created)]
        assert all("privateKeyData" not in key for key in keys)
        assert keys[1] == {k: v for k, v in created.items() if not k.startswith("privateKey")}


def test_list_without_user_managed_keys_is_empty_as_google_answers_it(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    token = bearer(emulator, admin)
    empty = call(http, "GET", emulator.keys_url(target), token)
    emulator.create_service_account(target)
    system = call(http, "GET", emulator.keys_url(target) + "?keyTypes=SYSTEM_MANAGED", token)

    assert (empty.status, empty.json()) == (200, {})
    assert (system.status, system.json()) == (200, {})


def test_an_unknown_key_type_is_an_invalid_argument(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    url = emulator.keys_url(target) + "?keyTypes=USER_MANAGED&keyTypes=EVERY_KEY"

    response = call(http, "GET", url, bearer(emulator, admin))

    assert response.status == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"


def test_get_answers_the_key_without_private_key_data(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    token = bearer(emulator, admin)
    created = create(http, emulator, target, token)

    response = call(http, "GET", emulator.keys_url(target) + "/" + key_id_of(created), token)

    assert response.status == 200
    assert response.json() == {
        k: v for k, v in created.items() if k not in ("privateKeyData", "privateKeyType")
    }


def test_the_account_may_be_named_by_project_and_unique_id(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    client_id = emulator.create_keyless_service_account(target)
    set_up = emulator.create_service_account(target)
    token = bearer(emulator, admin)

    by_project = call(http, "GET", emulator.keys_url(target, project="demo-project"), token)
    by_id = call(http, "GET", emulator.keys_url(client_id), token)
    other_project = call(http, "GET", emulator.keys_url(target, project="other"), token)

    assert [key_id_of(key) for key in by_project.json()["keys"]] == [set_up.private_key_id]
    assert by_id.json() == by_project.json()
    assert other_project.status == 404


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("DELETE", ""), ("POST", ":enable")])
def test_an_unknown_key_is_not_found_in_googles_shape(
    http: urllib3.PoolManager,
    emulator: GoogleEmulator,
    admin: ServiceAccountKey,
    target: str,
    method: str,
    suffix: str,
) -> None:
    # A key of another account is unknown on this one.
    other = emulator.create_service_account().private_key_id
    url = f"{emulator.keys_url(target)}/{other}{suffix}"

    response = call(http, method, url, bearer(emulator, admin))

    assert response.status == 404
    error = error_of(response)
    assert (error["code"], error["status"]) == (404, "NOT_FOUND")
    assert set(error) == {"code", "message", "status"}


# --- keys.delete, disable and enable --------------------------------------------------------


def test_a_deleted_key_is_gone_and_refused_but_its_tokens_live_on(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    set_up = emulator.create_service_account(target)
    key_file = set_up.key_file(emulator.token_url)
    minted = mint(key_file, [CLOUD_PLATFORM])
    token = bearer(emulator, admin)
    url = f"{emulator.keys_url(target)}/{set_up.private_key_id}"

    deleted = call(http, "DELETE", url, token)

    assert (deleted.status, deleted.json()) == (200, {})
    assert call(http, "GET", url, token).status == 404
    assert call(http, "GET", emulator.keys_url(target), token).json() == {}
    assert emulator.user_managed_keys(target) == []
    assert "Invalid JWT Signature." in refusal(key_file)
    assert emulator.token_info(minted) is not None
    assert call(http, "DELETE", url, token).status == 404


def test_a_disabled_key_is_listed_as_disabled_and_refused_until_enabled(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    set_up = emulator.create_service_account(target)
    key_file = set_up.key_file(emulator.token_url)
    token = bearer(emulator, admin)
    url = f"{emulator.keys_url(target)}/{set_up.private_key_id}"

    disabled = call(http, "POST", url + ":disable", token)

    assert (disabled.status, disabled.json()) == (200, {})
    assert call(http, "GET", url, token).json()["disabled"] is True
    assert call(http, "GET", emulator.keys_url(target), token).json()["keys"][0]["disabled"]
    assert [key.disabled for key in emulator.user_managed_keys(target)] == [True]
    assert "Invalid JWT Signature." in refusal(key_file)

    enabled = call(http, "POST", url + ":enable", token)

    assert (enabled.status, enabled.json()) == (200, {})
    assert "disabled" not in call(http, "GET", url, token).json()
    mint(key_file, [CLOUD_PLATFORM])


def test_the_helpers_and_the_api_share_one_key_state(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    key_id = key_id_of(create(http, emulator, target, bearer(emulator, admin)))

    emulator.disable_key(key_id)
    listed_disabled = emulator.user_managed_keys(target)[0].disabled
    emulator.revoke_key(key_id)

    assert listed_disabled
    assert emulator.user_managed_keys(target) == []


# --- Google's limits: 10 keys, the key-expiry policy ------------------------------------------


def test_an_eleventh_key_is_refused_with_googles_answer(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    # Expired and disabled keys count until they are deleted.
    emulator.set_key_expiry_policy(0.05)
    set_up = [emulator.create_service_account(target) for _ in range(9)]
    emulator.disable_key(set_up[0].private_key_id)
    emulator.clock_offset_seconds = 0.05 * 3600 + 1
    token = bearer(emulator, admin)
    create(http, emulator, target, token)

    refused = call(http, "POST", emulator.keys_url(target), token)

    assert refused.status == 400
    assert refused.json() == {
        "error": {
            "code": 400,
            "message": "Precondition check failed.",
            "status": "FAILED_PRECONDITION",
        }
    }
    assert len(emulator.user_managed_keys(target)) == 10
    emulator.revoke_key(set_up[0].private_key_id)
    create(http, emulator, target, token)


def test_the_expiry_policy_sets_valid_before_and_the_key_stops_minting_then(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    # Three minutes, so the assertions' real-clock times stay within the allowed skew.
    hours = 0.05
    emulator.set_key_expiry_policy(hours)
    created = create(http, emulator, target, bearer(emulator, admin))
    key_file = key_file_of(created)
    [listed] = emulator.user_managed_keys(target)

    assert listed.valid_before == listed.valid_after + hours * 3600
    assert created["validBeforeTime"] == rfc3339(listed.valid_before)
    assert created["validAfterTime"] == rfc3339(listed.valid_after)
    emulator.clock_offset_seconds = hours * 3600 - 1
    mint(key_file, [CLOUD_PLATFORM])
    emulator.clock_offset_seconds = hours * 3600
    assert "Invalid JWT Signature." in refusal(key_file)


def test_the_expiry_policy_applies_to_set_up_keys_and_is_lifted_by_none(
    emulator: GoogleEmulator, target: str
) -> None:
    emulator.set_key_expiry_policy(10.0)
    expiring = emulator.create_service_account(target)
    emulator.set_key_expiry_policy(None)
    lasting = emulator.create_service_account(target)

    before = {key.key_id: key.valid_before for key in emulator.user_managed_keys(target)}

    assert before[lasting.private_key_id] == float("inf")
    assert before[expiring.private_key_id] < float("inf")
    assert emulator.key_expiry_hours is None


@pytest.mark.parametrize("hours", [0, -1.0, float("nan"), float("inf")])
def test_an_expiry_policy_must_be_positive_hours(emulator: GoogleEmulator, hours: float) -> None:
    with pytest.raises(ValueError, match="positive number of hours"):
        emulator.set_key_expiry_policy(hours)


# --- who may call ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "method", "suffix"),
    [
        ("create", "POST", ""),
        ("list", "GET", ""),
        ("get", "GET", "/KEY"),
        ("delete", "DELETE", "/KEY"),
        ("disable", "POST", "/KEY:disable"),
        ("enable", "POST", "/KEY:enable"),
    ],
)
def test_without_the_key_admin_role_each_permission_is_denied(
    http: urllib3.PoolManager,
    emulator: GoogleEmulator,
    admin: ServiceAccountKey,
    target: str,
    action: str,
    method: str,
    suffix: str,
) -> None:
    key_id = emulator.create_service_account(target).private_key_id
    emulator.revoke_key_admin(target, f"serviceAccount:{admin.client_email}")
    url = emulator.keys_url(target) + suffix.replace("KEY", key_id)

    response = call(http, method, url, bearer(emulator, admin))

    assert response.status == 403
    error = error_of(response)
    assert error["status"] == "PERMISSION_DENIED"
    assert error["message"] == (
        f"Permission 'iam.serviceAccountKeys.{action}' denied on resource (or it may not exist)."
    )
    assert [key.key_id for key in emulator.user_managed_keys(target)] == [key_id]


def test_the_role_on_another_account_gives_nothing(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    other = f"other-{next(_names)}@demo-project.iam.gserviceaccount.com"
    emulator.create_keyless_service_account(other)

    response = call(http, "GET", emulator.keys_url(other), bearer(emulator, admin))

    assert response.status == 403


@pytest.mark.parametrize(("scopes", "allowed"), [([CALENDAR], False), ([IAM], True)])
def test_the_token_needs_the_cloud_platform_or_iam_scope(
    http: urllib3.PoolManager,
    emulator: GoogleEmulator,
    admin: ServiceAccountKey,
    target: str,
    scopes: list[str],
    allowed: bool,
) -> None:
    response = call(http, "GET", emulator.keys_url(target), bearer(emulator, admin, scopes))

    if allowed:
        assert response.status == 200
    else:
        assert response.status == 403
        assert error_of(response) == {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "status": "PERMISSION_DENIED",
        }


@pytest.mark.parametrize("case", ["missing", "unknown", "expired", "revoked"])
def test_a_caller_without_a_valid_token_is_unauthenticated(
    http: urllib3.PoolManager,
    emulator: GoogleEmulator,
    admin: ServiceAccountKey,
    target: str,
    case: str,
) -> None:
    token: str | None = bearer(emulator, admin)
    if case == "missing":
        token = None
    elif case == "unknown":
        token = "ya29.not-issued-by-the-emulator"
    elif case == "expired":
        emulator.clock_offset_seconds = 3600
    else:
        emulator.revoke_token(str(token))

    response = call(http, "POST", emulator.keys_url(target), token)

    assert response.status == 401
    error = error_of(response)
    assert (error["code"], error["status"]) == (401, "UNAUTHENTICATED")
    assert emulator.user_managed_keys(target) == []


# --- failure injection and the request log --------------------------------------------------


def test_keys_take_injected_failures_in_googles_shape(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    assert "/keys" in ROUTES
    token = bearer(emulator, admin)
    emulator.fail_next("/keys", status=503)

    failed = call(http, "POST", emulator.keys_url(target), token)
    created = create(http, emulator, target, token)

    assert failed.status == 503
    assert error_of(failed)["status"] == "UNAVAILABLE"
    assert [key.key_id for key in emulator.user_managed_keys(target)] == [key_id_of(created)]


def test_key_api_calls_name_each_action(
    http: urllib3.PoolManager, emulator: GoogleEmulator, admin: ServiceAccountKey, target: str
) -> None:
    token = bearer(emulator, admin)
    key_id = key_id_of(create(http, emulator, target, token))
    url = f"{emulator.keys_url(target)}/{key_id}"
    call(http, "GET", emulator.keys_url(target), token)
    call(http, "GET", url, token)
    call(http, "POST", url + ":disable", token)
    call(http, "POST", url + ":enable", token)
    call(http, "DELETE", url, token)

    calls = emulator.key_api_calls()

    assert [(c.action, c.account, c.key_id, c.status) for c in calls] == [
        ("create", target, None, 200),
        ("list", target, None, 200),
        ("get", target, key_id, 200),
        ("disable", target, key_id, 200),
        ("enable", target, key_id, 200),
        ("delete", target, key_id, 200),
    ]
