"""The emulator's Calendar API lists events as Google does, to tokens the emulator minted, over
real HTTP: readers see their calendars, everyone else gets Google's 401, 403 or 404."""

import datetime
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import urllib3
from google.auth.transport.requests import AuthorizedSession, Request

from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from tests.localcloud.test_google_emulator import (
    CALENDAR,
    EMAIL,
    google_credentials,
    refreshed_token,
)

TEAM = "team@example.com"
ALICE = "alice@example.com"
DAY = datetime.datetime(2030, 1, 7, tzinfo=datetime.UTC)
SINGLE_EVENTS_BY_START = {"singleEvents": "true", "orderBy": "startTime"}
RFC3339_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ETAG = re.compile(r'"\d+"')
UNAUTHENTICATED = {
    "error": {
        "code": 401,
        "message": (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
            "cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project."
        ),
        "errors": [
            {
                "message": "Invalid Credentials",
                "domain": "global",
                "reason": "authError",
                "location": "Authorization",
                "locationType": "header",
            }
        ],
        "status": "UNAUTHENTICATED",
    }
}
NOT_FOUND = {
    "error": {
        "code": 404,
        "message": "Not Found",
        "errors": [{"domain": "global", "reason": "notFound", "message": "Not Found"}],
    }
}
BAD_REQUEST = {
    "error": {
        "code": 400,
        "message": "Bad Request",
        "errors": [{"domain": "global", "reason": "badRequest", "message": "Bad Request"}],
    }
}


@pytest.fixture(scope="module")
def http() -> urllib3.PoolManager:
    # No urllib3 retries: each test must see exactly what the emulator answered.
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=5), retries=False)


@pytest.fixture
def token(google: GoogleEmulator, service_account: ServiceAccountKey) -> str:
    return refreshed_token(google, service_account, [CALENDAR])


@pytest.fixture
def team(google: GoogleEmulator, service_account: ServiceAccountKey) -> str:
    """A shared calendar the service account reads."""
    google.add_calendar(TEAM, readers=[service_account.client_email], summary="Team")
    return TEAM


def at(hour: int, minute: int = 0) -> datetime.datetime:
    return DAY.replace(hour=hour, minute=minute)


def events_url(google: GoogleEmulator, calendar_id: str) -> str:
    # As googleapis and google-api-python-client build it: the id quoted, "@" as %40.
    return f"{google.api_root_url}calendar/v3/calendars/{quote(calendar_id, safe='')}/events"


def list_events(
    http: urllib3.PoolManager,
    google: GoogleEmulator,
    calendar_id: str,
    token: str | None,
    **params: str,
) -> urllib3.BaseHTTPResponse:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return http.request("GET", events_url(google, calendar_id), fields=params, headers=headers)


def summaries(response: urllib3.BaseHTTPResponse) -> list[str]:
    assert response.status == 200, response.data
    return [item["summary"] for item in response.json()["items"]]


# --- listing -----------------------------------------------------------------------------------


def test_lists_events_in_googles_shape_ordered_by_start(
    google: GoogleEmulator, http: urllib3.PoolManager, token: str, team: str
) -> None:
    later = google.add_event(team, "Retro", at(15), at(16))
    # Given in +02:00, listed in UTC.
    earlier = google.add_event(
        team,
        "Standup",
        at(10, 30).astimezone(datetime.timezone(datetime.timedelta(hours=2))),
        at(11),
    )

    response = list_events(http, google, team, token, **SINGLE_EVENTS_BY_START)

    assert response.status == 200, response.data
    listing: dict[str, Any] = response.json()
    items = listing.pop("items")
    assert ETAG.fullmatch(listing.pop("etag"))
    assert RFC3339_MILLIS.fullmatch(listing.pop("updated"))
    assert listing == {
        "kind": "calendar#events",
        "summary": "Team",
        "description": "",
        "timeZone": "UTC",
        "accessRole": "reader",
        "defaultReminders": [],
    }
    assert [item["id"] for item in items] == [earlier, later]
    standup = items[0]
    assert ETAG.fullmatch(standup.pop("etag"))
    created = standup.pop("created")
    assert RFC3339_MILLIS.fullmatch(created)
    assert standup.pop("updated") == created
    assert standup.pop("htmlLink").startswith("https://www.google.com/calendar/event?eid=")
    assert standup == {
        "kind": "calendar#event",
        "id": earlier,
        "status": "confirmed",
        "summary": "Standup",
        "creator": {"email": TEAM},
        "organizer": {"email": TEAM, "self": True},
        "start": {"dateTime": "2030-01-07T10:30:00Z", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-07T11:00:00Z", "timeZone": "UTC"},
        "iCalUID": f"{earlier}@google.com",
        "sequence": 0,
        "eventType": "default",
    }


def test_ordering_by_start_needs_single_events(
    google: GoogleEmulator, http: urllib3.PoolManager, token: str, team: str
) -> None:
    response = list_events(http, google, team, token, orderBy="startTime")

    assert response.status == 400
    assert response.json()["error"]["message"] == (
        "The requested ordering is not available for the particular query."
    )


def test_time_window_keeps_the_events_overlapping_it(
    google: GoogleEmulator, http: urllib3.PoolManager, token: str, team: str
) -> None:
    google.add_event(team, "ends at the window's start", at(9), at(10))
    google.add_event(team, "inside", at(10), at(11))
    google.add_event(team, "starts at the window's end", at(11), at(12))
    google.add_event(team, "spans the window", at(8), at(13))

    response = list_events(
        http,
        google,
        team,
        token,
        # The same window written with an offset and with Z.
        timeMin="2030-01-07T11:00:00+01:00",
        timeMax="2030-01-07T11:00:00Z",
    )

    assert summaries(response) == ["inside", "spans the window"]


def test_max_results_pages_through_every_event(
    google: GoogleEmulator, http: urllib3.PoolManager, token: str, team: str
) -> None:
    for hour in range(9, 14):
        google.add_event(team, f"{hour}h", at(hour), at(hour, 30))
    pages: list[list[str]] = []
    page_token: dict[str, str] = {}

    while True:
        response = list_events(http, google, team, token, maxResults="2", **page_token)
        pages.append(summaries(response))
        if "nextPageToken" not in response.json():
            break
        page_token = {"pageToken": response.json()["nextPageToken"]}

    assert pages == [["9h", "10h"], ["11h", "12h"], ["13h"]]


@pytest.mark.parametrize(
    "time_min",
    ["tomorrow", "2030-01-07T10:00:00", "2030-01-07"],
    ids=["words", "no-offset", "date"],
)
def test_a_time_min_that_is_not_rfc3339_is_a_bad_request(
    google: GoogleEmulator, http: urllib3.PoolManager, token: str, team: str, time_min: str
) -> None:
    response = list_events(http, google, team, token, timeMin=time_min)

    assert response.status == 400
    assert response.json() == BAD_REQUEST


def test_the_token_may_come_as_the_access_token_parameter(
    google: GoogleEmulator, http: urllib3.PoolManager, token: str, team: str
) -> None:
    google.add_event(team, "Standup", at(10), at(11))

    response = list_events(http, google, team, None, access_token=token)

    assert summaries(response) == ["Standup"]


# --- whose calendars -------------------------------------------------------------------------


@pytest.fixture
def alice_token(google: GoogleEmulator, service_account: ServiceAccountKey) -> str:
    """A domain-wide-delegation token of the service account acting for Alice."""
    google.allow_domain_wide_delegation(service_account.client_email)
    credentials = google_credentials(google, service_account, [CALENDAR]).with_subject(ALICE)
    credentials.refresh(Request())
    return str(credentials.token)


def test_primary_is_the_calendar_of_the_user_the_token_acts_for(
    google: GoogleEmulator, http: urllib3.PoolManager, alice_token: str
) -> None:
    google.add_calendar(ALICE, readers=[])
    google.add_event(ALICE, "Dentist", at(8), at(9))

    response = list_events(http, google, "primary", alice_token)

    assert summaries(response) == ["Dentist"]
    assert response.json()["summary"] == ALICE


def test_a_delegated_user_reads_the_calendars_shared_with_the_user(
    google: GoogleEmulator,
    http: urllib3.PoolManager,
    service_account: ServiceAccountKey,
    alice_token: str,
) -> None:
    google.add_calendar("board@example.com", readers=[ALICE])
    google.add_event("board@example.com", "Board meeting", at(14), at(15))
    own_token = refreshed_token(google, service_account, [CALENDAR])

    as_alice = list_events(http, google, "board@example.com", alice_token)
    as_the_service_account = list_events(http, google, "board@example.com", own_token)

    assert summaries(as_alice) == ["Board meeting"]
    assert as_the_service_account.status == 404


@pytest.mark.parametrize("calendar_id", ["stranger@example.com", "nobody@example.com"])
def test_a_calendar_the_principal_may_not_read_is_not_found(
    google: GoogleEmulator, http: urllib3.PoolManager, token: str, calendar_id: str
) -> None:
    google.add_calendar("stranger@example.com", readers=["someone-else@example.com"])

    response = list_events(http, google, calendar_id, token)

    assert response.status == 404
    assert response.json() == NOT_FOUND


# --- refused tokens ----------------------------------------------------------------------------


def _missing(google: GoogleEmulator, token: str) -> str | None:
    return None


def _unknown(google: GoogleEmulator, token: str) -> str | None:
    return "ya29.never-issued"


def _expired(google: GoogleEmulator, token: str) -> str | None:
    google.clock_offset_seconds = google.token_lifetime_seconds + 1
    return token


def _revoked(google: GoogleEmulator, token: str) -> str | None:
    google.revoke_token(token)
    return token


@pytest.mark.parametrize("spoil", [_missing, _unknown, _expired, _revoked])
def test_a_token_that_is_not_good_is_unauthenticated(
    google: GoogleEmulator,
    http: urllib3.PoolManager,
    token: str,
    team: str,
    spoil: Callable[[GoogleEmulator, str], str | None],
) -> None:
    assert list_events(http, google, team, token).status == 200

    response = list_events(http, google, team, spoil(google, token))

    assert response.status == 401
    assert response.json() == UNAUTHENTICATED
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    )


def test_a_token_without_a_calendar_scope_is_refused(
    google: GoogleEmulator,
    http: urllib3.PoolManager,
    service_account: ServiceAccountKey,
    team: str,
) -> None:
    email_only = refreshed_token(google, service_account, [EMAIL])

    response = list_events(http, google, team, email_only)

    assert response.status == 403
    assert response.json() == {
        "error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "errors": [
                {
                    "message": "Insufficient Permission",
                    "domain": "global",
                    "reason": "insufficientPermissions",
                }
            ],
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": "calendar-json.googleapis.com",
                        "method": "calendar.v3.Events.List",
                    },
                }
            ],
        }
    }


def test_only_listing_events_is_served(
    google: GoogleEmulator, http: urllib3.PoolManager, token: str, team: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"}

    insert = http.request("POST", events_url(google, team), body=b"{}", headers=headers)
    calendar_list = http.request(
        "GET", f"{google.api_root_url}calendar/v3/users/me/calendarList", headers=headers
    )

    assert insert.status == 405
    assert insert.headers["Allow"] == "GET"
    assert calendar_list.status == 404
    assert calendar_list.json() == NOT_FOUND


# --- injected failures and an unmodified client ------------------------------------------------


def test_an_injected_503_answers_in_the_apis_error_shape(
    google: GoogleEmulator, http: urllib3.PoolManager, token: str, team: str
) -> None:
    google.fail_next("/calendar", status=503)

    failed = list_events(http, google, team, token)
    recovered = list_events(http, google, team, token)

    assert failed.status == 503
    error = failed.json()["error"]
    assert (error["code"], error["status"], error["errors"][0]["reason"]) == (
        503,
        "UNAVAILABLE",
        "backendError",
    )
    assert recovered.status == 200
    assert [(r.path, r.status) for r in google.requests[-2:]] == [
        (f"/calendar/v3/calendars/{quote(team, safe='')}/events", 503),
        (f"/calendar/v3/calendars/{quote(team, safe='')}/events", 200),
    ]


def test_a_storm_fails_calendar_requests_until_it_ends(
    google: GoogleEmulator, http: urllib3.PoolManager, token: str, team: str
) -> None:
    google.fail_during("/calendar", google.now() + 60)

    during = list_events(http, google, team, token)
    google.clock_offset_seconds = 61
    after = list_events(http, google, team, token)

    assert (during.status, after.status) == (503, 200)


def test_google_auths_authorized_session_lists_events(
    google: GoogleEmulator, service_account: ServiceAccountKey, team: str
) -> None:
    google.add_event(team, "Standup", at(10), at(11))
    credentials = google_credentials(google, service_account, [CALENDAR])
    session = AuthorizedSession(credentials)

    response = session.get(events_url(google, team), params={"maxResults": "10"})

    assert response.status_code == 200, response.text
    assert [item["summary"] for item in response.json()["items"]] == ["Standup"]
    assert [(r.path, r.status) for r in google.requests] == [
        ("/token", 200),
        (f"/calendar/v3/calendars/{quote(team, safe='')}/events", 200),
    ]
    assert google.requests[-1].bearer == credentials.token
