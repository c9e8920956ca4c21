"""Real crashes at the worst moments, so tests prove the rotation recovers from them as on AWS."""

import contextlib
import copy
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final
from unittest import mock

from moto.secretsmanager.exceptions import SecretsManagerClientError
from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend
from moto.sns.exceptions import SNSException
from moto.sns.models import SNSBackend

from localcloud.deployment import CURRENT, PENDING
from localcloud.google_emulator import GoogleEmulator, RecordedRequest
from localcloud.lambda_runtime import FunctionWorker


@dataclass
class Crash:
    """What the fault did: whether it fired, and which version's write landed just before."""

    fired: bool = False
    version_id: str | None = None


@contextmanager
def _patched(owner: type, name: str, replacement: Callable[..., Any]) -> Iterator[None]:
    """One moto method replaced while active, the original put back after; a moto upgrade that
    renames the method fails here loudly instead of the fault silently never firing."""
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def crash_after_put_secret_value(worker: FunctionWorker, secret_arn: str) -> Iterator[Crash]:
    """While active, the first PutSecretValue on `secret_arn` that succeeds ends `worker`'s
    processes before Secrets Manager answers it: the write landed, and the Lambda that made it
    dies without hearing so (its invoker sees Runtime.ExitError). Fires once."""
    original = SecretsManagerBackend.put_secret_value
    crash = Crash()
    lock = threading.Lock()

    def put_secret_value(
        self: SecretsManagerBackend, secret_id: str, *args: Any, **kwargs: Any
    ) -> str:
        answer: str = original(self, secret_id, *args, **kwargs)
        secret = self.secrets.get(secret_id)
        if not isinstance(secret, FakeSecret) or secret.arn != secret_arn:
            return answer
        with lock:
            if crash.fired:
                return answer
            crash.fired = True
        crash.version_id = json.loads(answer).get("VersionId")
        # The answer never reaches the caller: its worker is gone by the time moto replies.
        worker.stop()
        return answer

    with _patched(SecretsManagerBackend, "put_secret_value", put_secret_value):
        yield crash


@contextmanager
def crash_after_get_secret_value(
    worker: FunctionWorker, secret_arn: str, stage: str = PENDING
) -> Iterator[Crash]:
    """While active, the first GetSecretValue of `secret_arn` at `stage` that finds a value ends
    `worker`'s processes before Secrets Manager answers it: a step that only reads dies
    mid-way (Runtime.ExitError). Fires once; `version_id` is the version it read."""
    original = SecretsManagerBackend.get_secret_value
    crash = Crash()
    lock = threading.Lock()

    def get_secret_value(
        self: SecretsManagerBackend, secret_id: str, version_id: str, version_stage: str
    ) -> Any:
        answer = original(self, secret_id, version_id, version_stage)
        secret = self.secrets.get(secret_id)
        if (
            version_stage != stage
            or not isinstance(secret, FakeSecret)
            or secret.arn != secret_arn
            or not answer.get("SecretString")
        ):
            return answer
        with lock:
            if crash.fired:
                return answer
            crash.fired, crash.version_id = True, answer.get("VersionId")
        worker.stop()
        return answer

    with _patched(SecretsManagerBackend, "get_secret_value", get_secret_value):
        yield crash


@contextmanager
def crash_after_google_answers(
    worker: FunctionWorker,
    google: GoogleEmulator,
    matches: Callable[[RecordedRequest], bool],
) -> Iterator[Crash]:
    """While active, the first request to `google` that `matches` and that Google answered with
    success ends `worker`'s processes before the answer is sent: what Google did (a key created,
    a token minted) stands, and the Lambda that asked dies without hearing of it
    (Runtime.ExitError). Fires once. Only this emulator is touched: it records every request
    just before answering it, which is where the crash comes."""
    original = google._record
    crash = Crash()
    lock = threading.Lock()

    def record(request: RecordedRequest) -> None:
        original(request)
        if request.status is None or not 200 <= request.status < 300 or not matches(request):
            return
        with lock:
            if crash.fired:
                return
            crash.fired = True
        worker.stop()

    with mock.patch.object(google, "_record", record):
        yield crash


@contextmanager
def concurrent_pending_write(secret_arn: str, secret_string: str) -> Iterator[Crash]:
    """While active, right after the first read that finds the rotation's AWSPENDING version still
    empty, another writer fills it with `secret_string`, as a concurrent createSecret would in
    the gap between that read and the reader's own PutSecretValue. Fires once."""
    original = SecretsManagerBackend.get_secret_value
    race = Crash()

    def get_secret_value(
        self: SecretsManagerBackend, secret_id: str, version_id: str, version_stage: str
    ) -> Any:
        try:
            return original(self, secret_id, version_id, version_stage)
        except Exception:
            secret = self.secrets.get(secret_id)
            if race.fired or not isinstance(secret, FakeSecret) or secret.arn != secret_arn:
                raise
            race.fired, race.version_id = True, version_id
            # moto's signature says str, but it treats a missing SecretBinary as None, as here.
            no_binary: Any = None
            self.put_secret_value(secret_id, secret_string, no_binary, version_id, [PENDING])
            raise

    with _patched(SecretsManagerBackend, "get_secret_value", get_secret_value):
        yield race


@contextmanager
def crash_after_update_secret_version_stage(
    worker: FunctionWorker, secret_arn: str, stage: str = CURRENT
) -> Iterator[Crash]:
    """While active, the first UpdateSecretVersionStage on `secret_arn` that moves `stage` and
    succeeds ends `worker`'s processes before Secrets Manager answers it: the label moved, and the
    Lambda that moved it dies without hearing so (Runtime.ExitError). Fires once."""
    original = SecretsManagerBackend.update_secret_version_stage
    crash = Crash()
    lock = threading.Lock()

    def update_secret_version_stage(
        self: SecretsManagerBackend,
        secret_id: str,
        version_stage: str,
        remove_from_version_id: str,
        move_to_version_id: str,
    ) -> tuple[str, str]:
        answer = original(
            self, secret_id, version_stage, remove_from_version_id, move_to_version_id
        )
        secret = self.secrets.get(secret_id)
        if (
            version_stage != stage
            or not move_to_version_id
            or not isinstance(secret, FakeSecret)
            or secret.arn != secret_arn
        ):
            return answer
        with lock:
            if crash.fired:
                return answer
            crash.fired, crash.version_id = True, move_to_version_id
        worker.stop()
        return answer

    with _patched(
        SecretsManagerBackend, "update_secret_version_stage", update_secret_version_stage
    ):
        yield crash


class ThrottledError(SNSException):
    """What SNS answers a Publish over the account's rate: code Throttled, HTTP 429 (botocore's
    SNS model, ThrottledException). Step Functions' sns:publish reports it as
    SNS.ThrottledException."""

    code = "Throttled"
    message = "Rate exceeded"


@dataclass
class Refusals:
    """How many Publish calls the fault refused, and how many it let through after."""

    refused: int = 0
    delivered: int = 0


@contextmanager
def sns_publish_refused(
    topic_arn: str, times: int, error: type[SNSException] = ThrottledError
) -> Iterator[Refusals]:
    """While active, the first `times` Publish calls to `topic_arn` are refused with `error`
    (SNS's throttling error unless told otherwise) before anything is delivered; later calls
    publish as usual. Other topics are not touched."""
    original = SNSBackend.publish
    refusals = Refusals()
    lock = threading.Lock()

    def publish(self: SNSBackend, message: str, arn: str | None, *args: Any, **kwargs: Any) -> str:
        if arn == topic_arn:
            with lock:
                refuse = refusals.refused < times
                refusals.refused += refuse
            if refuse:
                raise error()
        message_id: str = original(self, message, arn, *args, **kwargs)
        if arn == topic_arn:
            with lock:
                refusals.delivered += 1
        return message_id

    with _patched(SNSBackend, "publish", publish):
        yield refusals


@contextmanager
def pending_label_moved_after_describe(secret_arn: str, version_id: str) -> Iterator[Crash]:
    """While active, right after the first DescribeSecret of `secret_arn`, AWSPENDING leaves
    `version_id`, as when a concurrent manual run supersedes that rotation between a step's
    DescribeSecret and its next call. Fires once."""
    original = SecretsManagerBackend.describe_secret
    race = Crash()

    def describe_secret(self: SecretsManagerBackend, secret_id: str) -> Any:
        answer = original(self, secret_id)
        secret = self.secrets.get(secret_id)
        if race.fired or not isinstance(secret, FakeSecret) or secret.arn != secret_arn:
            return answer
        race.fired, race.version_id = True, version_id
        # The caller gets the description as it was; the label moves right after.
        answer = copy.deepcopy(answer)
        secret.versions[version_id]["version_stages"].remove(PENDING)
        return answer

    with _patched(SecretsManagerBackend, "describe_secret", describe_secret):
        yield race


class SecretsManagerThrottledError(SecretsManagerClientError):
    """What Secrets Manager answers a call over its rate: ThrottlingException, HTTP 400."""

    def __init__(self) -> None:
        super().__init__("ThrottlingException", "Rate exceeded")


THROTTLED_WRITES: Final = ("put_secret_value", "update_secret_version_stage", "tag_resource")
"""The rotation's writes: they share Secrets Manager's low write quota (50 per second)."""


@contextmanager
def secrets_manager_throttled(secret_arn: str, times: int) -> Iterator[Refusals]:
    """While active, the first `times` writes to `secret_arn` (PutSecretValue,
    UpdateSecretVersionStage, TagResource) are refused as throttled before anything changes;
    reads, and other secrets, are never touched."""
    refusals = Refusals()
    lock = threading.Lock()

    def refusing(original: Callable[..., Any]) -> Callable[..., Any]:
        def write(self: SecretsManagerBackend, secret_id: str, *args: Any, **kwargs: Any) -> Any:
            secret = self.secrets.get(secret_id)
            if isinstance(secret, FakeSecret) and secret.arn == secret_arn:
                with lock:
                    refuse = refusals.refused < times
                    refusals.refused += refuse
                if refuse:
                    raise SecretsManagerThrottledError()
            return original(self, secret_id, *args, **kwargs)

        return write

    with contextlib.ExitStack() as patches:
        for name in THROTTLED_WRITES:
            original = getattr(SecretsManagerBackend, name)
            patches.enter_context(_patched(SecretsManagerBackend, name, refusing(original)))
        yield refusals
