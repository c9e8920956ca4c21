"""`python -m localcloud up` as a developer runs it: a subprocess whose output the tests read
line by line, with bounded waits."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from localcloud.deployment import make_client
from localcloud.remote import UpDescription
from localcloud.template import PROJECT_ROOT

READY = "Function logs, failure notices, execution ends and schedule firings follow."
START_TIMEOUT_SECONDS = 120.0
WAIT_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def clean_environment() -> dict[str, str]:
    """This process's environment without what would point a child at another cloud."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_") and name not in {"MOTO_PORT", "LOCALCLOUD_STATE_FILE"}
    }


def localcloud(
    *arguments: str, timeout: float = 90.0, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """One `python -m localcloud ...` command, run from the project root."""
    return subprocess.run(
        [sys.executable, "-m", "localcloud", *arguments],
        cwd=PROJECT_ROOT,
        env={**clean_environment(), **(environment or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class UpProcess:
    """A running `up`; its output is collected by a reader thread as it is printed."""

    def __init__(
        self,
        state_file: Path,
        *arguments: str,
        port: int | None = None,
        command: tuple[str, ...] = (sys.executable, "-m", "localcloud", "up"),
    ) -> None:
        """`command` is how `up` is started (a documented line, say); the port, the state file
        and `arguments` follow it."""
        self.port = port or free_port()
        self.state_file = state_file
        self.process = subprocess.Popen(
            [
                *command,
                "--port",
                str(self.port),
                "--state-file",
                str(state_file),
                *arguments,
            ],
            cwd=PROJECT_ROOT,
            env=clean_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="up-output", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def mark(self) -> int:
        """Where the output stands now: wait_for(start=mark) sees only what follows."""
        with self._changed:
            return len(self.lines)

    def output(self, start: int = 0) -> str:
        with self._changed:
            return "\n".join(self.lines[start:])

    def wait_for(
        self, pattern: str, *, start: int = 0, timeout: float = WAIT_TIMEOUT_SECONDS
    ) -> int:
        """The index of the first line from `start` on that matches `pattern` (re.search),
        waiting at most `timeout` seconds; fails with the output's end otherwise."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = start
        with self._changed:
            while True:
                for index in range(checked, len(self.lines)):
                    if compiled.search(self.lines[index]):
                        return index
                checked = max(checked, len(self.lines))
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    tail = "\n".join(self.lines[-60:])
                    state = "ended" if self._ended else f"still silent after {timeout} s"
                    raise AssertionError(f"no line matches {pattern!r} ({state}):\n{tail}")
                self._changed.wait(remaining)

    def wait_ready(self) -> None:
        self.wait_for(re.escape(READY), timeout=START_TIMEOUT_SECONDS)

    def pause_the_sweep(self) -> None:
        """Lets the freshness sweep's first run (due when `up` starts; it rotates the placeholder)
        end, then disables its schedule through the scheduler API, as an operator could: tests
        that start rotations themselves then never race a sweep's RotateSecret."""
        self.wait_for(r"\[scheduler\].*/\S*FreshnessSweepSchedule\S* fired ")
        scheduler = self.client("scheduler")
        for group in ("default",):
            for listed in scheduler.list_schedules(GroupName=group)["Schedules"]:
                if "FreshnessSweepSchedule" not in listed["Name"]:
                    continue
                schedule = scheduler.get_schedule(GroupName=group, Name=listed["Name"])
                scheduler.update_schedule(
                    GroupName=group,
                    Name=schedule["Name"],
                    ScheduleExpression=schedule["ScheduleExpression"],
                    FlexibleTimeWindow=schedule["FlexibleTimeWindow"],
                    Target=schedule["Target"],
                    State="DISABLED",
                )

    def description(self) -> UpDescription:
        return UpDescription.from_json(self.state_file.read_text())

    def client(self, service: str) -> Any:
        return make_client(self.endpoint, service, {})

    def worker_pids(self) -> list[int]:
        """The Lambda worker processes `up` started (its children running lambda_worker.py)."""
        return [pid for pid in _children(self.pid) if "lambda_worker.py" in _cmdline(pid)]

    def stop(self, number: signal.Signals = signal.SIGTERM) -> int:
        """Sends the signal and waits (bounded) for the exit status; kills it if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(number)
        try:
            return self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self._reader.join(5)


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces; the parent pid follows the state.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            children.append(int(entry.name))
    return children


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def process_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its parent."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def json_output(completed: subprocess.CompletedProcess[str]) -> Any:
    assert completed.returncode == 0, f"exit {completed.returncode}: {completed.stderr[-3000:]}"
    return json.loads(completed.stdout)
