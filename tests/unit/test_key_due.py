"""When the stack's own service-account key must be replaced: every KeyRotationDays, and earlier
when a key-expiry policy makes the key expire (rotation_core.key_rotation's pure rules)."""

from datetime import UTC, datetime, timedelta

import pytest

from rotation_core.iam_keys import NO_EXPIRY
from rotation_core.key_rotation import (
    KEY_REFUSED_TAG,
    KEY_ROTATED_AT_TAG,
    KEY_VALID_BEFORE_TAG,
    MAX_EXPIRY_MARGIN,
    KeyStatus,
    expiry_margin,
    key_due_at,
)
from rotation_core.token_secret import format_timestamp

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROTATED_VERSION = "6f1c2a9e-0000-4000-8000-000000000001"
"""When the key in AWSCURRENT was created (and its rotation finished)."""


def test_a_key_an_8_hour_policy_makes_is_replaced_after_6_hours() -> None:
    """constraints/iam.serviceAccountKeyExpiryHours = 8: a quarter of its life is kept spare."""
    valid_before = T0 + timedelta(hours=8)

    assert expiry_margin(T0, valid_before) == timedelta(hours=2)
    assert key_due_at(T0, valid_before, 30) == T0 + timedelta(hours=6)


@pytest.mark.parametrize("days", [1, 30, 90])
@pytest.mark.parametrize("valid_before", [None, NO_EXPIRY], ids=["no tag", "Google's no-expiry"])
def test_a_key_without_expiry_is_replaced_every_key_rotation_days(
    days: int, valid_before: datetime | None
) -> None:
    assert key_due_at(T0, valid_before, days) == T0 + timedelta(days=days)


def test_a_30_day_key_rotated_every_30_days_is_replaced_a_week_before_it_expires() -> None:
    """The margin is at most a week: the key is replaced at 23 days, not at its last moment."""
    valid_before = T0 + timedelta(days=30)

    assert expiry_margin(T0, valid_before) == MAX_EXPIRY_MARGIN == timedelta(days=7)
    assert key_due_at(T0, valid_before, 30) == T0 + timedelta(days=23)


def test_a_key_that_outlives_its_rotation_period_is_replaced_on_schedule() -> None:
    """A 90-day key with KeyRotationDays 30: its expiry is not what makes it due."""
    assert key_due_at(T0, T0 + timedelta(days=90), 30) == T0 + timedelta(days=30)


def test_a_key_that_already_expired_when_rotated_is_due_at_its_expiry() -> None:
    """Tags out of order (an expiry before the rotation): no negative margin, due at once."""
    valid_before = T0 - timedelta(hours=1)

    assert expiry_margin(T0, valid_before) == timedelta(0)
    assert key_due_at(T0, valid_before, 30) == valid_before


def test_the_status_comes_from_the_tags_a_key_rotation_writes() -> None:
    tags = {
        KEY_ROTATED_AT_TAG: f"{format_timestamp(T0)} {ROTATED_VERSION}",
        KEY_VALID_BEFORE_TAG: format_timestamp(T0 + timedelta(hours=8)),
        KEY_REFUSED_TAG: "a1b2c3",
    }
    status = KeyStatus.from_tags(tags, ROTATED_VERSION)

    assert status == KeyStatus(T0, T0 + timedelta(hours=8), "a1b2c3")
    created_long_before = T0 - timedelta(days=60)
    assert status.due_at(30, created_long_before) == T0 + timedelta(hours=6)


def test_a_key_put_by_hand_after_a_rotation_is_not_judged_by_the_older_keys_tags() -> None:
    """The runbook's fix puts a key by hand: the tags still describe the rotated key (valid for
    weeks), while the new key's expiry is unread. It is renewed within six hours of its put."""
    tags = {
        KEY_ROTATED_AT_TAG: f"{format_timestamp(T0)} {ROTATED_VERSION}",
        KEY_VALID_BEFORE_TAG: format_timestamp(T0 + timedelta(days=90)),
    }
    put_by_hand = T0 + timedelta(days=2)

    status = KeyStatus.from_tags(tags, "version-put-by-hand")

    assert status == KeyStatus(None, None, None, policy_life=timedelta(days=90))
    assert status.due_at(30, put_by_hand) == put_by_hand + timedelta(hours=6)
    assert KeyStatus.from_tags(tags, ROTATED_VERSION).due_at(30, put_by_hand) == T0 + timedelta(
        days=30
    )


def test_a_key_put_by_hand_is_renewed_as_the_last_key_the_stack_made_would_have_been() -> None:
    """That key lived 4 hours (a policy shorter than Google allows, as the short soak runs): the
    key put by hand is taken to live no longer, and renewed after 3 hours, not 6
    (make-test soak seed 317303012: a hand-put key expired before its renewal)."""
    tags = {
        KEY_ROTATED_AT_TAG: f"{format_timestamp(T0)} {ROTATED_VERSION}",
        KEY_VALID_BEFORE_TAG: format_timestamp(T0 + timedelta(hours=4)),
    }
    put_by_hand = T0 + timedelta(hours=1)

    status = KeyStatus.from_tags(tags, "version-put-by-hand")

    assert status.due_at(30, put_by_hand) == put_by_hand + timedelta(hours=3)


def test_a_key_put_by_hand_is_renewed_within_six_hours_before_any_expiry_policy_ends_it() -> None:
    """No tag yet: the key's expiry is unread, and Google's shortest key-expiry policy is 8 h."""
    status = KeyStatus.from_tags({}, "version-put-by-hand")

    assert status == KeyStatus(None, None, None)
    assert status.due_at(30, T0) == T0 + timedelta(hours=6)
    assert status.due_at(30, T0) < T0 + timedelta(hours=8)


def test_a_tag_edited_out_of_shape_counts_as_absent() -> None:
    status = KeyStatus.from_tags(
        {KEY_ROTATED_AT_TAG: "last tuesday", KEY_VALID_BEFORE_TAG: "2026-03-01T12:00:00"}, None
    )

    assert (status.rotated_at, status.valid_before) == (None, None)
    assert status.due_at(30, T0) == T0 + timedelta(hours=6)
