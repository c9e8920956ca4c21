"""`python -m localcloud up`: deploy once, keep serving, and show what happens.

It deploys template.yaml, stores a key of a new Google service account, warms one sandbox of
every function, describes itself (state file and SSM parameter, see localcloud.remote), prints
the banner, and then fires due schedules on the cloud's clock (localcloud.scheduler, checked
every few seconds in a thread of its own) and streams function logs, failure notices, execution
ends (localcloud.watch) and schedule firings until SIGINT, SIGTERM or SIGHUP, after which it stops
its scheduler, workers, servers and state file and exits 0."""

import contextlib
import json
import os
import select
import shlex
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO, cast, override

from localcloud.cloud import REGION, LocalCloud
from localcloud.demo import DEMO_PARAMETERS
from localcloud.deployment import CURRENT, PENDING, client_environment
from localcloud.intrinsics import TemplateError
from localcloud.operations import subscribe_queue
from localcloud.rehearsal import (
    RehearsalError,
    advance_clock,
    create_key,
    delete_stored_key,
    end_failures,
    fail_next,
    list_keys,
    set_key_expiry_policy,
)
from localcloud.remote import (
    DEFAULT_STATE_FILE,
    SSM_PARAMETER,
    STATE_FILE_VARIABLE,
    UpDescription,
    refuse_to_start,
    remove_state,
    write_state,
)
from localcloud.scheduler import Firing, LocalScheduler, ScheduleKey
from localcloud.watch import Console, LogFormat, Watcher, short_text

NOTICES_QUEUE: Final = "localcloud-up-notices"
_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_MAX_BODY_BYTES: Final = 1 << 16
SCHEDULER_TICK_SECONDS: Final = 2.0
"""How often `up` looks for due schedules: AWS fires within the minute a schedule is due."""
# A firing in flight when `up` stops (a rotation, a sweep) is abandoned after this.
_SCHEDULER_STOP_SECONDS: Final = 5.0


def run_up(
    *,
    port: int = 0,
    scopes: str | None = None,
    state_path: Path,
    log_format: LogFormat = "compact",
    out: TextIO = sys.stdout,
) -> int:
    """Serves until a stop signal; 0 then, 1 when it could not start, 2 on bad parameters."""
    stop = _StopRequest()
    with stop.installed():
        refusal = refuse_to_start(state_path, port)
        if refusal is not None:
            print(refusal, file=sys.stderr)
            return 1
        parameters = {**DEMO_PARAMETERS, **({"GoogleScopes": scopes} if scopes else {})}
        cloud = LocalCloud(port=port)
        try:
            cloud.start()
        except OSError as error:
            print(f"cannot serve on 127.0.0.1:{port}: {error.strerror}", file=sys.stderr)
            cloud.stop()
            return 1
        serving = _Serving(cloud, state_path, out)
        try:
            try:
                serving.start(parameters, log_format)
            except TemplateError as error:
                print(f"cannot deploy: {error}", file=sys.stderr)
                return 2
            _say(out, _READY_LINE)
            stop.wait()
            _say(out, f"stopping ({stop.reason})")
        finally:
            serving.close()
        _say(out, "stopped")
    return 0


def _say(out: TextIO, line: str) -> None:
    # After SIGHUP the terminal may be gone: stopping must not fail for want of a reader.
    with contextlib.suppress(OSError, ValueError):
        print(line, file=out, flush=True)


class _Serving:
    """One `up` from deploy to stop: the cloud, its control server, its watcher, its state."""

    def __init__(self, cloud: LocalCloud, state_path: Path, out: TextIO) -> None:
        self.cloud = cloud
        self.state_path = state_path
        self.out = out
        self.control: _ControlServer | None = None
        self.watcher: Watcher | None = None
        self.firer: _ScheduleFirer | None = None

    def start(self, parameters: dict[str, str], log_format: LogFormat) -> None:
        cloud = self.cloud
        deployment = cloud.deploy(parameters)
        account = cloud.google.create_service_account()
        cloud.store_service_account_key(account)
        init_errors = cloud.prewarm()
        queue_url = subscribe_queue(cloud, deployment.topic_arn, name=NOTICES_QUEUE)
        self.control = _ControlServer(cloud)
        self.control.start()
        description = UpDescription.of(
            pid=os.getpid(),
            endpoint=cloud.endpoint,
            control_url=self.control.url,
            region=REGION,
            deployment=deployment,
            google_token_url=cloud.google.token_url,
            google_tokeninfo_url=cloud.google.tokeninfo_url,
            notices_queue_url=queue_url,
        )
        self.control.description = description
        cloud.client("ssm").put_parameter(
            Name=SSM_PARAMETER, Value=description.to_json(), Type="String", Overwrite=True
        )
        console = Console(self.out, [*deployment.functions, "execution", "notice", "scheduler"])
        self.watcher = Watcher(
            cloud,
            deployment,
            console,
            subscribe_logs=cloud.logs.subscribe,
            notices_queue_url=queue_url,
            log_format=log_format,
        )
        self.watcher.start()
        write_state(self.state_path, description)
        _print_banner(
            self.out,
            description,
            self.state_path,
            parameters["GoogleScopes"],
            account.client_email,
        )
        for name, init_error in init_errors.items():
            print(f"  warning: {name} failed its init phase: {init_error}", file=self.out)
        self.firer = _ScheduleFirer(LocalScheduler(cloud), console)
        self.firer.start()

    def close(self) -> None:
        # The console goes quiet first: once "stopping" is said, a firing still in flight (the
        # sweep's first run rotates the placeholder) is abandoned, not narrated.
        if self.watcher is not None:
            self.watcher.stop()
        if self.firer is not None:
            self.firer.stop()
        remove_state(self.state_path, os.getpid())
        if self.control is not None:
            self.control.stop()
        self.cloud.stop()


_READY_LINE: Final = (
    "Function logs, failure notices, execution ends and schedule firings follow. "
    "Ctrl-C or SIGTERM stops the cloud."
)


def _print_banner(
    out: TextIO, up: UpDescription, state_path: Path, scopes: str, account: str
) -> None:
    token_secret = up.refs["TokenSecret"]
    machine = up.refs["RotationStateMachine"]
    python = _python_command()
    manual_input = json.dumps({"SecretId": token_secret})
    rows = [
        ("AWS endpoint", f"{up.endpoint}  (moto; region {up.region}, any credentials)"),
        ("Google token", up.google_token_url),
        ("Google tokeninfo", up.google_tokeninfo_url),
        ("GoogleScopes", scopes),
        ("token secret", token_secret),
        ("key secret", f"{up.refs['ServiceAccountKeySecret']}  (a key of {account})"),
        ("state machine", machine),
        ("failure topic", f"{up.refs['FailureTopic']}  (notices are printed here)"),
        (
            "control",
            f"{up.control_url}  (POST /begin-rotation, /google/<action>, /clock/advance; GET / "
            "describes this cloud)",
        ),
        (
            "schedules",
            "fire here when due, on this cloud's clock: EventBridge Scheduler schedules of every "
            f"group and the rotation schedule (checked every {SCHEDULER_TICK_SECONDS:g} s)",
        ),
        ("state file", f"{state_path}  (removed when `up` stops)"),
    ]
    exports = client_environment(up.endpoint)
    # `python -m stacktools check` asks Google's tokeninfo about the token: here, the emulator.
    exports["GOOGLE_TOKENINFO_URL"] = up.google_tokeninfo_url
    if state_path.resolve() != DEFAULT_STATE_FILE:
        # invoke and start-execution look for the default state file unless told otherwise.
        exports[STATE_FILE_VARIABLE] = str(state_path.resolve())
    lines = [
        f"The local cloud is up (pid {up.pid}): template.yaml deployed as {up.stack_name}.",
        *(f"  {label:<17}{value}" for label, value in rows),
        "",
        "In another shell (the AWS CLI reads AWS_ENDPOINT_URL since v2.13 and v1.29):",
        *(f"  export {name}={shlex.quote(value)}" for name, value in exports.items()),
        "  aws secretsmanager get-secret-value --secret-id "
        f"{token_secret} --version-stage {CURRENT}",
        f"  aws secretsmanager rotate-secret --secret-id {token_secret}",
        f"  aws stepfunctions start-execution --state-machine-arn {machine} "
        f"--name manual-$(date +%s) --input {shlex.quote(manual_input)}",
        f"  aws stepfunctions list-executions --state-machine-arn {machine}",
        "Sample events run on this cloud (the state file points them here):",
        f"  {python} -m localcloud invoke CreateSecretFunction "
        "-e events/steps/create_secret.json --begin-rotation",
        f"  {python} -m localcloud invoke SetSecretFunction -e events/steps/set_secret.json",
        f"  {python} -m localcloud start-execution -e events/statemachine/manual_rotation.json",
        "Rehearse a failure and its runbook entry (docs/runbook.md), e.g. a key deleted at Google:",
        f"  {python} -m localcloud google delete-key",
        "",
    ]
    out.write("\n".join(lines) + "\n")
    out.flush()


def _python_command() -> str:
    executable = Path(sys.executable)
    try:
        return str(executable.relative_to(Path.cwd()))
    except ValueError:
        return str(executable)


class _ScheduleFirer:
    """Fires due schedules in a thread of its own and says each firing on the console, with
    what the local cloud cannot fire (once each); it outlives a failed look, saying so once."""

    def __init__(self, scheduler: LocalScheduler, console: Console) -> None:
        self._scheduler = scheduler
        self._console = console
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="localcloud-scheduler", daemon=True)
        self._said_unsupported: dict[ScheduleKey, str] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(_SCHEDULER_STOP_SECONDS)

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                firings = self._scheduler.fire_due()
            except Exception as error:  # `up` goes on serving; the next look may succeed
                if not failing and not self._stop.is_set():
                    self._say(f"firing due schedules failed (retrying quietly): {error!r}")
                failing = True
            else:
                failing = False
                for firing in firings:
                    self._say(describe_firing(firing))
                self._say_unsupported()
            self._stop.wait(SCHEDULER_TICK_SECONDS)

    def _say_unsupported(self) -> None:
        unsupported = self._scheduler.unsupported
        for (group, name), reason in unsupported.items():
            if self._said_unsupported.get((group, name)) != reason:
                self._say(f"{group}/{name} is not fired by the local cloud: {reason}")
        self._said_unsupported = dict(unsupported)

    def _say(self, text: str) -> None:
        if not self._stop.is_set():
            self._console.line("scheduler", text)


_REATTEMPTED = "A previous rotation isn't complete. That rotation will be reattempted."


def describe_firing(firing: Firing) -> str:
    """One console line: what fired, which call, when it was due, how the call ended."""
    due = time.strftime("%H:%M:%S", time.localtime(firing.due_at))
    what = (
        f"{firing.group}/{firing.name}"
        if firing.kind == "schedule"
        else f"rotation schedule of {firing.name}"
    )
    outcome = (
        f"failed: {firing.error_code}: {short_text(firing.error_message or '')}"
        if firing.failed
        else "ok"
    )
    if _REATTEMPTED in (firing.error_message or ""):
        # As on AWS: the retry a failure notice promised, answered with a refusal that is not one.
        outcome += (
            " -> expected after a failed rotation: Secrets Manager re-attempts that rotation now "
            "(docs/runbook.md#failure-notices)"
        )
    return f"{what} fired {firing.target} (due {due}): {outcome}"


class _StopRequest:
    """SIGINT, SIGTERM and SIGHUP all ask for the same clean stop; a second signal changes
    nothing (the stop is bounded), so workers are never left behind by an impatient Ctrl-C.

    The handler only records the signal (taking a lock in a handler can deadlock the thread it
    interrupts); the signal's byte on the wakeup socket ends the main thread's wait at once."""

    def __init__(self) -> None:
        self.reason = ""

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        if not self.reason:
            self.reason = signal.Signals(number).name

    @contextmanager
    def installed(self) -> Iterator[None]:
        self._wake, wakeup = socket.socketpair()
        with self._wake, wakeup:
            wakeup.setblocking(False)
            previous_fd = signal.set_wakeup_fd(wakeup.fileno())
            previous = {number: signal.signal(number, self._handle) for number in _STOP_SIGNALS}
            try:
                yield
            finally:
                for number, handler in previous.items():
                    signal.signal(number, handler)
                signal.set_wakeup_fd(previous_fd)

    def wait(self) -> None:
        while not self.reason:
            select.select([self._wake], [], [])
            with contextlib.suppress(BlockingIOError):
                self._wake.recv(64, socket.MSG_DONTWAIT)


class _ControlServer(ThreadingHTTPServer):
    """What no AWS API offers, for commands in other processes: GET / describes this `up`;
    POST /begin-rotation {"SecretId", "ClientRequestToken"} makes the empty AWSPENDING version
    Secrets Manager creates before it calls createSecret."""

    daemon_threads = True

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        self.description: UpDescription | None = None
        self._thread: threading.Thread | None = None
        super().__init__(("127.0.0.1", 0), _ControlHandler)

    @override
    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="localcloud-control",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(2.0)

    def begin_rotation(self, request: Any) -> tuple[int, dict[str, object]]:
        if not isinstance(request, dict):
            return 400, {"error": "send a JSON object with SecretId and ClientRequestToken"}
        secret_id, token = request.get("SecretId"), request.get("ClientRequestToken")
        if not (isinstance(secret_id, str) and secret_id and isinstance(token, str) and token):
            return 400, {"error": "SecretId and ClientRequestToken must be non-empty strings"}
        secretsmanager = self.cloud.client("secretsmanager")
        try:
            described = secretsmanager.describe_secret(SecretId=secret_id)
        except secretsmanager.exceptions.ResourceNotFoundException:
            return 404, {"error": f"this cloud has no secret {secret_id!r}"}
        arn = described["ARN"]
        stages = described.get("VersionIdsToStages", {}).get(token)
        if stages is None:
            self.cloud.begin_rotation(arn, token)
            return 200, {"SecretId": arn, "VersionId": token, "Created": True}
        if stages == [PENDING]:
            # Begun already (createSecret may have filled it): createSecret is idempotent.
            return 200, {"SecretId": arn, "VersionId": token, "Created": False}
        labels = ", ".join(stages) or "no label"
        finished = " (that rotation finished)" if CURRENT in stages else ""
        return 409, {
            "error": f"version {token} of {arn} exists with {labels}{finished}: Secrets Manager "
            "never begins a rotation on a used ClientRequestToken; give the event a new one "
            "(the same in every step's event)"
        }


_REHEARSAL_ACTIONS: Final[dict[str, Callable[[LocalCloud, Any], dict[str, Any]]]] = {
    "/google/delete-key": lambda cloud, _request: delete_stored_key(cloud),
    "/google/create-key": lambda cloud, _request: create_key(cloud),
    "/google/list-keys": lambda cloud, _request: list_keys(cloud),
    "/google/key-expiry-policy": set_key_expiry_policy,
    "/google/fail": fail_next,
    "/google/recover": lambda cloud, _request: end_failures(cloud),
    "/clock/advance": advance_clock,
}
"""What happens at Google, for `python -m localcloud google ...`, and time passing at once
(localcloud.rehearsal)."""


class _ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def _server(self) -> _ControlServer:
        return cast(_ControlServer, self.server)

    @override
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        description = self._server.description
        if self.path.split("?", 1)[0] != "/" or description is None:
            self._reply(404, {"error": "GET / only"})
            return
        self._reply(200, json.loads(description.to_json()))

    def do_POST(self) -> None:
        if self.path != "/begin-rotation" and self.path not in _REHEARSAL_ACTIONS:
            self._reply(404, {"error": f"POST /begin-rotation or {', '.join(_REHEARSAL_ACTIONS)}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY_BYTES:
            self._reply(413, {"error": "request too large"})
            return
        try:
            request = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            self._reply(400, {"error": "the body is not JSON"})
            return
        try:
            if self.path in _REHEARSAL_ACTIONS:
                status, body = 200, _REHEARSAL_ACTIONS[self.path](self._server.cloud, request)
            else:
                status, body = self._server.begin_rotation(request)
        except RehearsalError as error:
            status, body = 400, {"error": str(error)}
        except Exception as error:  # the caller gets the reason; `up` goes on serving
            status, body = 500, {"error": f"{type(error).__name__}: {error}"}
        self._reply(status, body)

    def _reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
