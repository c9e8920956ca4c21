"""What the client package costs an application: a `token` read, and GetSecretValue calls per day.

Two kinds of figure, both against moto over real HTTP:

- the cost of reading `SecretCredentials.token` (and of `before_request`, which a transport calls
  per request) while the credential holds a fresh token, next to one GetSecretValue round trip;
  and of `SecretIdTokenCredentials.token`, the same read on an ID-token secret;
- a busy reader, 8 threads, over a simulated day of 1-hour tokens that the rotation replaces
  every 45 minutes (15 minutes before expiry): how many GetSecretValue calls it makes per token
  version, and the least life left on any token it handed out; then the same with one rotation
  late; and the busy reader of an ID-token secret over the same day.

Simulated time (time_machine, not ticking) moves in fixed steps. The reader threads run in lock
step: every thread makes its share of a step's reads, then waits at a barrier whose action moves
the clock one step and stores a new version when one is due, so every read sees one consistent
instant and the figures are the same on every run.

`python -m benchmarks.client_reads` prints them; `python -m benchmarks` prints them after the
rotation's own figures; tests/client/test_client_reads_bench.py runs a short simulation.
"""

import itertools
import logging
import math
import statistics
import sys
import threading
import time
import timeit
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import boto3
import time_machine
from moto.server import ThreadedMotoServer
from mypy_boto3_secretsmanager import SecretsManagerClient

from google_token_secret import SecretCredentials, SecretIdTokenCredentials
from google_token_secret.credentials import LATE_ROTATION_RECHECK_SECONDS
from localcloud import fidelity
from rotation_core.token_secret import (
    IdTokenMetadata,
    IdTokenSecretValue,
    TokenMetadata,
    TokenSecretValue,
)

REGION: Final = "us-east-1"
SCOPE: Final = "https://www.googleapis.com/auth/calendar.readonly"
SERVICE_ACCOUNT: Final = "rotator@demo-project.iam.gserviceaccount.com"
AUDIENCE: Final = "https://invoices-4k2j3h5g6a-ew.a.run.app"
START: Final = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)

TOKEN_LIFETIME_SECONDS: Final = 3600
ROTATION_LEAD_SECONDS: Final = 900
"""The rotation stores the next token this long before the current one expires."""
MARGIN_SECONDS: Final = 300
"""SecretCredentials' default refresh_margin_seconds."""

READER_THREADS: Final = 8
STEP_SECONDS: Final = 2
READS_PER_STEP: Final = 10
LATE_VERSION: Final = 2
"""Which rotation runs late in the late scenarios (1 is the first after the initial version)."""

TOKEN_READS: Final = 1_000_000
BEFORE_REQUEST_CALLS: Final = 200_000
REPEATS: Final = 5
ROUND_TRIPS: Final = 50


@dataclass(frozen=True)
class Kind:
    """Which kind of token secret is read: the reader class, and the values the rotation writes."""

    reader: type[SecretCredentials] | type[SecretIdTokenCredentials]
    secret_string: Callable[[str, float], str]
    """The stored value of a token expiring at an epoch second."""
    token_prefix: str


@dataclass
class Row:
    measure: str
    value: str
    note: str = ""


@dataclass
class Simulation:
    """What one busy reader saw over a simulated stretch of rotations."""

    hours: float
    reads: int
    get_secret_value_calls: int
    versions_stored: int
    versions_seen: int
    worst_life_seconds: float
    """The least time to expiry of any token handed out, at the instant it was handed out."""
    stale_reads: int
    """Reads that returned an older token inside the margin while a version stored more than one
    late-rotation recheck ago was newer."""
    failed_reads: list[str] = field(default_factory=list)
    """Why reads raised (or returned a token never stored): should stay empty."""
    late_seconds_in_margin: float = 0.0
    """How long the reader was inside its margin with no newer version to read."""

    @property
    def extra_calls(self) -> int:
        """Calls beyond the one that reads each version."""
        return self.get_secret_value_calls - self.versions_seen

    @property
    def calls_per_version(self) -> float:
        return self.get_secret_value_calls / self.versions_seen


class _Secret:
    """The token secret as the rotation writes it: a new AWSCURRENT version 15 minutes before the
    current token expires (one version late by `late_seconds`), each token living one hour."""

    def __init__(
        self, client: SecretsManagerClient, kind: Kind, late_version: int, late_seconds: float
    ):
        self.client, self.kind = client, kind
        self.name = f"bench/client-reads-{uuid.uuid4().hex[:12]}"
        self.expires_at: dict[str, float] = {}
        self.stored_at: dict[str, float] = {}
        self.newest = ""
        self.late_version, self.late_seconds = late_version, late_seconds
        self.versions = 0
        self.late_seconds_in_margin = 0.0
        token, expires_at = self._new(time.time())
        client.create_secret(Name=self.name, SecretString=kind.secret_string(token, expires_at))

    def rotate_if_due(self, now: float) -> None:
        current_expiry = self.expires_at[self.newest]
        due = current_expiry - ROTATION_LEAD_SECONDS
        if self.versions == self.late_version:
            due += self.late_seconds
        if now < due:
            return
        self.late_seconds_in_margin += max(0.0, now - (current_expiry - MARGIN_SECONDS))
        token, expires_at = self._new(now)
        self.client.put_secret_value(
            SecretId=self.name,
            ClientRequestToken=str(uuid.uuid4()),
            SecretString=self.kind.secret_string(token, expires_at),
            VersionStages=["AWSCURRENT"],
        )

    def _new(self, now: float) -> tuple[str, float]:
        token = f"{self.kind.token_prefix}{uuid.uuid4().hex}"
        expires_at = now + TOKEN_LIFETIME_SECONDS
        self.expires_at[token], self.stored_at[token] = expires_at, now
        self.newest = token
        self.versions += 1
        return token, expires_at


class _Reader:
    """One reader thread's tally."""

    def __init__(self) -> None:
        self.reads = 0
        self.worst_life = math.inf
        self.stale = 0
        self.seen: set[str] = set()
        self.failures: list[str] = []

    def read(
        self, credentials: SecretCredentials | SecretIdTokenCredentials, secret: _Secret
    ) -> None:
        self.reads += 1
        try:
            token = credentials.token
        except Exception as error:  # tallied: the simulation reports every failure
            self.failures.append(f"{type(error).__name__}: {error}")
            return
        now = time.time()
        expires_at = secret.expires_at.get(token)
        if expires_at is None:
            self.failures.append("a token that was never stored")
            return
        self.seen.add(token)
        life = expires_at - now
        self.worst_life = min(self.worst_life, life)
        newest = secret.newest
        if (
            token != newest
            and life <= MARGIN_SECONDS
            and now - secret.stored_at[newest] >= LATE_ROTATION_RECHECK_SECONDS
        ):
            self.stale += 1


def simulate(
    client: SecretsManagerClient,
    *,
    hours: float,
    late_seconds: float = 0.0,
    late_version: int = LATE_VERSION,
    threads: int = READER_THREADS,
    step_seconds: float = STEP_SECONDS,
    reads_per_step: int = READS_PER_STEP,
    kind: Kind | None = None,
) -> Simulation:
    """A busy reader over `hours` of simulated time; moto must be patched (fidelity.apply()).
    `kind` is the access-token secret's unless given."""
    kind = kind or ACCESS_TOKEN
    calls: list[float] = []

    def count_call(**_: Any) -> None:
        calls.append(time.time())

    event = "provide-client-params.secrets-manager.GetSecretValue"
    steps = round(hours * 3600 / step_seconds)
    readers = [_Reader() for _ in range(threads)]
    broken: list[BaseException] = []
    with time_machine.travel(START, tick=False) as traveller:
        secret = _Secret(client, kind, late_version, late_seconds)
        credentials = kind.reader(secret.name, client=client, refresh_margin_seconds=MARGIN_SECONDS)
        advanced = itertools.count(1)

        def next_step() -> None:
            if next(advanced) == steps:
                return  # the last step's reads are done: the simulation ends at `hours`
            traveller.shift(timedelta(seconds=step_seconds))
            secret.rotate_if_due(time.time())

        barrier = threading.Barrier(threads, action=next_step, timeout=60)

        def read_steps(index: int) -> None:
            reader = readers[index]
            try:
                for step in range(steps):
                    # This step's reads, dealt round the threads from where the last step stopped.
                    for _ in range(_share(index, step, threads, reads_per_step)):
                        reader.read(credentials, secret)
                    barrier.wait()
            except BaseException as error:  # reported by the thread that started us
                broken.append(error)
                barrier.abort()

        client.meta.events.register(event, count_call)
        try:
            workers = [threading.Thread(target=read_steps, args=(i,)) for i in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        finally:
            client.meta.events.unregister(event, count_call)
    if broken:
        raise RuntimeError("the simulation stopped") from broken[0]
    seen = set().union(*(reader.seen for reader in readers))
    return Simulation(
        hours=hours,
        reads=sum(reader.reads for reader in readers),
        get_secret_value_calls=len(calls),
        versions_stored=secret.versions,
        versions_seen=len(seen),
        worst_life_seconds=min(reader.worst_life for reader in readers),
        stale_reads=sum(reader.stale for reader in readers),
        failed_reads=[failure for reader in readers for failure in reader.failures],
        late_seconds_in_margin=secret.late_seconds_in_margin,
    )


def _share(index: int, step: int, threads: int, reads_per_step: int) -> int:
    """Thread `index`'s reads at `step`: the step's reads dealt one at a time round the threads,
    starting where the previous step's stopped, so every thread reads as often over time."""
    first = step * reads_per_step
    whole, rest = divmod(reads_per_step, threads)
    return whole + (1 if (index - first) % threads < rest else 0)


def _access_token_value(token: str, expires_at: float) -> str:
    expiry = datetime.fromtimestamp(expires_at, UTC)
    return TokenSecretValue(
        access_token=token,
        metadata=TokenMetadata(
            token_type="Bearer",
            expires_at=expiry,
            issued_at=expiry - timedelta(seconds=TOKEN_LIFETIME_SECONDS),
            scopes=(SCOPE,),
            service_account=SERVICE_ACCOUNT,
            service_account_client_id="104234567890123456789",
        ),
    ).to_secret_string()


def _id_token_value(token: str, expires_at: float) -> str:
    expiry = datetime.fromtimestamp(expires_at, UTC)
    return IdTokenSecretValue(
        id_token=token,
        metadata=IdTokenMetadata(
            expires_at=expiry,
            issued_at=expiry - timedelta(seconds=TOKEN_LIFETIME_SECONDS),
            audience=AUDIENCE,
            service_account=SERVICE_ACCOUNT,
        ),
    ).to_secret_string()


ACCESS_TOKEN: Final = Kind(SecretCredentials, _access_token_value, "ya29.bench-")
ID_TOKEN: Final = Kind(SecretIdTokenCredentials, _id_token_value, "eyJhbGciOiJSUzI1NiJ9.bench-")
"""The reader never decodes the JWT, so a token shaped like one is enough."""


@contextmanager
def moto_client() -> Iterator[SecretsManagerClient]:
    """A Secrets Manager client on a moto server of its own, over HTTP, corrected as AWS behaves."""
    fidelity.apply()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # as localcloud: no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client: SecretsManagerClient = boto3.client(
            "secretsmanager",
            region_name=REGION,
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        yield client
    finally:
        server.stop()


def read_costs(client: SecretsManagerClient) -> list[Row]:
    """Per-read costs on a credential holding a fresh token (real time), and one round trip."""
    name, token = _fresh_secret(client, ACCESS_TOKEN)
    credentials = SecretCredentials(name, client=client)
    assert credentials.token == token
    headers: dict[str, str] = {}
    url = "https://www.googleapis.com/calendar/v3/calendars/primary/events"
    reads = timeit.repeat(lambda: credentials.token, number=TOKEN_READS, repeat=REPEATS)
    requests = timeit.repeat(
        lambda: credentials.before_request(None, "GET", url, headers),
        number=BEFORE_REQUEST_CALLS,
        repeat=REPEATS,
    )
    assert headers == {"authorization": f"Bearer {token}"}
    trips = []
    for _ in range(ROUND_TRIPS + 5):
        started = time.perf_counter()
        client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
        trips.append(time.perf_counter() - started)
    trip = statistics.median(trips[5:])
    read_us = min(reads) / TOKEN_READS * 1e6
    id_name, id_token = _fresh_secret(client, ID_TOKEN)
    id_credentials = SecretIdTokenCredentials(id_name, audience=AUDIENCE, client=client)
    assert id_credentials.token == id_token
    id_reads = timeit.repeat(lambda: id_credentials.token, number=TOKEN_READS, repeat=REPEATS)
    return [
        Row(
            "`token` read, fresh token held",
            f"{read_us:.3f} µs",
            f"best of {REPEATS} x {TOKEN_READS:,} reads; goal ≤ 2 µs",
        ),
        Row(
            "`before_request` (sets the Authorization header), per request",
            f"{min(requests) / BEFORE_REQUEST_CALLS * 1e6:.3f} µs",
            f"best of {REPEATS} x {BEFORE_REQUEST_CALLS:,} calls",
        ),
        Row(
            "one GetSecretValue round trip, moto over HTTP",
            f"{trip * 1000:.2f} ms",
            f"median of {ROUND_TRIPS} after 5 warm-ups; as long as "
            f"{trip * 1e6 / read_us:,.0f} `token` reads",
        ),
        Row(
            "`token` read of an ID-token secret, fresh token held",
            f"{min(id_reads) / TOKEN_READS * 1e6:.3f} µs",
            f"SecretIdTokenCredentials; best of {REPEATS} x {TOKEN_READS:,} reads; goal ≤ 2 µs",
        ),
    ]


def _fresh_secret(client: SecretsManagerClient, kind: Kind) -> tuple[str, str]:
    """A new secret of `kind` holding a token fresh for an hour (real time): its name, token."""
    name = f"bench/client-reads-{uuid.uuid4().hex[:12]}"
    token = f"{kind.token_prefix}{uuid.uuid4().hex}"
    expires_at = time.time() + TOKEN_LIFETIME_SECONDS
    client.create_secret(Name=name, SecretString=kind.secret_string(token, expires_at))
    return name, token


def simulation_rows(client: SecretsManagerClient, hours: float) -> list[Row]:
    on_time = simulate(client, hours=hours)
    _check(on_time)
    late_hours = min(hours, 3.0)
    lates = [
        (minutes, simulate(client, hours=late_hours, late_seconds=minutes * 60))
        for minutes in (10, 14)
    ]
    for _, late in lates:
        _check(late)
    id_tokens = simulate(client, hours=hours, kind=ID_TOKEN)
    _check(id_tokens)
    reader = (
        f"{READER_THREADS} threads, {READS_PER_STEP} reads per {STEP_SECONDS}-s step of "
        f"simulated time; margin {MARGIN_SECONDS} s"
    )
    rows = [
        Row(
            f"busy reader, {hours:g} h of 1-hour tokens rotated every "
            f"{(TOKEN_LIFETIME_SECONDS - ROTATION_LEAD_SECONDS) // 60} min: versions stored / seen",
            f"{on_time.versions_stored} / {on_time.versions_seen}",
            reader,
        ),
        Row(
            "GetSecretValue calls",
            f"{on_time.get_secret_value_calls}",
            f"{on_time.calls_per_version:.2f} per version seen; goal ≤ 1",
        ),
        Row(
            "GetSecretValue calls per hour",
            f"{on_time.get_secret_value_calls / hours:.2f}",
            f"token reads per hour {on_time.reads / hours:,.0f}",
        ),
        Row(
            "worst remaining life of a token handed out",
            f"{on_time.worst_life_seconds:.0f} s",
            f"> margin {MARGIN_SECONDS} s: the old token is never used inside the margin",
        ),
    ]
    for minutes, late in lates:
        rows.append(
            Row(
                f"rotation {LATE_VERSION} late by {minutes} min ({late_hours:g} h simulated): "
                "extra GetSecretValue calls",
                f"{late.extra_calls}",
                f"{late.late_seconds_in_margin:.0f} s inside the margin with no newer version "
                f"(one call per {LATE_ROTATION_RECHECK_SECONDS:.0f} s expected); "
                f"{late.get_secret_value_calls} calls for {late.versions_seen} versions; "
                f"worst life {late.worst_life_seconds:.0f} s",
            )
        )
    rows.append(
        Row(
            f"busy reader of an ID-token secret, {hours:g} h: GetSecretValue calls / versions seen",
            f"{id_tokens.get_secret_value_calls} / {id_tokens.versions_seen}",
            f"{id_tokens.calls_per_version:.2f} per version seen; goal ≤ 1; worst life "
            f"{id_tokens.worst_life_seconds:.0f} s; {id_tokens.versions_stored} versions stored",
        )
    )
    return rows


def _check(simulation: Simulation) -> None:
    """A benchmark of a broken reader is no benchmark: stop with what went wrong."""
    if simulation.failed_reads or simulation.stale_reads:
        raise AssertionError(
            f"{len(simulation.failed_reads)} failed reads (first: "
            f"{simulation.failed_reads[:1]}), {simulation.stale_reads} stale reads"
        )


def run(hours: float = 24) -> list[Row]:
    with moto_client() as client, _quiet("google_token_secret"):
        return read_costs(client) + simulation_rows(client, hours)


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """The late scenarios' warnings are expected: keep them out of the printed figures."""
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(saved)


def report(rows: list[Row]) -> list[str]:
    """Markdown: a heading line and the table."""
    return [
        "Client package (google-token-secret), against moto over HTTP:",
        "",
        "| measure | value | note |",
        "|---|---|---|",
        *(f"| {row.measure} | {row.value} | {row.note} |" for row in rows),
    ]


def main() -> int:
    print("\n".join(report(run())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
