"""Each correction in localcloud.fidelity shows the AWS behaviour it restores, over real HTTP.

The corrections are applied for the whole session by tests/conftest.py. Lambda code is played
by `FakeLambdas`, attached as the dispatcher moto's Lambda hands every invocation to.
"""

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.awslambda.models import LambdaFunction
from moto.backends import get_backend
from moto.secretsmanager.exceptions import InvalidParameterException
from mypy_boto3_secretsmanager import SecretsManagerClient
from mypy_boto3_secretsmanager.type_defs import RotationRulesTypeTypeDef

from localcloud import fidelity
from localcloud.clock import SimulatedClock
from localcloud.cloud import ROLE_ARN, ensure_lambda_role
from localcloud.deployment import CURRENT, PENDING
from tests.support import ACCOUNT_ID, REGION

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_stepfunctions import SFNClient

ROTATOR = "rotator"
FLAKY = "flaky"
SECRET_NAME = "fidelity/token"
FIRST_VALUE = '{"GOOGLE_ACCESS_TOKEN": "first"}'
STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
# One call per request: a botocore retry would re-send RotateSecret and start a second rotation.
ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=60)


def rotated_value(version_id: str) -> str:
    return json.dumps({"GOOGLE_ACCESS_TOKEN": f"minted for {version_id}"})


@dataclass
class FakeLambdas:
    """Plays the functions moto's Lambda invokes: `rotator` rotates a secret the way the rotation
    contract says (its steps can be told to fail or to do nothing), `flaky` fails with a transient
    error a number of times before it succeeds. Every event is recorded."""

    secrets: SecretsManagerClient
    fail_steps: dict[str, str] = field(default_factory=dict)
    """Rotation step → errorType the rotator fails that step with."""
    idle_steps: set[str] = field(default_factory=set)
    """Rotation steps the rotator answers without doing anything."""
    transient_failures: int = 0
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, function: LambdaFunction, payload: Any) -> tuple[bytes, str | None]:
        name = function.function_name
        with self._lock:
            self.events.append((name, payload))
        error_type: str | None = None
        if name == ROTATOR:
            error_type = self.fail_steps.get(payload["Step"])
            if error_type is None and payload["Step"] not in self.idle_steps:
                self._rotate(payload)
        elif name == FLAKY:
            with self._lock:
                if self.transient_failures > 0:
                    self.transient_failures -= 1
                    error_type = "TransientError"
        else:
            error_type = "ResourceNotFoundException"
        if error_type is not None:
            error = {"errorType": error_type, "errorMessage": f"{name} failed", "stackTrace": []}
            return json.dumps(error).encode(), error_type
        return json.dumps({"handled": payload}).encode(), None

    def steps(self, function_name: str = ROTATOR) -> list[str]:
        return [event["Step"] for name, event in self.events if name == function_name]

    def rotation_events(self) -> list[dict[str, Any]]:
        return [event for name, event in self.events if name == ROTATOR]

    def _rotate(self, event: dict[str, Any]) -> None:
        """The contract's createSecret and finishSecret, called back over HTTP while moto is
        still serving RotateSecret (as a real rotation function would)."""
        secret_id, token = event["SecretId"], event["ClientRequestToken"]
        if event["Step"] == "createSecret":
            self.secrets.put_secret_value(
                SecretId=secret_id,
                ClientRequestToken=token,
                SecretString=rotated_value(token),
                VersionStages=[PENDING],
                RotationToken=event["RotationToken"],
            )
        elif event["Step"] == "finishSecret":
            current = holder(stages(self.secrets, secret_id), CURRENT)
            assert current is not None
            if current != token:
                self.secrets.update_secret_version_stage(
                    SecretId=secret_id,
                    VersionStage=CURRENT,
                    MoveToVersionId=token,
                    RemoveFromVersionId=current,
                )


@dataclass
class Aws:
    endpoint: str
    secrets: SecretsManagerClient
    lambda_: "LambdaClient"
    sfn: "SFNClient"

    def create_function(self, name: str) -> str:
        return self.lambda_.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=ROLE_ARN,
            Handler=f"{name}.handler",
            Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},  # an empty zip archive
        )["FunctionArn"]

    def create_secret(self) -> tuple[str, str]:
        """The token secret as deployed: (ARN, its AWSCURRENT version)."""
        answer = self.secrets.create_secret(Name=SECRET_NAME, SecretString=FIRST_VALUE)
        return answer["ARN"], answer["VersionId"]


@pytest.fixture
def aws(moto_endpoint: str, secretsmanager: SecretsManagerClient) -> Aws:
    """A fresh moto account (the `secretsmanager` fixture resets it) with a role for functions."""

    def client(service: str) -> Any:
        make_client: Any = boto3.client
        return make_client(
            service, region_name=REGION, endpoint_url=moto_endpoint, config=ONE_ATTEMPT
        )

    ensure_lambda_role(client("iam"))
    return Aws(moto_endpoint, client("secretsmanager"), client("lambda"), client("stepfunctions"))


@pytest.fixture
def lambdas(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> FakeLambdas:
    """Attached as moto's Lambda dispatcher for one test; monkeypatch restores the previous one."""
    fake = FakeLambdas(aws.secrets)
    monkeypatch.setattr(fidelity.CORRECTIONS, "dispatch", fake)
    return fake


@pytest.fixture
def rotating_secret(aws: Aws, lambdas: FakeLambdas) -> tuple[str, str]:
    """The token secret with rotation configured as the RotationSchedule does: (ARN, current)."""
    arn, current = aws.create_secret()
    fidelity.configure_rotation(secrets_backend(), SECRET_NAME, aws.create_function(ROTATOR))
    return arn, current


@pytest.fixture
def _quiet_state_machines() -> Iterator[None]:
    """moto's ASL interpreter logs every caught failure at ERROR, retried ones included."""
    logger = logging.getLogger("moto.stepfunctions.parser")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def secrets_backend() -> Any:
    return get_backend("secretsmanager")[ACCOUNT_ID][REGION]


def stages(secrets: SecretsManagerClient, secret_id: str) -> dict[str, list[str]]:
    return secrets.describe_secret(SecretId=secret_id)["VersionIdsToStages"]


def holder(version_stages: dict[str, list[str]], stage: str) -> str | None:
    """The version a staging label is on (a label is on one version at most)."""
    holders = [version for version, labels in version_stages.items() if stage in labels]
    assert len(holders) <= 1, f"{stage} is on {holders}"
    return holders[0] if holders else None


def value(secrets: SecretsManagerClient, **selector: str) -> str:
    return secrets.get_secret_value(SecretId=SECRET_NAME, **selector)["SecretString"]


def test_rotation_stops_at_the_failing_step_and_keeps_awspending(
    aws: Aws, lambdas: FakeLambdas, rotating_secret: tuple[str, str]
) -> None:
    """moto ignored a failing rotation step, went on to the next one and moved the
    labels regardless. AWS stops at the failing step and leaves AWSPENDING for its retry; the
    RotateSecret call itself has already succeeded (AWS answers before the rotation runs)."""
    _, first = rotating_secret
    lambdas.fail_steps["setSecret"] = "GoogleUnavailableError"

    answer = aws.secrets.rotate_secret(SecretId=SECRET_NAME)

    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert lambdas.steps() == ["createSecret", "setSecret"]
    after = stages(aws.secrets, SECRET_NAME)
    pending = holder(after, PENDING)
    assert pending is not None
    assert pending != first
    assert answer["VersionId"] == pending, "RotateSecret names the new version"
    assert holder(after, CURRENT) == first
    assert CURRENT not in after[pending]
    assert value(aws.secrets, VersionStage=CURRENT) == FIRST_VALUE
    assert value(aws.secrets, VersionId=pending, VersionStage=PENDING) == rotated_value(pending)


def test_a_failed_rotation_names_the_new_version_when_the_caller_sent_no_token(
    aws: Aws, lambdas: FakeLambdas, rotating_secret: tuple[str, str]
) -> None:
    """RotateSecret answers with the new version's id. boto3 always sends a ClientRequestToken (an
    idempotency token it fills in); other callers may not, and then the version id is the one
    Secrets Manager made, not the AWSCURRENT one."""

    def drop_token(params: dict[str, Any], **_: Any) -> None:
        body = json.loads(params["body"])
        del body["ClientRequestToken"]
        params["body"] = json.dumps(body).encode()

    aws.secrets.meta.events.register("before-call.secrets-manager.RotateSecret", drop_token)
    lambdas.fail_steps["testSecret"] = "GoogleTokenRejectedError"

    answer = aws.secrets.rotate_secret(SecretId=SECRET_NAME)

    assert lambdas.steps() == ["createSecret", "setSecret", "testSecret"]
    assert answer["VersionId"] == holder(stages(aws.secrets, SECRET_NAME), PENDING)
    assert answer["VersionId"] != rotating_secret[1]


def test_rotation_events_name_the_secret_by_arn_and_carry_a_rotation_token(
    aws: Aws, lambdas: FakeLambdas, rotating_secret: tuple[str, str]
) -> None:
    """moto's rotation events named the secret by name and had no RotationToken.
    AWS sends the ARN (whatever the RotateSecret caller used) and one RotationToken per rotation,
    which the function passes on to PutSecretValue."""
    arn, _ = rotating_secret

    version = aws.secrets.rotate_secret(SecretId=SECRET_NAME)["VersionId"]

    events = lambdas.rotation_events()
    assert [event["Step"] for event in events] == STEPS
    assert {event["SecretId"] for event in events} == {arn}
    assert {event["ClientRequestToken"] for event in events} == {version}
    rotation_tokens = {event["RotationToken"] for event in events}
    assert len(rotation_tokens) == 1
    assert all(rotation_tokens)


def test_previous_rotation_in_progress_only_while_awspending_is_on_another_version(
    aws: Aws, lambdas: FakeLambdas, rotating_secret: tuple[str, str]
) -> None:
    """moto's check was inverted. AWS refuses RotateSecret while AWSPENDING is on a
    version that is not AWSCURRENT (a rotation is unfinished) and, as its refusal says, runs that
    rotation again; it allows RotateSecret when AWSPENDING sits on the AWSCURRENT version, the
    end state a successful rotation may leave."""
    _, first = rotating_secret
    unfinished = str(uuid.uuid4())
    fidelity.begin_rotation(secrets_backend(), SECRET_NAME, unfinished)

    with pytest.raises(ClientError) as refused:
        aws.secrets.rotate_secret(SecretId=SECRET_NAME)

    assert refused.value.response["Error"]["Code"] == "InvalidRequestException"
    message = refused.value.response["Error"]["Message"]
    assert "A previous rotation isn't complete. That rotation will be reattempted." in message
    # The unfinished rotation ran again, every step with its own ClientRequestToken.
    assert lambdas.steps() == STEPS
    assert {event["ClientRequestToken"] for event in lambdas.rotation_events()} == {unfinished}
    after_reattempt = stages(aws.secrets, SECRET_NAME)
    assert holder(after_reattempt, CURRENT) == unfinished
    assert holder(after_reattempt, "AWSPREVIOUS") == first

    # The rotator left AWSPENDING on the version it made AWSCURRENT: that blocks nothing.
    second = aws.secrets.rotate_secret(SecretId=SECRET_NAME)["VersionId"]
    after_second = stages(aws.secrets, SECRET_NAME)
    assert set(after_second[second]) == {CURRENT, PENDING}
    assert holder(after_second, "AWSPREVIOUS") == unfinished

    third = aws.secrets.rotate_secret(SecretId=SECRET_NAME)["VersionId"]

    after_third = stages(aws.secrets, SECRET_NAME)
    assert lambdas.steps() == STEPS * 3
    assert third not in {first, second, unfinished}
    assert holder(after_third, CURRENT) == third
    assert holder(after_third, "AWSPREVIOUS") == second
    assert holder(after_third, PENDING) in {None, third}
    assert value(aws.secrets, VersionStage=CURRENT) == rotated_value(third)


def test_a_reattempt_stops_at_the_first_failing_step_and_the_refusal_still_comes(
    aws: Aws, lambdas: FakeLambdas, rotating_secret: tuple[str, str]
) -> None:
    _, first = rotating_secret
    unfinished = str(uuid.uuid4())
    fidelity.begin_rotation(secrets_backend(), SECRET_NAME, unfinished)
    lambdas.fail_steps["testSecret"] = "GoogleUnavailableError"

    with pytest.raises(ClientError) as refused:
        aws.secrets.rotate_secret(SecretId=SECRET_NAME)

    assert refused.value.response["Error"]["Code"] == "InvalidRequestException"
    assert lambdas.steps() == ["createSecret", "setSecret", "testSecret"]
    assert holder(stages(aws.secrets, SECRET_NAME), CURRENT) == first
    assert holder(stages(aws.secrets, SECRET_NAME), PENDING) == unfinished


def test_rotate_secret_without_a_function_arn_uses_the_configured_function(
    aws: Aws, lambdas: FakeLambdas, rotating_secret: tuple[str, str]
) -> None:
    """moto forgot the configured rotation function when RotateSecret named none, and promoted the
    new, empty version straight to AWSCURRENT. AWS rotates with the configured function."""
    _, first = rotating_secret
    function_arn = secrets_backend().secrets[SECRET_NAME].rotation_lambda_arn

    version = aws.secrets.rotate_secret(SecretId=SECRET_NAME)["VersionId"]

    assert lambdas.steps() == STEPS
    description = aws.secrets.describe_secret(SecretId=SECRET_NAME)
    assert description["RotationEnabled"] is True
    assert description["RotationLambdaARN"] == function_arn
    assert holder(description["VersionIdsToStages"], CURRENT) == version
    assert holder(description["VersionIdsToStages"], "AWSPREVIOUS") == first
    assert value(aws.secrets, VersionStage=CURRENT) == rotated_value(version)


def test_rotation_schedule_enables_rotation_without_rotating(
    aws: Aws, lambdas: FakeLambdas
) -> None:
    """moto accepted a ScheduleExpression and dropped it (rotation showed disabled),
    and configuring rotation through RotateSecret rotated at once. configure_rotation does what
    AWS::SecretsManager::RotationSchedule leaves behind: rotation enabled with the function's ARN,
    and no rotation at configuration time."""
    _, first = aws.create_secret()
    function_arn = aws.create_function(ROTATOR)
    assert not aws.secrets.describe_secret(SecretId=SECRET_NAME).get("RotationEnabled", False)

    fidelity.configure_rotation(secrets_backend(), SECRET_NAME, function_arn)

    description = aws.secrets.describe_secret(SecretId=SECRET_NAME)
    assert description["RotationEnabled"] is True
    assert description["RotationLambdaARN"] == function_arn
    assert description["VersionIdsToStages"] == {first: [CURRENT]}
    assert lambdas.events == []
    assert value(aws.secrets, VersionStage=CURRENT) == FIRST_VALUE


def rotation_rules(secrets: SecretsManagerClient) -> tuple[Any, Any]:
    """RotationRules as DescribeSecret and as ListSecrets show them."""
    described = secrets.describe_secret(SecretId=SECRET_NAME)["RotationRules"]
    [listed] = secrets.list_secrets(Filters=[{"Key": "name", "Values": [SECRET_NAME]}])[
        "SecretList"
    ]
    return described, listed["RotationRules"]


def test_rotation_rules_keep_their_schedule_expression(
    aws: Aws, lambdas: FakeLambdas, rotating_secret: tuple[str, str]
) -> None:
    """moto showed {"AutomaticallyAfterDays": 0} for a ScheduleExpression, as if there were no
    schedule. AWS keeps the rules as given, and a RotateSecret without rules (the schedule's,
    a retry's) keeps them."""
    rules: RotationRulesTypeTypeDef = {"ScheduleExpression": "rate(12 hours)", "Duration": "2h"}

    aws.secrets.rotate_secret(SecretId=SECRET_NAME, RotationRules=rules)

    assert rotation_rules(aws.secrets) == (rules, rules)
    assert aws.secrets.describe_secret(SecretId=SECRET_NAME)["RotationEnabled"] is True
    assert lambdas.steps() == STEPS
    aws.secrets.rotate_secret(SecretId=SECRET_NAME)
    assert rotation_rules(aws.secrets) == (rules, rules)
    assert lambdas.steps() == STEPS * 2


def test_the_rotation_schedule_keeps_its_rules(aws: Aws, lambdas: FakeLambdas) -> None:
    """What AWS::SecretsManager::RotationSchedule leaves: its rules, shown as given."""
    aws.create_secret()
    rules = {"ScheduleExpression": "rate(4 hours)", "Duration": "1h"}

    fidelity.configure_rotation(secrets_backend(), SECRET_NAME, aws.create_function(ROTATOR), rules)

    assert rotation_rules(aws.secrets) == (rules, rules)
    assert lambdas.events == []


@pytest.mark.parametrize(
    ("rules", "refusal"),
    [
        ({"ScheduleExpression": "rate(1 hours)"}, "at most every 4 hours"),
        ({"ScheduleExpression": "rate(3 hours)"}, "at most every 4 hours"),
        ({"ScheduleExpression": "rate(0 days)"}, "at most every 4 hours"),
        ({"ScheduleExpression": "rate(1000 days)"}, "at least every 999 days"),
        ({"ScheduleExpression": "rate(30 minutes)"}, "use rate(<value> hours|days) or cron("),
        ({"ScheduleExpression": "every 4 hours"}, "use rate(<value> hours|days) or cron("),
        (
            {"ScheduleExpression": "rate(4 hours)", "AutomaticallyAfterDays": 1},
            "You cannot specify both rotation frequency and schedule expression together.",
        ),
    ],
    ids=[
        "hourly",
        "three-hourly",
        "zero-days",
        "over-999-days",
        "minutes",
        "not-an-expression",
        "both-forms",
    ],
)
def test_rotation_rules_secrets_manager_refuses_are_refused_before_anything_changes(
    aws: Aws,
    lambdas: FakeLambdas,
    rotating_secret: tuple[str, str],
    rules: RotationRulesTypeTypeDef,
    refusal: str,
) -> None:
    """moto accepted a schedule more often than every 4 hours (Secrets Manager's shortest) and
    any other expression. Refused as RotateSecret refuses invalid parameters: nothing rotated,
    the rules in place kept."""
    aws.secrets.rotate_secret(SecretId=SECRET_NAME, RotationRules={"AutomaticallyAfterDays": 1})
    before = stages(aws.secrets, SECRET_NAME)

    with pytest.raises(ClientError) as refused:
        aws.secrets.rotate_secret(SecretId=SECRET_NAME, RotationRules=rules)

    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    assert refusal in refused.value.response["Error"]["Message"]
    assert lambdas.steps() == STEPS
    assert stages(aws.secrets, SECRET_NAME) == before
    assert rotation_rules(aws.secrets) == ({"AutomaticallyAfterDays": 1},) * 2
    # The same rules in a RotationSchedule: its RotateSecret would fail alike.
    function_arn = secrets_backend().secrets[SECRET_NAME].rotation_lambda_arn
    with pytest.raises(InvalidParameterException, match=re.escape(refusal)):
        fidelity.configure_rotation(secrets_backend(), SECRET_NAME, function_arn, rules)


@pytest.mark.parametrize(
    "expression",
    ["rate(4 hours)", "rate(1 day)", "rate(999 days)", "cron(0 4/12 * * ? *)"],
)
def test_the_shortest_and_longest_schedules_and_cron_are_accepted(
    aws: Aws, lambdas: FakeLambdas, rotating_secret: tuple[str, str], expression: str
) -> None:
    aws.secrets.rotate_secret(
        SecretId=SECRET_NAME, RotationRules={"ScheduleExpression": expression}
    )

    assert rotation_rules(aws.secrets) == ({"ScheduleExpression": expression},) * 2
    assert lambdas.steps() == STEPS


def test_put_secret_value_fills_the_pending_placeholder_once(aws: Aws) -> None:
    """moto overwrote a pending version's value. AWS lets PutSecretValue fill the empty AWSPENDING
    version a rotation created; the same value again is a no-op, and a different value raises
    ResourceExistsException (so a retried createSecret cannot replace a minted token)."""
    aws.create_secret()
    token = str(uuid.uuid4())
    fidelity.begin_rotation(secrets_backend(), SECRET_NAME, token)

    def put(secret_string: str) -> str:
        return aws.secrets.put_secret_value(
            SecretId=SECRET_NAME,
            ClientRequestToken=token,
            SecretString=secret_string,
            VersionStages=[PENDING],
        )["VersionId"]

    assert put("minted once") == token
    assert put("minted once") == token
    with pytest.raises(ClientError) as refused:
        put("minted twice")

    assert refused.value.response["Error"]["Code"] == "ResourceExistsException"
    assert value(aws.secrets, VersionId=token, VersionStage=PENDING) == "minted once"
    assert holder(stages(aws.secrets, SECRET_NAME), PENDING) == token
    assert value(aws.secrets, VersionStage=CURRENT) == FIRST_VALUE


def default_read(secrets: SecretsManagerClient) -> tuple[str, str, list[str]]:
    """GetSecretValue as applications, the AWS CLI and every SDK call it by default: no VersionId,
    no VersionStage. (version id, value, its labels)."""
    answer = secrets.get_secret_value(SecretId=SECRET_NAME)
    return answer["VersionId"], answer["SecretString"], answer["VersionStages"]


def listed_stages(secrets: SecretsManagerClient) -> dict[str, list[str]]:
    versions = secrets.list_secret_version_ids(SecretId=SECRET_NAME)["Versions"]
    return {version["VersionId"]: version.get("VersionStages", []) for version in versions}


def promote(secrets: SecretsManagerClient, version: str, current: str) -> None:
    """finishSecret's move, as the manual mode and the entry-driven steps make it."""
    secrets.update_secret_version_stage(
        SecretId=SECRET_NAME,
        VersionStage=CURRENT,
        MoveToVersionId=version,
        RemoveFromVersionId=current,
    )


def assert_one_current(secrets: SecretsManagerClient, expected: str, value_of_it: str) -> None:
    """Every way of asking names the same AWSCURRENT version: a default read, a read by stage,
    DescribeSecret and ListSecretVersionIds."""
    described = stages(secrets, SECRET_NAME)
    assert holder(described, CURRENT) == expected
    assert holder(listed_stages(secrets), CURRENT) == expected
    assert listed_stages(secrets) == described
    version, read, labels = default_read(secrets)
    assert (version, read) == (expected, value_of_it)
    assert CURRENT in labels
    assert value(secrets, VersionStage=CURRENT) == value_of_it


def test_list_secret_version_ids_dates_each_version_by_its_creation(aws: Aws) -> None:
    """moto answered the moment of the call as every version's CreatedDate, so a rotation that
    stopped an hour ago looked a second old. AWS dates each version by its creation, and leaves
    NextToken out of the last page (moto sent an empty one)."""
    _, first = aws.create_secret()
    pending = str(uuid.uuid4())
    fidelity.begin_rotation(secrets_backend(), SECRET_NAME, pending)
    an_hour_ago = int(time.time()) - 3600
    secrets_backend().secrets[SECRET_NAME].versions[pending]["createdate"] = an_hour_ago

    answer = aws.secrets.list_secret_version_ids(SecretId=SECRET_NAME)

    created = {v["VersionId"]: v["CreatedDate"].timestamp() for v in answer["Versions"]}
    assert created[pending] == an_hour_ago
    assert created[first] > an_hour_ago + 3000
    assert "NextToken" not in answer


def test_secrets_manager_dates_versions_on_the_local_clouds_simulated_clock(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handlers compare a version's CreatedDate with their simulated now: moto stamped real
    time, so once the clock had jumped a day a new key's version looked a day old (and its
    rotation was abandoned at once). With a local cloud's clock, Secrets Manager dates on it."""
    clock = SimulatedClock()
    clock.advance(86400)
    monkeypatch.setattr(fidelity.CORRECTIONS, "clock", clock)

    _, first = aws.create_secret()
    answer = aws.secrets.list_secret_version_ids(SecretId=SECRET_NAME)

    [created] = [
        v["CreatedDate"].timestamp() for v in answer["Versions"] if v["VersionId"] == first
    ]
    assert abs(created - clock.now()) < 5
    assert aws.secrets.describe_secret(SecretId=SECRET_NAME)["CreatedDate"].timestamp() > (
        time.time() + 86000
    )


def test_a_default_read_returns_awscurrent_after_a_promotion(aws: Aws) -> None:
    """GetSecretValue without VersionId or VersionStage returned moto's internal
    default version, which UpdateSecretVersionStage never moves: after a rotation promoted by
    the state machine (manual mode, or steps driven by the entry Lambda) every application
    reading the secret the default way got AWSPREVIOUS. AWS returns AWSCURRENT."""
    _, first = aws.create_secret()
    second = str(uuid.uuid4())
    aws.secrets.put_secret_value(
        SecretId=SECRET_NAME,
        ClientRequestToken=second,
        SecretString=rotated_value(second),
        VersionStages=[PENDING],
    )
    assert default_read(aws.secrets)[0] == first

    promote(aws.secrets, second, first)

    assert_one_current(aws.secrets, second, rotated_value(second))
    assert holder(stages(aws.secrets, SECRET_NAME), "AWSPREVIOUS") == first
    batch = aws.secrets.batch_get_secret_value(SecretIdList=[SECRET_NAME])["SecretValues"]
    assert [entry["VersionId"] for entry in batch] == [second]


def test_a_default_read_follows_the_labels_when_rotate_secret_does_not_promote(
    aws: Aws, lambdas: FakeLambdas, rotating_secret: tuple[str, str]
) -> None:
    """The other way round: moto moved its default version to the new one once
    every rotation step returned, whether finishSecret promoted it or not. AWS answers a default
    read with AWSCURRENT, which an idle finishSecret leaves where it was."""
    version = aws.secrets.rotate_secret(SecretId=SECRET_NAME)["VersionId"]
    assert_one_current(aws.secrets, version, rotated_value(version))
    aws.secrets.update_secret_version_stage(
        SecretId=SECRET_NAME, VersionStage=PENDING, RemoveFromVersionId=version
    )
    lambdas.idle_steps.add("finishSecret")

    unpromoted = aws.secrets.rotate_secret(SecretId=SECRET_NAME)["VersionId"]

    assert unpromoted != version, "RotateSecret names the new version, promoted or not"
    assert holder(stages(aws.secrets, SECRET_NAME), PENDING) == unpromoted
    assert_one_current(aws.secrets, version, rotated_value(version))


def test_put_secret_value_after_a_promotion_moves_awscurrent_and_awsprevious(aws: Aws) -> None:
    """moto moved AWSCURRENT away from its internal default version only: after a promotion by
    UpdateSecretVersionStage, a PutSecretValue with the default stages (AWSCURRENT) left two
    versions labelled AWSCURRENT and put AWSPREVIOUS on the version current before the promotion.
    AWS moves AWSCURRENT to the new version and AWSPREVIOUS to the version AWSCURRENT left."""
    _, first = aws.create_secret()
    second = str(uuid.uuid4())
    aws.secrets.put_secret_value(
        SecretId=SECRET_NAME,
        ClientRequestToken=second,
        SecretString=rotated_value(second),
        VersionStages=[PENDING],
    )
    promote(aws.secrets, second, first)

    third = aws.secrets.put_secret_value(SecretId=SECRET_NAME, SecretString="put by an operator")[
        "VersionId"
    ]

    after = stages(aws.secrets, SECRET_NAME)
    assert holder(after, "AWSPREVIOUS") == second
    assert PENDING in after[second], "labels AWSCURRENT did not take stay where they are"
    assert after[first] == []
    assert_one_current(aws.secrets, third, "put by an operator")


def test_put_secret_value_takes_every_label_it_names_from_other_versions(aws: Aws) -> None:
    """A staging label is on one version at most. When a new version took AWSCURRENT, moto did not
    remove the other labels it names from the versions holding them, so a custom label ended up
    on two versions."""
    _, first = aws.create_secret()
    reviewed = aws.secrets.put_secret_value(
        SecretId=SECRET_NAME, SecretString="a draft", VersionStages=["reviewed"]
    )["VersionId"]

    second = aws.secrets.put_secret_value(
        SecretId=SECRET_NAME,
        SecretString="reviewed and current",
        VersionStages=[CURRENT, "reviewed"],
    )["VersionId"]

    after = stages(aws.secrets, SECRET_NAME)
    assert holder(after, "reviewed") == second
    assert after[reviewed] == []
    assert after[first] == ["AWSPREVIOUS"]
    assert_one_current(aws.secrets, second, "reviewed and current")


def test_lambda_invoke_runs_the_dispatched_handler_and_reports_its_error(
    aws: Aws, lambdas: FakeLambdas
) -> None:
    """moto without Docker cannot run a function's code (it echoes the payload) and flags errors
    as "Handled". Lambda runs the handler and reports an exception as FunctionError "Unhandled"
    with errorType and errorMessage, which Step Functions' Retry and Catch match on."""
    aws.create_function(FLAKY)
    lambdas.transient_failures = 1

    failed = aws.lambda_.invoke(FunctionName=FLAKY, Payload=b'{"attempt": 1}')
    succeeded = aws.lambda_.invoke(FunctionName=FLAKY, Payload=b'{"attempt": 2}')

    assert failed["FunctionError"] == "Unhandled"
    error = json.loads(failed["Payload"].read())
    assert error["errorType"] == "TransientError"
    assert error["errorMessage"] == f"{FLAKY} failed"
    assert succeeded.get("FunctionError") is None
    assert json.loads(succeeded["Payload"].read()) == {"handled": {"attempt": 2}}
    assert [event for _, event in lambdas.events] == [{"attempt": 1}, {"attempt": 2}]


@pytest.mark.usefixtures("_quiet_state_machines")
@pytest.mark.parametrize("on_a_clock", [False, True], ids=["no-time", "on-the-clock"])
def test_retry_waits_are_recorded_without_sleeping(
    aws: Aws, lambdas: FakeLambdas, monkeypatch: pytest.MonkeyPatch, on_a_clock: bool
) -> None:
    """moto's Retry sleeps for real. The retry clock records every wait in
    CORRECTIONS.retry_waits, and sleeps it only when CORRECTIONS.sleep_retries is set (the demo),
    so tests of retry policies take no time and can assert the waits; with a retry clock (the
    soak's) the waits pass on that simulated clock instead."""
    clock = SimulatedClock()
    monkeypatch.setattr(fidelity.CORRECTIONS, "sleep_retries", False)
    monkeypatch.setattr(fidelity.CORRECTIONS, "retry_waits", [])
    monkeypatch.setattr(fidelity.CORRECTIONS, "retry_clock", clock if on_a_clock else None)
    # moto's ASL interpreter calls Lambda at localhost:$MOTO_PORT.
    monkeypatch.setenv("MOTO_PORT", aws.endpoint.rsplit(":", 1)[1])
    # Process-wide and left on, as the other suites that run executions leave it.
    urllib3.PoolManager().request(
        "POST",
        f"{aws.endpoint}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
    )
    function_arn = aws.create_function(FLAKY)
    lambdas.transient_failures = 2
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
                "ResultSelector": {"Result.$": "$.Payload"},
                "Retry": [
                    {
                        "ErrorEquals": ["TransientError"],
                        "IntervalSeconds": 5,
                        "MaxAttempts": 2,
                        "BackoffRate": 2.0,
                    }
                ],
                "End": True,
            }
        },
    }
    machine = aws.sfn.create_state_machine(
        name=f"retry-clock-{on_a_clock}", definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]
    started = time.monotonic()

    execution = aws.sfn.start_execution(
        stateMachineArn=machine, name="retry-clock-1", input='{"attempt": "any"}'
    )["executionArn"]
    while (description := aws.sfn.describe_execution(executionArn=execution))[
        "status"
    ] == "RUNNING" and time.monotonic() - started < 4:
        time.sleep(0.05)

    assert time.monotonic() - started < 4, "the retry waits were slept"
    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"]) == {"Result": {"handled": {"attempt": "any"}}}
    assert fidelity.CORRECTIONS.retry_waits == [5, 10]
    assert len(lambdas.events) == 3
    assert clock.offset == (15 if on_a_clock else 0)


@pytest.mark.parametrize("test_step_fails", [False, True], ids=["passes", "fails"])
def test_rotate_immediately_false_tests_an_empty_version_and_never_locks_the_secret(
    aws: Aws, lambdas: FakeLambdas, rotating_secret: tuple[str, str], test_step_fails: bool
) -> None:
    """RotateImmediately=false: AWS runs only testSecret, on an AWSPENDING version with no value,
    and removes that label whatever the outcome. moto copied the current value into the version
    and left AWSPENDING on it, so every later RotateSecret was refused."""
    _, first = rotating_secret
    if test_step_fails:
        lambdas.fail_steps["testSecret"] = "ConfigurationError"

    aws.secrets.rotate_secret(SecretId=SECRET_NAME, RotateImmediately=False)

    [event] = lambdas.rotation_events()
    assert event["Step"] == "testSecret"
    tested = secrets_backend().secrets[SECRET_NAME].versions[event["ClientRequestToken"]]
    assert "secret_string" not in tested
    after = stages(aws.secrets, SECRET_NAME)
    assert holder(after, PENDING) is None
    assert holder(after, CURRENT) == first
    assert value(aws.secrets, VersionStage=CURRENT) == FIRST_VALUE

    lambdas.fail_steps.clear()
    aws.secrets.rotate_secret(SecretId=SECRET_NAME)
    assert lambdas.steps()[1:] == STEPS
    assert holder(stages(aws.secrets, SECRET_NAME), CURRENT) != first
