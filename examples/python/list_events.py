"""The seed's application in Python: list a Google Calendar's upcoming events with the token.

Environment: TOKEN_SECRET_ID (default google/access-token), CALENDAR_ID (default primary),
GOOGLE_API_ROOT_URL (default https://www.googleapis.com/; the local cloud's Google emulator gives
its own), and the usual AWS variables. `--every SECONDS --times N` keeps listing, as a
long-running service would, on one credential that re-reads the secret when its token is due.
"""

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from google_token_secret import SecretCredentials, TokenSecretError


def upcoming_events(calendar: Any, calendar_id: str) -> list[dict[str, Any]]:
    answer = (
        calendar.events()
        .list(
            calendarId=calendar_id,
            timeMin=datetime.now(UTC).isoformat(),
            singleEvents=True,
            orderBy="startTime",
            maxResults=10,
        )
        .execute()
    )
    items: list[dict[str, Any]] = answer.get("items", [])
    return items


def describe(event: dict[str, Any]) -> str:
    start = event["start"].get("dateTime") or event["start"].get("date")
    return f"{start}  {event.get('summary', '(no title)')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--every", type=float, default=0, help="seconds between listings")
    parser.add_argument("--times", type=int, default=1, help="how many listings")
    args = parser.parse_args(argv)

    calendar_id = os.environ.get("CALENDAR_ID", "primary")
    root_url = os.environ.get("GOOGLE_API_ROOT_URL", "https://www.googleapis.com/")
    credentials = SecretCredentials(os.environ.get("TOKEN_SECRET_ID", "google/access-token"))
    # The bundled discovery document, so listing costs one request and works offline.
    calendar = build(
        "calendar",
        "v3",
        credentials=credentials,
        static_discovery=True,
        client_options={"api_endpoint": f"{root_url.rstrip('/')}/calendar/v3/"},
    )
    try:
        for round_number in range(1, args.times + 1):
            events = upcoming_events(calendar, calendar_id)
            if args.times > 1:
                print(
                    f"round {round_number}: {len(events)} events, token version "
                    f"{credentials.version_id[:8]} (expires {credentials.expiry:%H:%M:%S} UTC)",
                    flush=True,
                )
            else:
                print(f"Upcoming events in {calendar_id}:")
                print("\n".join(map(describe, events)) or "No upcoming events.")
            if round_number < args.times:
                time.sleep(args.every)
    except TokenSecretError as error:
        print(f"list-events: {error}", file=sys.stderr)
        return 1
    except HttpError as error:
        print(f"list-events: Google answered {error.status_code}: {error.reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
