"""The Node.js example (examples/node) run for real: `node list-events.mjs` reads the token secret
of a stack deployed on the local cloud through the AWS SDK for JavaScript and lists a calendar
of the Google emulator with google-auth-library and @googleapis/calendar."""

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import IO
from urllib.parse import unquote

import pytest

from localcloud.google_emulator import RecordedRequest
from localcloud.operations import rotate_on_schedule, start_manual
from localcloud.template import PROJECT_ROOT
from tests.e2e.stacks import SecretMaterial, Stack
from tests.support import unconfigured_aws

EXAMPLE = PROJECT_ROOT / "examples" / "node"


def node() -> str:
    """The node binary; `make test` installs the example's packages first (npm ci), so both being
    absent is a broken set-up, not a reason to skip."""
    found = shutil.which("node")
    assert found is not None, "node not found: install Node.js 20 or later to test examples/node"
    assert (EXAMPLE / "node_modules").is_dir(), (
        "examples/node/node_modules is missing: run `make examples/node/node_modules/.installed`"
        " (npm ci from the lock file)"
    )
    return found


CALENDAR = "team-calendar@example.com"
LEAD = timedelta(seconds=900)
WAIT_SECONDS = 30.0


def node_environment(stack: Stack) -> dict[str, str]:
    """Only what the example needs: the local cloud's AWS variables, and no AWS profile or
    credentials of whoever runs the tests."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **stack.cloud.client_environment(),
        "TOKEN_SECRET_ID": stack.secret_arn,
        "CALENDAR_ID": CALENDAR,
        "GOOGLE_API_ROOT_URL": stack.cloud.google.api_root_url,
    }


def list_events(stack: Stack, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node(), "list-events.mjs", *arguments],
        cwd=EXAMPLE,
        env=node_environment(stack),
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )


def rotate(stack: Stack) -> str:
    """A manual rotation; returns the new AWSCURRENT token."""
    assert start_manual(stack.cloud, stack.deployment).status == "SUCCEEDED"
    token: str = stack.current()["GOOGLE_ACCESS_TOKEN"]
    assert token
    return token


def calendar_requests(stack: Stack) -> list[RecordedRequest]:
    return [r for r in list(stack.cloud.google.requests) if r.path.startswith("/calendar/")]


def add_team_calendar(stack: Stack) -> list[tuple[str, str]]:
    """The calendar, readable by the stack's service account: two upcoming events and one
    already over; returns the upcoming ones as the example prints them (start, summary)."""
    google = stack.cloud.google
    google.add_calendar(CALENDAR, readers=[stack.account.client_email])
    # Days ahead of the simulated clock, which only ever runs ahead of node's real one.
    now = datetime.fromtimestamp(stack.cloud.clock.now(), UTC).replace(microsecond=0)
    review, standup = now + timedelta(days=3), now + timedelta(days=2)
    google.add_event(CALENDAR, "Design review", review, review + timedelta(hours=1))
    google.add_event(CALENDAR, "Standup", standup, standup + timedelta(minutes=15))
    # Over before node's timeMin (real now): not listed.
    over = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    google.add_event(CALENDAR, "Retro", over, over + timedelta(hours=1))
    return [
        (standup.strftime("%Y-%m-%dT%H:%M:%SZ"), "Standup"),
        (review.strftime("%Y-%m-%dT%H:%M:%SZ"), "Design review"),
    ]


def test_lists_the_calendar_with_the_awscurrent_token(
    stack: Stack, secret_material: SecretMaterial
) -> None:
    token = rotate(stack)
    upcoming = add_team_calendar(stack)

    result = list_events(stack)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        f"Upcoming events in {CALENDAR}:",
        *(f"{start}  {summary}" for start, summary in upcoming),
    ]
    [request] = calendar_requests(stack)
    assert (request.method, unquote(request.path), request.status) == (
        "GET",
        f"/calendar/v3/calendars/{CALENDAR}/events",
        200,
    )
    assert request.bearer == token
    assert {key: request.query[key] for key in ("singleEvents", "orderBy", "maxResults")} == {
        "singleEvents": "true",
        "orderBy": "startTime",
        "maxResults": "10",
    }
    assert datetime.fromisoformat(request.query["timeMin"]) <= datetime.now(UTC)
    assert token not in result.stdout + result.stderr
    assert secret_material.found_in(result.stdout + result.stderr) == []


def test_the_placeholder_fails_with_what_to_do(stack: Stack) -> None:
    assert stack.current() == {"GOOGLE_ACCESS_TOKEN": ""}

    result = list_events(stack)

    assert (result.returncode, result.stdout) == (1, "")
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"list-events: secret {stack.secret_arn} still holds the placeholder"
        " (GOOGLE_ACCESS_TOKEN is empty): no rotation has succeeded yet."
    )
    assert f"aws secretsmanager rotate-secret --secret-id {stack.secret_arn}" in line
    assert calendar_requests(stack) == []


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        (
            {},
            "list-events: no AWS region to read secret google/access-token in: set AWS_REGION "
            "(or region in the AWS profile), or create the SecretsManagerClient with { region }",
        ),
        (
            {"AWS_REGION": "us-east-1"},
            "list-events: no usable AWS credentials to read secret google/access-token: run the "
            "application with an IAM role (Lambda or ECS task role, EC2 instance profile), or set "
            "AWS_PROFILE to a profile in ~/.aws/config, or set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (AWS: Could not load credentials from any providers)",
        ),
    ],
    ids=["no-region", "no-credentials"],
)
def test_no_region_or_no_credentials_says_what_to_set(
    tmp_path: Path, environment: dict[str, str], expected: str
) -> None:
    """No AWS variables of whoever runs the tests, empty AWS files, no instance metadata, and an
    endpoint nothing answers on (a request sent would fail otherwise)."""
    result = subprocess.run(
        [node(), "list-events.mjs"],
        cwd=EXAMPLE,
        env={
            "PATH": os.environ.get("PATH", ""),
            **unconfigured_aws(tmp_path),
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            **environment,
        },
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )

    assert (result.returncode, result.stdout, result.stderr) == (1, "", expected + "\n")


class Reader:
    """A running `list-events.mjs --every ...`: its stdout lines, as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.ended = False
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        threading.Thread(target=self._pump, args=(process.stdout,), daemon=True).start()

    def _pump(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _next(self, what: str, deadline: float) -> None:
        """Takes the next line, or the end of the output, waiting at most 50 ms for it."""
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {WAIT_SECONDS} s; stdout so far: {self.lines}")
        try:
            line = self._queue.get(timeout=0.05)
        except queue.Empty:
            return
        if line is None:
            self.ended = True
        else:
            self.lines.append(line)

    def wait_for(self, what: str, done: Callable[[], bool]) -> None:
        """Collects lines until `done()`; fails when the reader exits or time runs out."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not done():
            self._next(what, deadline)
            if self.ended:
                self.process.wait(timeout=WAIT_SECONDS)
                assert self.process.stderr is not None
                stderr = self.process.stderr.read()
                pytest.fail(f"the reader exited before {what}: {self.lines}, stderr: {stderr}")

    def rounds(self) -> int:
        return len(self.lines)

    def stop(self) -> str:
        """Stops the reader as a service manager would (SIGTERM), collects its last lines and
        returns its stderr."""
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WAIT_SECONDS
        while not self.ended:
            self._next("end of output", deadline)
        self.process.wait(timeout=WAIT_SECONDS)
        assert self.process.stderr is not None
        return self.process.stderr.read()


@pytest.fixture
def start_reader(stack: Stack) -> Iterator[Callable[..., Reader]]:
    readers: list[Reader] = []

    def start(*arguments: str) -> Reader:
        process = subprocess.Popen(
            [node(), "list-events.mjs", *arguments],
            cwd=EXAMPLE,
            env=node_environment(stack),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        readers.append(Reader(process))
        return readers[-1]

    yield start
    for reader in readers:
        if reader.process.poll() is None:
            reader.process.kill()
        reader.process.wait()
        for stream in (reader.process.stdout, reader.process.stderr):
            if stream is not None:
                stream.close()


def test_a_long_running_reader_moves_to_the_next_token_when_google_refuses_the_old(
    stack: Stack, secret_material: SecretMaterial, start_reader: Callable[..., Reader]
) -> None:
    first = rotate(stack)
    first_expires_at = datetime.fromisoformat(stack.current()["expires_at"])
    add_team_calendar(stack)
    reader = start_reader("--every", "0.1", "--times", "1000")
    reader.wait_for("a first round", lambda: reader.rounds() >= 1)

    # The refresh a lead before the first token expires, as its schedule starts it: the secret
    # holds the next token, and the reader keeps the first one, which Google still accepts.
    stack.cloud.clock.advance_to((first_expires_at - LEAD).timestamp())
    assert {e.status for e in rotate_on_schedule(stack.cloud, stack.deployment)} == {"SUCCEEDED"}
    second = stack.current()["GOOGLE_ACCESS_TOKEN"]
    assert second != first
    sent_before = len(calendar_requests(stack))
    reader.wait_for(
        "two requests after the refresh", lambda: len(calendar_requests(stack)) >= sent_before + 2
    )
    assert {r.bearer for r in calendar_requests(stack)} == {first}

    # The first token expires at Google: its next request gets a 401, the library reads the
    # secret again and sends the request once more with the second token.
    stack.cloud.clock.advance_to(first_expires_at.timestamp() + 1)
    reader.wait_for(
        "two rounds with the second token",
        lambda: sum(r.bearer == second for r in calendar_requests(stack)) >= 2,
    )
    stderr = reader.stop()

    assert (reader.process.returncode, stderr) == (-signal.SIGTERM, "")
    names = {first: "first", second: "second"}
    sent = [(names.get(r.bearer or "", "another"), r.status) for r in calendar_requests(stack)]
    assert [key for key, _ in groupby(sent)] == [("first", 200), ("first", 401), ("second", 200)]
    # One line per answered round; SIGTERM may come between the last answer and its line.
    answered = sum(status == 200 for _, status in sent)
    assert answered - 1 <= len(reader.lines) <= answered
    assert reader.lines == [f"round {i}: 2 events" for i in range(1, len(reader.lines) + 1)]
    output = "\n".join(reader.lines) + stderr
    assert secret_material.found_in(output) == []
