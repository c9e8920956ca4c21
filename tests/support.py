"""Constants and helpers the tests share (fixtures live in conftest.py)."""

import contextlib
import importlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from moto.backends import get_backend
from mypy_boto3_secretsmanager import SecretsManagerClient
from mypy_boto3_secretsmanager.type_defs import TagTypeDef

from localcloud import fidelity
from localcloud.google_emulator import GoogleEmulator
from rotation_core.rotation import Rotation
from rotation_core.rotation_request import RotationRequest
from rotation_core.steps import Step
from rotation_core.token_secret import TokenSecretValue

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from localcloud.cloud import LocalCloud

REGION = "us-east-1"
SCOPE = "https://www.googleapis.com/auth/calendar.readonly"
KEY_SECRET = "google/service-account-key"
TOKEN_SECRET = "google/access-token"
ACCOUNT_ID = "123456789012"
MANAGING_STACK = "token-rotation-tests"
MANAGED_TAG: TagTypeDef = {"Key": "token-rotation:managed-by", "Value": MANAGING_STACK}
ROTATION_FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:rotation-entry"


def begin_rotation(secret_id: str) -> str:
    """Secrets Manager's own start of a rotation: rotation enabled and an empty AWSPENDING version;
    the steps are then the test's to run (moto runs in this process, so its backend is at hand)."""
    backend = get_backend("secretsmanager")[ACCOUNT_ID][REGION]
    token = str(uuid.uuid4())
    fidelity.configure_rotation(backend, secret_id, ROTATION_FUNCTION)
    fidelity.begin_rotation(backend, secret_id, token)
    return token


def stages(secretsmanager: SecretsManagerClient, secret_id: str) -> dict[str, list[str]]:
    return secretsmanager.describe_secret(SecretId=secret_id)["VersionIdsToStages"]


def tokens_minted(google: GoogleEmulator) -> int:
    """Tokens the emulator issued during this test (its issued-token list spans the session)."""
    return sum(r.path == "/token" and r.status == 200 for r in google.requests)


def run_all(rotation: Rotation, request: RotationRequest) -> list[str]:
    """The four steps in order, as Secrets Manager calls them; their actions."""
    return [rotation.run(step, request).action for step in Step]


def current_value(secretsmanager: SecretsManagerClient) -> TokenSecretValue:
    answer = secretsmanager.get_secret_value(SecretId=TOKEN_SECRET, VersionStage="AWSCURRENT")
    return TokenSecretValue.from_secret_string(answer["SecretString"])


SCHEDULE_UPSERTS = frozenset(
    {
        "ScheduleNextRotation",
        "CreateNextRotationSchedule",
        "ScheduleRetry",
        "CreateRetrySchedule",
    }
)
"""The state machine's schedule upserts: UpdateSchedule, then CreateSchedule when the secret has
none yet (its first rotation or failure), so how many run depends on the secret's past."""


def step_attempts(attempts: dict[str, int]) -> dict[str, int]:
    """An execution's task attempts without its schedule upserts."""
    return {state: n for state, n in attempts.items() if state not in SCHEDULE_UPSERTS}


@dataclass(frozen=True)
class FakeLambdaContext:
    """The attributes Powertools reads from the Lambda context."""

    function_name: str = "google-token-rotation-step"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:google-token-rotation-step"
    )
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def lambda_context() -> LambdaContext:
    return cast(LambdaContext, FakeLambdaContext())


def stdout_so_far(capsys: pytest.CaptureFixture[str]) -> str:
    """What was written to stdout since the last look, put back for the conftest's leak guard."""
    out = capsys.readouterr().out
    sys.stdout.write(out)
    return out


@contextlib.contextmanager
def local_cloud_of_its_own() -> Iterator["LocalCloud"]:
    """A local cloud for one module, with what starting one changes for the whole process (the
    MOTO_PORT variable, the Lambda dispatcher, the retry clock) put back afterwards."""
    from localcloud.cloud import LocalCloud  # noqa: PLC0415 - it starts servers when used only

    saved_port = os.environ.get("MOTO_PORT")
    saved = (fidelity.CORRECTIONS.dispatch, fidelity.CORRECTIONS.sleep_retries)
    try:
        with LocalCloud(sleep_retries=False) as cloud:
            yield cloud
    finally:
        fidelity.CORRECTIONS.dispatch, fidelity.CORRECTIONS.sleep_retries = saved
        fidelity.CORRECTIONS.retry_waits.clear()
        if saved_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = saved_port


STEP_MODULES = {
    Step.CREATE: "create_secret",
    Step.SET: "set_secret",
    Step.TEST: "test_secret",
    Step.FINISH: "finish_secret",
}
"""Each step's Lambda handler module, as template.yaml names it."""


def invoke_step(step: Step, event: dict[str, object]) -> dict[str, object]:
    """The step's real Lambda handler, called as Lambda calls it."""
    handler = importlib.import_module(STEP_MODULES[step]).lambda_handler
    return cast(dict[str, object], handler(event, lambda_context()))


def unconfigured_aws(home: Path) -> dict[str, str]:
    """A process environment with no AWS configuration at all: no config or credentials file,
    no instance metadata, its home in `home` (what a fresh machine or container has)."""
    empty = home / "empty"
    empty.write_text("")
    return {
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def read_from_threads(read: Callable[[], str], threads: int = 32, each: int = 100) -> list[str]:
    """What `threads` threads, released at once, saw calling `read` `each` times."""
    start = threading.Barrier(threads)
    seen: list[str] = []

    def reader() -> None:
        start.wait()
        seen.extend(read() for _ in range(each))

    running = [threading.Thread(target=reader) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return seen


def wait_until_closed(sfn: "SFNClient", arn: str) -> str:
    """An execution's status once it is no longer RUNNING. moto's StopExecution of an executing
    state machine only asks the execution's worker thread to stop, and the thread records ABORTED
    a moment later (a loaded CI machine once started the same name again before that). The
    product never stops an execution, so tests wait for the close instead of correcting moto."""
    for _ in range(250):
        status = sfn.describe_execution(executionArn=arn)["status"]
        if status != "RUNNING":
            return status
        time.sleep(0.02)
    raise AssertionError(f"{arn} still RUNNING 5 s on")
