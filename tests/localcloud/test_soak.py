"""The freshness soak: its accounting (pure), and a short run of it that holds the promise."""

import os
import random
import re
from collections.abc import Iterator

import pytest

from localcloud import fidelity
from localcloud.cloud import LocalCloud
from localcloud.soak import (
    BLOCKING,
    DEFAULT_LEAD_SECONDS,
    FEDERATION_SOURCE,
    IMPERSONATION_SOURCE,
    KEY_SOURCE,
    RECOVERY_SECONDS,
    ROUTES_OF,
    WORKER_GOOGLE_TIMEOUT_SECONDS,
    Fault,
    FaultKind,
    Read,
    Soak,
    SoakResult,
    excused_outages,
    plan_faults,
)
from tests.support import untraced

HOUR = 3600.0
START = 1_800_000_000.0
# The issue's format, to the letter.
LAST_LINE = re.compile(
    r"freshness: (\d+)/(\d+) reads valid \((\d+\.\d\d)%\), min remaining (-?\d+) s, "
    r"p0\.1 remaining (-?\d+) s, rotations (\d+), failed (\d+), notices (\d+), faults (\d+)"
)
SHORT_SOAK_LIFETIMES = 10
REPLAY_SEED = "SOAK_SEED"
"""Environment variable: the seed a short soak replays instead of drawing one."""


def reads_every_minute(hours: float, remaining: float = 3000.0) -> list[Read]:
    return [Read(START + 60 * n, "v", True, remaining) for n in range(int(hours * 60))]


# --- accounting -------------------------------------------------------------------------------


def test_a_plan_holds_every_kind_of_fault_inside_the_run_and_replays_from_its_seed() -> None:
    end = START + SHORT_SOAK_LIFETIMES * HOUR
    plan = plan_faults(random.Random(7), START, end)

    assert {fault.kind for fault in plan} == set(FaultKind)
    assert all(START < fault.at < end for fault in plan)
    assert [fault.at for fault in plan] == sorted(fault.at for fault in plan)
    assert plan == plan_faults(random.Random(7), START, end)
    assert plan != plan_faults(random.Random(8), START, end)


def test_a_week_plans_storms_daily_and_long_outages_weekly() -> None:
    plan = plan_faults(random.Random(1), START, START + 168 * HOUR)
    kinds = [fault.kind for fault in plan]

    assert kinds.count(FaultKind.GOOGLE_STORM) == 28
    assert kinds.count(FaultKind.KEY_DISABLED) == 1
    assert kinds.count(FaultKind.GOOGLE_OUTAGE) == 1
    storms = [fault for fault in plan if fault.kind is FaultKind.GOOGLE_STORM]
    assert all(60 <= fault.seconds <= 8 * 60 for fault in storms)


def test_a_blocking_fault_shorter_than_the_tokens_life_is_not_excused() -> None:
    reads = reads_every_minute(3, remaining=1800)
    storm = Fault(FaultKind.GOOGLE_STORM, START + HOUR, seconds=600)

    assert excused_outages([storm], reads) == []


def test_an_outage_longer_than_the_tokens_life_is_excused_from_start_to_recovery() -> None:
    reads = reads_every_minute(3, remaining=1800)
    outage = Fault(FaultKind.GOOGLE_OUTAGE, START + HOUR, seconds=3600)

    assert excused_outages([outage], reads) == [
        (outage.at, outage.until + RECOVERY_SECONDS, outage)
    ]


def test_faults_that_hit_one_attempt_are_never_excused() -> None:
    reads = reads_every_minute(3, remaining=30)
    crash = Fault(FaultKind.CRASH_AFTER_PUT, START + HOUR)

    assert crash.kind not in BLOCKING
    assert excused_outages([crash], reads) == []


def test_reads_inside_an_excused_outage_are_reported_apart() -> None:
    result = SoakResult(seed=1, lifetimes=3, lead_seconds=DEFAULT_LEAD_SECONDS)
    result.reads = reads_every_minute(3)
    result.reads[90] = Read(result.reads[90].at, "v", False, -5.0)
    outage = Fault(FaultKind.KEY_DISABLED, START + 80 * 60, seconds=20 * 60)
    result.excused = [(outage.at, outage.until, outage)]

    counted = result.counted()

    assert len(counted) == 180 - 21
    assert all(read.valid for read in counted)
    assert result.broken_invariants() == []
    assert "1 refused" in result.outage_line()


def test_an_invalid_read_outside_outages_breaks_the_promise() -> None:
    result = SoakResult(seed=1, lifetimes=3, lead_seconds=DEFAULT_LEAD_SECONDS)
    result.reads = reads_every_minute(3)
    result.reads[90] = Read(result.reads[90].at, "v", False, -5.0)

    [broken, *_] = result.broken_invariants()

    assert broken.startswith("1 reads outside reported outages got a token Google refuses")


def test_p01_below_half_the_lead_breaks_the_promise() -> None:
    result = SoakResult(seed=1, lifetimes=3, lead_seconds=DEFAULT_LEAD_SECONDS)
    result.reads = reads_every_minute(3)
    for n in range(2):
        result.reads[n] = Read(result.reads[n].at, "v", True, DEFAULT_LEAD_SECONDS / 2 - 1)

    assert result.percentile_remaining(0.001) == DEFAULT_LEAD_SECONDS / 2 - 1
    assert any("p0.1 remaining" in broken for broken in result.broken_invariants())


def test_two_failure_notices_within_an_hour_are_a_notice_storm() -> None:
    result = SoakResult(seed=1, lifetimes=3, lead_seconds=DEFAULT_LEAD_SECONDS)
    result.reads = reads_every_minute(3)
    result.notices = [(START, "Google token rotation failed"), (START + 3599, "still failing")]
    assert any("within an hour" in broken for broken in result.broken_invariants())

    result.notices = [
        (START, "Google token rotation failed"),
        (START + 60, "Google token rotation recovered"),
        (START + 120, "Google token rotation failed"),
        (START + 120 + 3600, "Google token rotation still failing"),
    ]
    assert result.broken_invariants() == []

    result.notices = [
        (START, "Google token rotation failed"),
        (START + 600, "Google token rotation promoted an unverified token (google/access-token)"),
        (START + 1200, "Google token rotation failed"),
    ]
    assert result.broken_invariants() == []


def test_too_few_reads_break_the_promise() -> None:
    result = SoakResult(seed=1, lifetimes=3, lead_seconds=DEFAULT_LEAD_SECONDS)
    result.reads = reads_every_minute(2)
    assert any("at least one per simulated minute" in b for b in result.broken_invariants())


def test_the_last_line_has_the_issues_format() -> None:
    result = SoakResult(seed=1, lifetimes=3, lead_seconds=DEFAULT_LEAD_SECONDS)
    result.reads = reads_every_minute(3)
    result.rotations, result.failed_executions = 4, 1
    result.notices = [(START, "x")]
    result.faults = [Fault(FaultKind.GOOGLE_HANG, START)]

    line = result.line()

    match = LAST_LINE.fullmatch(line)
    assert match is not None, line
    assert match.groups() == ("180", "180", "100.00", "3000", "3000", "4", "1", "1", "1")


# --- a short soak ----------------------------------------------------------------------------


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCloud]:
    """A local cloud of its own; what starting one sets for the process is put back after."""
    monkeypatch.delenv("MOTO_PORT", raising=False)
    monkeypatch.setattr(fidelity.CORRECTIONS, "dispatch", fidelity.CORRECTIONS.dispatch)
    monkeypatch.setattr(fidelity.CORRECTIONS, "sleep_retries", fidelity.CORRECTIONS.sleep_retries)
    with (
        untraced(),
        LocalCloud(
            sleep_retries=False, google_timeout_seconds=WORKER_GOOGLE_TIMEOUT_SECONDS
        ) as running,
    ):
        yield running


def soak_seed(lifetimes: int, source: str = KEY_SOURCE) -> int:
    """A fresh seed for each run, so that every `make test` tries other faults at other times
    (SOAK_SEED replays one); printed with the command that replays the same run."""
    chosen = os.environ.get(REPLAY_SEED)
    seed = int(chosen) if chosen else random.SystemRandom().randrange(2**32)
    print(
        f"soak seed {seed}: replay with python -m localcloud soak --lifetimes {lifetimes} "
        f"--seed {seed} --source {source} (or {REPLAY_SEED}={seed} for this test)"
    )
    return seed


def test_a_short_soak_keeps_the_promise_through_every_kind_of_fault(cloud: LocalCloud) -> None:
    """Ten token lifetimes of simulated time with at least one fault of each kind, drawn from a
    new seed every run: every read outside the reported outages gets a token Google accepts,
    with half the lead to spare."""
    lines: list[str] = []
    seed = soak_seed(SHORT_SOAK_LIFETIMES)

    result = Soak(cloud, seed, SHORT_SOAK_LIFETIMES, lines.append).run()

    assert result.broken_invariants() == [], "\n".join(lines)
    assert len(result.reads) >= SHORT_SOAK_LIFETIMES * 60
    assert {fault.kind for fault in result.faults} == set(FaultKind)
    match = LAST_LINE.fullmatch(result.line())
    assert match is not None
    valid, counted = int(match[1]), int(match[2])
    assert valid == counted
    assert int(match[5]) >= DEFAULT_LEAD_SECONDS / 2
    assert result.notices, "the faults' failing streaks notified"
    # Both schedules fired: the expiry-driven ones, and Secrets Manager's 4-hour backstop.
    assert set(result.firings) == {"schedule", "rotation"}
    # Every token read came from a rotation: none is in any function's output.
    tokens = {issued.access_token for issued in cloud.google.issued_tokens()}
    logs = cloud.logs.text()
    assert tokens
    assert not [token for token in tokens if token in logs]


@pytest.mark.parametrize("source", [IMPERSONATION_SOURCE, FEDERATION_SOURCE])
def test_a_short_soak_of_each_other_source_keeps_the_promise(
    cloud: LocalCloud, source: str
) -> None:
    """Three lifetimes with faults on the routes each source calls (keyless: STS, IAM
    Credentials and tokeninfo; no key to disable), drawn from a new seed every run."""
    lines: list[str] = []
    seed = soak_seed(3, source)

    result = Soak(cloud, seed, 3, lines.append, source).run()

    assert result.broken_invariants() == [], "\n".join(lines)
    assert result.rotations >= 3
    routes = {fault.route for fault in result.faults if fault.kind in BLOCKING}
    assert routes <= set(ROUTES_OF[source])
    assert "/generateAccessToken" in ROUTES_OF[source]
    if source == FEDERATION_SOURCE:
        assert FaultKind.KEY_DISABLED not in {fault.kind for fault in result.faults}
