"""Shared fixtures: moto over real HTTP for AWS, the Google emulator, and a guard that scans every
log record of every test for tokens and private keys."""

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

import boto3
import pytest
import urllib3
from moto.server import ThreadedMotoServer
from mypy_boto3_secretsmanager import SecretsManagerClient

import lambda_adapter.step_handler as step_glue
from localcloud import fidelity
from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from rotation_core.config import GoogleEndpoints
from rotation_core.google_client import GoogleClient
from rotation_core.rotation import Rotation
from rotation_core.secrets import SecretsGateway
from tests.support import (
    KEY_SECRET,
    MANAGED_TAG,
    MANAGING_STACK,
    REGION,
    SCOPE,
    TOKEN_SECRET,
)


class _RecordCollector(logging.Handler):
    """Keeps every record in full (message, arguments, extra fields, exception text)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = dict(record.__dict__)
        fields["formatted"] = record.getMessage()
        if record.exc_info:
            fields["exception"] = logging.Formatter().formatException(record.exc_info)
        self.texts.append(json.dumps(fields, default=str))


SUITE_GOOGLE_TIMEOUT_SECONDS: Final = "5"
"""The step functions' Google timeout in the suite: long enough that a loaded machine never times
out a healthy call to the emulator. Tests of a Google that hangs set a short one of their own."""

_COLLECTOR = _RecordCollector()
# Our own loggers at every level; everything else at the level it would have in Lambda.
_WATCHED_LOGGERS = ("rotation_core", "google-token-rotation", "localcloud", "google_token_secret")


@dataclass
class SecretMaterial:
    """Every token and private key the suite creates; none may ever reach a log."""

    values: set[str] = field(default_factory=set)

    def add_key(self, key: ServiceAccountKey) -> None:
        body = "".join(line for line in key.private_key_pem.splitlines() if "-----" not in line)
        self.values.update({body[100:160], body[-120:-60]})


SECRET_MATERIAL = SecretMaterial()


LONGEST_FIRST: Final = ("tests/localcloud/test_soak.py::test_a_short_soak",)
"""The suite's longest tests, a minute or more each: they run first, so that `make test`'s two
workers never end on one of them while the other has nothing left (pytest-xdist's worksteal
hands an idle worker the end of a busy one's queue, never the test it is running)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))


@pytest.fixture(scope="session", autouse=True)
def _collect_logs() -> Iterator[None]:
    logging.getLogger().addHandler(_COLLECTOR)
    for name in _WATCHED_LOGGERS:
        logging.getLogger(name).addHandler(_COLLECTOR)
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield
    for name in ("", *_WATCHED_LOGGERS):
        logging.getLogger(name).removeHandler(_COLLECTOR)


@pytest.fixture(autouse=True)
def _no_secret_in_logs(
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    _google_session: GoogleEmulator,
) -> Iterator[None]:
    start = len(_COLLECTOR.texts)
    yield
    captured = capsys.readouterr()
    texts = [*_COLLECTOR.texts[start:], captured.out, captured.err]
    SECRET_MATERIAL.values.update(t.access_token for t in _google_session.issued_tokens())
    leaked = [value for value in SECRET_MATERIAL.values if any(value in text for text in texts)]
    assert not leaked, f"secret material reached the logs of {request.node.nodeid}"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
    )
    yield endpoint
    os.environ.clear()
    os.environ.update(saved)
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _aws_fidelity() -> None:
    """The whole suite runs against moto corrected to behave as AWS does (localcloud.fidelity)."""
    fidelity.apply()


@pytest.fixture
def secretsmanager(moto_endpoint: str) -> Iterator[SecretsManagerClient]:
    """A fresh, empty moto account for every test, emptied again after it: moto's backends are
    the process's, so a secret left behind would meet the local clouds of later modules."""
    reset = f"{moto_endpoint}/moto-api/reset"
    urllib3.PoolManager().request("POST", reset)
    yield boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_endpoint)
    urllib3.PoolManager().request("POST", reset)


@pytest.fixture(scope="session")
def _google_session() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as emulator:
        yield emulator


@pytest.fixture
def google(_google_session: GoogleEmulator) -> GoogleEmulator:
    _google_session.reset()
    _google_session.token_lifetime_seconds = 3600
    _google_session.clock_offset_seconds = 0
    return _google_session


@pytest.fixture
def service_account(google: GoogleEmulator) -> ServiceAccountKey:
    key = google.create_service_account()
    SECRET_MATERIAL.add_key(key)
    return key


@pytest.fixture
def environment(google: GoogleEmulator) -> dict[str, str]:
    """The step functions' environment as template.yaml sets it, pointed at the emulator."""
    return {
        "GOOGLE_SCOPES": SCOPE,
        "SERVICE_ACCOUNT_KEY_SECRET_ID": KEY_SECRET,
        "GOOGLE_TOKEN_URL": google.token_url,
        "GOOGLE_TOKENINFO_URL": google.tokeninfo_url,
        "GOOGLE_HTTP_TIMEOUT_SECONDS": SUITE_GOOGLE_TIMEOUT_SECONDS,
        "MANAGED_BY": MANAGING_STACK,
    }


@pytest.fixture
def rotation(secretsmanager: SecretsManagerClient, environment: dict[str, str]) -> Rotation:
    google_client = GoogleClient(GoogleEndpoints.from_environment(environment))
    return Rotation(SecretsGateway(secretsmanager), google_client, environment)


@pytest.fixture
def token_secret_arn(
    secretsmanager: SecretsManagerClient, service_account: ServiceAccountKey
) -> str:
    """The key secret holding a key file as downloaded, and the token secret as first deployed."""
    secretsmanager.create_secret(
        Name=KEY_SECRET,
        SecretString=json.dumps(service_account.key_file(GoogleEmulator.GOOGLE_TOKEN_AUDIENCE)),
    )
    return secretsmanager.create_secret(
        Name=TOKEN_SECRET, SecretString=json.dumps({"GOOGLE_ACCESS_TOKEN": ""}), Tags=[MANAGED_TAG]
    )["ARN"]


@pytest.fixture
def lambda_environment(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, moto_endpoint: str
) -> Iterator[dict[str, str]]:
    """The function environment as template.yaml sets it, and a cold start for every test."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    step_glue._rotation.cache_clear()
    yield environment
    step_glue._rotation.cache_clear()
