"""Pure refresh rules: when a secret rotates next, how failures back off and when they notify."""

import itertools
import json
import re
from datetime import UTC, datetime, timedelta, timezone

import botocore.session
import pytest
from botocore.validate import validate_parameters

from rotation_core.refresh import (
    CURRENT_EXPIRES_AT_TAG,
    FAILED_ATTEMPTS_TAG,
    FAILING_SINCE_TAG,
    MIN_VERSION_INTERVAL,
    NOTIFIED_AT_TAG,
    STATUS_TAG_PREFIX,
    FailureStreak,
    NoticeKind,
    RotationSchedule,
    StreakWrite,
    after_failure,
    at_expression,
    current_expiry,
    first_refresh_spread,
    next_refresh_at,
    notifies,
    refresh_due,
    retry_at,
    schedule_name,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:google/access-token-AbCdEf"
ROLE = "arn:aws:iam::123456789012:role/token-rotation-scheduler"
GROUP = "token-rotation-refresh"
SCHEDULE_NAME = re.compile(r"[0-9A-Za-z_.-]{1,64}")


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# next_refresh_at: a lead before expiry, with two floors.


def test_the_next_refresh_is_the_lead_before_the_new_token_expires() -> None:
    due = next_refresh_at(T0, T0 + HOUR, 900, now=T0 + timedelta(seconds=5))

    assert due == T0 + minutes(45)


@pytest.mark.parametrize("elapsed", [0, 1, 10, 30, 44], ids=lambda m: f"{m}min-after-mint")
def test_the_next_refresh_does_not_drift_as_time_passes_before_its_floors(elapsed: int) -> None:
    assert next_refresh_at(T0, T0 + HOUR, 900, now=T0 + minutes(elapsed)) == T0 + minutes(45)


def test_the_next_refresh_never_comes_sooner_than_10_minutes_after_the_mint() -> None:
    # A lead almost as long as the token's life would ask for a new version 100 s after this one.
    due = next_refresh_at(T0, T0 + HOUR, 3500, now=T0 + timedelta(seconds=5))

    assert due == T0 + minutes(10)


def test_the_10_minute_floor_counts_from_the_mint_not_from_now() -> None:
    # Finished 4 minutes after the mint: 6 minutes to go, not 10.
    due = next_refresh_at(T0, T0 + HOUR, 3600, now=T0 + minutes(4))

    assert due == T0 + minutes(10)


def test_the_next_refresh_is_never_sooner_than_a_minute_from_now() -> None:
    # finishSecret ran late (a retry): expires_at - lead is already in the past.
    now = T0 + minutes(50)
    due = next_refresh_at(T0, T0 + HOUR, 900, now=now)

    assert due == now + MINUTE


def test_both_floors_hold_at_once_and_the_later_wins() -> None:
    now = T0 + minutes(9.5)
    # The mint's floor (T0 + 10 min) is sooner than a minute from now.
    assert next_refresh_at(T0, T0 + minutes(20), 1200, now=now) == now + MINUTE
    # A minute from now is sooner than the mint's floor.
    early = T0 + minutes(2)
    assert next_refresh_at(T0, T0 + minutes(20), 1200, now=early) == T0 + minutes(10)


# A first token's refresh: a moment of the secret's own, so secrets created together spread out.


@pytest.mark.parametrize(("spread", "due"), [(0.0, 10), (0.5, 27.5), (1.0, 45)])
def test_spread_places_the_refresh_between_the_mints_floor_and_the_lead(
    spread: float, due: float
) -> None:
    assert next_refresh_at(T0, T0 + HOUR, 900, now=T0, spread=spread) == T0 + minutes(due)


def test_spread_keeps_the_floor_a_minute_from_now() -> None:
    now = T0 + minutes(30)

    assert next_refresh_at(T0, T0 + HOUR, 900, now=now, spread=0.0) == now + MINUTE


@pytest.mark.parametrize("spread", [-0.1, 1.01])
def test_a_spread_outside_0_to_1_is_refused(spread: float) -> None:
    with pytest.raises(ValueError, match="spread must be between 0 and 1"):
        next_refresh_at(T0, T0 + HOUR, 900, now=T0, spread=spread)


def test_refresh_due_is_the_lead_before_expiry_never_sooner_than_the_mints_floor() -> None:
    assert refresh_due(T0, T0 + HOUR, 900) == T0 + minutes(45)
    assert refresh_due(T0, T0 + HOUR, 3500) == T0 + minutes(10)


def test_the_first_refresh_spread_is_the_secrets_own_and_uniform_across_secrets() -> None:
    arns = [f"{ARN[:-6]}{n:06d}" for n in range(2_000)]
    spreads = [first_refresh_spread(arn) for arn in arns]

    assert first_refresh_spread(ARN) == first_refresh_spread(ARN)
    assert all(0.0 <= spread < 1.0 for spread in spreads)
    deciles = [sum(int(spread * 10) == d for spread in spreads) for d in range(10)]
    assert min(deciles) > 150, deciles
    assert max(deciles) < 250, deciles


def test_secrets_created_together_spread_over_a_token_lifetime_and_stay_spread() -> None:
    """100 secrets whose first tokens are minted in the same minute: each refresh mints the next
    token when it is due, a successor is due a fixed lead before its own expiry. Their refreshes
    fall in any 5 minutes at most twice as often as the average, on the first day and the next."""
    arns = [f"{ARN[:-6]}{n:06d}" for n in range(100)]
    firsts = [
        next_refresh_at(T0, T0 + HOUR, 900, now=T0, spread=first_refresh_spread(arn))
        for arn in arns
    ]
    window = minutes(5)
    per_window = len(arns) * window / (HOUR - minutes(15) - MIN_VERSION_INTERVAL)

    def busiest(moments: list[datetime]) -> int:
        return max(sum(m <= other < m + window for other in moments) for m in moments)

    assert min(firsts) < T0 + minutes(15)
    assert max(firsts) > T0 + minutes(40)
    assert busiest(firsts) <= 2 * per_window
    later = firsts
    for _ in range(32):  # a day of 45-minute rotations
        later = [next_refresh_at(m, m + HOUR, 900, now=m) for m in later]
    assert busiest(later) == busiest(firsts)


# retry_at: 1, 2, 4, 8 minutes, capped at 15, never past half the current token's life.


@pytest.mark.parametrize(
    ("attempts", "wait"),
    [(1, 1), (2, 2), (3, 4), (4, 8), (5, 15), (6, 15), (11, 15), (12, 15), (1000, 15)],
)
def test_retries_back_off_by_doubling_from_one_minute_up_to_fifteen(
    attempts: int, wait: int
) -> None:
    assert retry_at(attempts, T0, expires_at=None) == T0 + minutes(wait)


@pytest.mark.parametrize(("attempts", "wait"), [(1, 1), (2, 2), (3, 4), (4, 8), (5, 15), (9, 15)])
def test_a_token_with_a_long_life_left_does_not_shorten_the_backoff(
    attempts: int, wait: int
) -> None:
    assert retry_at(attempts, T0, expires_at=T0 + HOUR) == T0 + minutes(wait)


@pytest.mark.parametrize(
    ("attempts", "left", "wait"),
    [
        (4, 10, 5),  # 8 minutes would be more than half of 10
        (5, 20, 10),  # 15 minutes would be more than half of 20
        (5, 31, 15),  # half of 31 is more than the cap: the cap holds
        (3, 6, 3),
        (2, 10, 2),  # the backoff itself is shorter than half
    ],
)
def test_a_retry_never_waits_past_half_of_the_current_tokens_remaining_life(
    attempts: int, left: int, wait: int
) -> None:
    assert retry_at(attempts, T0, expires_at=T0 + minutes(left)) == T0 + minutes(wait)


@pytest.mark.parametrize("left_seconds", [1, 30, 90, 119])
def test_a_retry_waits_at_least_a_minute_however_little_life_is_left(left_seconds: int) -> None:
    expires = T0 + timedelta(seconds=left_seconds)

    assert retry_at(4, T0, expires_at=expires) == T0 + MINUTE


@pytest.mark.parametrize(
    "expired_for", [timedelta(0), timedelta(seconds=1), HOUR], ids=["now", "1s-ago", "1h-ago"]
)
@pytest.mark.parametrize(("attempts", "wait"), [(1, 1), (3, 4), (4, 8), (7, 15)])
def test_an_expired_token_gets_the_plain_backoff(
    expired_for: timedelta, attempts: int, wait: int
) -> None:
    assert retry_at(attempts, T0, expires_at=T0 - expired_for) == T0 + minutes(wait)


def test_retries_crowd_in_before_the_current_token_expires() -> None:
    """Walking a failing chain towards the expiry: no retry is set past it while at least two
    minutes are left, and the attempts come closer together as it nears."""
    expires = T0 + minutes(25)
    now, attempts, waits = T0, 1, []
    while expires - now >= 2 * MINUTE:
        due = retry_at(attempts, now, expires)
        assert due <= expires
        waits.append(due - now)
        now, attempts = due, attempts + 1

    assert waits == [minutes(m) for m in (1, 2, 4, 8, 5, 2.5, 1.25)]


# The failure streak: first notifies, then at most hourly reminders.


def test_the_first_failure_of_a_streak_notifies_and_starts_it() -> None:
    kind, streak = after_failure(None, T0)

    assert kind is NoticeKind.FIRST
    assert streak == FailureStreak(since=T0, failed_attempts=1, notified_at=T0)


def test_a_failure_within_the_hour_is_held_back_but_counted() -> None:
    first = FailureStreak(since=T0, failed_attempts=1, notified_at=T0)

    kind, streak = after_failure(first, T0 + minutes(5))

    assert kind is None
    assert streak == FailureStreak(since=T0, failed_attempts=2, notified_at=T0)


def test_a_reminder_comes_an_hour_after_the_last_notice_not_a_second_sooner() -> None:
    streak = FailureStreak(since=T0 - minutes(30), failed_attempts=6, notified_at=T0)

    held, unchanged = after_failure(streak, T0 + HOUR - timedelta(seconds=1))
    kind, reminded = after_failure(streak, T0 + HOUR)

    assert held is None
    assert unchanged.notified_at == T0
    assert unchanged.failed_attempts == 7
    assert kind is NoticeKind.REMINDER
    assert reminded == FailureStreak(
        since=T0 - minutes(30), failed_attempts=7, notified_at=T0 + HOUR
    )


def test_a_streak_never_notified_reminds_at_its_next_failure() -> None:
    kind, streak = after_failure(FailureStreak(T0, 3, None), T0 + MINUTE)

    assert kind is NoticeKind.REMINDER
    assert streak == FailureStreak(T0, 4, T0 + MINUTE)


def walk_streak(failures: list[datetime]) -> list[tuple[datetime, NoticeKind]]:
    """The notices a run of failures gives, the streak kept in status tags between them, as the
    DescribeFailure Lambda keeps it."""
    tags: dict[str, str] = {}
    notices = []
    for moment in failures:
        kind, streak = after_failure(FailureStreak.from_tags(tags), moment)
        tags = streak.as_tags()
        if kind is not None:
            notices.append((moment, kind))
    return notices


@pytest.mark.parametrize(
    ("kind", "write", "expected"),
    [
        (NoticeKind.FIRST, StreakWrite.RECORDED, True),
        (NoticeKind.REMINDER, StreakWrite.RECORDED, True),
        (None, StreakWrite.RECORDED, False),
        (NoticeKind.FIRST, StreakWrite.UNAVAILABLE, False),
        (NoticeKind.REMINDER, StreakWrite.UNAVAILABLE, False),
        (None, StreakWrite.UNAVAILABLE, False),
        (NoticeKind.FIRST, StreakWrite.REFUSED, True),
        (NoticeKind.REMINDER, StreakWrite.REFUSED, True),
        (None, StreakWrite.REFUSED, True),
    ],
)
def test_a_throttled_write_defers_the_notice_and_a_refused_one_always_speaks(
    kind: NoticeKind | None, write: StreakWrite, expected: bool
) -> None:
    assert notifies(kind, write) is expected


def walk_with_lost_writes(failures: list[datetime], lost: set[int]) -> list[datetime]:
    """The notices a run of failures gives when AWS throttles the streak's write at the failures
    numbered in `lost`: the record on the secret then stays as it was."""
    tags: dict[str, str] = {}
    notices = []
    for number, moment in enumerate(failures):
        kind, streak = after_failure(FailureStreak.from_tags(tags), moment)
        write = StreakWrite.UNAVAILABLE if number in lost else StreakWrite.RECORDED
        if write is StreakWrite.RECORDED:
            tags = streak.as_tags()
        if notifies(kind, write):
            notices.append(moment)
    return notices


@pytest.mark.parametrize(
    "lost",
    [set(), {0}, {0, 1}, {4, 5}, {5, 6, 7}, {4}, set(range(1, 13)), {1, 3, 5, 7, 9, 11}],
    ids=[
        "none",
        "first",
        "first-two",
        "reminder",
        "around-reminder",
        "before-reminder",
        "all-but-first",
        "every-other",
    ],
)
def test_throttled_writes_never_bring_two_notices_within_an_hour(lost: set[int]) -> None:
    """Issue #21, item 3: failures every 16 minutes for over three hours (the capped backoff),
    some of their writes throttled: still at most one notice an hour, and the first one late by
    at most the lost writes' retries."""
    failures = [T0 + minutes(16 * i) for i in range(14)]

    notices = walk_with_lost_writes(failures, lost)

    assert notices
    assert all(later - earlier >= HOUR for earlier, later in itertools.pairwise(notices))
    first_recorded = min(set(range(len(failures))) - lost)
    assert notices[0] == failures[first_recorded]


def test_six_hours_of_failures_every_five_minutes_give_one_notice_and_six_reminders() -> None:
    failures = [T0 + minutes(5 * i) for i in range(6 * 12 + 1)]  # 0, 5, ..., 360 minutes

    notices = walk_streak(failures)

    assert [moment for moment, _ in notices] == [T0 + HOUR * h for h in range(7)]
    assert [kind for _, kind in notices] == [NoticeKind.FIRST] + [NoticeKind.REMINDER] * 6


def test_reminders_count_from_the_last_notice_not_from_the_start_of_the_streak() -> None:
    # Every 7 minutes: the first failure at or past each hour since the last notice reminds.
    failures = [T0 + minutes(7 * i) for i in range(360 // 7 + 1)]

    notices = walk_streak(failures)

    assert [moment - T0 for moment, _ in notices] == [
        minutes(m) for m in (0, 63, 126, 189, 252, 315)
    ]


def test_a_streak_on_the_chains_own_backoff_notifies_seven_times_in_six_hours() -> None:
    """The chain's own cadence (retry_at with the token expired): failures at 0, 1, 3, 7, 15,
    30, 45, ... minutes, so one notice and a reminder on each hour up to the sixth."""
    failures, now, attempts = [], T0, 1
    while now <= T0 + 6 * HOUR:
        failures.append(now)
        now, attempts = retry_at(attempts, now, expires_at=T0 - MINUTE), attempts + 1

    notices = walk_streak(failures)

    assert [moment - T0 for moment in failures[:7]] == [
        minutes(m) for m in (0, 1, 3, 7, 15, 30, 45)
    ]
    assert len(failures) == 5 + (360 - 30) // 15 + 1
    assert [moment for moment, _ in notices] == [T0 + HOUR * h for h in range(7)]


# The streak's status tags.


@pytest.mark.parametrize(
    "streak",
    [
        FailureStreak(T0, 1, T0),
        FailureStreak(T0 - minutes(90), 23, T0 - minutes(30)),
        FailureStreak(T0, 4, None),
    ],
    ids=["first", "reminded", "never-notified"],
)
def test_a_streak_round_trips_through_its_status_tags(streak: FailureStreak) -> None:
    tags = streak.as_tags()

    assert FailureStreak.from_tags(tags) == streak
    assert all(key.startswith(STATUS_TAG_PREFIX) for key in tags)


def test_the_status_tags_are_plain_timestamps_and_a_count() -> None:
    tags = FailureStreak(T0, 3, T0 + minutes(61)).as_tags()

    assert tags == {
        FAILING_SINCE_TAG: "2026-03-01T12:00:00Z",
        FAILED_ATTEMPTS_TAG: "3",
        NOTIFIED_AT_TAG: "2026-03-01T13:01:00Z",
    }
    assert FailureStreak(T0, 3, None).as_tags().keys() == {FAILING_SINCE_TAG, FAILED_ATTEMPTS_TAG}


def test_other_tags_beside_the_streak_do_not_disturb_it() -> None:
    tags = {
        **FailureStreak(T0, 2, T0).as_tags(),
        "token-rotation:managed-by": "stack",
        CURRENT_EXPIRES_AT_TAG: "2026-03-01T13:00:00Z",
    }

    assert FailureStreak.from_tags(tags) == FailureStreak(T0, 2, T0)


GOOD = {
    FAILING_SINCE_TAG: "2026-03-01T12:00:00Z",
    FAILED_ATTEMPTS_TAG: "3",
    NOTIFIED_AT_TAG: "2026-03-01T12:00:00Z",
}


@pytest.mark.parametrize(
    "edited",
    [
        {},
        {FAILED_ATTEMPTS_TAG: "3", NOTIFIED_AT_TAG: "2026-03-01T12:00:00Z"},
        {**GOOD, FAILING_SINCE_TAG: "yesterday"},
        {**GOOD, FAILING_SINCE_TAG: "2026-03-01T12:00:00"},
        {**GOOD, FAILING_SINCE_TAG: ""},
        {**GOOD, NOTIFIED_AT_TAG: "2026-13-01T12:00:00Z"},
        {**GOOD, FAILED_ATTEMPTS_TAG: "0"},
        {**GOOD, FAILED_ATTEMPTS_TAG: "-1"},
        {**GOOD, FAILED_ATTEMPTS_TAG: "three"},
        {**GOOD, FAILED_ATTEMPTS_TAG: "3.0"},
        {**GOOD, FAILED_ATTEMPTS_TAG: " 3"},
        {**GOOD, FAILED_ATTEMPTS_TAG: "٣"},
        {**GOOD, FAILED_ATTEMPTS_TAG: ""},
        {FAILING_SINCE_TAG: "2026-03-01T12:00:00Z"},
    ],
    ids=[
        "no-tags",
        "missing-since",
        "since-not-a-time",
        "since-without-zone",
        "since-blank",
        "notified-bad-month",
        "zero-attempts",
        "negative-attempts",
        "attempts-word",
        "attempts-decimal",
        "attempts-padded",
        "attempts-arabic-digit",
        "attempts-blank",
        "attempts-missing",
    ],
)
def test_edited_or_malformed_streak_tags_read_as_no_streak(edited: dict[str, str]) -> None:
    assert FailureStreak.from_tags(edited) is None


def test_a_malformed_streak_starts_over_with_a_first_notice_never_a_silent_one() -> None:
    edited = {**GOOD, FAILED_ATTEMPTS_TAG: "lots"}

    kind, streak = after_failure(FailureStreak.from_tags(edited), T0 + minutes(5))

    assert kind is NoticeKind.FIRST
    assert streak == FailureStreak(T0 + minutes(5), 1, T0 + minutes(5))


def test_the_current_tokens_expiry_is_read_from_its_status_tag_or_unknown() -> None:
    assert current_expiry({CURRENT_EXPIRES_AT_TAG: "2026-03-01T13:00:00Z"}) == T0 + HOUR
    assert current_expiry({CURRENT_EXPIRES_AT_TAG: "soon"}) is None
    assert current_expiry({}) is None


# schedule_name: one valid, unique, stable name per secret.


def test_a_schedule_name_is_readable_valid_and_at_most_64_characters() -> None:
    name = schedule_name(ARN)

    assert SCHEDULE_NAME.fullmatch(name)
    assert name.startswith("refresh-google-access-token-AbCdEf-")


def test_a_schedule_name_is_stable_for_the_same_arn_across_processes_and_releases() -> None:
    """Pinned: a name that changed between invocations (or Python's salted hash()) would leave
    the old schedule behind and create a second one for the same secret."""
    assert schedule_name(ARN) == "refresh-google-access-token-AbCdEf-384f944b2cd1df7d"
    assert schedule_name("".join(ARN)) == schedule_name(ARN)


@pytest.mark.parametrize(
    "other",
    [
        ARN.replace("eu-west-1", "us-east-1"),
        ARN.replace("123456789012", "210987654321"),
        ARN.replace("-AbCdEf", "-ZyXwVu"),  # deleted and created again under the same name
    ],
    ids=["other-region", "other-account", "recreated"],
)
def test_two_secrets_with_the_same_readable_name_get_different_schedules(other: str) -> None:
    assert schedule_name(other) != schedule_name(ARN)
    assert SCHEDULE_NAME.fullmatch(schedule_name(other))


@pytest.mark.parametrize(
    "name",
    [
        "team/" + "n-" * 253 + "xx",  # 512 characters, the longest name Secrets Manager allows
        "x" * 512,
        "a+b=c@d/e",
        "+/=@",
        "token.rotation_1-A",
    ],
    ids=["512-hyphenated", "512-run", "special-characters", "only-special", "plain"],
)
def test_any_secret_name_gives_a_valid_schedule_name(name: str) -> None:
    arn = f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{name}-AbCdEf"

    scheduled = schedule_name(arn)

    assert SCHEDULE_NAME.fullmatch(scheduled), scheduled
    assert scheduled.startswith("refresh-")


def test_long_names_that_share_their_first_64_characters_still_differ() -> None:
    first = f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{'a' * 500}1-AbCdEf"
    second = f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{'a' * 500}2-AbCdEf"

    assert schedule_name(first) != schedule_name(second)
    assert len(schedule_name(first)) == 64


# at_expression and the request EventBridge Scheduler receives.


@pytest.mark.parametrize(
    ("moment", "expression"),
    [
        (T0, "at(2026-03-01T12:00:00)"),
        (T0 + timedelta(microseconds=1), "at(2026-03-01T12:00:01)"),
        (T0 + timedelta(seconds=59, microseconds=999_999), "at(2026-03-01T12:01:00)"),
        (
            datetime(2026, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
            "at(2027-01-01T00:00:00)",
        ),
        (
            datetime(2026, 3, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2))),
            "at(2026-03-01T12:00:00)",
        ),
        (
            datetime(2026, 3, 1, 6, 30, 0, 250_000, tzinfo=timezone(timedelta(hours=-5))),
            "at(2026-03-01T11:30:01)",
        ),
    ],
    ids=["whole", "1us-up", "next-minute", "next-year", "utc+2", "utc-5-fraction"],
)
def test_the_at_expression_is_utc_in_whole_seconds_rounded_up(
    moment: datetime, expression: str
) -> None:
    assert at_expression(moment) == expression
    assert re.fullmatch(r"at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\)", at_expression(moment))


def test_a_rounded_expression_never_fires_before_the_moment_asked() -> None:
    moment = T0 + timedelta(seconds=30, microseconds=1)
    fired = datetime.strptime(at_expression(moment), "at(%Y-%m-%dT%H:%M:%S)").replace(tzinfo=UTC)

    assert moment <= fired < moment + timedelta(seconds=1)


DUE = T0 + minutes(45)


def schedule_payload(due: datetime = DUE) -> dict[str, str]:
    return RotationSchedule(ARN, due).as_payload()


def test_the_schedule_calls_rotate_secret_on_exactly_this_secret() -> None:
    payload = schedule_payload()

    assert json.loads(payload["TargetInput"]) == {"SecretId": ARN}


def test_the_schedule_is_named_for_the_secret_and_due_in_utc() -> None:
    payload = schedule_payload(T0 + minutes(45))

    assert payload["Name"] == schedule_name(ARN)
    assert payload["ScheduleExpression"] == "at(2026-03-01T12:45:00)"
    assert payload["Description"] == "Rotate the token secret at 2026-03-01T12:45:00Z"


def test_the_function_chooses_only_the_time_the_name_and_the_secret() -> None:
    """Where the schedule lives, the role it runs as and its target are the template's."""
    assert set(schedule_payload()) == {"Name", "ScheduleExpression", "Description", "TargetInput"}


@pytest.mark.parametrize("operation", ["UpdateSchedule", "CreateSchedule"])
def test_the_chosen_fields_are_valid_for_eventbridge_schedulers_own_model(operation: str) -> None:
    """Checked against botocore's service model, as the state machine sends them."""
    model = botocore.session.get_session().get_service_model("scheduler")
    input_shape = model.operation_model(operation).input_shape
    assert input_shape is not None
    payload = schedule_payload()
    parameters = {
        "Name": payload["Name"],
        "GroupName": GROUP,
        "ScheduleExpression": payload["ScheduleExpression"],
        "Description": payload["Description"],
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": "arn:aws:scheduler:::aws-sdk:secretsmanager:rotateSecret",
            "RoleArn": ROLE,
            "Input": payload["TargetInput"],
        },
    }

    assert set(input_shape.required_members) <= parameters.keys()
    validate_parameters(parameters, input_shape)
