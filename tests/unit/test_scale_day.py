"""The simulated day (benchmarks/scale_day.py), short: 250 secrets created together, 2 simulated
hours each. Paced by the product's own rules, every read is valid and no API is throttled; the
same secrets without pacing, or rotated by their creators without the first-refresh spread,
throttle again and again: the proof that pacing matters. Also: the model's entry function waits
exactly as the real one does, the same seed replays the same day, and the capacity table's
arithmetic."""

import dataclasses

import boto3
import pytest
from botocore.config import Config

from benchmarks import scale_day
from benchmarks.scale_day import (
    ENTRY_SETTINGS,
    Api,
    DayFigures,
    Scenario,
    Trigger,
    api_bounds,
    capacity_report,
    check_report,
    entry_waits,
    peak_window,
    report,
    simulate,
    sweep_alone,
)
from rotation_core.rotation_request import RotationRequest
from rotation_core.sweep import DESCRIBE_EXECUTION_CALLS_PER_ROTATION
from step_execution import run_step_execution
from tests.scripted_aws import json_answer, scripted_aws

SECRETS = 250
HOURS = 2.0
SHORT = Scenario(secrets=SECRETS, hours=HOURS)


@pytest.fixture(scope="module")
def paced() -> DayFigures:
    return simulate(SHORT)


def test_a_paced_day_keeps_every_read_valid_and_every_api_under_its_quota(
    paced: DayFigures,
) -> None:
    # Every secret got its first token from the sweep's pacing, and was refreshed since.
    assert paced.started[Trigger.SWEEP] == SECRETS
    assert paced.secrets_without_token == 0
    assert paced.least_rotations >= 2
    # More first rotations were due than one run may start: the pacing was at work.
    assert paced.most_deferred >= SECRETS - paced.budget > 0
    assert paced.reads > 5_000
    assert paced.valid_reads == paced.reads
    assert paced.least_seconds_left is not None
    assert paced.least_seconds_left > 0
    for api, figure in paced.apis.items():
        assert figure.calls > 0, api
        assert figure.throttled == 0, api
    assert paced.all_under_quota
    assert not paced.entry_failures


def test_without_pacing_the_sweep_throttles_step_functions_again_and_again() -> None:
    unpaced = simulate(dataclasses.replace(SHORT, paced=False))
    describe = unpaced.apis[Api.DESCRIBE_EXECUTION]
    assert describe.throttled > 0
    assert describe.throttled_between is not None
    # Not only the first minutes: secrets started together keep rotating together.
    assert describe.throttled_between[1] > 3600
    assert unpaced.apis[Api.ROTATE_SECRET].throttled > 0
    assert not unpaced.all_under_quota


def test_secrets_rotated_by_their_creators_throttle_once_and_the_spread_keeps_them_apart() -> None:
    """Today's tools/add-token-secret rotates each secret as it is made: 250 made in one minute
    throttle DescribeExecution in the first minutes, the reason the first rotation is left to
    the sweep. The first refresh's spread then parts them; without it they stay together."""
    creators = dataclasses.replace(SHORT, first_rotation_by_sweep=False)
    spread = simulate(creators).apis[Api.DESCRIBE_EXECUTION]
    assert spread.throttled > 0
    assert spread.throttled_between is not None
    assert spread.throttled_between[1] < 600
    together = simulate(dataclasses.replace(creators, paced=False)).apis[Api.DESCRIBE_EXECUTION]
    assert together.throttled_between is not None
    assert together.throttled_between[1] > 3600


def test_the_same_seed_replays_the_same_day() -> None:
    small = Scenario(secrets=50, hours=1)
    first, again = simulate(small), simulate(small)
    assert first.reads > 0
    assert dataclasses.replace(again, wall_seconds=0) == dataclasses.replace(first, wall_seconds=0)
    other = simulate(dataclasses.replace(small, seed=small.seed + 1))
    assert other.first_token_seconds != first.first_token_seconds


def test_the_report_gives_the_verdict_the_figures_and_the_replay(paced: DayFigures) -> None:
    text = "\n".join(report(paced))
    assert f"`python -m benchmarks.scale_day --secrets {SECRETS} --hours 2 --seed " in text
    assert "Every read valid: yes. Every API under its quota (no call throttled): yes." in text
    describe = paced.apis[Api.DESCRIBE_EXECUTION]
    assert f"| DescribeExecution | 300 / 15 per s | {describe.calls:,} |" in text
    assert f"{paced.reads:,}, 100.00% valid" in text
    assert "Real (the product's code, called)" in text
    assert "Modelled (AWS's side)" in text


def test_the_capacity_table_divides_each_quota_by_what_a_secret_asks_of_it(
    paced: DayFigures,
) -> None:
    describe = api_bounds()[0]
    assert describe.per_rotation == DESCRIBE_EXECUTION_CALLS_PER_ROTATION == 10
    # 15 calls/s in large Regions (10 elsewhere), a rotation every 3,600 - 900 s.
    assert describe.secrets(3_600, large=True) == 15 * 2_700 // 10 == 4_050
    assert describe.secrets(43_200, large=False) == 10 * 42_300 // 10
    # The sweep alone: 180 rotations a run in large Regions, a run every 300 s.
    assert sweep_alone(3_600, large=True) == 180 * 2_700 // 300
    text = "\n".join(capacity_report(paced))
    assert "large Regions, 1-hour tokens: 4,050 (Step Functions DescribeExecution)" in text
    assert "other Regions, 12-hour tokens: 42,300 (Step Functions DescribeExecution)" in text


def test_the_check_simulates_secrets_at_shares_of_the_first_bound() -> None:
    lines = check_report(hours=0.1, shares=(0.05,))
    assert lines[0].startswith(
        "The first bound checked in eu-central-1 (Step Functions DescribeExecution: 2,700 "
    )
    assert lines[-1].startswith("| 135 (5%) | ")
    assert lines[-1].endswith(
        "`python -m benchmarks.scale_day --secrets 135 --hours 0.1 --seed 17 "
        "--region eu-central-1` |"
    )


@pytest.mark.parametrize("execution_seconds", [0.1, 1.0, 20.0])
def test_the_model_entry_waits_as_the_real_entry_function_does(execution_seconds: float) -> None:
    """The real run_step_execution against AWS answers scripted as the model's execution would
    give them: the same pauses and the same DescribeExecution calls."""
    pauses, describes = entry_waits(execution_seconds)
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:rotation"
    running = {"executionArn": "x", "stateMachineArn": machine, "startDate": 0.0}
    with scripted_aws() as server:
        server.play(
            json_answer({"executionArn": "x", "startDate": 0.0}),
            *[json_answer({**running, "status": "RUNNING"})] * (len(pauses) - 1),
            json_answer({**running, "status": "SUCCEEDED"}),
        )
        sfn = boto3.client(
            "stepfunctions",
            region_name="us-east-1",
            endpoint_url=server.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )
        slept: list[float] = []
        result = run_step_execution(
            sfn,
            dataclasses.replace(ENTRY_SETTINGS, state_machine_arn=machine),
            RotationRequest.from_rotation_event(
                {"Step": "setSecret", "SecretId": "s", "ClientRequestToken": "0" * 32}
            ),
            remaining_seconds=lambda: 300.0,
            sleep=slept.append,
            monotonic=lambda: sum(slept),
        )
    assert result.status == "SUCCEEDED"
    assert slept == pytest.approx(pauses)
    assert result.describe_calls == describes


def test_a_token_bucket_serves_its_burst_then_its_refill() -> None:
    calls = scale_day._Calls(scale_day.limits("eu-central-1"), seconds=10)
    describe = Api.DESCRIBE_EXECUTION  # 250 at once, then 10 a second
    assert all(calls.take(describe, 0.0) for _ in range(250))
    assert not calls.take(describe, 0.0)
    assert calls.take(describe, 0.1)
    assert not calls.take(describe, 0.1)
    assert calls.take(describe, 1.0, count=9)
    assert not calls.take(describe, 1.0)
    assert calls.attempted[describe][:2] == [253, 10]
    assert calls.throttled[describe][:2] == [2, 1]


def test_peak_window_is_the_busiest_run_of_seconds() -> None:
    assert peak_window([1, 5, 0, 7, 2], 2) == 9
    assert peak_window([3], 60) == 3


def test_a_scenario_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="secrets: at least 1, got 0"):
        Scenario(secrets=0)
    with pytest.raises(ValueError, match=r"hours: above 0 and at most a week \(168\), got 0"):
        Scenario(hours=0)
    with pytest.raises(ValueError, match="reads per hour: 0 or more, got -1"):
        Scenario(reads_per_hour=-1)


def test_the_command_line_names_a_bad_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        scale_day.main(["--secrets", "0"])
    assert "secrets: at least 1, got 0" in capsys.readouterr().err
