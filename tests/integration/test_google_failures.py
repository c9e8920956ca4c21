"""How the core meets Google's failures, malformed keys and tokens that must not be promoted."""

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth.transport.urllib3 import Request
from google.oauth2.service_account import Credentials as GoogleCredentials
from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from rotation_core.config import GoogleEndpoints
from rotation_core.errors import (
    GoogleConnectionError,
    GoogleGrantRejectedError,
    GoogleResponseError,
    GoogleTimeoutError,
    GoogleUnavailableError,
    InvalidServiceAccountKeyError,
    RotationAbandonedError,
    RotationError,
)
from rotation_core.google_client import GoogleClient
from rotation_core.rotation import Rotation
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import SecretsGateway
from rotation_core.token_secret import TokenMetadata, TokenSecretValue
from tests.support import KEY_SECRET, SCOPE, TOKEN_SECRET, begin_rotation, run_all, stages

KeyFile = dict[str, str]
HANG_TEST_TIMEOUT_SECONDS = "0.5"
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"


def create(rotation: Rotation, secretsmanager: SecretsManagerClient, arn: str) -> str:
    token = begin_rotation(arn)
    rotation.create_secret(RotationRequest(arn, token))
    return token


def test_google_503_once_is_absorbed_by_google_auth_retry(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    google.fail_next("/token", status=503)
    token = begin_rotation(token_secret_arn)

    assert rotation.create_secret(RotationRequest(token_secret_arn, token)).action == "created"
    assert [r.status for r in google.requests if r.path == "/token"] == [503, 200]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ({"status": 502, "body": "<html>Bad Gateway</html>"}, GoogleUnavailableError),
        ({"status": 429, "count": 3}, GoogleUnavailableError),
        ({"reset_connection": True}, GoogleConnectionError),
        ({"status": 200, "body": "<html>captive portal</html>"}, GoogleResponseError),
        (
            {"status": 200, "body": {"access_token": "ya29.x", "token_type": "Bearer"}},
            GoogleResponseError,
        ),
        (
            {"status": 400, "body": {"error": "invalid_scope", "error_description": "bad"}},
            GoogleGrantRejectedError,
        ),
    ],
    ids=["502", "429-thrice", "reset", "200-not-json", "200-no-expiry", "invalid_scope"],
)
def test_token_endpoint_failures_map_to_error_types(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    failure: dict[str, object],
    expected: type[RotationError],
) -> None:
    token = begin_rotation(token_secret_arn)
    google.fail_next("/token", **failure)  # type: ignore[arg-type]

    with pytest.raises(expected):
        rotation.create_secret(RotationRequest(token_secret_arn, token))
    assert (
        "AWSPENDING"
        in secretsmanager.describe_secret(SecretId=TOKEN_SECRET)["VersionIdsToStages"][token]
    )


def test_a_token_endpoint_that_hangs_past_the_timeout_is_a_google_timeout(
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    """A timeout of its own, well below the hang (the suite's is longer, for loaded machines)."""
    impatient = {**environment, "GOOGLE_HTTP_TIMEOUT_SECONDS": HANG_TEST_TIMEOUT_SECONDS}
    google_client = GoogleClient(GoogleEndpoints.from_environment(impatient))
    rotation = Rotation(SecretsGateway(secretsmanager), google_client, impatient)
    token = begin_rotation(token_secret_arn)
    google.fail_next("/token", hang_seconds=4 * float(HANG_TEST_TIMEOUT_SECONDS))

    with pytest.raises(GoogleTimeoutError):
        rotation.create_secret(RotationRequest(token_secret_arn, token))
    assert "AWSPENDING" in stages(secretsmanager, TOKEN_SECRET)[token]


def test_transient_and_permanent_errors_are_told_apart() -> None:
    assert GoogleUnavailableError.transient
    assert GoogleTimeoutError.transient
    assert GoogleConnectionError.transient
    assert not GoogleGrantRejectedError.transient
    assert not InvalidServiceAccountKeyError.transient


def test_revoked_key_gives_invalid_grant(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
) -> None:
    google.revoke_key(service_account.private_key_id)
    token = begin_rotation(token_secret_arn)

    with pytest.raises(GoogleGrantRejectedError, match="invalid_grant"):
        rotation.create_secret(RotationRequest(token_secret_arn, token))
    assert len([r for r in google.requests if r.path == "/token"]) == 1


def _literal_newlines(key: KeyFile) -> None:
    key["private_key"] = key["private_key"].replace("\n", "\\n")


def _truncated(key: KeyFile) -> None:
    key["private_key"] = key["private_key"][: len(key["private_key"]) // 2]


def _bad_pem(key: KeyFile) -> None:
    key["private_key"] = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"


def _reserialized(key: KeyFile, encryption: serialization.KeySerializationEncryption) -> str:
    private = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def _encrypted(key: KeyFile) -> None:
    key["private_key"] = _reserialized(key, serialization.BestAvailableEncryption(b"passphrase"))


def _encrypted_traditional(key: KeyFile) -> None:
    private = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
    key["private_key"] = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()


def _public(key: KeyFile) -> None:
    private = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
    key["private_key"] = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _elliptic(key: KeyFile) -> None:
    key["private_key"] = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _without(field: str) -> Callable[[KeyFile], None]:
    def remove(key: KeyFile) -> None:
        del key[field]

    return remove


def _not_a_service_account(key: KeyFile) -> None:
    key["type"] = "authorized_user"


MALFORMED_KEYS: dict[str, tuple[Callable[[KeyFile], None], str]] = {
    "missing-private_key": (_without("private_key"), "no 'private_key' field"),
    "missing-client_email": (_without("client_email"), "no 'client_email' field"),
    "missing-private_key_id": (_without("private_key_id"), "no 'private_key_id' field"),
    "bad-pem": (_bad_pem, "not a readable PEM private key"),
    "literal-backslash-n": (_literal_newlines, r"literal '\\n' sequences"),
    "truncated-pem": (_truncated, "not a readable PEM private key"),
    "encrypted-pkcs8": (_encrypted, "encrypted with a passphrase"),
    "encrypted-traditional": (_encrypted_traditional, "encrypted with a passphrase"),
    "public-key": (_public, "public key or certificate"),
    "ec-key": (_elliptic, "Google service-account keys are RSA"),
    "wrong-type": (_not_a_service_account, "is not a service-account key"),
}


def _store_key(secretsmanager: SecretsManagerClient, secret_string: str) -> None:
    secretsmanager.put_secret_value(SecretId=KEY_SECRET, SecretString=secret_string)


@pytest.mark.parametrize("case", sorted(MALFORMED_KEYS))
def test_malformed_key_is_a_clear_permanent_error_that_never_echoes_the_key(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    service_account: ServiceAccountKey,
    google: GoogleEmulator,
    case: str,
) -> None:
    damage, message = MALFORMED_KEYS[case]
    key_file = service_account.key_file(GoogleEmulator.GOOGLE_TOKEN_AUDIENCE)
    damage(key_file)
    _store_key(secretsmanager, json.dumps(key_file))
    token = begin_rotation(token_secret_arn)

    with pytest.raises(InvalidServiceAccountKeyError, match=message) as raised:
        rotation.create_secret(RotationRequest(token_secret_arn, token))
    _assert_no_key_material(str(raised.value), service_account, key_file)
    echoed = [field for field, value in key_file.items() if value and value in str(raised.value)]
    assert echoed == []
    assert raised.value.__cause__ is None
    assert google.requests == []


@pytest.mark.parametrize(
    ("encode", "message"),
    [
        (lambda text: "not json at all", "is not JSON"),
        (lambda text: base64.b64encode(text.encode()).decode(), "is not JSON"),
        (json.dumps, "encoded twice"),
        (lambda text: json.dumps([text]), "must be a JSON object"),
        (lambda text: "{}", "is empty .* put-secret-value --secret-id google/service-account-key"),
    ],
    ids=["plain-string", "base64", "json-in-json", "json-array", "empty-as-deployed"],
)
def test_key_secret_that_is_not_a_key_file_object_is_refused(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    service_account: ServiceAccountKey,
    encode: Callable[[str], str],
    message: str,
) -> None:
    key_file = service_account.key_file(GoogleEmulator.GOOGLE_TOKEN_AUDIENCE)
    _store_key(secretsmanager, encode(json.dumps(key_file)))
    token = begin_rotation(token_secret_arn)

    with pytest.raises(InvalidServiceAccountKeyError, match=message) as raised:
        rotation.create_secret(RotationRequest(token_secret_arn, token))
    _assert_no_key_material(str(raised.value), service_account, key_file)


def _assert_no_key_material(
    message: str, service_account: ServiceAccountKey, key_file: KeyFile
) -> None:
    pem_lines = [
        line
        for pem in (service_account.private_key_pem, key_file.get("private_key", ""))
        for line in pem.replace("\\n", "\n").splitlines()
        if len(line) > 16 and "-----" not in line
    ]
    assert not any(line in message for line in pem_lines)


def test_test_secret_accepts_a_fresh_token(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    token = create(rotation, secretsmanager, token_secret_arn)
    outcome = rotation.test_secret(RotationRequest(token_secret_arn, token))
    assert outcome.action == "verified"


def test_test_secret_rejects_an_expired_token(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    token = create(rotation, secretsmanager, token_secret_arn)
    google.clock_offset_seconds = 3700

    with pytest.raises(RotationAbandonedError, match="tokeninfo says is not valid"):
        rotation.test_secret(RotationRequest(token_secret_arn, token))
    assert stages(secretsmanager, TOKEN_SECRET)[token] == []


def test_test_secret_rejects_a_token_that_dies_too_soon(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    token = create(rotation, secretsmanager, token_secret_arn)
    google.clock_offset_seconds = 3000

    with pytest.raises(
        RotationAbandonedError, match=r"expires in \d+ s, less than the required 900"
    ):
        rotation.test_secret(RotationRequest(token_secret_arn, token))
    assert stages(secretsmanager, TOKEN_SECRET)[token] == []


def test_test_secret_abandons_a_token_missing_a_scope_the_settings_now_require(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    environment: dict[str, str],
) -> None:
    token = create(rotation, secretsmanager, token_secret_arn)
    extra = "https://www.googleapis.com/auth/drive.readonly"
    environment["GOOGLE_SCOPES"] = f"{SCOPE} {extra}"  # the deployer widened the scopes since

    with pytest.raises(RotationAbandonedError, match=f"lacks the scopes {extra}"):
        rotation.test_secret(RotationRequest(token_secret_arn, token))
    assert stages(secretsmanager, TOKEN_SECRET)[token] == []


def test_test_secret_rejects_the_wrong_service_account(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    token = create(rotation, secretsmanager, token_secret_arn)
    secretsmanager.tag_resource(
        SecretId=token_secret_arn,
        Tags=[
            {"Key": "token-rotation:service-account", "Value": "other@x.iam.gserviceaccount.com"}
        ],
    )

    with pytest.raises(RotationAbandonedError, match="expected service account is other@"):
        rotation.test_secret(RotationRequest(token_secret_arn, token))


def test_test_secret_rejects_a_token_issued_to_another_client(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
) -> None:
    token = begin_rotation(token_secret_arn)
    other = google.create_service_account("intruder@demo-project.iam.gserviceaccount.com")
    forged = TokenSecretValue(_mint_directly(google, other), _metadata(service_account))
    _write_pending(secretsmanager, token, forged)

    with pytest.raises(RotationAbandonedError, match="issued to client"):
        rotation.test_secret(RotationRequest(token_secret_arn, token))


def test_test_secret_abandons_a_token_whose_google_account_is_not_the_stored_one(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
    environment: dict[str, str],
) -> None:
    """Only tokeninfo's email can tell: the forged metadata names our account with the
    intruder's client id, so the client check alone passes."""
    scopes = (SCOPE, EMAIL_SCOPE)  # tokeninfo names the account only with the email scope
    environment["GOOGLE_SCOPES"] = " ".join(scopes)
    token = begin_rotation(token_secret_arn)
    intruder = google.create_service_account("intruder@demo-project.iam.gserviceaccount.com")
    metadata = replace(
        _metadata(service_account), scopes=scopes, service_account_client_id=intruder.client_id
    )
    _write_pending(
        secretsmanager,
        token,
        TokenSecretValue(_mint_directly(google, intruder, scopes), metadata),
    )

    with pytest.raises(RotationAbandonedError, match="holds a token of intruder@"):
        rotation.test_secret(RotationRequest(token_secret_arn, token))


def test_test_secret_rejects_a_token_google_does_not_know(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    service_account: ServiceAccountKey,
) -> None:
    token = begin_rotation(token_secret_arn)
    unknown = TokenSecretValue("ya29.never-issued-by-google", _metadata(service_account))
    _write_pending(secretsmanager, token, unknown)

    with pytest.raises(RotationAbandonedError, match="tokeninfo says is not valid"):
        rotation.test_secret(RotationRequest(token_secret_arn, token))
    assert stages(secretsmanager, TOKEN_SECRET)[token] == []


def test_tokeninfo_outage_is_transient_while_the_token_in_use_is_healthy(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    run_all(rotation, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn)))
    token = create(rotation, secretsmanager, token_secret_arn)
    google.fail_next("/tokeninfo", status=503)

    with pytest.raises(GoogleUnavailableError, match="tokeninfo endpoint answered HTTP 503"):
        rotation.test_secret(RotationRequest(token_secret_arn, token))


def _metadata(key: ServiceAccountKey) -> TokenMetadata:
    now = datetime.now(UTC)
    return TokenMetadata(
        "Bearer", now + timedelta(hours=1), now, (SCOPE,), key.client_email, key.client_id
    )


def _mint_directly(
    google: GoogleEmulator, key: ServiceAccountKey, scopes: tuple[str, ...] = (SCOPE,)
) -> str:
    """A genuine token of another service account, minted by unmodified google-auth."""
    credentials = GoogleCredentials.from_service_account_info(
        key.key_file(google.token_url), scopes=list(scopes)
    )
    credentials.refresh(Request(urllib3.PoolManager()))
    token: str = credentials.token
    return token


def _write_pending(
    secretsmanager: SecretsManagerClient, token: str, value: TokenSecretValue
) -> None:
    """Fill the rotation's empty AWSPENDING placeholder with a value of the test's choosing."""
    secretsmanager.put_secret_value(
        SecretId=TOKEN_SECRET,
        ClientRequestToken=token,
        SecretString=value.to_secret_string(),
        VersionStages=["AWSPENDING"],
    )
