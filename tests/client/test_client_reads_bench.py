"""The busy-reader simulation of benchmarks/client_reads.py, short: 8 threads reading one
SecretCredentials through simulated hours of 1-hour tokens rotated 15 minutes before expiry, over
moto's HTTP. What it asserts is behaviour, never speed: one GetSecretValue per token version, no
token handed out inside the margin while a newer one is stored, and a late rotation costing one
call per 30-second recheck; and the same one read per version for an ID-token secret."""

import math

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from benchmarks.client_reads import (
    ID_TOKEN,
    MARGIN_SECONDS,
    READS_PER_STEP,
    ROTATION_LEAD_SECONDS,
    STEP_SECONDS,
    simulate,
)
from google_token_secret.credentials import LATE_ROTATION_RECHECK_SECONDS


def test_a_busy_reader_reads_each_token_version_once_and_never_inside_the_margin(
    secretsmanager: SecretsManagerClient,
) -> None:
    hours = 3  # versions stored at 0:00, 0:45, 1:30 and 2:15; each read as its predecessor's
    # margin opens (0:55, 1:40, 2:25)
    run = simulate(secretsmanager, hours=hours)

    assert run.failed_reads == []
    assert run.reads == hours * 3600 // STEP_SECONDS * READS_PER_STEP
    assert run.versions_stored == run.versions_seen == 4
    # One GetSecretValue per version: not one per thread (the lock), not one per read.
    assert run.get_secret_value_calls == run.versions_seen
    # Every token handed out had more than the margin left: inside it, the newer one was read.
    assert run.stale_reads == 0
    assert run.worst_life_seconds > MARGIN_SECONDS


def test_a_busy_reader_of_an_id_token_secret_reads_each_version_once(
    secretsmanager: SecretsManagerClient,
) -> None:
    run = simulate(secretsmanager, hours=3, kind=ID_TOKEN)

    assert run.failed_reads == []
    assert run.versions_stored == run.versions_seen == 4
    assert run.get_secret_value_calls == run.versions_seen
    assert run.stale_reads == 0
    assert run.worst_life_seconds > MARGIN_SECONDS


@pytest.mark.parametrize(
    "late_seconds",
    [720, 852],  # lands on a recheck (1:42:00), and between two (1:44:12)
)
def test_a_late_rotation_costs_one_call_per_recheck_while_the_reader_waits_in_its_margin(
    secretsmanager: SecretsManagerClient, late_seconds: int
) -> None:
    run = simulate(secretsmanager, hours=2, late_seconds=late_seconds, late_version=2)

    # The second rotation, due at 1:30, lands past the margin's opening at 1:40.
    in_margin = late_seconds - (ROTATION_LEAD_SECONDS - MARGIN_SECONDS)
    assert run.late_seconds_in_margin == in_margin > 0
    assert run.failed_reads == []
    assert run.versions_stored == run.versions_seen == 3
    assert 1 <= run.extra_calls <= math.ceil(in_margin / LATE_ROTATION_RECHECK_SECONDS) + 1
    # The held token served while it lived (no read raised), and the late version was read
    # within one recheck of landing.
    assert run.stale_reads == 0
    assert run.worst_life_seconds >= (
        ROTATION_LEAD_SECONDS - late_seconds - LATE_ROTATION_RECHECK_SECONDS
    )
