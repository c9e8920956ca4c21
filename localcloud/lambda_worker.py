"""Runs one Lambda function's handler in its own interpreter, as Lambda's Python runtime does."""

# lambda_runtime starts this file as `python -P -s lambda_worker.py <request_fd> <response_fd>`
# (by path, not with -m, so that neither the project nor this folder is on the handler's sys.path:
# the handler sees only PYTHONPATH, i.e. its code and layer folders, and site-packages). It must
# therefore import nothing from the project, and nothing beyond the standard library but
# time_machine, and that only once the simulated clock is ahead (see _simulated_time).
#
# Protocol: one JSON document per line on each pipe (json.dumps never emits a raw newline).
#   worker -> parent, once: {"ready": true, "init_ms"} or {"error": {...}, "init_ms"} then exit 1
#   parent -> worker, per invocation: {"request_id", "payload", "deadline_epoch_ms", "context",
#                                       "clock_offset_seconds", "log_marker"}
#   worker -> parent, per invocation: {"result", "duration_ms"} or {"error", "duration_ms"}
# `deadline_epoch_ms` is real time (the Lambda timeout is real); `clock_offset_seconds` is how far
# the local cloud's simulated clock (localcloud.clock) is ahead of real time.
#
# Simulated time: while the offset is not 0 the handler runs inside time_machine.travel to real
# now + offset, ticking, so time.time(), time.gmtime/localtime/strftime, datetime.now/utcnow and
# time-based uuids all tell simulated time, and the product never knows. time.monotonic,
# perf_counter and sleep stay real (time_machine leaves them alone), and so does the context's
# remaining time, which counts down on time.monotonic. boto3 in the handler then signs its
# requests with simulated time; moto does not check signatures, so it answers as usual (AWS would
# refuse a signature more than 5 minutes off). Time is simulated for the handler call only: the
# module's import (init) and threads it leaves running after it returns see real time.
# stdout and stderr belong to the handler (powertools logs JSON to stdout); the only thing the
# worker itself writes there is `log_marker` after each invocation, so that the parent knows when
# it has forwarded every line the invocation printed.

import contextlib
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType, TracebackType
from typing import IO, Any, Final

Handler = Callable[[Any, "LambdaContext"], Any]

HANDLER_VARIABLE: Final = "_HANDLER"


class LambdaContext:
    """The attributes and method of the context object Lambda's Python runtime hands a handler."""

    def __init__(self, request_id: str, deadline_epoch_ms: int, details: Mapping[str, Any]) -> None:
        self.aws_request_id = request_id
        self.function_name: str = details["function_name"]
        self.function_version: str = details["function_version"]
        self.invoked_function_arn: str = details["invoked_function_arn"]
        # Lambda's runtime reads this from AWS_LAMBDA_FUNCTION_MEMORY_SIZE, so it is a string there.
        self.memory_limit_in_mb: str = details["memory_limit_in_mb"]
        self.log_group_name: str = details["log_group_name"]
        self.log_stream_name: str = details["log_stream_name"]
        self.identity: object | None = None
        self.client_context: object | None = None
        # Kept on the monotonic clock, taken while time.time() is still real: simulated time
        # must not move the Lambda timeout.
        self._deadline_monotonic = time.monotonic() + (deadline_epoch_ms / 1000 - time.time())

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline_monotonic - time.monotonic()) * 1000))


class InitError(Exception):
    """The handler could not be loaded; `payload` is the error as Lambda reports it."""

    def __init__(self, error_type: str, message: str, stack_trace: list[str]) -> None:
        super().__init__(message)
        self.payload: dict[str, object] = {
            "errorType": error_type,
            "errorMessage": message,
            "stackTrace": stack_trace,
        }


def load_handler(handler_name: str) -> Handler:
    """Imports the module of `module.function` (Lambda also accepts `folder/module.function`)."""
    module_name, _, function_name = handler_name.rpartition(".")
    if not module_name or not function_name:
        raise InitError(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{handler_name}': expected <module>.<function>",
            [],
        )
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}", []
        ) from error
    except SyntaxError as error:
        raise InitError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {error}",
            [f'  File "{error.filename}" Line {error.lineno}\n    {error.text}'],
        ) from error
    except Exception as error:
        raise InitError(type(error).__name__, str(error), _stack_trace(error)) from error
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise InitError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
            [],
        )
    return handler  # type: ignore[no-any-return]


def _stack_trace(error: BaseException) -> list[str]:
    # The first frame is the worker's own call into user code: Lambda's trace starts in the handler.
    traceback_: TracebackType | None = error.__traceback__
    if traceback_ is not None:
        traceback_ = traceback_.tb_next
    return traceback.format_list(traceback.extract_tb(traceback_))


def invoke(handler: Handler, request: Mapping[str, Any]) -> dict[str, object]:
    """Calls the handler once and turns its outcome into the response Lambda would give."""
    request_id: str = request["request_id"]
    context = LambdaContext(request_id, request["deadline_epoch_ms"], request["context"])
    started = time.perf_counter()
    try:
        with _simulated_time(float(request["clock_offset_seconds"])):
            result = handler(request["payload"], context)
    except Exception as error:
        return {
            "error": {
                "errorType": type(error).__name__,
                "errorMessage": str(error),
                "requestId": request_id,
                "stackTrace": _stack_trace(error),
            },
            "duration_ms": _elapsed_ms(started),
        }
    duration_ms = _elapsed_ms(started)
    try:
        # Serialised here, not by the caller, so that an unserialisable result is the handler's
        # error (as in Lambda) rather than a crash of the worker.
        json.dumps(result)
    except (TypeError, ValueError, RecursionError) as error:
        return {
            "error": {
                "errorType": "Runtime.MarshalError",
                "errorMessage": f"Unable to marshal response: {error}",
                "requestId": request_id,
                "stackTrace": [],
            },
            "duration_ms": duration_ms,
        }
    return {"result": result, "duration_ms": duration_ms}


@contextlib.contextmanager
def _simulated_time(offset_seconds: float) -> Iterator[None]:
    """Real time while the offset is 0 (time_machine is not even imported); else the clocks
    time_machine patches tell real now + offset and tick on from there."""
    if not offset_seconds:
        yield
        return
    with _time_machine().travel(time.time() + offset_seconds, tick=True):
        yield


def _time_machine() -> ModuleType:
    """The time_machine module, imported without pytest: it imports pytest when it can (for its
    fixture), which would cost ~90 ms and leave pytest in the handler's sys.modules."""
    if "time_machine" in sys.modules:
        return sys.modules["time_machine"]
    blocked = "pytest" not in sys.modules
    if blocked:
        # None in sys.modules makes `import pytest` raise ImportError.
        sys.modules["pytest"] = None  # type: ignore[assignment]
    try:
        import time_machine  # noqa: PLC0415 - only where time is simulated
    finally:
        if blocked:
            del sys.modules["pytest"]
    return time_machine


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _send(responses: IO[bytes], message: Mapping[str, object]) -> None:
    responses.write(json.dumps(message).encode() + b"\n")
    responses.flush()


def _mark_logs(marker: str) -> None:
    # Written to the file descriptors, not sys.stdout/sys.stderr, because the handler may have
    # replaced those objects; flushing them first keeps the marker after everything they hold.
    line = f"{marker}\n".encode()
    for stream, descriptor in ((sys.stdout, 1), (sys.stderr, 2)):
        try:
            stream.flush()
            os.write(descriptor, line)
        except (OSError, ValueError):
            # A handler that closed its output only delays the parent, which waits a bounded time.
            continue


def main(argv: list[str]) -> int:
    request_fd, response_fd = int(argv[1]), int(argv[2])
    # Processes the handler starts must not hold the protocol pipes open (they would hide this
    # worker's exit from the parent).
    os.set_inheritable(request_fd, False)
    os.set_inheritable(response_fd, False)
    with os.fdopen(request_fd, "rb") as requests, os.fdopen(response_fd, "wb") as responses:
        started = time.perf_counter()
        try:
            handler = load_handler(os.environ.get(HANDLER_VARIABLE, ""))
        except InitError as failure:
            _send(responses, {"error": failure.payload, "init_ms": _elapsed_ms(started)})
            return 1
        _send(responses, {"ready": True, "init_ms": _elapsed_ms(started)})
        # End of file on the request pipe means the parent is gone or stopping: exit quietly.
        for line in requests:
            request = json.loads(line)
            response = invoke(handler, request)
            _mark_logs(request["log_marker"])
            _send(responses, response)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
