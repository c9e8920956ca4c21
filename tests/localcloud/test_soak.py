"""The freshness soak: its accounting (pure), and a short run of it that holds the promise."""

import math
import os
import random
import re
from collections.abc import Iterator

import pytest

from localcloud import fidelity, soak
from localcloud.cloud import LocalCloud
from localcloud.scheduler import LAMBDA_INVOKE, Firing
from localcloud.soak import (
    BLOCKING,
    DEFAULT_LEAD_SECONDS,
    FEDERATION_SOURCE,
    GOOGLE_SIDE,
    IMPERSONATION_SOURCE,
    KEY_SOURCE,
    KEYED,
    OLD_KEY_DELETED_AFTER_SECONDS,
    RECOVERY_SECONDS,
    REVOCATION_GAP_LIMIT_SECONDS,
    ROUTES_OF,
    SWEEP_PERIOD_SECONDS,
    TICK_SECONDS,
    TOKENINFO_OUTAGE_SECONDS,
    TOKENINFO_ROUTE,
    WORKER_GOOGLE_TIMEOUT_SECONDS,
    Fault,
    FaultKind,
    Read,
    Soak,
    SoakResult,
    excused_outages,
    lead_spent_outages,
    plan_events,
    plan_faults,
    quiet_spans,
)
from rotation_core import key_rotation

HOUR = 3600.0
DAY = 24 * HOUR
START = 1_800_000_000.0
# The issue's format, to the letter.
LAST_LINE = re.compile(
    r"freshness: (\d+)/(\d+) reads valid \((\d+\.\d\d)%\), min remaining (-?\d+) s, "
    r"p0\.1 remaining (-?\d+) s, rotations (\d+), failed (\d+), notices (\d+), faults (\d+)"
)
SHORT_SOAK_LIFETIMES = 10
SHORT_KEY_EXPIRY_HOURS = 4.0
"""A 4-hour key is renewed after 3 hours (its margin a quarter of its life): three renewals in the
short soak's ten lifetimes, where a daily one would come in none."""
REPLAY_SEED = "SOAK_SEED"
"""Environment variable: the seed a short soak replays instead of drawing one."""


def reads_every_minute(hours: float, remaining: float = 3000.0) -> list[Read]:
    return [Read(START + 60 * n, "v", True, remaining) for n in range(int(hours * 60))]


def sweep_firing(due_at: float) -> Firing:
    return Firing("schedule", "sweep", "default", LAMBDA_INVOKE, due_at, due_at + 30, None, None)


def a_result(hours: int) -> SoakResult:
    """A run's record with a read every minute and the sweep every 5 minutes, nothing wrong."""
    result = SoakResult(seed=1, lifetimes=hours, lead_seconds=DEFAULT_LEAD_SECONDS)
    result.reads = reads_every_minute(hours)
    periods = int(hours * HOUR / SWEEP_PERIOD_SECONDS)
    result.sweeps = [sweep_firing(START + SWEEP_PERIOD_SECONDS * n) for n in range(periods)]
    return result


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


def test_an_outage_the_token_outlived_that_ended_inside_its_lead_spent_it() -> None:
    """Its token had 55 min left and the outage took 52 (seed 2459076755: 314 s left at its
    end), or took 42 and the retries after it came half the remaining life apart (seed
    2863086355: a storm over the due moment, 300 s left at the promotion). One that ended more
    than a lead before the expiry did not spend it."""
    reads = reads_every_minute(3, remaining=55 * 60)
    long_one = Fault(FaultKind.GOOGLE_OUTAGE, START + HOUR, seconds=52 * 60)
    over_the_due_moment = Fault(FaultKind.GOOGLE_STORM, START + HOUR, seconds=42 * 60)
    short_one = Fault(FaultKind.GOOGLE_OUTAGE, START + HOUR, seconds=39 * 60)

    assert lead_spent_outages([over_the_due_moment], reads, DEFAULT_LEAD_SECONDS) == [
        (over_the_due_moment.at, over_the_due_moment.until + RECOVERY_SECONDS, over_the_due_moment)
    ]

    assert excused_outages([long_one], reads) == []
    assert lead_spent_outages([long_one], reads, DEFAULT_LEAD_SECONDS) == [
        (long_one.at, long_one.until + RECOVERY_SECONDS, long_one)
    ]
    assert lead_spent_outages([short_one], reads, DEFAULT_LEAD_SECONDS) == []


def test_reads_at_the_end_of_a_mint_outage_count_but_are_left_out_of_p01() -> None:
    result = a_result(3)
    outage = Fault(FaultKind.GOOGLE_OUTAGE, START + HOUR, 52 * 60, "/token", "reset")
    result.faults = [outage]
    result.reads[112] = Read(result.reads[112].at, "v", True, 315.0)
    assert any("p0.1 remaining 315 s" in broken for broken in result.broken_invariants())

    result.lead_spent = [(outage.at, outage.until + RECOVERY_SECONDS, outage)]

    assert result.broken_invariants() == []
    assert result.lead_spent_line().startswith(
        "mint outages that ended inside the lead: 1; 70 reads inside them and their "
        "recovery, 70 valid, min remaining 315 s"
    )
    result.reads[112] = Read(result.reads[112].at, "v", False, -5.0)
    assert result.broken_invariants()[0].startswith("1 reads outside reported outages")


def test_faults_that_hit_one_attempt_are_never_excused() -> None:
    reads = reads_every_minute(3, remaining=30)
    crash = Fault(FaultKind.CRASH_AFTER_PUT, START + HOUR)

    assert crash.kind not in BLOCKING
    assert excused_outages([crash], reads) == []


def test_reads_inside_an_excused_outage_are_reported_apart() -> None:
    result = a_result(3)
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


def test_reads_while_tokeninfo_is_unreachable_count_but_are_left_out_of_p01() -> None:
    """The unverified promotion waits for a third of the lead by design: those reads must be
    valid, and their low remaining life is reported apart from p0.1."""
    result = a_result(3)
    outage = Fault(FaultKind.TOKENINFO_OUTAGE, START + HOUR, 1800, TOKENINFO_ROUTE, "reset")
    result.faults = [outage]
    for n in range(80, 85):
        result.reads[n] = Read(result.reads[n].at, "v", True, 250.0)

    assert result.broken_invariants() == []
    assert result.percentile_remaining(0.001) == 3000
    assert result.verification_line().startswith(
        "tokeninfo unreachable: 1 outages; 48 reads inside them and their recovery, 48 valid, "
        "min remaining 250 s"
    )

    result.reads[82] = Read(result.reads[82].at, "v", False, -5.0)
    assert result.broken_invariants()[0].startswith("1 reads outside reported outages")


ID_SECRET = "soak/test/id-token"


def with_id_token_reads(result: SoakResult) -> SoakResult:
    result.id_secret_name = ID_SECRET
    result.id_reads = reads_every_minute(result.lifetimes)
    return result


def test_an_id_token_read_cloud_run_refuses_outside_its_outages_breaks_the_promise() -> None:
    result = with_id_token_reads(a_result(3))
    assert result.broken_invariants() == []

    result.id_reads[90] = Read(result.id_reads[90].at, "v", False, -5.0)

    [refused, *_] = result.broken_invariants()
    assert refused == (
        "1 ID-token reads outside reported outages got a token Cloud Run refuses (first at +1.50 h)"
    )
    assert result.id_token_line().startswith(f"ID token ({ID_SECRET}): 179/180 reads accepted")


def test_id_token_reads_inside_an_outage_that_outlived_its_token_are_reported_apart() -> None:
    result = with_id_token_reads(a_result(3))
    outage = Fault(FaultKind.GOOGLE_OUTAGE, START + HOUR, 1800, "/token", "503")
    result.id_reads[70] = Read(result.id_reads[70].at, "v", False, -5.0)
    result.id_excused = [(outage.at, outage.until + RECOVERY_SECONDS, outage)]

    assert result.broken_invariants() == []
    assert len(result.id_counted()) == 180 - (1800 + RECOVERY_SECONDS) // 60 - 1


def test_id_token_reads_with_less_than_half_the_lead_left_break_the_promise() -> None:
    result = with_id_token_reads(a_result(3))
    result.id_reads[0] = Read(result.id_reads[0].at, "v", True, DEFAULT_LEAD_SECONDS / 2 - 1)

    assert any("ID-token p0.1 remaining" in broken for broken in result.broken_invariants())

    outage = Fault(FaultKind.GOOGLE_OUTAGE, START - 600, 600, "/token", "reset")
    result.id_lead_spent = [(outage.at, outage.until + RECOVERY_SECONDS, outage)]
    assert result.broken_invariants() == []


def test_each_secrets_failure_notices_are_a_streak_of_their_own() -> None:
    """The same fault fails both secrets' rotations: one notice each within the hour is no
    storm; a second one of the same secret is."""
    result = with_id_token_reads(a_result(3))
    result.notices = [
        (START + 600, "Google token rotation failed at createSecret (soak/test/access-token)"),
        (START + 660, f"Google token rotation failed at createSecret ({ID_SECRET})"),
    ]
    assert result.broken_invariants() == []

    result.notices.append((START + 1200, f"Google token rotation still failing ({ID_SECRET})"))
    [storm] = result.broken_invariants()
    assert storm.startswith("two failure notices within an hour of a streak")
    assert ID_SECRET in storm


def test_two_failure_notices_within_an_hour_are_a_notice_storm() -> None:
    result = a_result(3)
    result.notices = [
        (START, "Google token rotation failed"),
        (START + 3540, "Google token rotation still failing"),
    ]
    assert any("within an hour" in broken for broken in result.broken_invariants())

    # A reminder an hour after, seen a few seconds later than the first.
    result.notices = [
        (START + 20, "Google token rotation failed"),
        (START + 3600, "Google token rotation still failing"),
    ]
    assert result.broken_invariants() == []

    result.notices = [
        (START, "Google token rotation failed"),
        (START + 60, "Google token rotation recovered"),
        (START + 120, "Google token rotation failed"),
        (START + 120 + 3600, "Google token rotation still failing"),
    ]
    assert result.broken_invariants() == []

    result.notices = [
        (START, "Google token rotation failed (google/access-token)"),
        (START + 600, "Google token rotation promoted an unverified token (google/access-token)"),
        (START + 1200, "Google token rotation failed (google/access-token)"),
    ]
    assert result.broken_invariants() == []

    # Each secret's streak is its own: the key secret's failure is no reminder of the token's.
    result.key_secret_name = "stack-ServiceAccountKeySecret"
    result.notices = [
        (START, "Google token rotation failed (google/access-token)"),
        (START + 480, "Google token rotation failed (stack-ServiceAccountKeySecret)"),
    ]
    assert result.broken_invariants() == []


def test_unscheduled_notices_come_at_most_hourly_and_end_no_streak() -> None:
    result = a_result(3)
    unscheduled = "Google token rotated, next refresh not scheduled (google/access-token)"
    result.notices = [
        (START, "Google token rotation failed at createSecret (google/access-token)"),
        (START + 60, "Google token rotation recovered (google/access-token)"),
        (START + 61, unscheduled),
        (START + 3661, unscheduled),
    ]
    assert result.broken_invariants() == []

    result.notices = [(START, unscheduled), (START + 2700, unscheduled)]
    assert any("next-refresh-not-scheduled" in broken for broken in result.broken_invariants())


def test_the_sweeps_notice_of_a_refused_token_belongs_to_no_streak() -> None:
    result = a_result(3)
    result.notices = [
        (START, "Google refused the token in use, replacing it (google/access-token)"),
        (START + 60, "Google token rotation failed at createSecret (google/access-token)"),
        (START + 120, "Google refused the token in use, replacing it (google/access-token)"),
    ]

    assert result.broken_invariants() == []


def test_a_streak_ended_by_a_promotion_without_its_notice_is_named() -> None:
    """A promotion between two failure notices of the hour: the streak's end went unannounced
    (the "recovered" notice lost), not a reminder storm."""
    result = a_result(3)
    result.notices = [
        (START, "Google token rotation failed at testSecret (google/access-token)"),
        (START + 600, "Google token rotation failed at finishSecret (google/access-token)"),
    ]
    result.promotions = [START + 600]

    [broken] = result.broken_invariants()

    assert broken.startswith("a failure streak ended without its notice: a token was promoted")


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


def test_a_week_plans_what_operators_and_google_do_at_their_rates() -> None:
    plan = plan_faults(random.Random(1), START, START + 168 * HOUR)
    kinds = [fault.kind for fault in plan]

    assert kinds.count(FaultKind.SCHEDULE_DELETED) == 14
    assert kinds.count(FaultKind.TOKEN_REVOKED) == 7
    assert kinds.count(FaultKind.MANUAL_RUN) == 21
    assert kinds.count(FaultKind.ROTATE_SECRET_CALL) == 21
    assert kinds.count(FaultKind.KEY_ROLLED_OVER) == 2
    [tokeninfo] = [fault for fault in plan if fault.kind is FaultKind.TOKENINFO_OUTAGE]
    assert (tokeninfo.route, tokeninfo.seconds) == (TOKENINFO_ROUTE, TOKENINFO_OUTAGE_SECONDS)
    assert tokeninfo.until <= START + 168 * HOUR
    [group] = [fault for fault in plan if fault.kind is FaultKind.GROUP_DELETED]
    assert 5 * 60 <= group.seconds <= 30 * 60
    rollovers = [fault for fault in plan if fault.kind is FaultKind.KEY_ROLLED_OVER]
    assert all(fault.seconds == OLD_KEY_DELETED_AFTER_SECONDS for fault in rollovers)


@pytest.mark.parametrize("seed", [*range(40), 1401045715])  # the last: a hang in the last minute
def test_every_short_plan_holds_every_kind_and_its_quiet_events_are_clear_of_google_faults(
    seed: int,
) -> None:
    """Whatever the seed (the short soak draws one), ten lifetimes hold every kind of fault, and
    no fault on Google's side starts within the gap limit after a revocation or ended less than
    a recovery before it (a schedule group's deletion may meet anything)."""
    end = START + 10 * HOUR
    plan = plan_faults(random.Random(seed), START, end)

    assert {fault.kind for fault in plan} == set(FaultKind)
    # Each is injected: the run's last tick is a minute before its end.
    assert all(fault.at <= end - TICK_SECONDS for fault in plan)
    quiet = [
        (fault.at, max(fault.until, fault.at + REVOCATION_GAP_LIMIT_SECONDS))
        for fault in plan
        if fault.kind is FaultKind.TOKEN_REVOKED
    ]
    for begin, clear_until in quiet:
        assert clear_until <= end
        for fault in plan:
            if fault.kind in GOOGLE_SIDE:
                assert fault.until + RECOVERY_SECONDS < begin or clear_until < fault.at, fault


def test_quiet_spans_leave_out_google_faults_with_their_margins() -> None:
    outage = Fault(FaultKind.GOOGLE_OUTAGE, START + HOUR, seconds=HOUR)
    crash = Fault(FaultKind.CRASH_AFTER_PUT, START + 4 * HOUR)

    spans = quiet_spans([outage, crash], START, START + 5 * HOUR, REVOCATION_GAP_LIMIT_SECONDS)

    assert spans == [
        (START, outage.at - REVOCATION_GAP_LIMIT_SECONDS),
        (outage.until + RECOVERY_SECONDS, START + 5 * HOUR),
    ]


def test_no_revocation_is_planned_where_google_is_never_quiet() -> None:
    outage = Fault(FaultKind.GOOGLE_OUTAGE, START, seconds=3 * HOUR)

    events = plan_events(random.Random(3), START, START + 3 * HOUR, [outage])

    assert FaultKind.TOKEN_REVOKED not in {fault.kind for fault in events}
    assert FaultKind.MANUAL_RUN in {fault.kind for fault in events}


def test_keyless_runs_have_no_key_faults() -> None:
    assert {FaultKind.KEY_DISABLED, FaultKind.KEY_ROLLED_OVER} < KEYED
    assert {kind for kind in FaultKind if kind.name.startswith("KEY_")} == KEYED


def test_a_week_plans_the_keys_own_faults() -> None:
    kinds = [fault.kind for fault in plan_faults(random.Random(1), START, START + 168 * HOUR)]

    assert kinds.count(FaultKind.KEY_DELETED) == 2
    assert kinds.count(FaultKind.KEY_LIMIT) == 1
    assert kinds.count(FaultKind.KEY_CRASH_AFTER_PUT) == 2
    assert kinds.count(FaultKind.KEY_CRASH_AFTER_STAGE_MOVE) == 2


@pytest.mark.parametrize("kind", [FaultKind.KEY_DISABLED, FaultKind.KEY_DELETED])
def test_a_key_lost_with_a_standby_that_works_is_never_excused_without_one_it_is(
    kind: FaultKind,
) -> None:
    """The promise holds while another valid key exists: only a key fault that met no standby
    that works stops the mints, as an outage does."""
    reads = reads_every_minute(4, remaining=1800)
    covered = Fault(kind, START + HOUR, seconds=2 * HOUR, standby_until=START + 30 * HOUR)
    alone = Fault(kind, START + HOUR, seconds=2 * HOUR, standby_until=-math.inf)

    assert excused_outages([covered], reads) == []
    assert excused_outages([alone], reads) == [(alone.at, alone.until + RECOVERY_SECONDS, alone)]
    assert "no standby key that works" in alone.describe()


def a_keyed_result(hours: int) -> SoakResult:
    """A run whose key renews itself daily, two keys at Google each minute, nothing wrong."""
    result = a_result(hours)
    result.key_expiry_hours = 36.0
    result.key_promotions = [START + day * DAY for day in range(1, hours // 24 + 1)]
    result.stack_keys = [(read.at, 2, False) for read in result.reads]
    return result


def test_the_keys_promises_hold_in_a_quiet_run() -> None:
    result = a_keyed_result(50)

    assert result.broken_invariants() == []
    assert result.key_line().startswith(
        "key: policy 36 h, key rotations 2 (0 keys.create), keys max 2 (0 min above 2)"
    )


def test_a_third_key_of_the_stack_at_google_breaks_the_promise() -> None:
    result = a_keyed_result(50)
    result.stack_keys[90] = (result.stack_keys[90][0], 3, False)

    assert result.broken_invariants() == [
        "the stack held 3 keys at Google (at most 2; 3 while replacing a key Google refused), "
        "first at +1.50 h"
    ]


def test_a_third_key_only_while_replacing_a_refused_key_and_never_a_fourth() -> None:
    """The refused key keeps AWSCURRENT until finishSecret, the standby works, the new key waits
    as AWSPENDING: three, for as long as the replacement takes (seed 932339222: 1.6 h, its
    testSecret stopped by a tokeninfo outage)."""
    result = a_keyed_result(50)
    for minute in range(90, 190):
        result.stack_keys[minute] = (result.stack_keys[minute][0], 3, True)

    assert result.broken_invariants() == []
    assert "keys max 3 (100 min above 2)" in result.key_line()

    result.stack_keys[100] = (result.stack_keys[100][0], 4, True)
    assert result.broken_invariants() == [
        "the stack held 4 keys at Google (at most 2; 3 while replacing a key Google refused), "
        "first at +1.67 h"
    ]


def test_the_soak_watches_the_tag_the_rotation_sets_for_a_refused_key() -> None:
    assert soak.KEY_REFUSED_TAG == key_rotation.KEY_REFUSED_TAG


def test_a_refused_or_expired_key_in_awscurrent_breaks_the_promise() -> None:
    result = a_keyed_result(50)
    result.key_refused_current = [START + HOUR]
    result.key_expired_current = [START + 2 * HOUR, START + 2 * HOUR + 60]

    assert result.broken_invariants() == [
        "Google refused the key in AWSCURRENT, no fault on it: 1 minutes, first at +1.00 h",
        "the key in AWSCURRENT was past its validBeforeTime: 2 minutes, first at +2.00 h",
    ]


def test_a_day_without_a_key_renewal_breaks_the_promise_unless_faults_stopped_rotations() -> None:
    result = a_keyed_result(48)
    result.key_promotions = [START + DAY + HOUR]

    [late] = result.broken_invariants()
    assert late == "the key went 25.0 h without a renewal from +0.00 h (at most a day)"

    result.faults = [Fault(FaultKind.KEY_LIMIT, START + 20 * HOUR, seconds=HOUR)]
    assert result.broken_invariants() == []


@pytest.mark.parametrize("route", [TOKENINFO_ROUTE, "/token"])
def test_a_tokeninfo_outage_is_never_excused_a_mint_outage_is(route: str) -> None:
    """Google still mints while tokeninfo is down: the unverified promotion must keep the token
    valid, so even a tokeninfo outage longer than the token's life excuses no read."""
    reads = reads_every_minute(4, remaining=1800)
    outage = Fault(FaultKind.GOOGLE_OUTAGE, START + HOUR, seconds=2 * HOUR, route=route)
    tokeninfo = Fault(FaultKind.TOKENINFO_OUTAGE, START + HOUR, 2 * HOUR, TOKENINFO_ROUTE)

    assert excused_outages([tokeninfo], reads) == []
    assert bool(excused_outages([outage], reads)) is (route != TOKENINFO_ROUTE)


def revoked_at(result: SoakResult, minute: int, refused_minutes: int) -> float:
    """Revokes the token a second before the read of `minute`; that read and the next ones,
    `refused_minutes` in all, get the revoked token."""
    revoked = result.reads[minute].at - 1
    result.revocations.append(revoked)
    for n in range(minute, minute + refused_minutes):
        result.reads[n] = Read(result.reads[n].at, "v", False, 2000.0)
    return revoked


def test_the_reads_after_a_revocation_are_reported_apart_with_the_gap() -> None:
    result = a_result(3)
    revoked_at(result, 60, refused_minutes=6)

    assert len(result.counted()) == 180 - 6
    assert result.broken_invariants() == []
    assert result.revocation_line().startswith(
        "revoked: 1 tokens, worst gap 6.0 min (at most 10), 6 reads inside the gaps"
    )


def test_a_revocation_gap_longer_than_the_limit_breaks_the_promise() -> None:
    result = a_result(3)
    revoked_at(result, 60, refused_minutes=11)

    [broken] = result.broken_invariants()

    assert broken.startswith("the token revoked at +1.00 h was still read 11.0 min later")
    assert REVOCATION_GAP_LIMIT_SECONDS < 11 * 60


def test_a_revoked_token_never_replaced_breaks_the_promise() -> None:
    result = a_result(3)
    revoked_at(result, 170, refused_minutes=10)

    assert result.broken_invariants() == ["the token revoked at +2.83 h was never replaced"]


def test_the_sweep_must_fire_every_five_minutes_from_start_to_end() -> None:
    result = a_result(3)
    assert result.broken_invariants() == []

    del result.sweeps[10]
    assert result.broken_invariants() == ["the freshness sweep skipped a period at +0.75 h"]

    result.sweeps = result.sweeps[:20]
    assert "did not fire from the run's start to its end" in result.broken_invariants()[0]

    result.sweeps = []
    assert result.broken_invariants() == ["the freshness sweep never fired"]


def test_a_live_pending_version_dropped_is_a_second_rotation_started_beside_one() -> None:
    result = a_result(3)
    result.live_pending_dropped = [START + HOUR]

    assert result.broken_invariants() == [
        "1 rotations in progress were replaced by another (a live pending version dropped, "
        "first at +1.00 h)"
    ]


# --- a short soak ----------------------------------------------------------------------------


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCloud]:
    """A local cloud of its own; what starting one sets for the process is put back after."""
    monkeypatch.delenv("MOTO_PORT", raising=False)
    monkeypatch.setattr(fidelity.CORRECTIONS, "dispatch", fidelity.CORRECTIONS.dispatch)
    monkeypatch.setattr(fidelity.CORRECTIONS, "sleep_retries", fidelity.CORRECTIONS.sleep_retries)
    with LocalCloud(
        sleep_retries=False,
        google_timeout_seconds=WORKER_GOOGLE_TIMEOUT_SECONDS,
        retry_waits_on_clock=True,
    ) as running:
        yield running


def free_hours(result: SoakResult, excused: list[tuple[float, float, Fault]]) -> float:
    """The run's hours outside its excused outages (their spans merged, cut to the run)."""
    begun = result.reads[0].at
    ended = begun + result.lifetimes * HOUR
    covered, reach = 0.0, begun
    for begin, end, _ in sorted(excused, key=lambda span: span[0]):
        start, stop = max(begin, reach), min(end, ended)
        if stop > start:
            covered += stop - start
            reach = stop
    return (ended - begun - covered) / HOUR


def test_free_hours_merge_overlapping_outages_and_stop_at_the_run_s_end() -> None:
    result = a_result(3)
    outage = Fault(FaultKind.GOOGLE_OUTAGE, START, 0)
    spans = [
        (START + HOUR, START + 2 * HOUR, outage),
        (START + 1.5 * HOUR, START + 9 * HOUR, outage),
    ]

    assert free_hours(result, []) == 3
    assert free_hours(result, spans) == 1


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
    with half the lead to spare. The access-token secret alone, to keep `make test` short: the
    other sources' short soaks and `make soak` run an ID-token secret beside it."""
    lines: list[str] = []
    seed = soak_seed(SHORT_SOAK_LIFETIMES)

    result = Soak(
        cloud,
        seed,
        SHORT_SOAK_LIFETIMES,
        lines.append,
        id_token=False,
        key_expiry_hours=SHORT_KEY_EXPIRY_HOURS,
    ).run()

    assert result.broken_invariants() == [], "\n".join(lines)
    assert len(result.reads) >= SHORT_SOAK_LIFETIMES * 60
    assert {fault.kind for fault in result.faults} == set(FaultKind)
    assert result.revocations, "a token was revoked (and replaced within the limit: invariants)"
    assert {outcome.split()[0] for outcome in result.operators} == {"console", "rotate-secret"}
    # Reads at random moments of each minute, not right after the scheduler looked.
    assert len({int(read.at) % 60 for read in result.reads}) >= 30
    match = LAST_LINE.fullmatch(result.line())
    assert match is not None
    valid, counted = int(match[1]), int(match[2])
    assert valid == counted
    assert int(match[5]) >= DEFAULT_LEAD_SECONDS / 2
    assert result.notices, "the faults' failing streaks notified"
    assert result.id_reads == []
    # The 4-hour key renews itself 3 hours after each rotation or put: at the start, then again.
    # Keys the driver puts by hand (a rollover, the fix after a deletion) restart that count, so
    # a run may hold two renewals (seed 132744140); none of its keys expired (the invariants).
    assert len(result.key_promotions) >= 2, result.key_line()
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
    # A token a lifetime, in the hours the excused outages left (seed 550683470's three outages
    # took 2.3 of its 3 hours).
    assert result.rotations >= max(1, int(free_hours(result, result.excused)))
    # The ID-token secret beside it kept its own promise (broken_invariants) through the faults.
    assert len(result.id_reads) == len(result.reads)
    assert len(result.id_promotions) >= int(free_hours(result, result.id_excused)) // 2
    routes = {fault.route for fault in result.faults if fault.kind in BLOCKING}
    assert routes <= set(ROUTES_OF[source])
    assert "/generateAccessToken" in ROUTES_OF[source]
    if source == FEDERATION_SOURCE:
        assert FaultKind.KEY_DISABLED not in {fault.kind for fault in result.faults}
