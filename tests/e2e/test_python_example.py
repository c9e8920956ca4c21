"""The Python application example and SecretCredentials against a deployed stack: the calendar
listed with the rotated token, a long-lived credential carried across a rotation, and the
placeholder error an application sees before the first rotation."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from google.auth.transport.requests import AuthorizedSession
from googleapiclient.discovery import build

from google_token_secret import SecretCredentials
from localcloud.operations import rotate_on_schedule, start_manual
from localcloud.template import PROJECT_ROOT
from tests.e2e.stacks import Stack

EXAMPLE = PROJECT_ROOT / "examples" / "python" / "list_events.py"
CALENDAR = "team-calendar@demo-project.example"


def share_calendar(stack: Stack) -> list[datetime]:
    """A calendar the stack's service account may read, with two events ahead of now."""
    google = stack.cloud.google
    google.add_calendar(CALENDAR, readers=[stack.account.client_email])
    # Ahead of both clocks: the example asks for events after its own (real) now.
    soon = datetime.fromtimestamp(max(stack.cloud.clock.now(), datetime.now(UTC).timestamp()), UTC)
    starts = [(soon + timedelta(days=d)).replace(microsecond=0) for d in (2, 1)]
    google.add_event(CALENDAR, "Design review", starts[0], starts[0] + timedelta(hours=1))
    google.add_event(CALENDAR, "Stand-up", starts[1], starts[1] + timedelta(minutes=15))
    return sorted(starts)


def run_example(stack: Stack) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        **stack.cloud.client_environment(),
        "TOKEN_SECRET_ID": stack.secret_arn,
        "CALENDAR_ID": CALENDAR,
        "GOOGLE_API_ROOT_URL": stack.cloud.google.api_root_url,
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def calendar_bearers(stack: Stack) -> list[tuple[str | None, int | None]]:
    return [
        (request.bearer, request.status)
        for request in stack.cloud.google.requests
        if request.path.startswith("/calendar/")
    ]


def test_the_example_lists_the_calendar_with_the_token_the_rotation_stored(stack: Stack) -> None:
    assert [e.status for e in rotate_on_schedule(stack.cloud, stack.deployment)] == [
        "SUCCEEDED"
    ] * 4
    first, second = share_calendar(stack)

    listed = run_example(stack)

    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        f"Upcoming events in {CALENDAR}:",
        f"{first:%Y-%m-%dT%H:%M:%SZ}  Stand-up",
        f"{second:%Y-%m-%dT%H:%M:%SZ}  Design review",
    ]
    token = stack.current()["GOOGLE_ACCESS_TOKEN"]
    assert calendar_bearers(stack) == [(token, 200)]
    assert token not in listed.stdout + listed.stderr


def test_a_long_lived_credential_carries_on_across_a_rotation(stack: Stack) -> None:
    """One credential shared by google-api-python-client and an AuthorizedSession: after a
    rotation, once Google refuses the old token, both continue with the new one, no restart."""
    rotate_on_schedule(stack.cloud, stack.deployment)
    share_calendar(stack)
    google = stack.cloud.google
    credentials = SecretCredentials(stack.secret_arn, client=stack.cloud.client("secretsmanager"))
    session = AuthorizedSession(credentials)
    calendar = build(
        "calendar",
        "v3",
        credentials=credentials,
        static_discovery=True,
        client_options={"api_endpoint": f"{google.api_root_url}calendar/v3/"},
    )
    events_url = f"{google.api_root_url}calendar/v3/calendars/{CALENDAR}/events"
    old = stack.current()
    old_version = credentials.version_id
    assert session.get(events_url).status_code == 200

    stack.cloud.clock.advance(30 * 60)
    assert start_manual(stack.cloud, stack.deployment).status == "SUCCEEDED"
    new_token = stack.current()["GOOGLE_ACCESS_TOKEN"]
    # The simulated clock passes the old token's expiry; this process's clock does not, so the
    # credential still holds the old token until Google's 401 makes the transport refresh it.
    stack.cloud.clock.advance_to(datetime.fromisoformat(old["expires_at"]).timestamp() + 1)
    assert session.get(events_url).status_code == 200
    assert len(calendar.events().list(calendarId=CALENDAR).execute()["items"]) == 2

    assert calendar_bearers(stack) == [
        (old["GOOGLE_ACCESS_TOKEN"], 200),
        (old["GOOGLE_ACCESS_TOKEN"], 401),
        (new_token, 200),
        (new_token, 200),
    ]
    assert credentials.version_id != old_version
    assert credentials.version_id == stack.current_version()


def test_before_the_first_rotation_the_example_says_what_to_do(stack: Stack) -> None:
    listed = run_example(stack)

    assert listed.returncode == 1
    assert listed.stdout == ""
    [line] = listed.stderr.splitlines()
    assert line.startswith(f"list-events: The token secret {stack.secret_arn} still holds")
    assert "no rotation has succeeded yet" in line
    assert "Traceback" not in listed.stderr
