"""Every AWS API call that reaches the local cloud's moto server, and when it arrived.

Recorded where moto hands a request to its service's handler (`BaseResponse.call_action`), so
every caller is seen alike: a benchmark's own threads, the Lambda workers (the entry Lambda's
StartExecution and DescribeExecution), the AWS CLI, and moto's Step Functions interpreter, which
calls Lambda, SNS and the scheduler over HTTP too. What moto does inside one call (RotateSecret
invoking the rotation function through its Lambda backend) is no API call and is not seen.

The hook is installed once per process, on the first `recording()`, after the same check
localcloud.fidelity makes of what it patches; with nothing recording it only forwards.
"""

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any, Final

from moto.core.responses import BaseResponse

from localcloud.fidelity import PatchTarget

CALL_ACTION: Final = PatchTarget(BaseResponse, "call_action", ("self",))
"""moto's dispatch of one request to its handler method."""


@dataclass(frozen=True)
class ApiCall:
    service: str
    """moto's name of the service: "stepfunctions", "secretsmanager", "awslambda", ..."""
    action: str
    """The API action, e.g. "DescribeExecution"."""
    at: float
    """time.monotonic() when moto began to handle it."""


class ApiCallLog:
    """The calls recorded while one `recording()` was open, from any thread."""

    def __init__(self) -> None:
        self._calls: list[ApiCall] = []
        self._lock = threading.Lock()

    def add(self, call: ApiCall) -> None:
        with self._lock:
            self._calls.append(call)

    @property
    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def counts(self) -> Counter[tuple[str, str]]:
        """(service, action) → calls."""
        return Counter((call.service, call.action) for call in self.calls)

    def per_second(self, actions: Collection[tuple[str, str]], since: float) -> list[int]:
        """Calls of any of `actions` ((service, action) pairs) in each whole second from `since`
        (time.monotonic()) to the last such call, seconds without one included; [] if none."""
        offsets = [call.at - since for call in self.calls if (call.service, call.action) in actions]
        if not offsets:
            return []
        if min(offsets) < 0:
            raise ValueError(f"a call came {-min(offsets):.3f} s before `since`")
        buckets = [0] * (int(max(offsets)) + 1)
        for offset in offsets:
            buckets[int(offset)] += 1
        return buckets


_LOGS: list[ApiCallLog] = []
_LOGS_LOCK = threading.Lock()


def _install() -> None:
    """Wraps moto's call_action once; idempotent."""
    if getattr(BaseResponse.call_action, "_records_api_calls", False):
        return
    original = CALL_ACTION.resolve()
    CALL_ACTION.check(original)

    def call_action(self: Any) -> Any:
        with _LOGS_LOCK:
            logs = list(_LOGS)
        if logs:
            call = ApiCall(str(self.service_name), str(self._get_action()), time.monotonic())
            for log in logs:
                log.add(call)
        return original(self)

    call_action._records_api_calls = True  # type: ignore[attr-defined]
    # setattr: mypy refuses assigning to a method, which is the point here.
    setattr(BaseResponse, "call_action", call_action)  # noqa: B010


@contextlib.contextmanager
def recording() -> Iterator[ApiCallLog]:
    """Records every API call the moto server handles until the block ends (recordings may
    overlap: each gets every call made while it is open)."""
    log = ApiCallLog()
    with _LOGS_LOCK:
        _install()
        _LOGS.append(log)
    try:
        yield log
    finally:
        with _LOGS_LOCK:
            _LOGS.remove(log)
