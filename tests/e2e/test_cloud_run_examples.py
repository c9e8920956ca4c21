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
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.auth import jwt
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from localcloud.cloud import LocalCloud
from localcloud.template import PROJECT_ROOT
from rotation_core.token_secret import PLACEHOLDER, IdTokenMetadata, IdTokenSecretValue
from tests.doc_blocks import doc_block
from tests.e2e.test_node_example import node
from tests.support import unconfigured_aws

NODE_EXAMPLE = PROJECT_ROOT / "examples" / "node"
PYTHON_EXAMPLE = PROJECT_ROOT / "examples" / "python" / "call_cloud_run.py"
CALLER = "invoices-caller@demo-project.iam.gserviceaccount.com"
READING = "docs/reading-the-token.md"
CLIENT_README = "client/README.md"
DOCUMENTED_SERVICE = "https://invoices-4k2j3h5g6a-ew.a.run.app"
DOCUMENTED_SECRET = "google/id-token"


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

    def current(self) -> dict[str, str]:
        answer = self.cloud.client("secretsmanager").get_secret_value(SecretId=self.secret_id)
        value: dict[str, str] = json.loads(answer["SecretString"])
        return value

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


@contextmanager
def deployed(cloud: LocalCloud, secret_id: str) -> Iterator[Service]:
    """The service, and the secret as the stack creates it (the placeholder), deleted after."""
    cloud.google.reset()
    url = cloud.google.deploy_cloud_run("invoices", invokers=[CALLER])
    secrets = cloud.client("secretsmanager")
    secrets.create_secret(Name=secret_id, SecretString=PLACEHOLDER)
    try:
        yield Service(cloud, url, secret_id)
    finally:
        secrets.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)


@pytest.fixture
def service(cloud: LocalCloud) -> Iterator[Service]:
    with deployed(cloud, f"e2e/{uuid.uuid4().hex[:12]}/id-token") as service:
        yield service


THIS_CLIENT = {"PYTHONPATH": str(PROJECT_ROOT / "client" / "src")}
"""This checkout's client package for a Python caller, whatever the venv has installed."""


def run_caller(
    command: list[str], cwd: Path | None, environment: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """A caller run as its own process, its output kept for the assertions."""
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def call_node(service: Service) -> subprocess.CompletedProcess[str]:
    return run_caller([node(), "call-cloud-run.mjs"], NODE_EXAMPLE, service.environment())


def call_python(service: Service) -> subprocess.CompletedProcess[str]:
    return run_caller(
        [sys.executable, str(PYTHON_EXAMPLE)], None, {**service.environment(), **THIS_CLIENT}
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
    # Python's AuthorizedSession reads the secret again once after the 401, and the credential
    # says why reading again did not help.
    assert len(warnings) <= 1
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


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            ["node", "call-cloud-run.mjs"],
            "call-cloud-run: no AWS region to read secret google/id-token in: set AWS_REGION (or "
            "region in the AWS profile), or create the SecretsManagerClient with { region }",
        ),
        (
            [sys.executable, str(PYTHON_EXAMPLE)],
            "call-cloud-run: No AWS region to read the token secret google/id-token in: set "
            "AWS_REGION or AWS_DEFAULT_REGION (or region in the AWS profile), pass "
            "SecretIdTokenCredentials(..., region_name=...), or give the secret's ARN (the "
            "stack's TokenSecretArn output), which names its region",
        ),
    ],
    ids=["node", "python"],
)
def test_no_aws_region_says_what_to_set_in_one_line(
    tmp_path: Path, command: list[str], expected: str
) -> None:
    """No AWS configuration at all, and an endpoint nothing answers on (a request sent would
    fail otherwise)."""
    ran = run_caller(
        [node() if command[0] == "node" else command[0], *command[1:]],
        NODE_EXAMPLE,
        {
            "PATH": os.environ.get("PATH", ""),
            **THIS_CLIENT,
            **unconfigured_aws(tmp_path),
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "CLOUD_RUN_URL": "http://127.0.0.1:9/",
        },
    )

    assert (ran.returncode, ran.stdout, ran.stderr) == (1, "", expected + "\n")


NODE_READER = """
import { secretIdToken } from "./token.mjs";
const auth = secretIdToken(process.env.TOKEN_SECRET_ID, { audience: process.argv[1] });
try {
  await auth.request({ url: process.env.CLOUD_RUN_URL });
} catch (error) {
  console.error(error.message);
}
"""


def test_a_node_reader_expecting_another_audience_refuses_before_any_request(
    service: Service,
) -> None:
    other = service.cloud.google.cloud_run_url("reports")
    service.store(service.url)

    ran = run_caller(
        [node(), "--input-type=module", "-e", NODE_READER, other],
        NODE_EXAMPLE,
        service.environment(),
    )

    assert ran.stderr == (
        f"secret {service.secret_id} holds ID tokens for {service.url}, not {other}: use the "
        f'secret minted for {other}, or pass {{ audience: "{service.url}" }} if that is the '
        "service you call\n"
    )
    assert service.bearers() == []


# --- the documents' ID-token blocks, as written but for the service's address ----------------


@pytest.fixture
def documented(cloud: LocalCloud) -> Iterator[Service]:
    """The page's secret name, holding a token for the emulator's service."""
    with deployed(cloud, DOCUMENTED_SECRET) as service:
        service.store(service.url)
        yield service


def python_block(page: str) -> str:
    return {
        READING: doc_block(READING, "python", "SecretIdTokenCredentials("),
        CLIENT_README: doc_block(CLIENT_README, "python", "SecretIdTokenCredentials("),
    }[page].text


@pytest.mark.parametrize("page", [READING, CLIENT_README])
def test_the_python_block_calls_the_service(documented: Service, tmp_path: Path, page: str) -> None:
    block = python_block(page)

    ran = run_caller(
        [sys.executable, "-c", block.replace(DOCUMENTED_SERVICE, documented.url)],
        tmp_path,
        {**documented.environment(), **THIS_CLIENT},
    )

    assert (ran.returncode, ran.stderr) == (0, "")
    expires_at = datetime.fromisoformat(documented.current()["expires_at"])
    assert ran.stdout == f"200 {expires_at.replace(tzinfo=None)}\n"
    assert documented.bearers() == [(documented.current()["GOOGLE_ID_TOKEN"], 200)]


def test_the_node_block_calls_the_service(documented: Service, tmp_path: Path) -> None:
    block = doc_block(READING, "js", "secretIdToken(").text
    (tmp_path / "token.mjs").symlink_to(NODE_EXAMPLE / "token.mjs")
    (tmp_path / "app.mjs").write_text(block.replace(DOCUMENTED_SERVICE, documented.url))

    ran = run_caller([node(), "app.mjs"], tmp_path, documented.environment())

    assert (ran.returncode, ran.stderr) == (0, "")
    assert ran.stdout == f"200 {documented.current()['expires_at']}\n"
    assert documented.bearers() == [(documented.current()["GOOGLE_ID_TOKEN"], 200)]
