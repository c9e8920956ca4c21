"""Real crashes at the worst moments, so tests prove the rotation recovers from them as on AWS."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend

from localcloud.lambda_runtime import FunctionWorker


@dataclass
class Crash:
    """What the fault did: whether it fired, and which version's write landed just before."""

    fired: bool = False
    version_id: str | None = None


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

    SecretsManagerBackend.put_secret_value = put_secret_value  # type: ignore[method-assign]
    try:
        yield crash
    finally:
        SecretsManagerBackend.put_secret_value = original  # type: ignore[method-assign]


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
            self.put_secret_value(secret_id, secret_string, no_binary, version_id, ["AWSPENDING"])
            raise

    SecretsManagerBackend.get_secret_value = get_secret_value  # type: ignore[method-assign]
    try:
        yield race
    finally:
        SecretsManagerBackend.get_secret_value = original  # type: ignore[method-assign]
