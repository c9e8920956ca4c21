"""Runs each function of the local cloud in warm worker processes, as Lambda's sandboxes do."""

import contextlib
import datetime
import json
import logging
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self

from localcloud.clock import SimulatedClock
from localcloud.lambda_worker import HANDLER_VARIABLE

WORKER_SCRIPT: Final = Path(__file__).resolve().with_name("lambda_worker.py")
# Lambda gives the init phase (importing the handler module) 10 s of its own.
INIT_TIMEOUT_SECONDS: Final = 10.0
# Lambda scales out with concurrent calls; locally a few sandboxes per function are plenty, and
# further callers wait for a free one instead of being throttled.
DEFAULT_MAX_CONCURRENCY: Final = 4
# The account moto uses unless told otherwise, for the default ARN in the context object.
DEFAULT_ACCOUNT_ID: Final = "123456789012"

_STOP_GRACE_SECONDS: Final = 1.0
# How long an invocation waits for the log lines its handler printed to reach the sink.
_LOG_DRAIN_SECONDS: Final = 2.0
_READ_CHUNK: Final = 1 << 16

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvocationResult:
    """One invocation's outcome, as Lambda's Invoke reports it plus what the sandbox measured."""

    payload: object | None
    """The handler's return value when ok."""
    error: dict[str, object] | None
    """{"errorType", "errorMessage", "requestId", "stackTrace"} when the invocation failed."""
    duration_ms: float
    """Handler time inside the worker (wall time in the parent when the worker did not answer)."""
    cold_start: bool
    """This invocation started the worker process."""
    init_ms: float | None
    """Import time of the handler module on a cold start."""
    request_id: str

    @property
    def failed(self) -> bool:
        return self.error is not None


def _error(error_type: str, message: str, request_id: str) -> dict[str, object]:
    return {
        "errorType": error_type,
        "errorMessage": message,
        "requestId": request_id,
        "stackTrace": [],
    }


class _LogPump:
    """Forwards one output stream of a worker line by line, and notices the marker the worker
    writes after each invocation so that an invocation can wait for its own lines."""

    def __init__(self, stream: IO[bytes], emit: Callable[[str], None], marker: bytes) -> None:
        self._stream = stream
        self._emit = emit
        self._marker = marker
        self._last_mark = 0
        self._ended = False
        self._sink_failed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="lambda-log-pump", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for raw in self._stream:
                self._forward(raw.rstrip(b"\r\n"))
        finally:
            self._stream.close()
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def _forward(self, line: bytes) -> None:
        before, found, mark = line.partition(self._marker)
        if before or not found:
            # A handler's last write without a newline arrives glued to the marker.
            self._deliver(before.decode("utf-8", "replace"))
        if found and mark.isdigit():
            with self._changed:
                self._last_mark = int(mark)
                self._changed.notify_all()

    def _deliver(self, line: str) -> None:
        try:
            self._emit(line)
        except Exception:
            # The pump must keep draining, or the worker would block on a full pipe; the
            # sink's failure is reported once, and the line itself (it may hold a secret) is not.
            if not self._sink_failed:
                self._sink_failed = True
                _log.exception("the log sink failed; later failures are not reported")

    def wait_for_mark(self, mark: int, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._ended or self._last_mark >= mark, timeout)

    def join(self, timeout: float) -> None:
        # Bounded: a process the handler detached from the group may keep the pipe open.
        self._thread.join(timeout)


class _WorkerExitedError(Exception):
    """The worker closed its end of the response pipe: it exited or was killed."""


class _Sandbox:
    """One worker process with its pipes and log pumps; used by one invocation at a time."""

    def __init__(
        self,
        function_name: str,
        environment: Mapping[str, str],
        cwd: Path,
        log_sink: Callable[[str, str], None],
    ) -> None:
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                [
                    sys.executable,
                    "-P",  # keep the worker's folder off sys.path
                    "-s",  # and the user's site-packages (Lambda has neither)
                    str(WORKER_SCRIPT),
                    str(request_read),
                    str(response_write),
                ],
                env=dict(environment),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(request_read, response_write),
                # Its own process group: a timeout kills whatever the handler started too, and a
                # Ctrl-C in the terminal reaches the parent only, which then stops the workers.
                start_new_session=True,
            )
        except BaseException:
            os.close(request_write)
            os.close(response_read)
            raise
        finally:
            # The worker holds these ends now; keeping them here would hide its exit from us.
            os.close(request_read)
            os.close(response_write)
        self._requests = request_write
        self._responses = response_read
        self._buffer = bytearray()
        self._closed = False
        self._invocations = 0
        self.log_stream_name = (
            f"{datetime.datetime.now(datetime.UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        )
        # Unguessable, so that nothing a handler prints is mistaken for it.
        self._marker_prefix = f"[localcloud-log-mark {secrets.token_hex(8)}] "
        marker = self._marker_prefix.encode()
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._pumps = (
            _LogPump(self.process.stdout, lambda line: log_sink(function_name, line), marker),
            _LogPump(self.process.stderr, lambda line: log_sink(function_name, line), marker),
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def read_message(self, deadline: float) -> dict[str, Any]:
        """The next message from the worker; TimeoutError at `deadline` (time.monotonic)."""
        poller = select.poll()
        poller.register(self._responses, select.POLLIN)
        while True:
            line, newline, rest = self._buffer.partition(b"\n")
            if newline:
                self._buffer = bytearray(rest)
                message: dict[str, Any] = json.loads(line)
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not poller.poll(remaining * 1000):
                continue
            chunk = os.read(self._responses, _READ_CHUNK)
            if not chunk:
                raise _WorkerExitedError
            self._buffer += chunk

    def invoke(self, request: dict[str, Any], deadline: float) -> dict[str, Any]:
        self._invocations += 1
        mark = self._invocations
        request["log_marker"] = f"{self._marker_prefix}{mark}"
        data = memoryview(json.dumps(request).encode() + b"\n")
        try:
            while data:
                data = data[os.write(self._requests, data) :]
        except BrokenPipeError as error:
            raise _WorkerExitedError from error
        response = self.read_message(deadline)
        for pump in self._pumps:
            pump.wait_for_mark(mark, _LOG_DRAIN_SECONDS)
        return response

    def exit_description(self) -> str:
        try:
            code = self.process.wait(_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            # It closed the pipe but lives on: it cannot serve requests any more either.
            self.kill()
            return "closed its response pipe and was killed"
        if code < 0:
            return f"exited on signal {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def _signal_group(self, signal_number: int) -> None:
        # The group outlives its leader while the handler's own children run; once it is empty
        # the kernel does not reuse its id, so this never reaches a stranger.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal_number)

    def kill(self) -> None:
        """Ends the process group at once (timeouts, broken workers). Safe from any thread."""
        self._signal_group(signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> None:
        """SIGTERM, then SIGKILL after a short grace. Safe from any thread."""
        self._signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(_STOP_GRACE_SECONDS)
        self.kill()

    def close(self) -> None:
        """Releases the pipes and forwards the last log lines; only the sandbox's holder calls it
        (closing a descriptor another thread polls could hit a reused descriptor number)."""
        if self._closed:
            return
        self._closed = True
        if self.process.poll() is None:
            self.terminate()
        os.close(self._requests)
        os.close(self._responses)
        for pump in self._pumps:
            pump.join(_LOG_DRAIN_SECONDS)


class FunctionWorker:
    """One Lambda function: warm worker processes reused between invocations, started on demand
    (cold start), at most `max_concurrency` at once. Given a `clock`, each handler call runs at
    that clock's simulated time (lambda_worker.py says how); without one, at real time."""

    def __init__(
        self,
        name: str,
        handler: str,
        code_paths: Sequence[Path],
        environment: Mapping[str, str],
        timeout_seconds: float,
        memory_mb: int,
        log_sink: Callable[[str, str], None],
        *,
        function_arn: str | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        init_timeout_seconds: float = INIT_TIMEOUT_SECONDS,
        clock: SimulatedClock | None = None,
    ) -> None:
        if not code_paths:
            raise ValueError(f"{name}: at least one code path is needed")
        if max_concurrency < 1:
            raise ValueError(f"{name}: max_concurrency must be at least 1")
        self.name = name
        self.handler = handler
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self.init_timeout_seconds = init_timeout_seconds
        self.max_concurrency = max_concurrency
        self.clock = clock
        self._log_sink = log_sink
        self._cwd = Path(code_paths[0]).resolve()
        self._environment = _process_environment(name, handler, code_paths, environment)
        region = environment.get("AWS_REGION") or environment.get("AWS_DEFAULT_REGION", "us-east-1")
        self.function_arn = (
            function_arn or f"arn:aws:lambda:{region}:{DEFAULT_ACCOUNT_ID}:function:{name}"
        )
        self._changed = threading.Condition()
        self._idle: list[_Sandbox] = []  # the most recently used last: sequential calls stay warm
        self._busy: set[_Sandbox] = set()
        self._starting = 0
        # stop() bumps it; sandboxes of an older generation are retired instead of going idle.
        self._generation = 0

    @property
    def environment(self) -> Mapping[str, str]:
        """Exactly the environment the worker processes get."""
        return dict(self._environment)

    def invoke(self, payload: object, request_id: str | None = None) -> InvocationResult:
        request_id = request_id or str(uuid.uuid4())
        # An unserialisable payload is the caller's mistake: fail before touching a sandbox.
        json.dumps(payload)
        sandbox, generation = self._acquire()
        cold_start = sandbox is None
        init_ms: float | None = None
        try:
            if sandbox is None:
                sandbox = self._start()
                init_ms, init_error = self._await_ready(sandbox, request_id)
                if init_error is not None:
                    return InvocationResult(None, init_error, 0.0, True, init_ms, request_id)
            return self._invoke(sandbox, payload, request_id, cold_start, init_ms)
        except BaseException:
            # A worker that broke the protocol (or an interrupted exchange) cannot be trusted
            # with the next request.
            if sandbox is not None:
                sandbox.kill()
            raise
        finally:
            if sandbox is not None:
                self._release(sandbox, generation)

    def prewarm(self) -> dict[str, object] | None:
        """Starts a sandbox and runs its init phase now, as provisioned concurrency does, so that
        the next invocation is warm; does nothing when one is idle already. Returns the init
        error, as an invocation would have reported it, or None."""
        sandbox, generation = self._acquire()
        try:
            if sandbox is not None:
                return None
            sandbox = self._start()
            return self._await_ready(sandbox, str(uuid.uuid4()))[1]
        except BaseException:
            if sandbox is not None:
                sandbox.kill()
            raise
        finally:
            if sandbox is not None:
                self._release(sandbox, generation)

    def _acquire(self) -> tuple[_Sandbox | None, int]:
        """A warm sandbox, or None with a slot reserved for starting one."""
        dead: list[_Sandbox] = []
        try:
            with self._changed:
                while True:
                    while self._idle:
                        sandbox = self._idle.pop()
                        if sandbox.process.poll() is None:
                            self._busy.add(sandbox)
                            return sandbox, self._generation
                        # Died while idle (killed from outside): the next one may still be warm.
                        dead.append(sandbox)
                    if len(self._busy) + self._starting < self.max_concurrency:
                        self._starting += 1
                        return None, self._generation
                    self._changed.wait()
        finally:
            for sandbox in dead:
                sandbox.close()

    def _start(self) -> _Sandbox:
        """Starts a process in the slot _acquire reserved."""
        sandbox: _Sandbox | None = None
        try:
            sandbox = _Sandbox(self.name, self._environment, self._cwd, self._log_sink)
        finally:
            with self._changed:
                self._starting -= 1
                if sandbox is None:
                    self._changed.notify()
                else:
                    self._busy.add(sandbox)
        return sandbox

    def _release(self, sandbox: _Sandbox, generation: int) -> None:
        with self._changed:
            self._busy.discard(sandbox)
            keep = generation == self._generation and sandbox.process.poll() is None
            if keep:
                self._idle.append(sandbox)
            self._changed.notify()
        if not keep:
            sandbox.close()

    def _await_ready(
        self, sandbox: _Sandbox, request_id: str
    ) -> tuple[float | None, dict[str, object] | None]:
        started = time.monotonic()
        try:
            ready = sandbox.read_message(started + self.init_timeout_seconds)
        except TimeoutError:
            sandbox.kill()
            message = f"{self.name}: Init timed out after {self.init_timeout_seconds:.2f} seconds"
            return None, _error("Sandbox.Timedout", message, request_id)
        except _WorkerExitedError:
            description = sandbox.exit_description()
            return None, _error(
                "Runtime.ExitError", f"{self.name}: Runtime {description}", request_id
            )
        init_ms = float(ready["init_ms"])
        if "error" in ready:
            error: dict[str, object] = {**ready["error"], "requestId": request_id}
            sandbox.kill()
            return init_ms, error
        return init_ms, None

    def _invoke(
        self,
        sandbox: _Sandbox,
        payload: object,
        request_id: str,
        cold_start: bool,
        init_ms: float | None,
    ) -> InvocationResult:
        started = time.monotonic()
        request = {
            "request_id": request_id,
            "payload": payload,
            "deadline_epoch_ms": int((time.time() + self.timeout_seconds) * 1000),
            "clock_offset_seconds": 0.0 if self.clock is None else self.clock.offset,
            "context": {
                "function_name": self.name,
                "function_version": "$LATEST",
                "invoked_function_arn": self.function_arn,
                "memory_limit_in_mb": str(self.memory_mb),
                "log_group_name": f"/aws/lambda/{self.name}",
                "log_stream_name": sandbox.log_stream_name,
            },
        }
        try:
            response = sandbox.invoke(request, started + self.timeout_seconds)
        except TimeoutError:
            sandbox.kill()
            message = f"{self.name}: Task timed out after {self.timeout_seconds:.2f} seconds"
            error = _error("Sandbox.Timedout", message, request_id)
        except _WorkerExitedError:
            description = sandbox.exit_description()
            error = _error("Runtime.ExitError", f"{self.name}: Runtime {description}", request_id)
        else:
            duration_ms = float(response["duration_ms"])
            if "error" in response:
                return InvocationResult(
                    None, response["error"], duration_ms, cold_start, init_ms, request_id
                )
            return InvocationResult(
                response["result"], None, duration_ms, cold_start, init_ms, request_id
            )
        elapsed_ms = (time.monotonic() - started) * 1000
        return InvocationResult(None, error, elapsed_ms, cold_start, init_ms, request_id)

    def stop(self) -> None:
        """Ends every worker process of the function; the next invocation starts cold."""
        with self._changed:
            self._generation += 1
            idle, self._idle = self._idle, []
            busy = list(self._busy)
        for sandbox in idle:
            sandbox.close()
        # The invoking threads own these: they see the exit, answer Runtime.ExitError and close.
        for sandbox in busy:
            sandbox.terminate()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _process_environment(
    name: str, handler: str, code_paths: Sequence[Path], environment: Mapping[str, str]
) -> dict[str, str]:
    """The caller's environment, plus what the worker needs; nothing else from this process.

    Added when the caller does not set them:
      PATH  inherited from this process (os.defpath if unset), so that subprocesses resolve;
      LANG  C.UTF-8: without a locale Python coerces it and adds LC_CTYPE to the environment.
    Always set by the runtime (a different value from the caller is an error):
      PYTHONPATH               the code paths then the layer paths, as Lambda's sys.path;
      _HANDLER                 module.function, read by the worker (Lambda sets it too);
      PYTHONUNBUFFERED=1       handler output reaches the log sink as it is printed;
      PYTHONDONTWRITEBYTECODE  keeps __pycache__ out of the function folders.
    """
    owned = {
        "PYTHONPATH": os.pathsep.join(str(Path(path).resolve()) for path in code_paths),
        HANDLER_VARIABLE: handler,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    clashes = sorted(
        key for key, value in owned.items() if key in environment and environment[key] != value
    )
    if clashes:
        raise ValueError(f"{name}: the runtime sets {', '.join(clashes)} itself")
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        **environment,
        **owned,
    }


class LambdaRuntime:
    """All functions of the local cloud by name; stopping it stops every worker process."""

    def __init__(self) -> None:
        self._workers: dict[str, FunctionWorker] = {}
        self._lock = threading.Lock()

    def register(self, worker: FunctionWorker) -> None:
        with self._lock:
            if worker.name in self._workers:
                raise ValueError(f"a function named {worker.name!r} is already registered")
            self._workers[worker.name] = worker

    def worker(self, name: str) -> FunctionWorker:
        with self._lock:
            try:
                return self._workers[name]
            except KeyError:
                known = ", ".join(sorted(self._workers)) or "none"
                raise KeyError(f"no function named {name!r} (registered: {known})") from None

    def stop_all(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()
