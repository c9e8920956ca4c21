"""The freshness sweep's runs against moto and the Google emulator over HTTP: RotateSecret on moto
(as localcloud.fidelity corrects it) invokes a rotation function that runs the real rotation
steps in this process, with the sweep's, the rotation's and Google's clocks moved together."""

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import time_machine
from moto.awslambda.models import LambdaFunction
from mypy_boto3_secretsmanager import SecretsManagerClient

import freshness_sweep
from lambda_adapter import logger
from localcloud import fidelity
from localcloud.cloud import ROLE_ARN, ensure_lambda_role
from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from localcloud.operations import drain_notices, subscribe_queue
from rotation_core.config import GoogleEndpoints
from rotation_core.errors import ConfigurationError, RotationError
from rotation_core.google_client import GoogleClient
from rotation_core.iam_keys import NO_EXPIRY
from rotation_core.key_rotation import KEY_REFUSED_TAG, KEY_ROTATED_AT_TAG, KEY_VALID_BEFORE_TAG
from rotation_core.refresh import REFUSED_VERSION_TAG
from rotation_core.rotation import Rotation
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import SecretsGateway
from rotation_core.steps import Step
from rotation_core.sweep import SCHEDULE_GRACE, STUCK_AFTER, Action, Reason
from rotation_core.sweep_run import (
    DEADLINE_MARGIN,
    GOOGLE_FAILURES_TO_STOP,
    MAX_CONCURRENCY,
    FreshnessSweep,
    NoticeTopic,
    SweepReport,
)
from rotation_core.token_secret import (
    PLACEHOLDER,
    TokenMetadata,
    TokenSecretValue,
    format_timestamp,
)
from tests.conftest import SECRET_MATERIAL
from tests.support import (
    ACCOUNT_ID,
    KEY_SECRET,
    MANAGED_TAG,
    MANAGING_STACK,
    REGION,
    SCOPE,
    TOKEN_SECRET,
    begin_rotation,
    lambda_context,
    stages,
    stdout_so_far,
)

LEAD = timedelta(seconds=900)
SPACING = timedelta(seconds=2.8)


@dataclass
class MotoClients:
    """boto3 clients of the moto server, as localcloud.operations' helpers take them."""

    endpoint: str

    def client(self, service: str, **_config: Any) -> Any:
        make: Any = boto3.client
        return make(service, region_name=REGION, endpoint_url=self.endpoint)


@dataclass
class World:
    """Now for everything in this process, moved by time_machine: the sweep, the rotation,
    google-auth's mint, moto's records and the Google emulator all tell the same time."""

    traveller: time_machine.Traveller

    def now(self) -> datetime:
        return datetime.now(UTC)

    def move_to(self, moment: datetime) -> None:
        self.traveller.move_to(moment)


@dataclass
class Stack:
    """What a sweep needs around it: the secrets, Google, the rotation function and the topic."""

    secretsmanager: SecretsManagerClient
    environment: dict[str, str]
    world: World
    clients: MotoClients
    topic_arn: str
    queue_url: str
    rotation_function: str
    sleeps: list[float] = field(default_factory=list)

    def sweep(
        self, budget: int = 10, remaining_seconds: Callable[[], float] | None = None
    ) -> SweepReport:
        google = GoogleClient(GoogleEndpoints.from_environment(self.environment), MAX_CONCURRENCY)
        topic = NoticeTopic(self.clients.client("sns"), self.topic_arn)
        return FreshnessSweep(
            SecretsGateway(self.secretsmanager),
            google,
            self.environment,
            topic.publish,
            clock=self.world.now,
            budget=budget,
            spacing=SPACING,
            sleep=self.sleeps.append,
            remaining_seconds=remaining_seconds,
        ).run()

    def token_secret(self, name: str, value: str = PLACEHOLDER, owner: str = MANAGING_STACK) -> str:
        """A token secret as tools/add-token-secret makes it, rotation configured."""
        arn = self.secretsmanager.create_secret(
            Name=name,
            SecretString=value,
            Tags=[{"Key": MANAGED_TAG["Key"], "Value": owner}],
        )["ARN"]
        fidelity.configure_rotation(moto_secrets(), arn, self.rotation_function)
        return arn

    def current(self, secret_id: str) -> tuple[str, TokenSecretValue]:
        answer = self.secretsmanager.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
        return answer["VersionId"], TokenSecretValue.from_secret_string(answer["SecretString"])

    def tags(self, secret_id: str) -> dict[str, str]:
        described = self.secretsmanager.describe_secret(SecretId=secret_id)
        return {tag["Key"]: tag["Value"] for tag in described.get("Tags", [])}

    def notices(self) -> list[dict[str, Any]]:
        return drain_notices(self.clients, self.queue_url)


@pytest.fixture
def world() -> Iterator[World]:
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        yield World(traveller)


def moto_secrets() -> Any:
    from moto.backends import get_backend  # noqa: PLC0415 - moto's own backend, in-process

    return get_backend("secretsmanager")[ACCOUNT_ID][REGION]


@pytest.fixture
def stack(
    moto_endpoint: str,
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    token_secret_arn: str,
    monkeypatch: pytest.MonkeyPatch,
    world: World,
) -> Stack:
    """The template's token secret (its key secret stored) with rotation configured on a moto
    function whose invocations run the real rotation steps at the world's moment."""
    clients = MotoClients(moto_endpoint)
    ensure_lambda_role(clients.client("iam"))
    function_arn = clients.client("lambda").create_function(
        FunctionName=f"rotation-entry-{uuid.uuid4().hex[:8]}",
        Runtime="python3.12",
        Role=ROLE_ARN,
        Handler="rotation_entry.lambda_handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
    )["FunctionArn"]

    def rotate_step(_function: LambdaFunction, payload: Any) -> tuple[bytes, str | None]:
        google_client = GoogleClient(GoogleEndpoints.from_environment(environment))
        rotation = Rotation(
            SecretsGateway(secretsmanager), google_client, environment, clock=world.now
        )
        try:
            outcome = rotation.run(
                Step(payload["Step"]), RotationRequest.from_rotation_event(payload)
            )
        except RotationError as error:
            failure = {"errorType": type(error).__name__, "errorMessage": str(error)}
            return json.dumps(failure).encode(), type(error).__name__
        return json.dumps(outcome.as_payload()).encode(), None

    monkeypatch.setattr(fidelity.CORRECTIONS, "dispatch", rotate_step)
    fidelity.configure_rotation(moto_secrets(), token_secret_arn, function_arn)
    topic_arn = clients.client("sns").create_topic(Name="failures")["TopicArn"]
    queue_url = subscribe_queue(clients, topic_arn, name=f"notices-{uuid.uuid4().hex[:8]}")
    return Stack(secretsmanager, environment, world, clients, topic_arn, queue_url, function_arn)


def fake_token(expires_at: datetime) -> str:
    """A token secret value the rotation could have written, for a secret whose tokens Google is
    not asked about (they are due or expired) or cannot answer for."""
    metadata = TokenMetadata(
        "Bearer",
        expires_at,
        expires_at - timedelta(hours=1),
        (SCOPE,),
        "rotator@demo-project.iam.gserviceaccount.com",
        "104234567890123456789",
    )
    return TokenSecretValue(f"ya29.not-real-{uuid.uuid4().hex}", metadata).to_secret_string()


def decisions_of(report: SweepReport) -> dict[str, tuple[Action, str]]:
    return {d.secret_arn: (d.action, d.reason) for d in report.decisions}


def test_a_lost_refresh_schedule_is_repaired_once_the_schedule_had_its_grace(
    stack: Stack, token_secret_arn: str, google: GoogleEmulator
) -> None:
    """Nothing rotates the secret after its first rotation (its refresh schedule is gone): the
    sweep leaves it alone until the grace after its due moment has passed, then rotates."""
    stack.secretsmanager.rotate_secret(SecretId=token_secret_arn)
    version, first = stack.current(token_secret_arn)
    due = first.metadata.expires_at - LEAD + SCHEDULE_GRACE

    stack.world.move_to(due - timedelta(seconds=1))
    before = stack.sweep()
    stack.world.move_to(due)
    after = stack.sweep()

    assert decisions_of(before) == {token_secret_arn: (Action.NOTHING, Reason.FRESH)}
    assert before.google_calls == 1, "a fresh token is shown to Google once a run"
    assert decisions_of(after) == {token_secret_arn: (Action.ROTATE, Reason.DUE)}
    assert [acted.outcome for acted in after.acted] == ["started"]
    assert after.google_calls == 0, "a token rotated anyway is not shown to Google"
    new_version, new = stack.current(token_secret_arn)
    assert new_version != version
    assert new.metadata.expires_at - due >= timedelta(minutes=59)
    assert google.token_info(new.access_token) is not None
    assert stack.notices() == []


def test_a_revoked_token_is_replaced_at_once_with_one_notice_however_many_runs_see_it(
    stack: Stack, token_secret_arn: str, google: GoogleEmulator, service_account: ServiceAccountKey
) -> None:
    """Revoked while it had 50 minutes to live: the next run notices, says so once, records it
    on the secret, and rotates. The key is disabled too, so that rotation fails and the revoked
    token stays in use; the run after that says nothing again and repairs the rotation."""
    stack.secretsmanager.rotate_secret(SecretId=token_secret_arn)
    revoked_version, revoked = stack.current(token_secret_arn)
    google.revoke_token(revoked.access_token)
    google.disable_key(service_account.private_key_id)
    stack.world.move_to(stack.world.now() + timedelta(minutes=10))

    noticing = stack.sweep()

    assert decisions_of(noticing) == {token_secret_arn: (Action.ROTATE, Reason.REFUSED)}
    assert noticing.notices == 1
    [notice] = stack.notices()
    assert notice["Subject"] == (f"Google refused the token in use, replacing it ({TOKEN_SECRET})")
    assert notice["Message"]["RefusedVersionId"] == revoked_version
    assert revoked.access_token not in json.dumps(notice)
    assert stack.tags(token_secret_arn)[REFUSED_VERSION_TAG] == revoked_version
    assert stack.current(token_secret_arn)[0] == revoked_version, "the mint failed"

    google.enable_key(service_account.private_key_id)
    stack.world.move_to(stack.world.now() + STUCK_AFTER)
    repairing = stack.sweep()

    # The failed rotation's pending version holds no token: abandoned, then a fresh rotation.
    assert decisions_of(repairing) == {token_secret_arn: (Action.ABANDON, Reason.REFUSED)}
    assert repairing.notices == 0
    assert stack.notices() == []
    new_version, new = stack.current(token_secret_arn)
    assert new_version != revoked_version
    assert google.token_info(new.access_token) is not None
    quiet = stack.sweep()
    assert decisions_of(quiet) == {token_secret_arn: (Action.NOTHING, Reason.FRESH)}
    assert stack.notices() == []


def test_a_stuck_rotation_is_driven_to_its_end_and_never_doubled(
    stack: Stack, token_secret_arn: str
) -> None:
    """A rotation stopped after createSecret stored a fresh token (its entry function timed out,
    say): young, it is left alone; stuck, RotateSecret makes Secrets Manager finish that very
    rotation, and no second version is made."""
    stuck = begin_rotation(token_secret_arn)
    fidelity.configure_rotation(moto_secrets(), token_secret_arn, stack.rotation_function)
    Rotation(
        SecretsGateway(stack.secretsmanager),
        GoogleClient(GoogleEndpoints.from_environment(stack.environment)),
        stack.environment,
        clock=stack.world.now,
    ).create_secret(RotationRequest(token_secret_arn, stuck))
    started = stack.world.now()

    stack.world.move_to(started + timedelta(minutes=1))
    young = stack.sweep()
    stack.world.move_to(started + STUCK_AFTER + timedelta(seconds=5))
    driven = stack.sweep()

    assert decisions_of(young) == {token_secret_arn: (Action.NOTHING, Reason.IN_PROGRESS)}
    assert decisions_of(driven) == {token_secret_arn: (Action.DRIVE, Reason.NO_TOKEN)}
    assert [acted.outcome for acted in driven.acted] == ["re-attempted"]
    after = stages(stack.secretsmanager, token_secret_arn)
    assert "AWSCURRENT" in after[stuck]
    assert len(after) == 2, "the placeholder's version and the driven one: no second rotation"


def test_a_run_starts_the_earliest_expiries_within_its_budget_and_skips_what_is_not_its_own(
    stack: Stack, token_secret_arn: str
) -> None:
    now = stack.world.now()
    expired = stack.token_secret("sweep/expired", fake_token(now - timedelta(minutes=5)))
    due = stack.token_secret("sweep/due", fake_token(now + timedelta(minutes=12)))
    disabled = stack.token_secret("sweep/disabled", fake_token(now - timedelta(minutes=30)))
    stack.secretsmanager.cancel_rotate_secret(SecretId=disabled)
    foreign = stack.token_secret("sweep/foreign", json.dumps({"password": "not a token"}))
    other_stack = stack.token_secret(
        "sweep/other-stack", fake_token(now - timedelta(hours=2)), owner=f"{MANAGING_STACK}-2"
    )
    versions = {arn: stack.current(arn)[0] for arn in (expired, due, disabled, other_stack)}

    report = stack.sweep(budget=2)

    assert decisions_of(report) == {
        expired: (Action.ROTATE, Reason.EXPIRED),
        token_secret_arn: (Action.ROTATE, Reason.NO_TOKEN),
        due: (Action.ROTATE, Reason.DUE),
        disabled: (Action.NOTHING, Reason.DISABLED),
    }
    assert [acted.decision.secret_arn for acted in report.acted] == [expired, token_secret_arn]
    assert [decision.secret_arn for decision in report.deferred] == [due]
    assert report.skipped == 1, "the secret with this stack's tag and a foreign value"
    assert stack.sleeps == [SPACING.total_seconds()], "one pause between the two starts"
    assert stack.current(expired)[0] != versions[expired]
    assert stack.current(token_secret_arn)[1].metadata.expires_at > now
    for untouched in (due, disabled, other_stack):
        assert stack.current(untouched)[0] == versions[untouched]
    assert json.loads(stack.secretsmanager.get_secret_value(SecretId=foreign)["SecretString"]) == {
        "password": "not a token"
    }
    assert report.freshness.without_valid_token == 3
    assert report.as_payload() == {
        "Secrets": 4,
        "Skipped": 1,
        "Actions": {"rotate": 3, "nothing": 1},
        "Reasons": {Reason.EXPIRED: 1, Reason.NO_TOKEN: 1, Reason.DUE: 1, Reason.DISABLED: 1},
        "RotationsStarted": 2,
        "ActionsFailed": 0,
        "RotationsDeferred": 1,
        "GoogleCalls": 0,
        "RefusedNotices": 0,
        "LeastSecondsLeft": 0,
        "SecretsWithoutValidToken": 3,
    }


def test_a_run_near_its_deadline_starts_one_action_and_defers_the_rest(
    stack: Stack, token_secret_arn: str
) -> None:
    """Less than a spacing and the margin left after the first start: the rest waits for the
    next run, which the schedule starts within the interval."""
    expired = stack.token_secret(
        "sweep/expired", fake_token(stack.world.now() - timedelta(hours=2))
    )

    report = stack.sweep(remaining_seconds=DEADLINE_MARGIN.total_seconds)

    assert [acted.decision.secret_arn for acted in report.acted] == [expired]
    assert [decision.secret_arn for decision in report.deferred] == [token_secret_arn]
    assert stack.sleeps == []


def test_when_tokeninfo_cannot_answer_nothing_rotates_for_it_and_the_run_stops_asking(
    stack: Stack, google: GoogleEmulator, token_secret_arn: str
) -> None:
    now = stack.world.now()
    fresh = [
        stack.token_secret(f"sweep/fresh-{n}", fake_token(now + timedelta(minutes=40)))
        for n in range(20)
    ]
    google.fail_during("/tokeninfo", until_epoch=google.now() + 3600, status=503)

    report = stack.sweep()

    decided = decisions_of(report)
    assert {decided[arn] for arn in fresh} == {(Action.NOTHING, Reason.FRESH)}
    assert [acted.decision.secret_arn for acted in report.acted] == [token_secret_arn]
    # Lookups already under way when the third failure came still count; no more start.
    assert (
        GOOGLE_FAILURES_TO_STOP <= report.google_calls < GOOGLE_FAILURES_TO_STOP + MAX_CONCURRENCY
    )
    assert report.freshness.without_valid_token == 1, "the template's secret, no token yet"


def published_metrics(stdout: str) -> dict[str, list[float]]:
    """The sweep's embedded-metric line, checked to be per stack: metric name to values."""
    documents = [json.loads(line) for line in stdout.splitlines() if '"_aws"' in line]
    [document] = [d for d in documents if "SecretsWithoutValidToken" in d]
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "GoogleTokenRotation"
    assert [sorted(dimensions) for dimensions in directive["Dimensions"]] == [["Stack", "service"]]
    assert (document["Stack"], document["service"]) == (MANAGING_STACK, "google-token-rotation")
    return {metric["Name"]: document[metric["Name"]] for metric in directive["Metrics"]}


def test_the_handler_sweeps_and_publishes_the_stacks_freshness_by_stack(
    stack: Stack,
    token_secret_arn: str,
    lambda_environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Lambda as the schedule invokes it: one run, its summary returned and logged, its
    metrics per stack (never per secret) as one embedded-metric line: the two freshness metrics
    always, the repair counts only when not 0. The run after, quiet, publishes the two alone:
    its Google call is counted in the summary line only (docs/monitoring.md's query)."""
    monkeypatch.setenv("FAILURE_TOPIC_ARN", stack.topic_arn)
    freshness_sweep._sweep_parts.cache_clear()

    summary = freshness_sweep.lambda_handler({}, lambda_context())
    repairing = stdout_so_far(capsys)
    quiet_summary = freshness_sweep.lambda_handler({}, lambda_context())
    # stdout_so_far puts back what it read: the quiet run's output is what follows.
    quiet = stdout_so_far(capsys).removeprefix(repairing)

    freshness_sweep._sweep_parts.cache_clear()
    assert summary["Actions"] == {"rotate": 1}
    assert summary["RotationsStarted"] == 1
    assert stack.current(token_secret_arn)[1].metadata.expires_at > stack.world.now()
    assert published_metrics(repairing) == {
        "LeastSecondsLeft": [0.0],
        "SecretsWithoutValidToken": [1.0],
        "SweepRotationsStarted": [1.0],
    }
    assert token_secret_arn not in repairing
    assert quiet_summary["Actions"] == {"nothing": 1}
    assert set(published_metrics(quiet)) == {"LeastSecondsLeft", "SecretsWithoutValidToken"}
    # The quiet run's summary line as the function prints it (its handler's stream is not
    # capsys's): what a Logs Insights query over the sweep's log group reads.
    done = [r for r in caplog.records if r.getMessage() == "freshness sweep done"]
    line = json.loads(logger.registered_formatter.format(done[-1]))
    assert line["message"] == "freshness sweep done"
    assert (line["summary"]["Secrets"], line["summary"]["GoogleCalls"]) == (1, 1)


# A run that fails before it ends has no metric to publish: powertools warns, and that is all.
@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_the_handler_without_its_topic_says_which_variable_to_set(
    lambda_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAILURE_TOPIC_ARN", raising=False)
    freshness_sweep._sweep_parts.cache_clear()

    with pytest.raises(ConfigurationError, match="'FAILURE_TOPIC_ARN' is not set"):
        freshness_sweep.lambda_handler({}, lambda_context())


# The stack's own key secret, when it renews itself: the sweep starts its rotation once due.

KEY_ROTATION_DAYS = 30


@dataclass
class KeySecret:
    """The stack's key secret with rotation configured. Its rotation function only records what
    Secrets Manager asks of it and fails createSecret, which leaves AWSPENDING as a stopped
    rotation does: the key rotation itself, at Google's keys API, is other tests' subject."""

    arn: str
    steps: list[tuple[str, str]] = field(default_factory=list)
    """(step, ClientRequestToken) of each invocation for the key secret."""

    def rotations_started(self) -> int:
        return sum(step == "createSecret" for step, _ in self.steps)


@pytest.fixture
def key_secret(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> KeySecret:
    """The token secret's rotation switched off, so that only the key secret can be acted on."""
    stack.environment["KEY_ROTATION_DAYS"] = str(KEY_ROTATION_DAYS)
    stack.secretsmanager.cancel_rotate_secret(SecretId=TOKEN_SECRET)
    key = KeySecret(stack.secretsmanager.describe_secret(SecretId=KEY_SECRET)["ARN"])
    fidelity.configure_rotation(moto_secrets(), key.arn, stack.rotation_function)
    token_rotation = fidelity.CORRECTIONS.dispatch
    assert token_rotation is not None

    def dispatch(function: LambdaFunction, payload: Any) -> tuple[bytes, str | None]:
        if payload.get("SecretId") != key.arn:
            return token_rotation(function, payload)
        key.steps.append((payload["Step"], payload["ClientRequestToken"]))
        failure = {"errorType": "NotRotatedHere", "errorMessage": "recorded only"}
        return json.dumps(failure).encode(), "NotRotatedHere"

    monkeypatch.setattr(fidelity.CORRECTIONS, "dispatch", dispatch)
    return key


def key_version_created(stack: Stack) -> datetime:
    versions = stack.secretsmanager.list_secret_version_ids(SecretId=KEY_SECRET)["Versions"]
    [current] = [v for v in versions if "AWSCURRENT" in v.get("VersionStages", [])]
    return current["CreatedDate"]


def test_a_key_put_by_hand_is_rotated_once_six_hours_have_passed_and_not_before(
    stack: Stack, key_secret: KeySecret
) -> None:
    """No tag yet: the key's expiry is unread, so it is due 6 hours after its version was
    created (Google's shortest key-expiry policy is 8 h). The run that finds it due starts its
    rotation once; the next, while that rotation is young, does not."""
    due = key_version_created(stack) + timedelta(hours=6)

    stack.world.move_to(due - timedelta(minutes=1))
    before = stack.sweep()
    stack.world.move_to(due)
    rotating = stack.sweep()
    stack.world.move_to(due + timedelta(minutes=5))
    after = stack.sweep()

    assert before.key is not None
    assert (before.key.decision.action, before.key.decision.reason) == (
        Action.NOTHING,
        Reason.KEY_NOT_DUE,
    )
    assert before.acted == ()
    assert rotating.key is not None
    assert (rotating.key.decision.action, rotating.key.decision.reason) == (
        Action.ROTATE,
        Reason.KEY_DUE,
    )
    assert [(a.decision.secret_arn, a.outcome) for a in rotating.acted] == [
        (key_secret.arn, "started")
    ]
    assert rotating.as_payload()["RotationsStarted"] == 1
    assert key_secret.rotations_started() == 1
    assert after.key is not None
    assert after.key.decision.reason == Reason.IN_PROGRESS
    assert key_secret.rotations_started() == 1, "a young rotation is never doubled"


def test_a_key_google_refused_is_replaced_at_once_however_long_before_it_is_due(
    stack: Stack, key_secret: KeySecret
) -> None:
    now = stack.world.now()
    stack.secretsmanager.tag_resource(
        SecretId=KEY_SECRET,
        Tags=[
            {"Key": KEY_ROTATED_AT_TAG, "Value": format_timestamp(now - timedelta(days=1))},
            {"Key": KEY_VALID_BEFORE_TAG, "Value": format_timestamp(NO_EXPIRY)},
            {"Key": KEY_REFUSED_TAG, "Value": "0123456789abcdef"},
        ],
    )

    report = stack.sweep()

    assert report.key is not None
    assert (report.key.decision.action, report.key.decision.reason) == (
        Action.ROTATE,
        Reason.KEY_REFUSED,
    )
    assert report.key.days_left == pytest.approx(KEY_ROTATION_DAYS - 1, abs=0.01)
    assert report.key.days_to_expiry is None, "Google's validBeforeTime of a key that never expires"
    assert key_secret.rotations_started() == 1


def test_a_key_put_by_hand_after_a_rotation_is_due_within_six_hours_whatever_the_tags_say(
    stack: Stack, key_secret: KeySecret
) -> None:
    """The tags name the version the last rotation promoted, with its key valid for weeks; the
    key in AWSCURRENT was put by hand since (the runbook's fix), its expiry unread: due within
    six hours of its put, before Google's shortest key-expiry policy could end it."""
    now = stack.world.now()
    stack.secretsmanager.tag_resource(
        SecretId=KEY_SECRET,
        Tags=[
            {
                "Key": KEY_ROTATED_AT_TAG,
                "Value": f"{format_timestamp(now - timedelta(days=1))} rotated-version-id",
            },
            {"Key": KEY_VALID_BEFORE_TAG, "Value": format_timestamp(now + timedelta(days=60))},
        ],
    )

    report = stack.sweep()

    assert report.key is not None
    assert report.key.decision.reason == Reason.KEY_NOT_DUE
    assert report.key.days_left == pytest.approx(0.25, abs=0.01)
    assert report.key.days_to_expiry is None, "the hand-put key's expiry is unread"


def test_the_handler_publishes_the_days_left_before_the_key_must_be_replaced(
    stack: Stack,
    key_secret: KeySecret,
    lambda_environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A key an 8-hour key-expiry policy made, rotated 5 hours ago: due at 6 hours, so one hour
    (1/24 of a day) is left, and 3 hours before Google stops accepting it; the metrics per stack
    like the freshness metrics, and the summary says when."""
    rotated_at = stack.world.now().replace(microsecond=0) - timedelta(hours=5)
    stack.secretsmanager.tag_resource(
        SecretId=KEY_SECRET,
        Tags=[
            {"Key": KEY_ROTATED_AT_TAG, "Value": format_timestamp(rotated_at)},
            {
                "Key": KEY_VALID_BEFORE_TAG,
                "Value": format_timestamp(rotated_at + timedelta(hours=8)),
            },
        ],
    )
    monkeypatch.setenv("KEY_ROTATION_DAYS", str(KEY_ROTATION_DAYS))
    monkeypatch.setenv("FAILURE_TOPIC_ARN", stack.topic_arn)
    freshness_sweep._sweep_parts.cache_clear()

    summary = freshness_sweep.lambda_handler({}, lambda_context())

    freshness_sweep._sweep_parts.cache_clear()
    published = published_metrics(stdout_so_far(capsys))
    [days_left] = published["ServiceAccountKeyDaysLeft"]
    [days_to_expiry] = published["ServiceAccountKeyDaysToExpiry"]
    assert days_left == pytest.approx(1 / 24, abs=0.001)
    assert days_to_expiry == pytest.approx(3 / 24, abs=0.001)
    key = summary["ServiceAccountKey"]
    assert isinstance(key, dict)
    assert key["DueAt"] == format_timestamp(rotated_at + timedelta(hours=6))
    assert key["DaysLeft"] == pytest.approx(1 / 24, abs=0.001)
    assert key["DaysToExpiry"] == pytest.approx(3 / 24, abs=0.001)
    assert (key["Action"], key["Reason"]) == ("nothing", Reason.KEY_NOT_DUE)
    assert key_secret.steps == []


def test_a_due_key_is_replaced_through_the_sweeps_rotate_secret_at_googles_keys_api(
    stack: Stack, google: GoogleEmulator
) -> None:
    """The whole loop: the run that finds the key due calls RotateSecret, the rotation creates a
    key at Google and promotes it, and the next run finds the new key due KeyRotationDays on."""
    account = f"rotator-{uuid.uuid4().hex[:10]}@demo-project.iam.gserviceaccount.com"
    first = google.create_service_account(account)
    SECRET_MATERIAL.add_key(first)
    google.grant_key_admin(account, f"serviceAccount:{account}")
    google.key_propagation_seconds = 0
    stack.secretsmanager.put_secret_value(
        SecretId=KEY_SECRET,
        SecretString=json.dumps(first.key_file(GoogleEmulator.GOOGLE_TOKEN_AUDIENCE)),
    )
    stack.environment.update(
        KEY_ROTATION_DAYS=str(KEY_ROTATION_DAYS), GOOGLE_IAM_URL=google.keys_url("{}")
    )
    stack.secretsmanager.cancel_rotate_secret(SecretId=TOKEN_SECRET)
    key_arn = stack.secretsmanager.describe_secret(SecretId=KEY_SECRET)["ARN"]
    fidelity.configure_rotation(moto_secrets(), key_arn, stack.rotation_function)
    due = key_version_created(stack) + timedelta(days=KEY_ROTATION_DAYS)
    try:
        stack.world.move_to(due)
        rotating = stack.sweep()
        stack.world.move_to(due + timedelta(minutes=5))
        after = stack.sweep()
    finally:
        google.key_propagation_seconds = 5.0

    assert [(a.decision.secret_arn, a.outcome) for a in rotating.acted] == [(key_arn, "started")]
    current = json.loads(
        stack.secretsmanager.get_secret_value(SecretId=KEY_SECRET, VersionStage="AWSCURRENT")[
            "SecretString"
        ]
    )
    SECRET_MATERIAL.values.add(current["private_key"].splitlines()[5])
    assert current["private_key_id"] != first.private_key_id
    assert {key.key_id for key in google.user_managed_keys(account)} == {
        first.private_key_id,
        current["private_key_id"],
    }, "the key replaced stays as the standby"
    assert after.key is not None
    assert after.key.decision.reason == Reason.KEY_NOT_DUE
    assert after.key.days_left == pytest.approx(KEY_ROTATION_DAYS - 5 / (24 * 60), abs=0.001)
