"""Runs one Lambda function's handler in its own interpreter, as Lambda's Python runtime does."""

# lambda_runtime starts this file as `python -P -s lambda_worker.py <request_fd> <response_fd>`
# (by path, not with -m, so that neither the project nor this folder is on the handler's sys.path:
# the handler sees only PYTHONPATH, i.e. its code and layer folders, and site-packages). It must
# therefore stay standard-library only and import nothing from the project.
#
# Protocol: one JSON document per line on each pipe (json.dumps never emits a raw newline).
#   worker -> parent, once: {"ready": true, "init_ms"} or {"error": {...}, "init_ms"} then exit 1
#   parent -> worker, per invocation: {"request_id", "payload", "deadline_epoch_ms", "context",
#                                       "log_marker"}
#   worker -> parent, per invocation: {"result", "duration_ms"} or {"error", "duration_ms"}
# stdout and stderr belong to the handler (powertools logs JSON to stdout); the only thing the
# worker itself writes there is `log_marker` after each invocation, so that the parent knows when
# it has forwarded every line the invocation printed.

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from types import TracebackType
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
        self._deadline_epoch_ms = deadline_epoch_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_epoch_ms - int(time.time() * 1000))


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
