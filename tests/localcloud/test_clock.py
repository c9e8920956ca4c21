"""Time that tests control: the simulated clock only moves forward, Lambda handlers see it (their
timeout does not), and the Google emulator's tokens, failure storms and disabled keys follow it."""

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from google.auth import crypt, jwt

from localcloud.clock import SimulatedClock
from localcloud.google_emulator import JWT_BEARER_GRANT, GoogleEmulator, ServiceAccountKey
from localcloud.lambda_runtime import FunctionWorker

WEEK = 7 * 86400.0
SCOPE = "https://www.googleapis.com/auth/calendar.readonly"
# Time that passes between two reads of the clock in one test, with room for a slow machine.
SLACK = 5.0

HANDLER = """
import datetime
import sys
import time


def now(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.05)
    return {
        "time": time.time(),
        "datetime": datetime.datetime.now(datetime.UTC).timestamp(),
        "remaining_first": first,
        "remaining_second": context.get_remaining_time_in_millis(),
        "time_machine_loaded": "time_machine" in sys.modules,
        "pytest_loaded": "pytest" in sys.modules,
    }
"""


# --- the clock -------------------------------------------------------------------------------


def test_the_clock_starts_at_real_time_and_moves_forward_when_told() -> None:
    clock = SimulatedClock()

    assert clock.offset == 0
    assert abs(clock.now() - time.time()) < SLACK
    moved = clock.advance(3600)
    assert abs(moved - (time.time() + 3600)) < SLACK
    assert clock.offset == 3600
    target = clock.now() + WEEK
    assert clock.advance_to(target) == target
    assert abs(clock.now() - target) < SLACK
    assert clock.offset >= 3600 + WEEK - SLACK


def test_the_clock_never_goes_backwards() -> None:
    clock = SimulatedClock()
    clock.advance(600)

    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance_to(clock.now() - 60)
    assert clock.offset == 600


def test_the_clock_tells_the_simulated_time_of_a_past_real_moment() -> None:
    """What moto stamps in real time (a schedule's CreationDate) read as the simulated time it
    was then: each moment with the offset in force at it, not today's."""
    clock = SimulatedClock()
    before_moves = time.time()
    time.sleep(0.01)
    clock.advance(3600)
    after_first = time.time()
    time.sleep(0.01)
    clock.advance_to(clock.now() + WEEK)

    assert clock.simulated_at(before_moves) == before_moves
    assert clock.simulated_at(after_first) == after_first + 3600
    later = time.time()
    assert clock.simulated_at(later) == later + clock.offset


def test_the_clock_ticks_with_real_time() -> None:
    clock = SimulatedClock()
    clock.advance(WEEK)
    before = clock.now()

    time.sleep(0.05)

    assert clock.now() - before >= 0.05


# --- Lambda workers ---------------------------------------------------------------------------


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock()


@pytest.fixture
def worker(tmp_path: Path, clock: SimulatedClock) -> Iterator[FunctionWorker]:
    (tmp_path / "clocks.py").write_text(textwrap.dedent(HANDLER))
    lines: list[str] = []
    with FunctionWorker(
        "clocks",
        "clocks.now",
        [tmp_path],
        {"AWS_REGION": "us-east-1"},
        timeout_seconds=3.0,
        memory_mb=128,
        log_sink=lambda _name, line: lines.append(line),
        clock=clock,
    ) as running:
        yield running


def invoke(worker: FunctionWorker) -> dict[str, Any]:
    result = worker.invoke({})
    assert result.error is None, result.error
    assert isinstance(result.payload, dict)
    return result.payload


def test_a_handler_sees_real_time_until_the_clock_moves(
    worker: FunctionWorker,
) -> None:
    seen = invoke(worker)

    assert abs(seen["time"] - time.time()) < SLACK
    assert abs(seen["datetime"] - time.time()) < SLACK
    assert not seen["time_machine_loaded"], "nothing to simulate: time_machine is not needed"


def test_a_handler_sees_simulated_time_and_a_warm_one_follows_the_clock(
    worker: FunctionWorker, clock: SimulatedClock
) -> None:
    invoke(worker)  # warm: the worker was started at real time
    clock.advance(WEEK)

    first, first_now = invoke(worker), clock.now()
    clock.advance(3600)
    second, second_now = invoke(worker), clock.now()

    for seen, now in ((first, first_now), (second, second_now)):
        assert abs(seen["time"] - now) < SLACK
        assert abs(seen["datetime"] - now) < SLACK
    assert second["time"] - first["time"] >= 3600
    assert not first["pytest_loaded"], "time_machine must not bring pytest into the handler"


def test_the_deadline_stays_real_when_the_clock_moves(
    worker: FunctionWorker, clock: SimulatedClock
) -> None:
    clock.advance(WEEK)

    seen = invoke(worker)

    # 3 s of real time from the invocation, counting down in real time while simulated time
    # is a week ahead.
    assert 2000 < seen["remaining_second"] < seen["remaining_first"] <= 3000
    assert seen["remaining_first"] - seen["remaining_second"] >= 40


# --- the Google emulator ----------------------------------------------------------------------


@pytest.fixture
def google(clock: SimulatedClock) -> Iterator[GoogleEmulator]:
    with GoogleEmulator(token_lifetime_seconds=600, clock=clock) as running:
        yield running


@pytest.fixture
def key(google: GoogleEmulator) -> ServiceAccountKey:
    return google.create_service_account()


@pytest.fixture
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=5), retries=False)


def grant(
    http: urllib3.PoolManager, google: GoogleEmulator, key: ServiceAccountKey
) -> urllib3.BaseHTTPResponse:
    """A JWT-bearer grant whose assertion is dated on the emulator's clock, as a Lambda handler
    running at simulated time dates it."""
    signer = crypt.RSASigner.from_service_account_info(key.key_file(google.token_url))
    issued = int(google.now())
    claims = {
        "iss": key.client_email,
        "aud": GoogleEmulator.GOOGLE_TOKEN_AUDIENCE,
        "scope": SCOPE,
        "iat": issued,
        "exp": issued + 3600,
    }
    assertion = jwt.encode(signer, claims).decode()
    return http.request(
        "POST",
        google.token_url,
        body=f"grant_type={JWT_BEARER_GRANT}&assertion={assertion}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def access_token(http: urllib3.PoolManager, google: GoogleEmulator, key: ServiceAccountKey) -> str:
    response = grant(http, google, key)
    assert response.status == 200, response.data
    token: str = response.json()["access_token"]
    return token


def token_info(
    http: urllib3.PoolManager, google: GoogleEmulator, token: str
) -> urllib3.BaseHTTPResponse:
    return http.request("GET", google.tokeninfo_url, fields={"access_token": token})


def test_tokens_expire_on_the_simulated_clock(
    http: urllib3.PoolManager,
    google: GoogleEmulator,
    key: ServiceAccountKey,
    clock: SimulatedClock,
) -> None:
    clock.advance(WEEK)
    response = grant(http, google, key)
    token = response.json()["access_token"]
    assert response.json()["expires_in"] == 600

    clock.advance(100)
    info = token_info(http, google, token).json()
    assert 495 <= int(info["expires_in"]) <= 500
    assert abs(int(info["exp"]) - (clock.now() + 500)) < SLACK
    clock.advance(500 + 1)
    refused = token_info(http, google, token)

    assert refused.status == 400
    assert refused.json()["error"] == "invalid_token"


def test_the_emulator_offset_adds_to_the_shared_clock(
    google: GoogleEmulator, clock: SimulatedClock
) -> None:
    clock.advance(WEEK)
    google.clock_offset_seconds = -60

    assert abs(google.now() - (time.time() + WEEK - 60)) < SLACK


def test_a_storm_fails_every_request_until_the_simulated_time_passes(
    http: urllib3.PoolManager,
    google: GoogleEmulator,
    key: ServiceAccountKey,
    clock: SimulatedClock,
) -> None:
    token = access_token(http, google, key)
    google.fail_next("/tokeninfo", status=500)
    google.fail_during("/tokeninfo", clock.now() + 300, status=503)

    during = [token_info(http, google, token).status for _ in range(3)]
    clock.advance(200)
    still = token_info(http, google, token).status
    clock.advance(101)
    after = [token_info(http, google, token).status for _ in range(2)]

    assert during == [503, 503, 503]
    assert still == 503
    # The queued failure waited for the storm to end.
    assert after == [500, 200]
    assert grant(http, google, key).status == 200, "a storm hits its own route only"


def test_a_storm_can_reset_connections(
    http: urllib3.PoolManager, google: GoogleEmulator, key: ServiceAccountKey, clock: SimulatedClock
) -> None:
    google.fail_during("/token", clock.now() + 60, reset_connection=True)

    with pytest.raises(urllib3.exceptions.ProtocolError):
        grant(http, google, key)
    clock.advance(61)
    assert grant(http, google, key).status == 200


def test_a_disabled_key_is_refused_as_google_refuses_it_until_enabled(
    http: urllib3.PoolManager, google: GoogleEmulator, key: ServiceAccountKey
) -> None:
    google.disable_key(key.private_key_id)
    refused = grant(http, google, key)
    google.enable_key(key.private_key_id)

    assert refused.status == 400
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid JWT Signature.",
    }
    assert grant(http, google, key).status == 200


def test_a_key_disabled_until_a_time_works_again_from_then(
    http: urllib3.PoolManager, google: GoogleEmulator, key: ServiceAccountKey, clock: SimulatedClock
) -> None:
    google.disable_key(key.private_key_id, until_epoch=clock.now() + 120)

    during = grant(http, google, key)
    clock.advance(121)
    after = grant(http, google, key)

    assert during.status == 400
    assert during.json()["error"] == "invalid_grant"
    assert after.status == 200, after.data


def test_requests_are_recorded_at_simulated_time(
    http: urllib3.PoolManager, google: GoogleEmulator, key: ServiceAccountKey, clock: SimulatedClock
) -> None:
    clock.advance(WEEK)

    grant(http, google, key)

    recorded = google.requests[-1].time
    assert abs(recorded - clock.now()) < SLACK
    assert recorded > time.time() + WEEK - SLACK


def test_token_info_in_process_follows_the_simulated_clock(
    http: urllib3.PoolManager, google: GoogleEmulator, key: ServiceAccountKey, clock: SimulatedClock
) -> None:
    token = access_token(http, google, key)
    requests = len(google.requests)

    valid = google.token_info(token)
    clock.advance(601)
    expired = google.token_info(token)

    assert valid is not None
    assert valid["expires_in"] in {"599", "600"}
    assert expired is None
    assert google.token_info("ya29.never-issued") is None
    assert len(google.requests) == requests, "an in-process question is no request"
