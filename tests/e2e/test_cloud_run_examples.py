"""The ID-token callers of both examples (examples/node/call-cloud-run.mjs and
examples/python/call_cloud_run.py) run for real against the local cloud: they read an ID-token
secret from its Secrets Manager and call the Google emulator's Cloud Run service, which checks
the Bearer token's signature, audience and invoker as Cloud Run does."""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from google.auth import jwt
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from localcloud.cloud import LocalCloud
from localcloud.template import PROJECT_ROOT
from rotation_core.token_secret import PLACEHOLDER, IdTokenMetadata, IdTokenSecretValue
from tests.e2e.test_node_example import node

NODE_EXAMPLE = PROJECT_ROOT / "examples" / "node"
PYTHON_EXAMPLE = PROJECT_ROOT / "examples" / "python" / "call_cloud_run.py"
CALLER = "invoices-caller@demo-project.iam.gserviceaccount.com"


@dataclass(frozen=True)
class Service:
    """A Cloud Run service on the emulator, and an ID-token secret for the caller."""

    cloud: LocalCloud
    url: str
    secret_id: str

    def store(self, audience: str) -> str:
        """Stores a token minted for `audience` as the ID-token secret's AWSCURRENT, as the
        rotation writes it; returns the token."""
        token = mint_id_token(self.cloud, audience)
        claims = jwt.decode(token, verify=False)
        value = IdTokenSecretValue(
            id_token=token,
            metadata=IdTokenMetadata(
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
                issued_at=datetime.fromtimestamp(claims["iat"], UTC),
                audience=audience,
                service_account=CALLER,
            ),
        )
        self.cloud.client("secretsmanager").put_secret_value(
            SecretId=self.secret_id, SecretString=value.to_secret_string()
        )
        return token

    def bearers(self) -> list[tuple[str | None, int | None]]:
        return [(r.bearer, r.status) for r in self.cloud.google.requests if "/run/" in r.path]

    def environment(self) -> dict[str, str]:
        """The local cloud's AWS variables and the service to call; no AWS profile or credentials
        of whoever runs the tests."""
        return {
            "PATH": os.environ.get("PATH", ""),
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **self.cloud.client_environment(),
            "TOKEN_SECRET_ID": self.secret_id,
            "CLOUD_RUN_URL": f"{self.url}/invoices",
        }


def mint_id_token(cloud: LocalCloud, audience: str) -> str:
    """An ID token for `audience` from the emulator, as the key source mints one: google-auth's
    JWT-bearer grant with `target_audience`."""
    google = cloud.google
    key_file = google.create_service_account(CALLER).key_file(google.token_url)
    minter = service_account.IDTokenCredentials.from_service_account_info(
        key_file, target_audience=audience
    )
    minter.refresh(Request())
    token: str = minter.token
    return token


@pytest.fixture
def service(cloud: LocalCloud) -> Iterator[Service]:
    cloud.google.reset()
    url = cloud.google.deploy_cloud_run("invoices", invokers=[CALLER])
    secret_id = f"e2e/{uuid.uuid4().hex[:12]}/id-token"
    secrets = cloud.client("secretsmanager")
    secrets.create_secret(Name=secret_id, SecretString=PLACEHOLDER)
    yield Service(cloud, url, secret_id)
    secrets.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)


def call_node(service: Service) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node(), "call-cloud-run.mjs"],
        cwd=NODE_EXAMPLE,
        env=service.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def call_python(service: Service) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PYTHON_EXAMPLE)],
        # This checkout's client package, whatever the venv has installed.
        env={**service.environment(), "PYTHONPATH": str(PROJECT_ROOT / "client" / "src")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


Caller = Callable[[Service], subprocess.CompletedProcess[str]]
CALLERS: dict[str, Caller] = {"node": call_node, "python": call_python}


@pytest.fixture(params=sorted(CALLERS))
def call(request: pytest.FixtureRequest) -> Caller:
    return CALLERS[request.param]


def test_the_service_answers_the_awscurrent_id_token(service: Service, call: Caller) -> None:
    token = service.store(service.url)

    ran = call(service)

    assert (ran.returncode, ran.stderr) == (0, "")
    status, body = ran.stdout.split("\n", 1)
    assert status == "HTTP 200"
    assert json.loads(body)["email"] == CALLER
    assert service.bearers() == [(token, 200)]
    assert token not in ran.stdout + ran.stderr


def test_a_token_for_another_audience_gets_the_services_401(service: Service, call: Caller) -> None:
    other = service.cloud.google.cloud_run_url("reports")
    token = service.store(other)

    ran = call(service)

    assert (ran.returncode, ran.stdout) == (1, "")
    *warnings, error = ran.stderr.splitlines()
    assert error == (
        f"call-cloud-run: {service.url}/invoices refused the ID token of secret "
        f"{service.secret_id} (HTTP 401): it is for the audience {other}, and the service "
        "accepts its own URL (or a custom audience set on it): use the ID-token secret minted "
        "for this service"
    )
    # Python's AuthorizedSession reads the secret again after each 401 (google-auth's two
    # refresh attempts), and the credential says why reading again did not help.
    assert all("if the service keeps refusing it" in line for line in warnings)
    assert {status for _, status in service.bearers()} == {401}
    assert token not in ran.stderr


def test_a_caller_without_run_invoker_gets_the_services_403(service: Service, call: Caller) -> None:
    service.cloud.google.revoke_run_invoker("invoices", CALLER)
    service.store(service.url)

    ran = call(service)

    assert (ran.returncode, ran.stdout) == (1, "")
    assert ran.stderr.startswith(
        f"call-cloud-run: {service.url}/invoices denied {CALLER} (HTTP 403)"
    )
    assert f"--member serviceAccount:{CALLER} --role roles/run.invoker" in ran.stderr


def test_an_access_token_secret_is_refused_naming_the_reader_for_it(
    service: Service, call: Caller
) -> None:
    service.cloud.client("secretsmanager").put_secret_value(
        SecretId=service.secret_id,
        SecretString=json.dumps(
            {"GOOGLE_ACCESS_TOKEN": "ya29.an-access-token", "expires_at": "2099-01-01T00:00:00Z"}
        ),
    )

    ran = call(service)

    assert (ran.returncode, ran.stdout) == (1, "")
    assert "holds an access token (GOOGLE_ACCESS_TOKEN), not an ID token" in ran.stderr
    assert service.bearers() == []
