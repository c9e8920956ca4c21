"""The freshness sweep's pure rules: each secret's decision across time, the plan under a budget,
and the budget the Step Functions quotas allow."""

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rotation_core.refresh import MIN_VERSION_INTERVAL
from rotation_core.sweep import (
    DESCRIBE_EXECUTION_QUOTA,
    DESCRIBE_EXECUTION_QUOTA_LARGE_REGIONS,
    NEVER,
    PACING_WINDOW,
    SCHEDULE_GRACE,
    START_EXECUTION_QUOTA,
    START_EXECUTION_QUOTA_LARGE_REGIONS,
    STUCK_AFTER,
    SWEEP_INTERVAL,
    SWEEP_SHARE,
    Action,
    Decision,
    Freshness,
    KeyState,
    Reason,
    SecretState,
    Verdict,
    asks_google,
    days_left,
    decide,
    decide_key,
    freshness,
    plan,
    quotas,
    run_budget,
    start_spacing,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
"""When the token in use was minted; it lives an hour and its schedule is due at T0 + 45 min."""
LEAD = 900
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:google/access-token-AbCdEf"


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def secret(**changes: object) -> SecretState:
    """A managed secret with a fresh 1-hour token minted at T0 and no rotation in progress."""
    state = SecretState(
        arn=ARN,
        name="google/access-token",
        rotation_enabled=True,
        current_version="v-current",
        current_expires_at=T0 + timedelta(hours=1),
        pending_version=None,
        pending_created_at=None,
        lead_seconds=LEAD,
        current_issued_at=T0,
    )
    return replace(state, **changes)  # type: ignore[arg-type]


def pending_since(created: datetime | None, **changes: object) -> SecretState:
    return secret(pending_version="v-pending", pending_created_at=created, **changes)


SCHEDULE_DUE = T0 + minutes(45)
SWEEP_DUE = SCHEDULE_DUE + SCHEDULE_GRACE

# (case, state, now, action, reason, notify)
CASES = [
    ("fresh", secret(), T0 + minutes(10), Action.NOTHING, Reason.FRESH, False),
    ("its schedule is due", secret(), SCHEDULE_DUE, Action.NOTHING, Reason.FRESH, False),
    (
        "a second before the grace ends",
        secret(),
        SWEEP_DUE - timedelta(seconds=1),
        Action.NOTHING,
        Reason.FRESH,
        False,
    ),
    ("the grace is over", secret(), SWEEP_DUE, Action.ROTATE, Reason.DUE, False),
    ("expired", secret(), T0 + minutes(61), Action.ROTATE, Reason.EXPIRED, False),
    ("expiring this second", secret(), T0 + minutes(60), Action.ROTATE, Reason.EXPIRED, False),
    (
        "the placeholder",
        secret(current_expires_at=None, current_issued_at=None),
        T0,
        Action.ROTATE,
        Reason.NO_TOKEN,
        False,
    ),
    (
        "refused by Google",
        secret(verdict=Verdict.REFUSED),
        T0 + minutes(10),
        Action.ROTATE,
        Reason.REFUSED,
        True,
    ),
    (
        "refused, already noticed",
        secret(verdict=Verdict.REFUSED, refused_noticed=True),
        T0 + minutes(10),
        Action.ROTATE,
        Reason.REFUSED,
        False,
    ),
    (
        "refused because it expired",
        secret(verdict=Verdict.REFUSED),
        T0 + minutes(61),
        Action.ROTATE,
        Reason.EXPIRED,
        False,
    ),
    (
        "tokeninfo could not answer",
        secret(verdict=Verdict.UNKNOWN),
        T0 + minutes(10),
        Action.NOTHING,
        Reason.FRESH,
        False,
    ),
    (
        "rotation disabled, token expired",
        secret(rotation_enabled=False),
        T0 + minutes(61),
        Action.NOTHING,
        Reason.DISABLED,
        False,
    ),
    (
        "a young rotation, token expired",
        pending_since(T0 + minutes(60)),
        T0 + minutes(61),
        Action.NOTHING,
        Reason.IN_PROGRESS,
        False,
    ),
    (
        "a young rotation, token refused",
        pending_since(T0 + minutes(9), verdict=Verdict.REFUSED),
        T0 + minutes(10),
        Action.NOTHING,
        Reason.IN_PROGRESS,
        False,
    ),
    (
        "a stuck rotation, token fresh",
        pending_since(T0 + minutes(1)),
        T0 + minutes(30),
        Action.NOTHING,
        Reason.STUCK_NOT_DUE,
        False,
    ),
    (
        "a stuck rotation, token due",
        pending_since(T0 + minutes(30)),
        SWEEP_DUE,
        Action.DRIVE,
        Reason.DUE,
        False,
    ),
    (
        "a stuck rotation whose pending token can still pass",
        pending_since(T0 + minutes(30), pending_fresh=True),
        SWEEP_DUE,
        Action.DRIVE,
        Reason.DUE,
        False,
    ),
    (
        "a stuck rotation whose pending version can never pass",
        pending_since(T0 - minutes(30), pending_fresh=False),
        T0 + minutes(61),
        Action.ABANDON,
        Reason.EXPIRED,
        False,
    ),
    (
        "a stuck rotation, token refused",
        pending_since(T0, verdict=Verdict.REFUSED),
        T0 + minutes(10),
        Action.DRIVE,
        Reason.REFUSED,
        True,
    ),
    (
        "a pending version of unknown age, token expired",
        pending_since(None),
        T0 + minutes(61),
        Action.DRIVE,
        Reason.EXPIRED,
        False,
    ),
]


@pytest.mark.parametrize(
    ("state", "now", "action", "reason", "notify"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_secret_gets_one_decision(
    state: SecretState, now: datetime, action: Action, reason: Reason, notify: bool
) -> None:
    decision = decide(state, now)

    assert (decision.action, decision.reason, decision.notify_refused) == (action, reason, notify)
    assert decision.secret_arn == ARN


def test_the_precise_schedule_has_its_chance_first_and_a_lost_one_is_repaired_in_time() -> None:
    """The worst case: the schedule is lost, and the sweep ran just before the grace ended. The
    next run, an interval later, rotates with more than a rotation's worst time to spare."""
    just_before = SWEEP_DUE - timedelta(seconds=1)
    assert decide(secret(), just_before).action is Action.NOTHING
    next_run = just_before + SWEEP_INTERVAL
    assert decide(secret(), next_run).action is Action.ROTATE
    assert next_run - SCHEDULE_DUE <= SWEEP_INTERVAL + SCHEDULE_GRACE
    assert T0 + timedelta(hours=1) - next_run > STUCK_AFTER


def test_a_token_minted_with_a_lead_beyond_its_life_is_not_replaced_before_its_floor() -> None:
    """Its schedule waits MIN_VERSION_INTERVAL after the mint (Secrets Manager's pruning): the
    sweep does not rotate every run in between."""
    long_lead = secret(lead_seconds=3500)
    floor = T0 + MIN_VERSION_INTERVAL

    assert decide(long_lead, floor + SCHEDULE_GRACE - timedelta(seconds=1)).action is Action.NOTHING
    assert decide(long_lead, floor + SCHEDULE_GRACE).reason is Reason.DUE
    # Without the mint time the sweep can only go by the lead.
    unknown_mint = replace(long_lead, current_issued_at=None)
    lead_only = T0 + timedelta(hours=1) - timedelta(seconds=3500) + SCHEDULE_GRACE
    assert decide(unknown_mint, lead_only).reason is Reason.DUE


def test_a_stuck_rotation_is_one_that_outlived_the_entry_functions_timeout() -> None:
    created = T0 + minutes(50)

    assert decide(pending_since(created), created + STUCK_AFTER - timedelta(seconds=1)).reason == (
        Reason.IN_PROGRESS
    )
    assert decide(pending_since(created), created + STUCK_AFTER).action is Action.DRIVE


# Across time: the same secret, run after run.


def run_after_run(states: list[tuple[datetime, SecretState]]) -> list[tuple[Action, str, bool]]:
    return [(d.action, d.reason, d.notify_refused) for d in (decide(s, now) for now, s in states)]


def test_the_same_secret_an_hour_later() -> None:
    state = secret()

    assert run_after_run([(T0 + minutes(10), state), (T0 + minutes(70), state)]) == [
        (Action.NOTHING, Reason.FRESH, False),
        (Action.ROTATE, Reason.EXPIRED, False),
    ]


def test_a_revoked_token_notifies_once_even_when_the_run_crashed_before_rotating() -> None:
    """The run that noticed tagged the version and crashed before RotateSecret: the next run
    rotates without a second notice."""
    refused = secret(verdict=Verdict.REFUSED)

    assert run_after_run(
        [
            (T0 + minutes(20), refused),
            (T0 + minutes(25), replace(refused, refused_noticed=True)),
        ]
    ) == [
        (Action.ROTATE, Reason.REFUSED, True),
        (Action.ROTATE, Reason.REFUSED, False),
    ]


def test_a_rotation_the_sweep_started_is_left_alone_until_it_is_stuck() -> None:
    started = SWEEP_DUE
    running = pending_since(started)

    assert run_after_run(
        [
            (started + SWEEP_INTERVAL, running),
            (started + 2 * SWEEP_INTERVAL, running),
            (T0 + minutes(61), replace(running, pending_fresh=False)),
        ]
    ) == [
        (Action.NOTHING, Reason.IN_PROGRESS, False),
        (Action.DRIVE, Reason.DUE, False),
        (Action.ABANDON, Reason.EXPIRED, False),
    ]


def test_urgency_is_when_the_secret_stops_holding_a_token_google_accepts() -> None:
    now = T0 + minutes(20)

    assert decide(secret(), now).urgency == T0 + timedelta(hours=1)
    assert decide(secret(verdict=Verdict.REFUSED), now).urgency == now
    assert decide(secret(current_expires_at=None), now).urgency == now
    expired = secret(current_expires_at=now - minutes(3))
    assert decide(expired, now).urgency == now - minutes(3)


# Google is asked only where its answer can change the decision.


@pytest.mark.parametrize(
    ("state", "now", "asked"),
    [
        (secret(), T0 + minutes(10), True),
        (secret(), SWEEP_DUE, False),
        (secret(), T0 + minutes(61), False),
        (secret(current_expires_at=None), T0, False),
        (secret(rotation_enabled=False), T0 + minutes(10), False),
        (pending_since(T0 + minutes(9)), T0 + minutes(10), False),
        (pending_since(T0), T0 + minutes(10), True),
    ],
    ids=[
        "fresh",
        "due anyway",
        "expired",
        "no token",
        "rotation disabled",
        "young rotation",
        "stuck rotation, fresh token",
    ],
)
def test_google_is_asked_only_when_its_verdict_changes_the_decision(
    state: SecretState, now: datetime, asked: bool
) -> None:
    assert asks_google(state, now) is asked


# The plan: earliest expiry first, within the budget.


def decision(name: str, action: Action, urgency: datetime) -> Decision:
    return Decision(f"arn:{name}", action, "why", urgency)


def test_the_plan_starts_the_earliest_expiries_and_defers_the_rest() -> None:
    decisions = [
        decision("later", Action.ROTATE, T0 + minutes(10)),
        decision("fresh", Action.NOTHING, T0),
        decision("stuck", Action.DRIVE, T0 + minutes(5)),
        decision("missing", Action.ROTATE, T0),
        decision("hopeless", Action.ABANDON, T0 + minutes(20)),
    ]

    started, deferred = plan(decisions, budget=2)

    assert [d.secret_arn for d in started] == ["arn:missing", "arn:stuck"]
    assert [d.secret_arn for d in deferred] == ["arn:later", "arn:hopeless"]


def test_equal_urgencies_are_planned_in_a_reproducible_order() -> None:
    decisions = [decision(name, Action.ROTATE, T0) for name in ("c", "a", "b")]

    assert [d.secret_arn for d in plan(decisions, 3)[0]] == ["arn:a", "arn:b", "arn:c"]
    assert plan(reversed(decisions), 3) == plan(decisions, 3)


def test_a_budget_of_nothing_defers_everything_and_a_negative_one_is_refused() -> None:
    decisions = [decision("a", Action.ROTATE, T0)]

    assert plan(decisions, 0) == ([], decisions)
    with pytest.raises(ValueError, match="at least 0; got -1"):
        plan(decisions, -1)


# The stack's own key secret: rotated once its key is due or refused, never doubled.

KEY_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:google/service-account-key-XyZ123"
KEY_DUE = T0 + timedelta(days=30)


def key(**changes: object) -> KeyState:
    """The key secret of a key rotated at T0 every 30 days, without expiry, not refused."""
    state = KeyState(
        arn=KEY_ARN,
        rotation_enabled=True,
        due_at=KEY_DUE,
        valid_before=None,
        refused=False,
        pending_version=None,
        pending_created_at=None,
    )
    return replace(state, **changes)  # type: ignore[arg-type]


# (case, state, now, action, reason)
KEY_CASES = [
    ("not due", key(), T0 + timedelta(days=29), Action.NOTHING, Reason.KEY_NOT_DUE),
    (
        "a second before due",
        key(),
        KEY_DUE - timedelta(seconds=1),
        Action.NOTHING,
        Reason.KEY_NOT_DUE,
    ),
    ("due", key(), KEY_DUE, Action.ROTATE, Reason.KEY_DUE),
    ("overdue", key(), KEY_DUE + timedelta(days=2), Action.ROTATE, Reason.KEY_DUE),
    ("refused, not due", key(refused=True), T0 + minutes(10), Action.ROTATE, Reason.KEY_REFUSED),
    (
        "refused, its rotation under way",
        key(refused=True, pending_version="v-pending", pending_created_at=T0),
        T0 + minutes(2),
        Action.NOTHING,
        Reason.IN_PROGRESS,
    ),
    (
        "refused, its rotation stuck",
        key(refused=True, pending_version="v-pending", pending_created_at=T0),
        T0 + STUCK_AFTER,
        Action.DRIVE,
        Reason.KEY_REFUSED,
    ),
    (
        "due, a rotation under way",
        key(pending_version="v-pending", pending_created_at=KEY_DUE),
        KEY_DUE + minutes(2),
        Action.NOTHING,
        Reason.IN_PROGRESS,
    ),
    (
        "due, its rotation stuck",
        key(pending_version="v-pending", pending_created_at=KEY_DUE),
        KEY_DUE + STUCK_AFTER,
        Action.DRIVE,
        Reason.KEY_DUE,
    ),
    (
        "not due, a rotation stuck",
        key(pending_version="v-pending", pending_created_at=T0),
        T0 + timedelta(days=1),
        Action.NOTHING,
        Reason.KEY_STUCK_NOT_DUE,
    ),
    (
        "due, rotation disabled",
        key(rotation_enabled=False),
        KEY_DUE,
        Action.NOTHING,
        Reason.DISABLED,
    ),
]


@pytest.mark.parametrize(
    ("state", "now", "action", "reason"),
    [case[1:] for case in KEY_CASES],
    ids=[case[0] for case in KEY_CASES],
)
def test_the_key_secret_rotates_once_its_key_is_due_or_refused_and_never_twice(
    state: KeyState, now: datetime, action: Action, reason: Reason
) -> None:
    decided = decide_key(state, now)

    assert (decided.secret_arn, decided.action, decided.reason) == (KEY_ARN, action, reason)


def test_a_key_is_as_urgent_as_its_expiry_and_a_refused_one_at_once() -> None:
    """Behind every token already expired: a due key still works until Google's expiry."""
    now = KEY_DUE + minutes(5)
    expiry = KEY_DUE + timedelta(days=7)

    assert decide_key(key(), now).urgency == NEVER
    assert decide_key(key(valid_before=expiry), now).urgency == expiry
    assert decide_key(key(refused=True, valid_before=expiry), now).urgency == now
    expired_token = decision("expired", Action.ROTATE, now - minutes(1))
    started, deferred = plan([decide_key(key(), now), expired_token], budget=1)
    assert (started, [d.secret_arn for d in deferred]) == ([expired_token], [KEY_ARN])


def test_the_days_left_are_negative_once_the_key_is_overdue() -> None:
    assert days_left(KEY_DUE, KEY_DUE - timedelta(hours=36)) == 1.5
    assert days_left(KEY_DUE, KEY_DUE) == 0
    assert days_left(KEY_DUE, KEY_DUE + timedelta(hours=6)) == -0.25


# The budget: the entry functions stay under the Step Functions quotas.


def test_the_quotas_are_the_published_figures_the_large_regions_higher() -> None:
    assert (DESCRIBE_EXECUTION_QUOTA.burst, DESCRIBE_EXECUTION_QUOTA.refill_per_second) == (250, 10)
    assert (START_EXECUTION_QUOTA.burst, START_EXECUTION_QUOTA.refill_per_second) == (800, 150)
    large = (DESCRIBE_EXECUTION_QUOTA_LARGE_REGIONS, START_EXECUTION_QUOTA_LARGE_REGIONS)
    assert [(q.burst, q.refill_per_second) for q in large] == [(300, 15), (1_300, 300)]
    assert quotas() == quotas("ap-southeast-2") == (DESCRIBE_EXECUTION_QUOTA, START_EXECUTION_QUOTA)
    assert quotas("us-east-1") == quotas("eu-west-1") == large


@pytest.mark.parametrize(
    ("region", "budget"), [(None, 120), ("eu-central-1", 120), ("us-west-2", 180)]
)
def test_a_run_starts_at_most_what_keeps_half_of_each_refill_for_the_schedules(
    region: str | None, budget: int
) -> None:
    assert run_budget(region) == budget
    interval = SWEEP_INTERVAL.total_seconds()
    for quota in quotas(region):
        calls = budget * quota.calls_per_rotation
        assert calls <= quota.refill_per_second * SWEEP_SHARE * interval
    # One more would take DescribeExecution past the sweep's share over its pacing window.
    describe = quotas(region)[0]
    window = PACING_WINDOW.total_seconds()
    assert (budget + 1) * describe.calls_per_rotation > describe.refill_per_second * 0.5 * window


@pytest.mark.parametrize("region", [None, "us-east-1"])
def test_a_runs_starts_are_spaced_to_stay_under_the_share_at_every_moment(
    region: str | None,
) -> None:
    spacing = start_spacing(region).total_seconds()

    for quota in quotas(region):
        assert quota.calls_per_rotation / spacing <= quota.refill_per_second * SWEEP_SHARE * (
            1 + 1e-6
        )
    assert run_budget(region) * spacing <= PACING_WINDOW.total_seconds()
    assert PACING_WINDOW < SWEEP_INTERVAL
    assert math.isclose(start_spacing().total_seconds(), 2.0)


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_share_outside_0_to_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share must be above 0 and at most 1"):
        run_budget(share=share)
    with pytest.raises(ValueError, match="share must be above 0 and at most 1"):
        start_spacing(share=share)


# The stack's freshness, for its metrics.


def test_freshness_counts_missing_expired_and_refused_tokens_and_the_least_life_left() -> None:
    now = T0 + minutes(30)
    states = [
        secret(),
        secret(current_expires_at=now + timedelta(seconds=95.5)),
        secret(current_expires_at=None),
        secret(current_expires_at=now - minutes(1)),
        secret(verdict=Verdict.REFUSED),
    ]

    assert freshness(states, now) == Freshness(least_seconds_left=0, without_valid_token=3)
    assert freshness(states[:2], now) == Freshness(95, 0)
    assert freshness([], now) == Freshness(None, 0)
