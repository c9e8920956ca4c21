"""Impersonation, domain-wide delegation and AWS federation answer unmodified google-auth as
Google does, with only URLs redirected to the emulator."""

import datetime
import itertools
import json
import re
from collections.abc import Iterator
from urllib.parse import quote, unquote, urlencode

import boto3
import google.auth.exceptions
import google.auth.transport.urllib3
import pytest
import urllib3
from google.auth import aws, impersonated_credentials
from google.oauth2 import service_account

from localcloud.google_emulator import (
    ACCESS_TOKEN_TYPE,
    AWS4_REQUEST_TOKEN_TYPE,
    ROUTES,
    TOKEN_EXCHANGE_GRANT,
    GoogleEmulator,
    IssuedToken,
    ServiceAccountKey,
)
from tests.localcloud.test_google_emulator import CALENDAR, EMAIL, google_credentials

IAM = "https://www.googleapis.com/auth/iam"
PROJECT_NUMBER = "123456789"
AUDIENCE = (
    f"//iam.googleapis.com/projects/{PROJECT_NUMBER}/locations/global/"
    "workloadIdentityPools/aws-pool/providers/aws-provider"
)
# moto's default account: every moto credential belongs to it.
AWS_ACCOUNT = "123456789012"
# google-auth signs only https URLs; the emulator forwards what it signs to the local AWS.
VERIFICATION_URL = "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
EXPIRE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_names = itertools.count()


@pytest.fixture(scope="module")
def emulator(moto_endpoint: str) -> Iterator[GoogleEmulator]:
    with GoogleEmulator(aws_endpoint_url=moto_endpoint) as running:
        yield running


@pytest.fixture(autouse=True)
def _restore_emulator(emulator: GoogleEmulator) -> Iterator[None]:
    """Each test starts with the pool provider registered and nothing else granted."""
    emulator.register_workload_identity_provider(AUDIENCE, AWS_ACCOUNT)
    yield
    emulator.reset()
    emulator.clock_offset_seconds = 0.0


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # What Lambda gives a function; moto accepts any keys.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture(scope="module")
def source(emulator: GoogleEmulator) -> ServiceAccountKey:
    return emulator.create_service_account("source@demo-project.iam.gserviceaccount.com")


@pytest.fixture
def target(emulator: GoogleEmulator) -> str:
    """A fresh keyless account, so grants and policies never leak between tests."""
    email = f"target-{next(_names)}@demo-project.iam.gserviceaccount.com"
    emulator.create_keyless_service_account(email)
    return email


@pytest.fixture(scope="module")
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=10), retries=False)


def request() -> google.auth.transport.urllib3.Request:
    return google.auth.transport.urllib3.Request(urllib3.PoolManager())


def impersonated(
    emulator: GoogleEmulator,
    source: ServiceAccountKey,
    target: str,
    *,
    lifetime: int = 3600,
    scopes: tuple[str, ...] = (CALENDAR,),
    delegates: list[str] | None = None,
) -> impersonated_credentials.Credentials:
    return impersonated_credentials.Credentials(
        source_credentials=google_credentials(emulator, source, [CALENDAR]),
        target_principal=target,
        target_scopes=list(scopes),
        delegates=delegates,
        lifetime=lifetime,
        iam_endpoint_override=emulator.generate_access_token_url(target),
    )


def aws_credentials(
    emulator: GoogleEmulator, audience: str = AUDIENCE, impersonate: str | None = None
) -> aws.Credentials:
    info: dict[str, object] = {
        "type": "external_account",
        "audience": audience,
        "subject_token_type": AWS4_REQUEST_TOKEN_TYPE,
        "token_url": emulator.sts_url,
        "credential_source": {
            "environment_id": "aws1",
            "regional_cred_verification_url": VERIFICATION_URL,
        },
    }
    if impersonate is not None:
        info["service_account_impersonation_url"] = emulator.generate_access_token_url(impersonate)
    credentials: aws.Credentials = aws.Credentials.from_info(info, scopes=[CALENDAR])
    return credentials


def issued(emulator: GoogleEmulator, token: object) -> IssuedToken:
    [found] = [t for t in emulator.issued_tokens() if t.access_token == token]
    return found


def source_token(emulator: GoogleEmulator, source: ServiceAccountKey, scopes: list[str]) -> str:
    credentials = google_credentials(emulator, source, scopes)
    credentials.refresh(request())
    token = credentials.token
    assert isinstance(token, str)
    return token


def generate(
    http: urllib3.PoolManager,
    emulator: GoogleEmulator,
    target: str,
    bearer: str,
    body: dict[str, object] | None = None,
) -> urllib3.BaseHTTPResponse:
    return http.request(
        "POST",
        emulator.generate_access_token_url(target),
        body=json.dumps(body or {"scope": [CALENDAR]}),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {bearer}"},
    )


# --- generateAccessToken ---------------------------------------------------------------------


def test_impersonation_with_the_role_gives_a_token_of_the_target(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_token_creator(target, source.client_email)
    credentials = impersonated(emulator, source, target, scopes=(CALENDAR, EMAIL))

    credentials.refresh(request())

    info = emulator.token_info(str(credentials.token))
    assert info is not None
    assert info["email"] == target
    assert info["aud"] == emulator.create_keyless_service_account(target)
    assert info["scope"] == f"{CALENDAR} {EMAIL}"
    assert 3590 <= int(info["expires_in"]) <= 3600
    # The caller's token was asked for the IAM scope, as google-auth always does.
    bearer = emulator.requests[-1].bearer
    caller_info = emulator.token_info(str(bearer))
    assert caller_info is not None
    assert caller_info["scope"] == IAM


def test_lifetime_beyond_an_hour_is_refused_without_the_org_policy(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_token_creator(target, source.client_email)
    credentials = impersonated(emulator, source, target, lifetime=43200)

    with pytest.raises(google.auth.exceptions.RefreshError) as raised:
        credentials.refresh(request())

    body = json.loads(raised.value.args[1])
    assert body["error"]["code"] == 400
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert "iam.allowServiceAccountCredentialLifetimeExtension" in body["error"]["message"]
    assert emulator.requests[-1].status == 400


def test_twelve_hours_with_the_org_policy_on_the_emulator_clock(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_token_creator(target, source.client_email)
    emulator.allow_lifetime_extension(target)
    # Google ahead (within the assertion's allowed skew): the expiry must follow its clock.
    emulator.clock_offset_seconds = 200.0
    credentials = impersonated(emulator, source, target, lifetime=43200)

    credentials.refresh(request())

    token = issued(emulator, credentials.token)
    assert token.expires_at - token.issued_at == 43200
    assert abs(token.issued_at - emulator.now()) < 60
    expiry = datetime.datetime.fromtimestamp(int(token.expires_at), datetime.UTC)
    assert credentials.expiry == expiry.replace(tzinfo=None)
    info = emulator.token_info(str(credentials.token))
    assert info is not None
    assert 43190 <= int(info["expires_in"]) <= 43200


def test_more_than_twelve_hours_is_refused_even_with_the_policy(
    http: urllib3.PoolManager, emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_token_creator(target, source.client_email)
    emulator.allow_lifetime_extension(target)
    bearer = source_token(emulator, source, [IAM])

    response = generate(http, emulator, target, bearer, {"scope": [CALENDAR], "lifetime": "43201s"})

    assert response.status == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_expire_time_is_in_googles_format_without_fractions(
    http: urllib3.PoolManager, emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_token_creator(target, source.client_email)
    bearer = source_token(emulator, source, [IAM])

    response = generate(http, emulator, target, bearer, {"scope": [CALENDAR], "lifetime": "600s"})

    assert response.status == 200
    answer = response.json()
    assert set(answer) == {"accessToken", "expireTime"}
    assert EXPIRE_TIME.fullmatch(answer["expireTime"])
    token = issued(emulator, answer["accessToken"])
    assert token.expires_at - token.issued_at == 600


def test_without_the_role_permission_is_denied(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    credentials = impersonated(emulator, source, target)

    with pytest.raises(google.auth.exceptions.RefreshError) as raised:
        credentials.refresh(request())

    error = json.loads(raised.value.args[1])["error"]
    assert error["code"] == 403
    assert error["status"] == "PERMISSION_DENIED"
    assert error["message"] == (
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."
    )


@pytest.mark.parametrize("case", ["unknown", "expired", "revoked", "missing"])
def test_a_caller_without_a_valid_token_is_unauthenticated(
    http: urllib3.PoolManager,
    emulator: GoogleEmulator,
    source: ServiceAccountKey,
    target: str,
    case: str,
) -> None:
    emulator.grant_token_creator(target, source.client_email)
    bearer = source_token(emulator, source, [IAM])
    if case == "unknown":
        bearer = "ya29.not-issued-by-the-emulator"
    elif case == "expired":
        emulator.clock_offset_seconds = 3601.0
    elif case == "revoked":
        emulator.revoke_token(bearer)

    headers = {"Content-Type": "application/json"}
    if case != "missing":
        headers["Authorization"] = f"Bearer {bearer}"
    body = json.dumps({"scope": [CALENDAR]})
    response = http.request(
        "POST", emulator.generate_access_token_url(target), body=body, headers=headers
    )

    assert response.status == 401
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert response.json()["error"]["code"] == 401


def test_a_caller_token_without_the_iam_scope_is_refused(
    http: urllib3.PoolManager, emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_token_creator(target, source.client_email)

    response = generate(http, emulator, target, source_token(emulator, source, [CALENDAR]))

    assert response.status == 403
    assert response.json()["error"]["message"] == "Request had insufficient authentication scopes."


def test_each_delegate_needs_the_role_on_the_next(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    middle = f"middle-{next(_names)}@demo-project.iam.gserviceaccount.com"
    emulator.create_keyless_service_account(middle)
    delegates = [f"projects/-/serviceAccounts/{middle}"]
    emulator.grant_token_creator(middle, source.client_email)
    # The caller on the target is not enough: the chain runs through the delegate.
    emulator.grant_token_creator(target, source.client_email)

    with pytest.raises(google.auth.exceptions.RefreshError, match="PERMISSION_DENIED"):
        impersonated(emulator, source, target, delegates=delegates).refresh(request())

    emulator.grant_token_creator(target, middle)
    emulator.revoke_token_creator(middle, source.client_email)
    with pytest.raises(google.auth.exceptions.RefreshError, match="PERMISSION_DENIED"):
        impersonated(emulator, source, target, delegates=delegates).refresh(request())

    emulator.grant_token_creator(middle, source.client_email)
    credentials = impersonated(emulator, source, target, delegates=delegates)
    credentials.refresh(request())
    assert issued(emulator, credentials.token).client_email == target


def test_an_account_that_does_not_exist_is_not_found(
    http: urllib3.PoolManager, emulator: GoogleEmulator, source: ServiceAccountKey
) -> None:
    ghost = "ghost@demo-project.iam.gserviceaccount.com"
    emulator.grant_token_creator(ghost, source.client_email)

    response = generate(http, emulator, ghost, source_token(emulator, source, [IAM]))

    assert response.status == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"


# --- domain-wide delegation ------------------------------------------------------------------


def delegating(
    emulator: GoogleEmulator, key: ServiceAccountKey, subject: str, scopes: list[str]
) -> service_account.Credentials:
    credentials: service_account.Credentials = google_credentials(
        emulator, key, scopes
    ).with_subject(subject)
    return credentials


def test_a_subject_is_refused_without_domain_wide_delegation(emulator: GoogleEmulator) -> None:
    key = emulator.create_service_account(
        f"dwd-{next(_names)}@demo-project.iam.gserviceaccount.com"
    )

    with pytest.raises(google.auth.exceptions.RefreshError) as raised:
        delegating(emulator, key, "alice@example.com", [CALENDAR]).refresh(request())

    assert raised.value.args[1] == {
        "error": "unauthorized_client",
        "error_description": (
            "Client is unauthorized to retrieve access tokens using this method, or client not "
            "authorized for any of the scopes requested."
        ),
    }
    assert emulator.requests[-1].status == 401


def test_a_subject_is_accepted_with_domain_wide_delegation(emulator: GoogleEmulator) -> None:
    key = emulator.create_service_account(
        f"dwd-{next(_names)}@demo-project.iam.gserviceaccount.com"
    )
    emulator.allow_domain_wide_delegation(key.client_email)
    credentials = delegating(emulator, key, "alice@example.com", [CALENDAR, EMAIL])

    credentials.refresh(request())

    token = issued(emulator, credentials.token)
    assert token.subject == "alice@example.com"
    assert token.client_email == key.client_email
    info = emulator.token_info(str(credentials.token))
    assert info is not None
    assert info["email"] == "alice@example.com"
    assert info["aud"] == key.client_id


def test_delegation_limited_to_scopes_refuses_others(emulator: GoogleEmulator) -> None:
    key = emulator.create_service_account(
        f"dwd-{next(_names)}@demo-project.iam.gserviceaccount.com"
    )
    emulator.allow_domain_wide_delegation(key.client_email, scopes=(CALENDAR,))

    delegating(emulator, key, "alice@example.com", [CALENDAR]).refresh(request())
    with pytest.raises(google.auth.exceptions.RefreshError, match="unauthorized_client"):
        delegating(emulator, key, "alice@example.com", [CALENDAR, EMAIL]).refresh(request())


# --- STS token exchange for AWS workload identity federation ----------------------------------


def test_aws_credentials_exchange_for_a_federated_token(emulator: GoogleEmulator) -> None:
    credentials = aws_credentials(emulator)

    credentials.refresh(request())

    token = issued(emulator, credentials.token)
    # The ARN is the one moto answered the forwarded GetCallerIdentity with.
    assert token.principal == (
        f"principal://iam.googleapis.com/projects/{PROJECT_NUMBER}/locations/global/"
        f"workloadIdentityPools/aws-pool/subject/arn:aws:sts::{AWS_ACCOUNT}:user/moto"
    )
    assert token.scopes == (CALENDAR,)
    exchange = emulator.requests[-1]
    assert exchange.path == "/v1/token"
    assert exchange.form["grant_type"] == TOKEN_EXCHANGE_GRANT
    assert exchange.form["requested_token_type"] == ACCESS_TOKEN_TYPE


def test_the_exchange_answers_in_googles_shape(
    http: urllib3.PoolManager, emulator: GoogleEmulator
) -> None:
    subject_token = aws_credentials(emulator).retrieve_subject_token(request())

    response = http.request("POST", emulator.sts_url, body=sts_form(subject_token), headers=FORM)

    assert response.status == 200
    answer = response.json()
    assert set(answer) == {"access_token", "issued_token_type", "token_type", "expires_in"}
    assert answer["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 3600


def sts_form(subject_token: str, audience: str = AUDIENCE) -> str:
    return urlencode(
        {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "audience": audience,
            "scope": CALENDAR,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "subject_token": subject_token,
            "subject_token_type": AWS4_REQUEST_TOKEN_TYPE,
        }
    )


def test_the_caller_identity_comes_from_the_forwarded_request(
    emulator: GoogleEmulator, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=moto_endpoint)
    role = f"arn:aws:iam::{AWS_ACCOUNT}:role/rotation"
    assumed = sts.assume_role(RoleArn=role, RoleSessionName="rotation-entry")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", assumed["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", assumed["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", assumed["SessionToken"])
    credentials = aws_credentials(emulator)

    credentials.refresh(request())

    principal = str(issued(emulator, credentials.token).principal)
    assert principal.endswith(
        f"/subject/arn:aws:sts::{AWS_ACCOUNT}:assumed-role/rotation/rotation-entry"
    )


def test_an_unregistered_audience_is_an_invalid_target(emulator: GoogleEmulator) -> None:
    credentials = aws_credentials(emulator, audience=AUDIENCE.replace("aws-provider", "other"))

    with pytest.raises(google.auth.exceptions.OAuthError, match="invalid_target"):
        credentials.refresh(request())

    assert emulator.requests[-1].status == 400


def test_a_malformed_audience_is_an_invalid_request(emulator: GoogleEmulator) -> None:
    credentials = aws_credentials(emulator, audience="https:" + AUDIENCE)

    with pytest.raises(google.auth.exceptions.OAuthError, match="full resource name"):
        credentials.refresh(request())


def test_a_caller_of_another_aws_account_is_refused(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with GoogleEmulator(aws_endpoint_url=moto_endpoint) as other:
        other.register_workload_identity_provider(AUDIENCE, "210987654321")

        with pytest.raises(google.auth.exceptions.OAuthError, match="invalid_grant"):
            aws_credentials(other).refresh(request())

        assert other.issued_tokens() == []


def tampered(subject_token: str, **changes: object) -> str:
    signed = json.loads(unquote(subject_token))
    signed.update(changes)
    return quote(json.dumps(signed))


SIGNED_CALL = "must be a signed AWS STS GetCallerIdentity POST"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"url": "https://iam.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"},
            SIGNED_CALL,
        ),
        (
            {
                "url": "https://sts.us-east-1.amazonaws.com/?Action=GetSessionToken&Version=2011-06-15"
            },
            SIGNED_CALL,
        ),
        ({"method": "GET"}, SIGNED_CALL),
        ({"headers": []}, "not signed"),
    ],
    ids=["not-sts", "not-get-caller-identity", "not-post", "unsigned"],
)
def test_a_subject_token_that_is_not_a_signed_get_caller_identity_is_refused(
    http: urllib3.PoolManager, emulator: GoogleEmulator, change: dict[str, object], reason: str
) -> None:
    subject_token = aws_credentials(emulator).retrieve_subject_token(request())

    response = http.request(
        "POST", emulator.sts_url, body=sts_form(tampered(subject_token, **change)), headers=FORM
    )

    assert response.status == 400
    assert response.json()["error"] == "invalid_grant"
    # Refused by the emulator's own check, before anything reached AWS.
    assert reason in response.json()["error_description"]


def test_a_subject_token_signed_for_another_provider_is_refused(
    http: urllib3.PoolManager, emulator: GoogleEmulator
) -> None:
    other = AUDIENCE.replace("aws-provider", "other-provider")
    emulator.register_workload_identity_provider(other, AWS_ACCOUNT)
    subject_token = aws_credentials(emulator).retrieve_subject_token(request())

    response = http.request(
        "POST", emulator.sts_url, body=sts_form(subject_token, audience=other), headers=FORM
    )

    assert response.status == 400
    assert response.json()["error"] == "invalid_grant"


def test_a_federated_principal_impersonates_with_the_role(
    emulator: GoogleEmulator, target: str
) -> None:
    principal = (
        f"principal://iam.googleapis.com/projects/{PROJECT_NUMBER}/locations/global/"
        f"workloadIdentityPools/aws-pool/subject/arn:aws:sts::{AWS_ACCOUNT}:user/moto"
    )

    with pytest.raises(google.auth.exceptions.RefreshError, match="PERMISSION_DENIED"):
        aws_credentials(emulator, impersonate=target).refresh(request())

    emulator.grant_token_creator(target, principal)
    credentials = aws_credentials(emulator, impersonate=target)
    credentials.refresh(request())

    token = issued(emulator, credentials.token)
    assert token.client_email == target
    assert token.scopes == (CALENDAR,)


# --- failure injection -----------------------------------------------------------------------


def test_every_new_route_takes_injected_failures() -> None:
    assert {"/generateAccessToken", "/sts"} <= set(ROUTES)


def test_an_injected_failure_of_generate_access_token_reaches_google_auth(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_token_creator(target, source.client_email)
    emulator.fail_next("/generateAccessToken", status=503)

    with pytest.raises(google.auth.exceptions.RefreshError) as raised:
        impersonated(emulator, source, target).refresh(request())

    assert json.loads(raised.value.args[1])["error"]["status"] == "UNAVAILABLE"
    # The failure was used up: the next refresh works.
    impersonated(emulator, source, target).refresh(request())


def test_a_storm_on_generate_access_token_lasts_until_its_end(
    emulator: GoogleEmulator, source: ServiceAccountKey, target: str
) -> None:
    emulator.grant_token_creator(target, source.client_email)
    emulator.fail_during("/generateAccessToken", emulator.now() + 60, reset_connection=True)

    with pytest.raises(google.auth.exceptions.TransportError):
        impersonated(emulator, source, target).refresh(request())

    emulator.clock_offset_seconds = 61.0
    impersonated(emulator, source, target).refresh(request())


def test_an_injected_failure_of_sts_reaches_google_auth(emulator: GoogleEmulator) -> None:
    emulator.fail_next("/sts", status=500)

    with pytest.raises(google.auth.exceptions.OAuthError, match="internal_failure"):
        aws_credentials(emulator).refresh(request())

    assert emulator.requests[-1].path == "/v1/token"
    assert emulator.requests[-1].status == 500
    aws_credentials(emulator).refresh(request())
