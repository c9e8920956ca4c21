"""The emulator signs Google ID tokens that unmodified google-auth mints (key, impersonation,
federation) and verifies against the published certificates, across key rotations."""

import base64
import itertools
import json
from collections.abc import Iterator

import google.auth.exceptions
import google.auth.iam
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import aws, impersonated_credentials
from google.auth import jwt as google_jwt
from google.auth.transport.requests import Request
from google.oauth2 import id_token, service_account

from localcloud.google_emulator import (
    AWS4_REQUEST_TOKEN_TYPE,
    ROUTES,
    GoogleEmulator,
    ServiceAccountKey,
)

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
AUDIENCE = "https://hello-abc123-uc.a.run.app"
PROJECT_NUMBER = "123456789"
POOL_PROVIDER = (
    f"//iam.googleapis.com/projects/{PROJECT_NUMBER}/locations/global/"
    "workloadIdentityPools/aws-pool/providers/aws-provider"
)
# moto's default account: every moto credential belongs to it.
AWS_ACCOUNT = "123456789012"
_names = itertools.count()


@pytest.fixture(scope="module")
def emulator(moto_endpoint: str) -> Iterator[GoogleEmulator]:
    with GoogleEmulator(aws_endpoint_url=moto_endpoint) as running:
        yield running


@pytest.fixture(autouse=True)
def _restore_emulator(emulator: GoogleEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # google-auth's generateIdToken URL is a module constant with no override argument.
    monkeypatch.setattr(
        google.auth.iam, "_IAM_IDTOKEN_ENDPOINT", emulator.generate_id_token_url("{}")
    )
    emulator.register_workload_identity_provider(POOL_PROVIDER, AWS_ACCOUNT)
    yield
    emulator.reset()
    emulator.clock_offset_seconds = 0.0


@pytest.fixture
def source(emulator: GoogleEmulator) -> ServiceAccountKey:
    return emulator.create_service_account(
        f"source-{next(_names)}@demo-project.iam.gserviceaccount.com"
    )


@pytest.fixture
def target(emulator: GoogleEmulator) -> str:
    email = f"target-{next(_names)}@demo-project.iam.gserviceaccount.com"
    emulator.create_keyless_service_account(email)
    return email


def key_id_token(
    emulator: GoogleEmulator, key: ServiceAccountKey, audience: str = AUDIENCE
) -> service_account.IDTokenCredentials:
    credentials: service_account.IDTokenCredentials = (
        service_account.IDTokenCredentials.from_service_account_info(
            key.key_file(emulator.token_url),
            target_audience=audience,
            token_uri=emulator.token_url,
        )
    )
    credentials.refresh(Request())
    return credentials


def impersonated_id_token(
    emulator: GoogleEmulator,
    source: ServiceAccountKey,
    target: str,
    *,
    include_email: bool = True,
) -> impersonated_credentials.IDTokenCredentials:
    source_credentials = service_account.Credentials.from_service_account_info(
        source.key_file(emulator.token_url), scopes=[CLOUD_PLATFORM]
    )
    return impersonated_credentials.IDTokenCredentials(
        impersonated_credentials.Credentials(source_credentials, target, [CLOUD_PLATFORM]),
        target_audience=AUDIENCE,
        include_email=include_email,
    )


def verified(emulator: GoogleEmulator, token: object) -> dict[str, object]:
    """The token's claims, verified as a relying party verifies them (with google-auth)."""
    assert isinstance(token, str)
    claims = id_token.verify_token(
        token, Request(), audience=AUDIENCE, certs_url=emulator.certs_url
    )
    return dict(claims)


def kid_of(token: object) -> str:
    assert isinstance(token, str)
    kid = google_jwt.decode_header(token)["kid"]
    assert isinstance(kid, str)
    return kid


def access_token_of(emulator: GoogleEmulator, key: ServiceAccountKey) -> str:
    credentials = service_account.Credentials.from_service_account_info(
        key.key_file(emulator.token_url), scopes=[CLOUD_PLATFORM]
    )
    credentials.refresh(Request())
    token = credentials.token
    assert isinstance(token, str)
    return token


# --- the certificate endpoints ---------------------------------------------------------------


def test_v1_certs_are_x509_certificates_by_kid_cached_for_hours(
    emulator: GoogleEmulator,
) -> None:
    answer = requests.get(emulator.certs_url, timeout=10)

    assert answer.status_code == 200
    certificates = answer.json()
    assert list(certificates) == list(emulator.signing_key_ids)
    for pem in certificates.values():
        x509.load_pem_x509_certificate(pem.encode())
    assert "max-age=21600" in answer.headers["Cache-Control"]
    assert "no-store" not in answer.headers["Cache-Control"]


def test_v3_certs_publish_the_same_keys_as_a_jwk_set(emulator: GoogleEmulator) -> None:
    emulator.rotate_signing_key()
    certificates = requests.get(emulator.certs_url, timeout=10).json()

    keys = requests.get(emulator.jwks_url, timeout=10).json()["keys"]

    assert [key["kid"] for key in keys] == list(certificates)
    for key in keys:
        assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
        numbers = rsa.RSAPublicNumbers(_uint(key["e"]), _uint(key["n"]))
        certificate = x509.load_pem_x509_certificate(certificates[key["kid"]].encode())
        public_key = certificate.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey)
        assert public_key.public_numbers() == numbers


def test_a_jwk_verifies_the_tokens_of_its_kid(
    emulator: GoogleEmulator, source: ServiceAccountKey
) -> None:
    token = key_id_token(emulator, source).token
    [key] = [
        key
        for key in requests.get(emulator.jwks_url, timeout=10).json()["keys"]
        if key["kid"] == kid_of(token)
    ]
    public_pem = (
        rsa.RSAPublicNumbers(_uint(key["e"]), _uint(key["n"]))
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    claims = google_jwt.decode(token, certs={key["kid"]: public_pem}, audience=AUDIENCE)

    assert claims["email"] == source.client_email


def _uint(encoded: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)), "big")


# --- key rotation ----------------------------------------------------------------------------


def test_tokens_verify_across_a_rotation_by_their_kid(
    emulator: GoogleEmulator, source: ServiceAccountKey
) -> None:
    before = key_id_token(emulator, source).token

    new_kid = emulator.rotate_signing_key()
    after = key_id_token(emulator, source).token

    assert kid_of(after) == new_kid != kid_of(before)
    assert emulator.signing_key_ids == (kid_of(before), new_kid)
    assert verified(emulator, before)["email"] == source.client_email
    assert verified(emulator, after)["email"] == source.client_email


def test_a_second_rotation_drops_the_oldest_key(
    emulator: GoogleEmulator, source: ServiceAccountKey
) -> None:
    oldest = key_id_token(emulator, source).token

    emulator.rotate_signing_key()
    emulator.rotate_signing_key()

    assert kid_of(oldest) not in emulator.signing_key_ids
    with pytest.raises(ValueError, match="key id"):
        verified(emulator, oldest)


def test_a_retired_key_stops_verifying_at_once_and_the_signing_key_cannot_retire(
    emulator: GoogleEmulator, source: ServiceAccountKey
) -> None:
    old = key_id_token(emulator, source).token
    emulator.rotate_signing_key()

    emulator.retire_signing_key(kid_of(old))

    with pytest.raises(ValueError, match="key id"):
        verified(emulator, old)
    with pytest.raises(ValueError, match="rotate"):
        emulator.retire_signing_key(emulator.signing_key_ids[-1])


# --- the token endpoint: the JWT-bearer grant with target_audience ---------------------------


def test_a_key_grant_with_target_audience_answers_a_google_id_token(
    emulator: GoogleEmulator, source: ServiceAccountKey
) -> None:
    credentials = key_id_token(emulator, source)

    claims = verified(emulator, credentials.token)
    assert claims == {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": source.client_id,
        "sub": source.client_id,
        "email": source.client_email,
        "email_verified": True,
        "iat": claims["iat"],
        "exp": claims["exp"],
    }
    assert claims["exp"] == claims["iat"] + 3600  # type: ignore[operator]
    assert credentials.expiry.timestamp() == pytest.approx(claims["exp"])  # type: ignore[union-attr]
    assert google_jwt.decode_header(credentials.token)["alg"] == "RS256"


def test_the_id_token_answer_holds_the_id_token_alone(
    emulator: GoogleEmulator, source: ServiceAccountKey
) -> None:
    key_id_token(emulator, source)
    credentials = service_account.IDTokenCredentials.from_service_account_info(
        source.key_file(emulator.token_url), target_audience=AUDIENCE
    )
    assertion = credentials._make_authorization_grant_assertion()

    answer = requests.post(
        emulator.token_url,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
        timeout=10,
    )

    assert answer.status_code == 200
    assert list(answer.json()) == ["id_token"]


@pytest.mark.parametrize("refusal", ["disable_key", "revoke_key"])
def test_a_disabled_or_deleted_key_gets_no_id_token(
    emulator: GoogleEmulator, source: ServiceAccountKey, refusal: str
) -> None:
    getattr(emulator, refusal)(source.private_key_id)

    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        key_id_token(emulator, source)


# --- IAM Credentials: generateIdToken --------------------------------------------------------


def test_the_open_id_token_creator_role_gives_a_token_without_email_unless_asked(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_open_id_token_creator(target, source.client_email)
    without = impersonated_id_token(emulator, source, target, include_email=False)
    with_email = impersonated_id_token(emulator, source, target, include_email=True)

    without.refresh(Request())
    with_email.refresh(Request())

    target_id = emulator.create_keyless_service_account(target)
    bare = verified(emulator, without.token)
    assert (bare["aud"], bare["sub"], bare["azp"]) == (AUDIENCE, target_id, target_id)
    assert "email" not in bare
    assert "email_verified" not in bare
    full = verified(emulator, with_email.token)
    assert (full["email"], full["email_verified"]) == (target, True)
    assert with_email.expiry.timestamp() == pytest.approx(full["exp"])  # type: ignore[union-attr]


def test_the_token_creator_role_grants_id_tokens_too(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_token_creator(target, source.client_email)
    credentials = impersonated_id_token(emulator, source, target)

    credentials.refresh(Request())

    assert verified(emulator, credentials.token)["email"] == target


def test_without_a_role_the_permission_is_denied_as_google_words_it(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_open_id_token_creator(
        target, "someone-else@demo-project.iam.gserviceaccount.com"
    )

    with pytest.raises(google.auth.exceptions.RefreshError) as raised:
        impersonated_id_token(emulator, source, target).refresh(Request())

    error = raised.value.args[0]
    assert "PERMISSION_DENIED" in error
    assert (
        "Permission 'iam.serviceAccounts.getOpenIdToken' denied on resource "
        "(or it may not exist)." in error
    )


def test_the_open_id_token_creator_role_gives_no_access_tokens(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_open_id_token_creator(target, source.client_email)

    answer = requests.post(
        emulator.generate_access_token_url(target),
        json={"scope": [CLOUD_PLATFORM]},
        headers={"Authorization": f"Bearer {access_token_of(emulator, source)}"},
        timeout=10,
    )

    assert answer.status_code == 403
    assert "iam.serviceAccounts.getAccessToken" in answer.json()["error"]["message"]


def test_a_missing_audience_is_a_bad_request(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_open_id_token_creator(target, source.client_email)

    answer = requests.post(
        emulator.generate_id_token_url(target),
        json={"includeEmail": True},
        headers={"Authorization": f"Bearer {access_token_of(emulator, source)}"},
        timeout=10,
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "audience" in answer.json()["error"]["message"]


def test_each_delegate_needs_the_token_creator_role_on_the_next(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    middle = f"middle-{next(_names)}@demo-project.iam.gserviceaccount.com"
    emulator.create_keyless_service_account(middle)
    emulator.grant_open_id_token_creator(middle, source.client_email)
    emulator.grant_open_id_token_creator(target, middle)
    source_credentials = service_account.Credentials.from_service_account_info(
        source.key_file(emulator.token_url), scopes=[CLOUD_PLATFORM]
    )
    chain = impersonated_credentials.Credentials(
        source_credentials,
        target,
        [CLOUD_PLATFORM],
        delegates=[f"projects/-/serviceAccounts/{middle}"],
    )

    with pytest.raises(google.auth.exceptions.RefreshError, match="getOpenIdToken"):
        impersonated_credentials.IDTokenCredentials(chain, AUDIENCE).refresh(Request())

    emulator.grant_token_creator(target, middle)
    credentials = impersonated_credentials.IDTokenCredentials(chain, AUDIENCE, include_email=True)
    credentials.refresh(Request())
    assert verified(emulator, credentials.token)["email"] == target


def test_a_federated_aws_principal_gets_id_tokens_keylessly(
    emulator: GoogleEmulator, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    federated = aws.Credentials.from_info(
        {
            "type": "external_account",
            "audience": POOL_PROVIDER,
            "subject_token_type": AWS4_REQUEST_TOKEN_TYPE,
            "token_url": emulator.sts_url,
            "credential_source": {
                "environment_id": "aws1",
                "regional_cred_verification_url": (
                    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
                ),
            },
        },
        scopes=[CLOUD_PLATFORM],
    )
    credentials = impersonated_credentials.IDTokenCredentials(
        impersonated_credentials.Credentials(federated, target, [CLOUD_PLATFORM]),
        target_audience=AUDIENCE,
        include_email=True,
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="getOpenIdToken"):
        credentials.refresh(Request())

    emulator.grant_open_id_token_creator(target, f"arn:aws:sts::{AWS_ACCOUNT}:user/moto")
    credentials.refresh(Request())

    # The STS token itself is the caller of generateIdToken.
    generate = emulator.requests[-1]
    assert generate.path.endswith(f"{target}:generateIdToken")
    assert generate.status == 200
    [caller] = [t for t in emulator.issued_tokens() if t.access_token == generate.bearer]
    assert caller.principal is not None
    assert caller.principal.endswith(f"/subject/arn:aws:sts::{AWS_ACCOUNT}:user/moto")
    assert verified(emulator, credentials.token)["email"] == target


# --- failure injection -----------------------------------------------------------------------


def test_the_new_routes_take_injected_failures() -> None:
    assert {"/generateIdToken", "/certs", "/run"} <= set(ROUTES)


def test_an_injected_failure_of_generate_id_token_reaches_google_auth(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_open_id_token_creator(target, source.client_email)
    emulator.fail_next("/generateIdToken", status=503)

    with pytest.raises(google.auth.exceptions.RefreshError, match="UNAVAILABLE"):
        impersonated_id_token(emulator, source, target).refresh(Request())

    impersonated_id_token(emulator, source, target).refresh(Request())


def test_an_injected_failure_of_the_certs_reaches_the_relying_party(
    emulator: GoogleEmulator, source: ServiceAccountKey
) -> None:
    token = key_id_token(emulator, source).token
    emulator.fail_next("/certs", status=500)

    with pytest.raises(google.auth.exceptions.TransportError, match="Could not fetch"):
        verified(emulator, token)

    assert emulator.requests[-1].path == "/oauth2/v1/certs"
    assert verified(emulator, token)["aud"] == AUDIENCE


def test_the_certificate_endpoints_take_only_get(emulator: GoogleEmulator) -> None:
    answer = requests.post(emulator.jwks_url, timeout=10)

    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET"
    assert json.loads(answer.text)["error"] == "invalid_request"
