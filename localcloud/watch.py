"""What `python -m localcloud up` shows while it runs: every function's log lines as they are
printed, every failure notice as it is published, and every execution's end.

Log lines come from the LogBook's listeners (no polling); notices from an SQS queue subscribed to
the failure topic (long polling); execution ends from ListExecutions, polled quickly while an
execution runs or a function has just logged, and once a second otherwise."""

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal, TextIO

from localcloud.deployment import Clients, Deployment

LogFormat = Literal["compact", "json"]

# Powertools' context keys, the same on every line of an invocation: the prefix says the function.
_CONTEXT_KEYS: Final = frozenset(
    {
        "level",
        "message",
        "timestamp",
        "location",
        "service",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "xray_trace_id",
        "sampling_rate",
        "secret_id",
    }
)
# From an `outcome` or `result` object, only what says how the step went.
_SUMMARY_KEYS: Final = {
    "Action": "action",
    "Status": "status",
    "Attempt": "attempt",
    "ExpiresAt": "expires",
    "SupersededVersionId": "superseded",
    "PreviousVersionId": "previous",
}
_VERSION_KEYS: Final = frozenset({"superseded", "previous", "version_id"})
_MAX_VALUE_CHARS: Final = 300
_BUSY_POLL_SECONDS: Final = 0.2
_IDLE_POLL_SECONDS: Final = 1.0
_NOTICE_WAIT_SECONDS: Final = 1


def render_log_line(line: str) -> str:
    """A powertools JSON record as `LEVEL message  key=value ...` with the context keys left
    out, ids shortened (versions to 8 characters, executions to their names) and long values
    cut; any other line as it is."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or "message" not in record:
        return line
    fields: list[str] = []
    version = record.get("client_request_token")
    for key, value in record.items():
        if key in _CONTEXT_KEYS or (key == "version_id" and value == version):
            continue
        fields.extend(_fields(key, value))
    text = f"{record.get('level', '')!s:<5} {_one_line(str(record['message']))}"
    return f"{text}  {' '.join(fields)}" if fields else text


def _fields(key: str, value: object) -> Iterable[str]:
    if key == "client_request_token":
        yield f"version={_short_id(value)}"
    elif key == "execution_arn" and isinstance(value, str):
        yield f"execution={value.rsplit(':', 1)[-1]}"
    elif key in {"outcome", "result"} and isinstance(value, dict):
        for source, name in _SUMMARY_KEYS.items():
            if source in value:
                yield from _fields(name, value[source])
    elif key in _VERSION_KEYS:
        yield f"{key}={_short_id(value)}"
    else:
        yield f"{key}={_value(value)}"


def _short_id(value: object) -> str:
    return value[:8] if isinstance(value, str) and value else _value(value)


def _value(value: object) -> str:
    if isinstance(value, str):
        text = _one_line(value)
        if not text or " " in text:
            text = json.dumps(text, ensure_ascii=False)
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return _cut(text)


def short_text(text: str) -> str:
    """A message as one console line: on one line, long ones cut."""
    return _cut(_one_line(text))


def _one_line(text: str) -> str:
    """Runs of whitespace with a line break or tab in them become one space."""
    return " ".join(text.split()) if any(c in text for c in "\r\n\t\v\f") else text


def _cut(text: str, limit: int = _MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Console:
    """Whole lines from many threads onto one stream, each stamped with the local time and
    prefixed by its source in brackets; a closed stream (`up | head`) silences it."""

    def __init__(
        self,
        stream: TextIO,
        sources: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._width = max((len(source) for source in sources), default=0) + 2
        self._lock = threading.Lock()
        self._broken = False

    def line(self, source: str, text: str, body: Iterable[str] = ()) -> None:
        now = self._clock()
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
        lines = [f"{stamp} {f'[{source}]':<{self._width}} {text}"]
        lines.extend(f"    {extra}" for extra in body)
        with self._lock:
            if self._broken:
                return
            try:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                self._broken = True


class Watcher:
    """Streams one deployment's function logs, failure notices and execution ends to a
    Console until stopped."""

    def __init__(
        self,
        clients: Clients,
        deployment: Deployment,
        console: Console,
        *,
        subscribe_logs: Callable[[Callable[[str, str], None]], Callable[[], None]],
        notices_queue_url: str | None = None,
        log_format: LogFormat = "compact",
    ) -> None:
        self._clients = clients
        self._deployment = deployment
        self._console = console
        self._subscribe_logs = subscribe_logs
        self._queue_url = notices_queue_url
        self._log_format = log_format
        self._logical_ids = {name: logical for logical, name in deployment.functions.items()}
        self._stop = threading.Event()
        self._activity = threading.Event()
        self._reported: set[str] = set()
        self._failed: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        # What ended before the watch began is history, not news.
        self._report_ended_executions(announce=False)
        self._unsubscribe = self._subscribe_logs(self._on_log_line)
        workers: list[tuple[str, Callable[[], None]]] = [("executions", self._watch_executions)]
        if self._queue_url is not None:
            workers.append(("notices", self._watch_notices))
        for name, target in workers:
            thread = threading.Thread(target=target, name=f"localcloud-watch-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 0.1) -> None:
        """Stops listening; a poll in flight is abandoned (its thread is a daemon and says
        nothing once stopped), so that stopping never waits for a long poll."""
        self._stop.set()
        self._activity.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _on_log_line(self, function_name: str, line: str) -> None:
        if self._stop.is_set():
            return
        source = self._logical_ids.get(function_name, function_name)
        self._console.line(source, line if self._log_format == "json" else render_log_line(line))
        # A function at work: an execution may be about to end.
        self._activity.set()

    # --- executions --------------------------------------------------------------------------

    def _watch_executions(self) -> None:
        while not self._stop.is_set():
            running = self._guarded("executions", self._report_ended_executions)
            if running:
                self._stop.wait(_BUSY_POLL_SECONDS)
            else:
                self._activity.wait(_IDLE_POLL_SECONDS)
                self._activity.clear()

    def _report_ended_executions(self, *, announce: bool = True) -> bool:
        """Reports each execution that ended since the last look; True while any runs."""
        sfn = self._clients.client("stepfunctions")
        listed = sfn.list_executions(
            stateMachineArn=self._deployment.state_machine_arn, maxResults=100
        )["executions"]
        running = False
        # Oldest first, so that a burst of ends reads in order.
        for execution in reversed(listed):
            arn = execution["executionArn"]
            if arn in self._reported:
                continue
            if execution["status"] == "RUNNING":
                running = True
                continue
            self._reported.add(arn)
            if announce and not self._stop.is_set():
                self._console.line("execution", self._describe_end(sfn, execution))
        return running

    @staticmethod
    def _describe_end(sfn: Any, execution: Mapping[str, Any]) -> str:
        seconds = (execution["stopDate"] - execution["startDate"]).total_seconds()
        text = f"{execution['name']} {execution['status']} in {seconds:.2f} s"
        if execution["status"] == "SUCCEEDED":
            return text
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        error = described.get("error")
        cause = _cause_message(described.get("cause"))
        return f"{text}: {error}" + (f": {short_text(cause)}" if cause else "")

    # --- notices -----------------------------------------------------------------------------

    def _watch_notices(self) -> None:
        while not self._stop.is_set():
            if self._guarded("notices", self._receive_notices) is None:
                self._stop.wait(_IDLE_POLL_SECONDS)

    def _receive_notices(self) -> bool:
        sqs = self._clients.client("sqs")
        messages = sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=_NOTICE_WAIT_SECONDS,
        ).get("Messages", [])
        for message in messages:
            if self._stop.is_set():
                break
            subject, body = _notice(message["Body"])
            self._console.line("notice", subject, body)
            sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        return True

    def _guarded[T](self, what: str, poll: Callable[[], T]) -> T | None:
        """A failed poll is said once per kind and retried; after stop() it says nothing."""
        try:
            return poll()
        except Exception as error:  # a watcher must outlive a failed poll
            if not self._stop.is_set() and what not in self._failed:
                self._failed.add(what)
                self._console.line(
                    "localcloud", f"watching {what} failed (retrying quietly): {error!r}"
                )
            return None


def _cause_message(cause: object) -> str:
    """A Lambda error's message out of an execution's cause; the cause itself otherwise."""
    if not isinstance(cause, str):
        return ""
    with contextlib.suppress(ValueError):
        parsed = json.loads(cause)
        message = parsed.get("errorMessage") if isinstance(parsed, dict) else None
        if isinstance(message, str):
            return message
    return cause


def _notice(body: str) -> tuple[str, list[str]]:
    """(Subject, the Message's lines) of an SNS envelope delivered to SQS."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return "(not an SNS envelope)", [body]
    subject = str(envelope.get("Subject") or "(no subject)")
    message = str(envelope.get("Message", ""))
    try:
        return subject, json.dumps(json.loads(message), indent=2).splitlines()
    except ValueError:
        return subject, message.splitlines()
