"""The scale benchmark (benchmarks/scale.py), short: ten token secrets of one stack rotating at
once on the local cloud. What it asserts is behaviour, never speed: every rotation succeeds, the
calls are counted where the moto server receives them (and agree with the entry Lambdas' own
count), the per-second buckets add up, the local pool's limit holds and is reported, and the
report carries the figures and its arithmetic against the quotas."""

import math
from collections.abc import Iterator

import pytest

from benchmarks.scale import (
    DESCRIBE_EXECUTION,
    DESCRIBE_EXECUTION_BEFORE_2019_09,
    DESCRIBE_EXECUTION_LARGE_REGIONS,
    PER_SECOND,
    PUT_SECRET_VALUE,
    QUOTAS,
    SECRETS_MANAGER_WRITES,
    START_EXECUTION,
    Demand,
    ScaleFigures,
    demands,
    peak_overlap,
    report,
    run,
)
from localcloud import fidelity
from localcloud.api_calls import ApiCall, ApiCallLog
from localcloud.cloud import LocalCloud
from localcloud.lambda_runtime import DEFAULT_MAX_CONCURRENCY

SECRETS = 10
STEPS = 4


@pytest.fixture(scope="module")
def figures() -> Iterator[ScaleFigures]:
    """One round on a local cloud of its own; what starting one sets for the process is put
    back after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MOTO_PORT", raising=False)
        patch.setattr(fidelity.CORRECTIONS, "dispatch", fidelity.CORRECTIONS.dispatch)
        patch.setattr(fidelity.CORRECTIONS, "sleep_retries", fidelity.CORRECTIONS.sleep_retries)
        with LocalCloud(sleep_retries=False) as cloud:
            # The round is the first rotations: half the time of a warmed-up refresh round.
            yield run(SECRETS, warm_up=False, cloud=cloud)


def test_every_rotation_started_together_succeeds(figures: ScaleFigures) -> None:
    assert not figures.refresh
    assert figures.failed == ()
    assert len(figures.rotation_seconds) == figures.secrets == SECRETS
    assert (figures.executions, figures.failed_executions) == (SECRETS * STEPS, 0)


def test_calls_are_counted_where_the_server_receives_them(figures: ScaleFigures) -> None:
    calls = figures.calls
    # One execution per step, none retried; the round's own RotateSecret calls, one a secret.
    assert calls[START_EXECUTION] == SECRETS * STEPS
    assert calls["secretsmanager", "RotateSecret"] == SECRETS
    assert calls[PUT_SECRET_VALUE] == SECRETS
    # The state machine invokes the four step functions over HTTP; RotateSecret invokes the
    # entry function inside moto, which is no API call.
    assert calls["awslambda", "Invoke"] == SECRETS * STEPS
    # The moto server saw exactly the DescribeExecution calls the entry Lambdas say they made.
    assert calls[DESCRIBE_EXECUTION] == figures.entry_describe_calls >= SECRETS * STEPS


def test_the_per_second_buckets_hold_every_call(figures: ScaleFigures) -> None:
    for group, actions in PER_SECOND.items():
        buckets = figures.per_second[group]
        assert sum(buckets) == figures.count(actions) > 0
        assert max(buckets) >= math.ceil(sum(buckets) / len(buckets))


def test_the_local_pool_bounds_the_concurrency_and_the_report_says_so(
    figures: ScaleFigures,
) -> None:
    assert figures.sandboxes == DEFAULT_MAX_CONCURRENCY < SECRETS
    # The rotations overlapped, as many as the pool allows, and the others queued.
    assert 2 <= figures.entry_peak <= figures.sandboxes
    assert figures.entry_queued_seconds > 0
    text = "\n".join(report(figures))
    assert f"each function at most {figures.sandboxes} worker processes at once" in text
    assert f"| entry Lambdas running at once, at most | {figures.entry_peak}:" in text
    assert f"Lambda would have run all {SECRETS} at once" in text


def test_the_report_shows_the_counts_and_what_breaks_first(figures: ScaleFigures) -> None:
    lines = report(figures)
    text = "\n".join(lines)
    assert f"| rotations that succeeded | {SECRETS}/{SECRETS} " in text
    for group, buckets in figures.per_second.items():
        assert f"peak {max(buckets)}/s; per second: {' '.join(map(str, buckets))} |" in text, group
    for quota in QUOTAS:
        assert f"| {quota.name} | {quota.where} |" in text
        assert quota.source in text
    current = [d for d in demands(figures) if d.quota is not DESCRIBE_EXECUTION_BEFORE_2019_09]
    first = min(current, key=lambda d: d.secrets_in_one_window)
    paragraph = lines[-1]
    assert f"Then {first.quota.name} throttles first: {first.per_rotation:.2f} calls" in paragraph
    assert f"enough for {math.floor(first.secrets_in_one_window):,} secrets" in paragraph


def test_a_quotas_demand_is_calls_per_rotation_times_the_rotations() -> None:
    """1,000 secrets rotating every 2,700 s; a bucket of 300 refilled at 15/s lets 1,200 calls
    through in a minute, and serves 8,000 in its first 300 and then 15 a second."""
    describe = Demand(DESCRIBE_EXECUTION_LARGE_REGIONS, per_rotation=8)
    assert describe.average_per_second == pytest.approx(8 * 1_000 / 2_700)
    assert describe.synchronized_calls == 8_000
    assert describe.secrets_spread_out == pytest.approx(15 / 8 * 2_700)
    assert describe.secrets_in_one_window == (300 + 15 * 60) / 8
    assert describe.drain_seconds == pytest.approx((8_000 - 300) / 15)
    writes = Demand(SECRETS_MANAGER_WRITES, per_rotation=2)
    assert writes.secrets_in_one_window == 50 * 60 / 2
    assert math.isinf(Demand(SECRETS_MANAGER_WRITES, per_rotation=0).secrets_spread_out)


def test_peak_overlap_counts_intervals_open_at_once() -> None:
    assert peak_overlap([]) == 0
    assert peak_overlap([(0, 1), (1, 2)]) == 1
    assert peak_overlap([(0, 2), (1, 3), (1.5, 1.6), (2.5, 4)]) == 3


def test_a_call_log_buckets_by_whole_seconds_from_its_start() -> None:
    log = ApiCallLog()
    for at, action in [(10.2, "A"), (10.9, "A"), (12.0, "A"), (11.5, "B")]:
        log.add(ApiCall("svc", action, at))

    assert log.per_second([("svc", "A")], since=10.0) == [2, 0, 1]
    assert log.per_second([("svc", "A"), ("svc", "B")], since=10.0) == [2, 1, 1]
    assert log.per_second([("other", "A")], since=10.0) == []
    assert log.counts() == {("svc", "A"): 3, ("svc", "B"): 1}
    with pytest.raises(ValueError, match="before `since`"):
        log.per_second([("svc", "A")], since=11.0)
