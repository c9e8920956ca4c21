"""The local Lambda runtime must behave like Lambda: isolated, warm, failing the same way."""

import os
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from localcloud.lambda_runtime import FunctionWorker, InvocationResult, LambdaRuntime

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PARENT_MARKER = "LOCALCLOUD_TEST_PARENT_ONLY"
# What the runtime adds to the caller's environment (documented in _process_environment).
RUNTIME_VARIABLES = {
    "PATH",
    "LANG",
    "PYTHONPATH",
    "_HANDLER",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
}

HANDLERS = """
import importlib.util
import os
import subprocess
import sys
import time

INVOCATIONS = 0


def identify(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    return {"pid": os.getpid(), "invocations": INVOCATIONS, "event": event}


def environment(event, context):
    return dict(os.environ)


def isolation(event, context):
    return {
        "sys_path": sys.path,
        "cwd": os.getcwd(),
        "localcloud_importable": importlib.util.find_spec("localcloud") is not None,
    }


def fail(event, context):
    raise ValueError("bad input: " + event["why"])


def sleep(event, context):
    time.sleep(event["seconds"])
    return {"pid": os.getpid(), "event": event}


def crash(event, context):
    if event.get("crash"):
        print("about to exit", flush=True)
        os._exit(3)
    return os.getpid()


def unserialisable(event, context):
    return {"pid": os.getpid(), "ids": {1, 2}}


def chatty(event, context):
    print("hello from stdout")
    print("hello from stderr", file=sys.stderr)
    sys.stdout.write("no newline at the end")
    return "done"


def remaining(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.05)
    return {
        "first": first,
        "second": context.get_remaining_time_in_millis(),
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
    }


def spawn(event, context):
    child = subprocess.Popen(["sleep", "30"])
    return {"pid": os.getpid(), "child": child.pid}
"""


class LogSink:
    """Collects (function name, line) pairs from the pump threads."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, function_name: str, line: str) -> None:
        with self._lock:
            self.lines.append((function_name, line))

    def of(self, function_name: str) -> list[str]:
        with self._lock:
            return [line for name, line in self.lines if name == function_name]


WorkerFactory = Callable[..., FunctionWorker]


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    (code / "broken.py").write_text("import module_that_does_not_exist_anywhere\n")
    return code


@pytest.fixture
def log_sink() -> LogSink:
    return LogSink()


@pytest.fixture
def make_worker(code_dir: Path, log_sink: LogSink) -> Iterator[WorkerFactory]:
    workers: list[FunctionWorker] = []

    def make(
        handler: str,
        *,
        name: str = "fn",
        timeout_seconds: float = 1.0,
        environment: dict[str, str] | None = None,
        **options: Any,
    ) -> FunctionWorker:
        worker = FunctionWorker(
            name,
            handler,
            [code_dir],
            environment if environment is not None else {"AWS_REGION": "eu-west-1"},
            timeout_seconds,
            256,
            log_sink,
            **options,
        )
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()


def _payload(result: InvocationResult) -> dict[str, Any]:
    assert not result.failed, result.error
    assert isinstance(result.payload, dict)
    return result.payload


def _assert_gone(pid: int) -> None:
    # Reaped, not a zombie: signal 0 fails only when the process table has no entry left.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_warm_worker_is_reused_between_invocations(make_worker: WorkerFactory) -> None:
    worker = make_worker("handlers.identify")

    first = worker.invoke({"n": 1})
    second = worker.invoke({"n": 2})

    assert first.cold_start
    assert first.init_ms is not None
    assert first.init_ms >= 0
    assert not second.cold_start
    assert second.init_ms is None
    assert _payload(second)["pid"] == _payload(first)["pid"]
    assert _payload(second)["invocations"] == 2  # module state survives, as in a warm sandbox
    assert _payload(second)["event"] == {"n": 2}


def test_prewarm_runs_the_init_phase_so_the_first_invocation_is_warm(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker("handlers.identify")

    assert worker.prewarm() is None
    assert worker.prewarm() is None  # a sandbox is idle already: nothing more starts
    result = worker.invoke({})

    assert not result.cold_start
    assert _payload(result)["invocations"] == 1
    assert make_worker("broken.lambda_handler").prewarm() == {
        "errorType": "Runtime.ImportModuleError",
        "errorMessage": "Unable to import module 'broken': "
        "No module named 'module_that_does_not_exist_anywhere'",
        "requestId": ANY,
        "stackTrace": ANY,
    }


def test_the_function_sees_exactly_its_own_environment(
    make_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PARENT_MARKER, "must not leak")
    passed = {"AWS_REGION": "eu-west-1", "TOKEN_SECRET": "google/access-token"}
    worker = make_worker("handlers.environment", environment=passed)

    seen = _payload(worker.invoke({}))

    assert PARENT_MARKER not in seen
    assert seen == dict(worker.environment)
    assert set(seen) == set(passed) | RUNTIME_VARIABLES
    assert {key: seen[key] for key in passed} == passed
    assert seen["_HANDLER"] == "handlers.environment"
    assert seen["PYTHONUNBUFFERED"] == seen["PYTHONDONTWRITEBYTECODE"] == "1"


def test_the_function_sees_only_its_code_on_sys_path(
    make_worker: WorkerFactory, code_dir: Path, tmp_path: Path
) -> None:
    layer = tmp_path / "layer"
    layer.mkdir()
    worker = FunctionWorker(
        "fn", "handlers.isolation", [code_dir, layer], {}, 1.0, 128, lambda _name, _line: None
    )
    try:
        seen = _payload(worker.invoke({}))
    finally:
        worker.stop()

    assert seen["sys_path"][:2] == [str(code_dir), str(layer)]
    assert str(PROJECT_ROOT) not in seen["sys_path"]
    assert not seen["localcloud_importable"]
    assert seen["cwd"] == str(code_dir)
    assert worker.environment["PYTHONPATH"] == os.pathsep.join([str(code_dir), str(layer)])


def test_the_caller_may_not_override_what_the_runtime_sets(make_worker: WorkerFactory) -> None:
    with pytest.raises(ValueError, match="PYTHONPATH"):
        make_worker("handlers.identify", environment={"PYTHONPATH": "/elsewhere"})
    # Repeating the runtime's own value (as a caller mirroring Lambda's variables does) is fine.
    worker = make_worker("handlers.identify", environment={"_HANDLER": "handlers.identify"})
    assert not worker.invoke({}).failed


def test_a_handler_exception_is_returned_as_lambda_does(make_worker: WorkerFactory) -> None:
    worker = make_worker("handlers.fail")

    result = worker.invoke({"why": "no secret id"}, request_id="request-1")

    assert result.failed
    assert result.payload is None
    assert result.error is not None
    assert result.error["errorType"] == "ValueError"
    assert result.error["errorMessage"] == "bad input: no secret id"
    assert result.error["requestId"] == "request-1"
    trace = result.error["stackTrace"]
    assert isinstance(trace, list)
    assert trace
    assert "handlers.py" in trace[0]
    assert not any("lambda_worker" in frame for frame in trace)
    assert result.request_id == "request-1"
    # The sandbox survives a handled error, as Lambda's does.
    assert not worker.invoke({"why": "again"}).cold_start


def test_a_timeout_kills_the_worker_and_the_next_invocation_starts_cold(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker("handlers.sleep", timeout_seconds=0.5)
    warm_pid = _payload(worker.invoke({"seconds": 0}))["pid"]

    started = time.monotonic()
    result = worker.invoke({"seconds": 30})
    elapsed = time.monotonic() - started

    assert result.error is not None
    assert result.error["errorType"] == "Sandbox.Timedout"
    assert result.error["errorMessage"] == "fn: Task timed out after 0.50 seconds"
    assert not result.cold_start
    assert 0.5 <= elapsed < 2
    assert result.duration_ms >= 500
    _assert_gone(warm_pid)

    after = worker.invoke({"seconds": 0})
    assert after.cold_start
    assert _payload(after)["pid"] != warm_pid


def test_a_crashing_handler_is_an_exit_error_and_the_worker_restarts(
    make_worker: WorkerFactory, log_sink: LogSink
) -> None:
    worker = make_worker("handlers.crash")
    first_pid = worker.invoke({}).payload
    assert isinstance(first_pid, int)

    result = worker.invoke({"crash": True})

    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ExitError"
    assert result.error["errorMessage"] == "fn: Runtime exited with code 3"
    _assert_gone(first_pid)
    assert "about to exit" in log_sink.of("fn")

    after = worker.invoke({})
    assert after.cold_start
    assert not after.failed
    assert after.payload != first_pid


def test_an_import_failure_is_an_import_module_error(make_worker: WorkerFactory) -> None:
    worker = make_worker("broken.lambda_handler")

    for _ in range(2):  # the failed sandbox is not reused: every attempt initialises again
        result = worker.invoke({})
        assert result.cold_start
        assert result.error is not None
        assert result.error["errorType"] == "Runtime.ImportModuleError"
        assert result.error["errorMessage"] == (
            "Unable to import module 'broken': "
            "No module named 'module_that_does_not_exist_anywhere'"
        )


def test_a_missing_handler_function_is_reported(make_worker: WorkerFactory) -> None:
    result = make_worker("handlers.does_not_exist").invoke({})

    assert result.error is not None
    assert result.error["errorType"] == "Runtime.HandlerNotFound"
    assert result.error["errorMessage"] == "Handler 'does_not_exist' missing on module 'handlers'"


def test_an_unserialisable_result_is_a_marshal_error(make_worker: WorkerFactory) -> None:
    worker = make_worker("handlers.unserialisable")

    result = worker.invoke({})

    assert result.error is not None
    assert result.error["errorType"] == "Runtime.MarshalError"
    assert "Unable to marshal response" in str(result.error["errorMessage"])
    assert "set" in str(result.error["errorMessage"])
    assert not worker.invoke({}).cold_start


def test_handler_output_goes_to_the_log_sink_not_into_the_result(
    make_worker: WorkerFactory, log_sink: LogSink
) -> None:
    worker = make_worker("handlers.chatty", name="chatty")

    result = worker.invoke({})

    # Delivered before invoke returns: no waiting needed to scan the logs of an invocation.
    assert result.payload == "done"
    lines = log_sink.of("chatty")
    assert "hello from stdout" in lines
    assert "hello from stderr" in lines
    assert "no newline at the end" in lines
    assert not any("localcloud-log-mark" in line for line in lines)

    worker.invoke({})
    assert log_sink.of("chatty").count("hello from stdout") == 2


def test_a_failing_log_sink_does_not_stall_the_function(
    code_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_sink(_name: str, line: str) -> None:
        raise RuntimeError("sink is down")

    worker = FunctionWorker("fn", "handlers.chatty", [code_dir], {}, 1.0, 128, broken_sink)
    try:
        results = [worker.invoke({}) for _ in range(2)]
    finally:
        worker.stop()

    assert [result.payload for result in results] == ["done", "done"]
    failures = [record for record in caplog.records if "log sink failed" in record.getMessage()]
    assert len(failures) == 2  # once per stream (stdout, stderr), not once per line
    assert not any("hello" in record.getMessage() for record in caplog.records)


def test_the_context_counts_down_from_the_timeout(make_worker: WorkerFactory) -> None:
    worker = make_worker("handlers.remaining", function_arn="arn:aws:lambda:eu-west-1:1:function:x")

    seen = _payload(worker.invoke({}, request_id="request-2"))

    assert 0 < seen["second"] < seen["first"] <= 1000
    assert seen["first"] - seen["second"] >= 40
    assert seen["aws_request_id"] == "request-2"
    assert seen["function_name"] == "fn"
    assert seen["function_version"] == "$LATEST"
    assert seen["invoked_function_arn"] == "arn:aws:lambda:eu-west-1:1:function:x"
    assert seen["memory_limit_in_mb"] == "256"  # a string, as Lambda's runtime gives it
    assert seen["log_group_name"] == "/aws/lambda/fn"
    assert "[$LATEST]" in seen["log_stream_name"]


def test_the_default_arn_uses_the_function_region(make_worker: WorkerFactory) -> None:
    worker = make_worker("handlers.remaining")

    seen = _payload(worker.invoke({}))

    assert seen["invoked_function_arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:fn"


@pytest.mark.parametrize("max_concurrency", [1, 2])
def test_concurrent_invocations_each_get_their_own_result(
    make_worker: WorkerFactory, max_concurrency: int
) -> None:
    worker = make_worker("handlers.sleep", max_concurrency=max_concurrency)
    events = [{"seconds": 0.2, "caller": caller} for caller in range(2)]

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(worker.invoke, events))

    assert [_payload(result)["event"] for result in results] == events
    pids = {_payload(result)["pid"] for result in results}
    # One sandbox serialises the calls; two let Lambda-like scale-out run them side by side.
    assert len(pids) == max_concurrency


def test_stop_leaves_no_process_behind(make_worker: WorkerFactory) -> None:
    worker = make_worker("handlers.spawn", max_concurrency=2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(worker.invoke, [{}, {}]))
    pids = [_payload(result)["pid"] for result in results]
    children = [_payload(result)["child"] for result in results]

    worker.stop()

    for pid in pids:
        _assert_gone(pid)
    for child in children:
        # The handler's own child is killed with the worker's process group (the signal lands
        # asynchronously); it was not ours to reap, so at most a zombie waiting for init remains.
        assert _wait_for_state(child, {None, "Z"}) in {None, "Z"}
    assert worker.invoke({}).cold_start


def _wait_for_state(pid: int, wanted: set[str | None], timeout: float = 2.0) -> str | None:
    deadline = time.monotonic() + timeout
    while (state := _state(pid)) not in wanted and time.monotonic() < deadline:
        time.sleep(0.01)
    return state


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rpartition(")")[2].split()[0]


def test_stop_during_an_invocation_ends_it_with_an_exit_error(make_worker: WorkerFactory) -> None:
    worker = make_worker("handlers.sleep", timeout_seconds=5.0)
    worker.invoke({"seconds": 0})
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(worker.invoke, {"seconds": 5})
        time.sleep(0.2)
        worker.stop()
        result = running.result(timeout=3)

    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ExitError"
    assert result.error["errorMessage"] == "fn: Runtime exited on signal SIGTERM"
    assert worker.invoke({"seconds": 0}).cold_start


def test_the_runtime_finds_and_stops_its_workers(make_worker: WorkerFactory) -> None:
    first = make_worker("handlers.identify", name="first")
    second = make_worker("handlers.identify", name="second")

    with LambdaRuntime() as runtime:
        runtime.register(first)
        runtime.register(second)
        assert runtime.worker("second") is second
        with pytest.raises(ValueError, match="already registered"):
            runtime.register(first)
        with pytest.raises(KeyError, match="third"):
            runtime.worker("third")
        pids = [_payload(runtime.worker(name).invoke({}))["pid"] for name in ("first", "second")]

    for pid in pids:
        _assert_gone(pid)
