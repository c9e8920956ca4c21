"""ID-token secrets against moto and the Google emulator over HTTP: minted from every source
through google-auth, verified by testSecret as a relying party (Google's certificates, kid
rotation, aud, email, life), accepted by a Cloud Run service, refused with the fix named, and
judged by the freshness sweep with the certificates instead of tokeninfo."""

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import urllib3
from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from rotation_core.config import GoogleEndpoints
from rotation_core.errors import (
    GoogleGrantRejectedError,
    GoogleResponseError,
    GoogleUnavailableError,
    RotationAbandonedError,
)
from rotation_core.failure_notice import Notice
from rotation_core.google_client import GoogleClient
from rotation_core.rotation import ACCEPTED_UNVERIFIED, Rotation
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import SecretsGateway
from rotation_core.steps import Step
from rotation_core.sweep import Action, Reason
from rotation_core.sweep_run import FreshnessSweep
from rotation_core.token_secret import IdTokenMetadata, IdTokenSecretValue, parse_token_secret
from tests.doc_blocks import doc_block
from tests.minting_sources import AUDIENCE as POOL_PROVIDER
from tests.minting_sources import federated_target, impersonation_target
from tests.support import (
    KEY_SECRET,
    MANAGED_TAG,
    REGION,
    TOKEN_SECRET,
    begin_rotation,
    run_all,
    stages,
)

SOURCES = ("service-account-key", "impersonation", "workload-identity-federation")
CERTS_DOWN: dict[str, Any] = {"status": 503, "body": "<html>Service Unavailable</html>"}


def cloud_run(google: GoogleEmulator, service: str, invoker: str) -> str:
    return google.deploy_cloud_run(service, invokers=[invoker])


def call(url: str, token: str) -> int:
    answer = urllib3.request("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    return answer.status


def current(secretsmanager: SecretsManagerClient) -> IdTokenSecretValue:
    answer = secretsmanager.get_secret_value(SecretId=TOKEN_SECRET, VersionStage="AWSCURRENT")
    stored = parse_token_secret(answer["SecretString"])
    assert isinstance(stored, IdTokenSecretValue)
    return stored


@pytest.fixture
def reports_url(google: GoogleEmulator) -> str:
    """The audience the ID-token secret is for; its invoker is granted per test."""
    return google.deploy_cloud_run("reports")


@pytest.fixture
def id_token_secret(
    secretsmanager: SecretsManagerClient,
    service_account: ServiceAccountKey,
    google: GoogleEmulator,
    reports_url: str,
) -> str:
    secretsmanager.create_secret(
        Name=KEY_SECRET,
        SecretString=json.dumps(service_account.key_file(GoogleEmulator.GOOGLE_TOKEN_AUDIENCE)),
    )
    return secretsmanager.create_secret(
        Name=TOKEN_SECRET,
        SecretString=json.dumps({"GOOGLE_ACCESS_TOKEN": ""}),
        Tags=[
            MANAGED_TAG,
            {"Key": "token-rotation:token-kind", "Value": "id-token"},
            {"Key": "token-rotation:audience", "Value": reports_url},
        ],
    )["ARN"]


@pytest.fixture
def id_environment(
    environment: dict[str, str], google: GoogleEmulator, reports_url: str
) -> dict[str, str]:
    return {
        **environment,
        "ID_TOKEN_AUDIENCES": f"{reports_url},https://elsewhere-abc-ew.a.run.app",
        "GOOGLE_CERTS_URL": google.certs_url,
        "GOOGLE_IAM_CREDENTIALS_URL": google.generate_access_token_url("{}"),
        "GOOGLE_STS_URL": google.sts_url,
    }


@pytest.fixture
def rotation_for(
    secretsmanager: SecretsManagerClient,
    id_environment: dict[str, str],
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
    moto_endpoint: str,
) -> Callable[[str], tuple[Rotation, str]]:
    """A rotation of the given source, and the account whose ID tokens it mints (granted the
    OpenID token-creator role on it where the source needs one)."""

    def make(source: str, grant: bool = True) -> tuple[Rotation, str]:
        env = {**id_environment, "CREDENTIAL_SOURCE": source}
        if source == "service-account-key":
            account = service_account.client_email
        elif source == "impersonation":
            account = impersonation_target(google, service_account)
            google.revoke_token_creator(account, service_account.client_email)
            if grant:
                google.grant_open_id_token_creator(account, service_account.client_email)
            env["IMPERSONATED_SERVICE_ACCOUNT"] = account
        else:
            account = federated_target(google, moto_endpoint)
            caller = boto3.client("sts", region_name=REGION, endpoint_url=moto_endpoint)
            arn = caller.get_caller_identity()["Arn"]
            google.revoke_token_creator(account, arn)
            if grant:
                google.grant_open_id_token_creator(account, arn)
            env |= {"IMPERSONATED_SERVICE_ACCOUNT": account}
            env |= {"WORKLOAD_IDENTITY_AUDIENCE": POOL_PROVIDER}
            del env["SERVICE_ACCOUNT_KEY_SECRET_ID"]
        client = GoogleClient(GoogleEndpoints.from_environment(env))
        return Rotation(SecretsGateway(secretsmanager), client, env), account

    return make


@pytest.mark.parametrize("source", SOURCES)
def test_each_source_rotates_an_id_token_that_cloud_run_accepts_for_its_audience_only(
    source: str,
    secretsmanager: SecretsManagerClient,
    google: GoogleEmulator,
    rotation_for: Callable[..., tuple[Rotation, str]],
    id_token_secret: str,
    reports_url: str,
) -> None:
    rotation, account = rotation_for(source)
    google.grant_run_invoker("reports", account)
    other_url = cloud_run(google, "payments", account)

    actions = run_all(rotation, RotationRequest(id_token_secret, begin_rotation(id_token_secret)))

    assert actions == ["created", "checked", "verified", "promoted"]
    stored = current(secretsmanager)
    assert stored.metadata.audience == reports_url
    assert stored.metadata.service_account == account
    lifetime = stored.metadata.expires_at - stored.metadata.issued_at
    assert abs(lifetime - timedelta(hours=1)) < timedelta(seconds=5)
    assert call(reports_url, stored.id_token) == 200
    assert call(other_url, stored.id_token) == 401  # minted for another audience


@pytest.mark.parametrize(
    ("source", "member"),
    [
        ("impersonation", "--member=serviceAccount:<the key's account>"),
        ("workload-identity-federation", "--member=principalSet://iam.googleapis.com/"),
    ],
)
def test_without_the_openid_token_creator_role_the_refusal_quotes_the_binding(
    source: str,
    member: str,
    secretsmanager: SecretsManagerClient,
    rotation_for: Callable[..., tuple[Rotation, str]],
    id_token_secret: str,
) -> None:
    rotation, account = rotation_for(source, grant=False)
    token = begin_rotation(id_token_secret)

    with pytest.raises(GoogleGrantRejectedError) as refused:
        rotation.run(Step.CREATE, RotationRequest(id_token_secret, token))

    message = str(refused.value)
    assert f"gcloud iam service-accounts add-iam-policy-binding {account} {member}" in message
    # The page's binding is the one the refusal quotes (gcloud cannot reach the emulator).
    [line] = doc_block("docs/id-tokens.md", "sh", "serviceAccountOpenIdTokenCreator").commands()
    quoted_member = re.search(r"--member=(.+?) --role=", message)
    assert quoted_member is not None
    filled = line.replace('"$TARGET"', account).replace('"$MEMBER"', quoted_member[1])
    assert filled in message
    assert stages(secretsmanager, id_token_secret)[token] == ["AWSPENDING"]  # nothing stored


def created_with_the_key(
    rotation_for: Callable[..., tuple[Rotation, str]], id_token_secret: str
) -> tuple[Rotation, RotationRequest]:
    """The key source's rotation of the ID-token secret, its createSecret run on a new version:
    where the tests of testSecret's verification begin."""
    rotation, _ = rotation_for("service-account-key")
    request = RotationRequest(id_token_secret, begin_rotation(id_token_secret))
    rotation.run(Step.CREATE, request)
    return rotation, request


def test_a_token_signed_before_googles_key_rotation_still_verifies(
    google: GoogleEmulator,
    rotation_for: Callable[..., tuple[Rotation, str]],
    id_token_secret: str,
) -> None:
    rotation, request = created_with_the_key(rotation_for, id_token_secret)
    google.rotate_signing_key()  # the old key stays published, under its kid

    assert rotation.run(Step.TEST, request).action == "verified"


def test_a_token_whose_signing_key_google_no_longer_publishes_is_abandoned(
    secretsmanager: SecretsManagerClient,
    google: GoogleEmulator,
    rotation_for: Callable[..., tuple[Rotation, str]],
    id_token_secret: str,
) -> None:
    rotation, request = created_with_the_key(rotation_for, id_token_secret)
    old_kid = google.signing_key_ids[-1]
    google.rotate_signing_key()
    google.retire_signing_key(old_kid)

    with pytest.raises(RotationAbandonedError, match="signing key Google does not publish"):
        rotation.run(Step.TEST, request)
    assert "AWSPENDING" not in stages(secretsmanager, id_token_secret)[request.token]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "https://elsewhere-abc-ew.a.run.app"}, "its aud is not"),
        ({"email": "intruder@demo-project.iam.gserviceaccount.com"}, "of intruder@"),
        ({"iss": "https://evil.example.com"}, "issued by https://evil.example.com"),
        ({"email": None}, "without an email claim"),
    ],
    ids=["other-audience", "other-account", "other-issuer", "no-email"],
)
def test_a_pending_id_token_a_relying_party_would_refuse_is_abandoned(
    claims: dict[str, object],
    reason: str,
    secretsmanager: SecretsManagerClient,
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
    rotation_for: Callable[..., tuple[Rotation, str]],
    id_token_secret: str,
    reports_url: str,
) -> None:
    rotation, _ = rotation_for("service-account-key")
    now = int(google.now())
    signed = {
        "iss": "https://accounts.google.com",
        "aud": reports_url,
        "sub": "1234567890",
        "email": service_account.client_email,
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    token = google.sign_id_token({k: v for k, v in signed.items() if v is not None})
    version = begin_rotation(id_token_secret)
    stored = IdTokenSecretValue(
        token,
        IdTokenMetadata(
            datetime.fromtimestamp(now + 3600, UTC),
            datetime.fromtimestamp(now, UTC),
            reports_url,
            service_account.client_email,
        ),
    )
    secretsmanager.put_secret_value(
        SecretId=id_token_secret,
        ClientRequestToken=version,
        SecretString=stored.to_secret_string(),
        VersionStages=["AWSPENDING"],
    )

    with pytest.raises(RotationAbandonedError, match=reason) as abandoned:
        rotation.run(Step.TEST, RotationRequest(id_token_secret, version))
    assert token not in str(abandoned.value)


def test_certificates_down_while_the_token_in_use_is_healthy_is_transient(
    google: GoogleEmulator,
    rotation_for: Callable[..., tuple[Rotation, str]],
    id_token_secret: str,
) -> None:
    rotation, _ = rotation_for("service-account-key")
    run_all(rotation, RotationRequest(id_token_secret, begin_rotation(id_token_secret)))
    request = RotationRequest(id_token_secret, begin_rotation(id_token_secret))
    rotation.run(Step.CREATE, request)
    google.fail_next("/certs", **CERTS_DOWN)

    with pytest.raises(GoogleUnavailableError, match="certificates endpoint answered HTTP 503"):
        rotation.run(Step.TEST, request)


def test_certificates_down_with_no_token_in_use_promotes_the_mint_unverified(
    google: GoogleEmulator,
    rotation_for: Callable[..., tuple[Rotation, str]],
    id_token_secret: str,
) -> None:
    rotation, request = created_with_the_key(rotation_for, id_token_secret)
    google.fail_next("/certs", **CERTS_DOWN)

    assert rotation.run(Step.TEST, request).action == ACCEPTED_UNVERIFIED
    finished = rotation.run(Step.FINISH, request)

    assert finished.action == "promoted-unverified"
    assert finished.follow_up is not None
    assert finished.follow_up.notice is not None
    notice = json.loads(finished.follow_up.notice.message)
    assert "certificates endpoint could not be reached" in notice["Summary"]
    assert "signed JWT" in notice["Checked"]
    assert "GOOGLE_ACCESS_TOKEN" not in finished.follow_up.notice.message


def test_a_certificates_url_that_answers_404_is_a_permanent_misconfiguration(
    google: GoogleEmulator,
    rotation_for: Callable[..., tuple[Rotation, str]],
    id_token_secret: str,
) -> None:
    rotation, request = created_with_the_key(rotation_for, id_token_secret)
    google.fail_next("/certs", status=404, body={"error": "not found"})

    with pytest.raises(GoogleResponseError, match="HTTP 404: check GOOGLE_CERTS_URL"):
        rotation.run(Step.TEST, request)


def test_the_sweep_judges_an_id_token_in_use_by_googles_certificates(
    secretsmanager: SecretsManagerClient,
    google: GoogleEmulator,
    rotation_for: Callable[..., tuple[Rotation, str]],
    id_token_secret: str,
    id_environment: dict[str, str],
) -> None:
    rotation, _ = rotation_for("service-account-key")
    run_all(rotation, RotationRequest(id_token_secret, begin_rotation(id_token_secret)))
    tokeninfo_calls = sum(r.path == "/tokeninfo" for r in google.requests)

    notices: list[Notice] = []

    def sweep() -> list[tuple[Action, str]]:
        report = FreshnessSweep(
            SecretsGateway(secretsmanager),
            GoogleClient(GoogleEndpoints.from_environment(id_environment)),
            id_environment,
            notices.append,
            clock=lambda: datetime.now(UTC),
            budget=1,
            spacing=timedelta(0),
        ).run()
        assert report.google_calls == 1
        return [(decision.action, decision.reason) for decision in report.decisions]

    assert sweep() == [(Action.NOTHING, Reason.FRESH)]
    old_kid = google.signing_key_ids[-1]
    google.rotate_signing_key()
    google.retire_signing_key(old_kid)  # what Google's certificates no longer vouch for
    assert sweep() == [(Action.ROTATE, Reason.REFUSED)]
    [refused] = notices
    assert "certificates no longer verify the ID token" in json.loads(refused.message)["Summary"]
    assert sum(r.path == "/tokeninfo" for r in google.requests) == tokeninfo_calls
