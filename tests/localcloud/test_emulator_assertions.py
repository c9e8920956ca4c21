"""The token endpoint verifies the JWT-bearer assertion with google-auth's own `jwt.decode`, which
reads the real clock; the emulator's clock (shifted by `clock_offset_seconds`) must still be what
decides whether an assertion is in its timeframe. The refusals themselves are in
test_google_emulator.py."""

from collections.abc import Iterator

import pytest
import urllib3

from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from tests.localcloud.test_google_emulator import (
    AUDIENCE,
    CALENDAR,
    assertion_for,
    claims_for,
    header_for,
    post_token,
    refreshed_token,
    sign,
)

SKEW = 300
AN_HOUR = 3600


@pytest.fixture(scope="module")
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(clock_skew_seconds=SKEW) as running:
        yield running


@pytest.fixture(autouse=True)
def _restore_clock(emulator: GoogleEmulator) -> Iterator[None]:
    yield
    emulator.reset()
    emulator.clock_offset_seconds = 0.0


@pytest.fixture(scope="module")
def key(emulator: GoogleEmulator) -> ServiceAccountKey:
    return emulator.create_service_account()


@pytest.fixture(scope="module")
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=5), retries=False)


def issued_at(emulator: GoogleEmulator, key: ServiceAccountKey, iat: int) -> str:
    return assertion_for(key, iat=iat, exp=iat + AN_HOUR)


OFFSETS = pytest.mark.parametrize(
    "offset", [7200.0, -7200.0, 30.5, 0.0], ids=["ahead-2h", "behind-2h", "ahead-30s", "none"]
)


@OFFSETS
def test_an_assertion_timed_by_the_emulator_clock_is_accepted(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager, offset: float
) -> None:
    """Two hours off the real clock, jwt.decode alone would call this assertion expired or
    issued in the future: the emulator's clock decides."""
    emulator.clock_offset_seconds = offset
    now = int(emulator.now())

    for iat in (now - SKEW + 5, now, now + SKEW - 5):
        response = post_token(http, emulator, issued_at(emulator, key, iat))
        assert response.status == 200, (iat - now, response.data)


@OFFSETS
@pytest.mark.parametrize("iat_from_now", [SKEW + 5, -AN_HOUR - SKEW - 5], ids=["early", "late"])
def test_an_assertion_outside_the_emulator_clocks_timeframe_is_refused(
    emulator: GoogleEmulator,
    key: ServiceAccountKey,
    http: urllib3.PoolManager,
    offset: float,
    iat_from_now: int,
) -> None:
    """Issued more than the skew ahead of the emulator's clock, or expired more than the skew
    before it: refused as Google refuses it, however far the real clock is."""
    emulator.clock_offset_seconds = offset
    iat = int(emulator.now()) + iat_from_now

    response = post_token(http, emulator, issued_at(emulator, key, iat))

    assert response.status == 400
    assert response.json()["error"] == "invalid_grant"
    assert "short-lived" in response.json()["error_description"]


def test_google_auth_gets_a_token_from_an_emulator_a_little_ahead(
    emulator: GoogleEmulator, key: ServiceAccountKey
) -> None:
    """Unmodified google-auth stamps its assertion with the real clock: within the skew of the
    emulator's clock it is accepted."""
    emulator.clock_offset_seconds = SKEW - 60

    assert refreshed_token(emulator, key, [CALENDAR]).startswith("ya29.")


def test_a_wrong_audience_is_named_whatever_the_clock(
    emulator: GoogleEmulator, key: ServiceAccountKey, http: urllib3.PoolManager
) -> None:
    emulator.clock_offset_seconds = -7200.0
    now = int(emulator.now())

    response = post_token(
        http, emulator, assertion_for(key, aud=emulator.token_url, iat=now, exp=now + AN_HOUR)
    )

    assert response.status == 400
    assert "Failed audience check" in response.json()["error_description"]
    assert AUDIENCE in response.json()["error_description"]


def test_the_kid_picks_one_of_the_accounts_keys_and_no_kid_tries_each(
    emulator: GoogleEmulator, http: urllib3.PoolManager
) -> None:
    email = "three-keys@demo-project.iam.gserviceaccount.com"
    first, second, disabled = (emulator.create_service_account(email) for _ in range(3))
    emulator.disable_key(disabled.private_key_id)
    no_kid: dict[str, object] = {"alg": "RS256", "typ": "JWT"}

    def status(signer: ServiceAccountKey, header: dict[str, object]) -> int:
        return post_token(http, emulator, sign(signer, claims_for(signer), header)).status

    assert status(second, header_for(second)) == 200
    assert status(second, no_kid) == 200
    assert status(first, no_kid) == 200
    assert status(second, header_for(first)) == 400, "signed by another key than the kid names"
    assert status(disabled, no_kid) == 400
    assert status(second, header_for(second, kid="")) == 400
