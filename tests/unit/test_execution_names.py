"""The entry Lambda's pure logic: execution names and ARNs, execution input, settings, backoff."""

import json
import re

import pytest

from rotation_core.rotation_request import RotationRequest
from rotation_core.steps import STEP_NAMES
from step_execution import (
    MAX_EXECUTION_NAME_LENGTH,
    EntrySettings,
    EntrySettingsError,
    execution_arn,
    execution_input,
    execution_name,
    next_poll_interval,
    throttle_backoff,
)

STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:google-token-rotation"
TOKEN = "0f8c3f7e-2d7b-4a59-9c1e-6d2f1b8e4a10"
_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9_-]+")


def test_a_uuid_token_is_readable_in_the_name() -> None:
    assert execution_name("createSecret", TOKEN, 1) == f"createSecret-{TOKEN}-1"
    assert execution_name("finishSecret", TOKEN, 2) == f"finishSecret-{TOKEN}-2"


@pytest.mark.parametrize("step", STEP_NAMES)
@pytest.mark.parametrize("attempt", [1, 9, 10, 99, 100, 10_000, 10**12])
def test_names_never_exceed_80_characters_even_for_a_64_character_token(
    step: str, attempt: int
) -> None:
    token = "a1b2c3d4" * 8
    assert len(token) == 64

    name = execution_name(step, token, attempt)

    assert len(name) <= MAX_EXECUTION_NAME_LENGTH
    assert _NAME_CHARACTERS.fullmatch(name)
    assert name.startswith(f"{step}-")
    assert name.endswith(f"-{attempt}")


def test_a_name_that_would_pass_80_characters_switches_to_the_digest() -> None:
    token = "a1b2c3d4" * 8

    assert execution_name("createSecret", token, 99) == f"createSecret-{token}-99"
    assert execution_name("createSecret", token, 100) == (
        "createSecret-5604b28faf3f277eff8e3f611e4f85c590e98cf2-100"
    )


def test_a_token_with_characters_names_refuse_is_replaced_by_its_digest() -> None:
    token = "token with spaces/and:colons"

    # The digest form is pinned: changing it would orphan the executions of running rotations.
    assert execution_name("testSecret", token, 3) == (
        "testSecret-1e7f5cabdc567a68f8781231d7174bd2174dfd58-3"
    )
    assert execution_name("testSecret", token + "x", 3) != execution_name("testSecret", token, 3)


def test_names_differ_by_step_token_and_attempt() -> None:
    names = {
        execution_name(step, token, attempt)
        for step in STEP_NAMES
        for token in (TOKEN, TOKEN.replace("0", "1"))
        for attempt in (1, 2)
    }
    assert len(names) == len(STEP_NAMES) * 2 * 2


def test_the_execution_arn_is_derived_from_the_state_machine_arn() -> None:
    assert execution_arn(STATE_MACHINE, "setSecret-x-1") == (
        "arn:aws:states:us-east-1:123456789012:execution:google-token-rotation:setSecret-x-1"
    )


def test_the_execution_input_forwards_the_rotation_token_only_when_given() -> None:
    event = {"Step": "createSecret", "SecretId": "arn:secret", "ClientRequestToken": TOKEN}
    rotation_token = "c9b1f7e2-5d3a-4b8e-9f60-7a2d1e4c3b5a"

    plain = execution_input(RotationRequest.from_rotation_event(event))
    forwarded = execution_input(
        RotationRequest.from_rotation_event({**event, "RotationToken": rotation_token})
    )

    assert json.loads(plain) == event
    assert json.loads(forwarded) == {**event, "RotationToken": rotation_token}


def test_settings_are_read_from_the_environment() -> None:
    settings = EntrySettings.from_environment(
        {
            "STATE_MACHINE_ARN": STATE_MACHINE,
            "POLL_FIRST_INTERVAL_SECONDS": "0.25",
            "POLL_MAX_INTERVAL_SECONDS": "2",
            "DEADLINE_MARGIN_SECONDS": "0",
        }
    )

    assert settings == EntrySettings(STATE_MACHINE, 0.25, 2.0, 0.0)


def test_blank_settings_fall_back_to_the_defaults() -> None:
    blank = {"POLL_FIRST_INTERVAL_SECONDS": " ", "POLL_MAX_INTERVAL_SECONDS": ""}

    settings = EntrySettings.from_environment({"STATE_MACHINE_ARN": f" {STATE_MACHINE} ", **blank})

    assert settings == EntrySettings(STATE_MACHINE)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STATE_MACHINE_ARN", ""),
        ("STATE_MACHINE_ARN", "google-token-rotation"),
        ("STATE_MACHINE_ARN", f"{STATE_MACHINE}:live"),
        ("POLL_FIRST_INTERVAL_SECONDS", "soon"),
        ("POLL_FIRST_INTERVAL_SECONDS", "0"),
        ("POLL_FIRST_INTERVAL_SECONDS", "nan"),
        ("POLL_MAX_INTERVAL_SECONDS", "-1"),
        ("POLL_MAX_INTERVAL_SECONDS", "0.1"),
        ("DEADLINE_MARGIN_SECONDS", "inf"),
    ],
)
def test_a_bad_setting_names_its_variable(variable: str, value: str) -> None:
    environment = {"STATE_MACHINE_ARN": STATE_MACHINE, variable: value}

    with pytest.raises(EntrySettingsError, match=f"'{variable}'"):
        EntrySettings.from_environment(environment)


def test_a_missing_state_machine_arn_is_named() -> None:
    with pytest.raises(EntrySettingsError, match="'STATE_MACHINE_ARN' is not set"):
        EntrySettings.from_environment({})


def test_the_poll_interval_grows_by_half_up_to_the_cap() -> None:
    intervals = [0.5]
    for _ in range(7):
        intervals.append(next_poll_interval(intervals[-1], 5.0))

    assert intervals[:4] == pytest.approx([0.5, 0.75, 1.125, 1.6875])
    assert intervals[-1] == 5.0
    assert intervals == sorted(intervals)


def test_the_throttling_backoff_is_full_jitter_up_to_twice_the_interval_capped() -> None:
    bounds: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return high / 2

    assert throttle_backoff(0.5, 5.0, uniform) == 0.5
    assert throttle_backoff(4.0, 5.0, uniform) == 2.5
    assert bounds == [(0.0, 1.0), (0.0, 5.0)]
