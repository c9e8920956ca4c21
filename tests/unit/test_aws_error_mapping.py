"""How Secrets Manager failures become rotation errors: throttling and outages are transient,
missing secrets and refusals are permanent. Real botocore exceptions and real HTTP, no mocks."""

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from mypy_boto3_secretsmanager import SecretsManagerClient

from rotation_core.config import GoogleEndpoints
from rotation_core.errors import (
    AwsAccessError,
    AwsUnavailableError,
    ConfigurationError,
    NotPendingVersionError,
    RotationError,
    SecretNotFoundError,
)
from rotation_core.google_client import GoogleClient
from rotation_core.rotation import Rotation
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import (
    RotateOutcome,
    SecretsGateway,
    _client_failure,
    _transport_failure,
)
from tests.scripted_aws import Answer, ScriptedAws, error_answer, json_answer, scripted_aws
from tests.support import ACCOUNT_ID, REGION, TOKEN_SECRET, begin_rotation, stages

SUBJECT = "secret 'google/access-token'"
VERSION = "5f0d1c2b-3a4e-4f60-9b8a-7c6d5e4f3a21"
OTHER_VERSION = "0b9e8d7c-6f5a-4b3c-8d2e-1f0a9b8c7d6e"
LABEL_MOVED = "lost its AWSPENDING label after this step's DescribeSecret"
STAGE_NOT_ON_VERSION = (
    "You provided a VersionStage that is not associated to the provided VersionId."
)
NO_RETRIES = Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=2)


def client_error(code: str, status: int | None, message: str = "details") -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": message}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, "GetSecretValue")  # type: ignore[arg-type]


# --- _client_failure -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("TooManyRequestsException", 429),
        ("RequestLimitExceeded", 400),
        ("InternalServiceError", 500),
        ("InternalFailure", 500),
        ("ServiceUnavailable", 503),
        ("ThrottlingException", None),
        ("SomethingNew", 500),
        ("", 502),
        ("AccessDeniedException", 503),
    ],
    ids=[
        "throttling",
        "too-many-requests",
        "request-limit",
        "internal-service-error",
        "internal-failure",
        "service-unavailable",
        "throttling-without-metadata",
        "unknown-500",
        "bare-502",
        "any-code-on-5xx",
    ],
)
def test_throttling_and_5xx_are_transient(code: str, status: int | None) -> None:
    failure = _client_failure(client_error(code, status), SUBJECT)

    assert isinstance(failure, AwsUnavailableError)
    assert failure.transient
    assert "try again later" in str(failure)


def test_resource_not_found_is_a_missing_secret_naming_the_subject() -> None:
    error = client_error("ResourceNotFoundException", 400, "Secrets Manager can't find it.")
    failure = _client_failure(error, SUBJECT)

    assert isinstance(failure, SecretNotFoundError)
    assert not failure.transient
    assert str(failure).startswith(f"{SUBJECT} was not found")
    assert "can't find it" in str(failure)


@pytest.mark.parametrize(
    "code",
    [
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidRequestException",
        "InvalidParameterException",
        "DecryptionFailure",
        "ResourceExistsException",
    ],
)
def test_refusals_are_permanent_access_errors(code: str) -> None:
    failure = _client_failure(client_error(code, 400, "not allowed here"), SUBJECT)

    assert isinstance(failure, AwsAccessError)
    assert not failure.transient
    assert (
        str(failure) == f"Secrets Manager refused the call on {SUBJECT}: {code}: not allowed here"
    )


def test_error_response_without_error_details_is_still_mapped() -> None:
    failure = _client_failure(ClientError({}, "DescribeSecret"), SUBJECT)
    assert isinstance(failure, AwsAccessError)


# --- _transport_failure --------------------------------------------------------------------------

ENDPOINT = "https://secretsmanager.us-east-1.amazonaws.com/"


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url=ENDPOINT),
        ConnectTimeoutError(endpoint_url=ENDPOINT),
        ReadTimeoutError(endpoint_url=ENDPOINT),
        ConnectionClosedError(endpoint_url=ENDPOINT),
        ResponseStreamingError(error="reset by peer"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_transport_failures_are_transient(error: BotoCoreError) -> None:
    failure = _transport_failure(error)

    assert isinstance(failure, AwsUnavailableError)
    assert f"could not be reached ({type(error).__name__})" in str(failure)
    assert ENDPOINT not in str(failure)


@pytest.mark.parametrize(
    "error",
    [NoCredentialsError(), ParamValidationError(report="Invalid length for parameter SecretId")],
    ids=lambda error: type(error).__name__,
)
def test_other_botocore_failures_are_permanent(error: BotoCoreError) -> None:
    failure = _transport_failure(error)

    assert isinstance(failure, AwsAccessError)
    assert str(failure) == f"the Secrets Manager call failed: {type(error).__name__}"


# --- the gateway against real HTTP answers -------------------------------------------------------


@pytest.fixture(scope="module")
def failing_aws() -> Iterator[ScriptedAws]:
    with scripted_aws() as server:
        yield server


def gateway_at(endpoint_url: str) -> SecretsGateway:
    client: SecretsManagerClient = boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=NO_RETRIES,
    )
    return SecretsGateway(client)


def every_call(gateway: SecretsGateway) -> dict[str, Any]:
    return {
        "describe": lambda: gateway.describe(TOKEN_SECRET),
        "read_current": lambda: gateway.read_current(TOKEN_SECRET),
        "read_pending": lambda: gateway.read_pending(TOKEN_SECRET, VERSION),
        "put_pending": lambda: gateway.put_pending(TOKEN_SECRET, VERSION, "{}", None),
        "remove_pending": lambda: gateway.remove_pending(TOKEN_SECRET, VERSION),
        "promote": lambda: gateway.promote(TOKEN_SECRET, VERSION, None),
        "list_tagged": lambda: list(gateway.list_tagged("token-rotation:managed-by", "stack")),
        "version_created": lambda: gateway.version_created(TOKEN_SECRET, VERSION),
        "rotate": lambda: gateway.rotate(TOKEN_SECRET),
    }


CALLS = [
    "describe",
    "read_current",
    "read_pending",
    "put_pending",
    "remove_pending",
    "promote",
    "list_tagged",
    "version_created",
    "rotate",
]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    ("status", "error_type", "expected"),
    [
        (400, "ThrottlingException", AwsUnavailableError),
        (400, "com.amazonaws.secretsmanager#ThrottlingException", AwsUnavailableError),
        (500, "InternalServiceError", AwsUnavailableError),
        (400, "AccessDeniedException", AwsAccessError),
        (400, "DecryptionFailure", AwsAccessError),
    ],
    ids=["throttled", "throttled-namespaced", "internal-error", "access-denied", "kms-refused"],
)
def test_every_gateway_call_maps_real_error_answers(
    failing_aws: ScriptedAws,
    call: str,
    status: int,
    error_type: str,
    expected: type[RotationError],
) -> None:
    failing_aws.play(error_answer(status, error_type))
    gateway = gateway_at(failing_aws.endpoint_url)

    with pytest.raises(expected) as raised:
        every_call(gateway)[call]()
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_unknown_error_on_a_5xx_without_json_is_transient(
    failing_aws: ScriptedAws,
) -> None:
    failing_aws.play((503, b"<html>Service Unavailable</html>"))
    gateway = gateway_at(failing_aws.endpoint_url)

    with pytest.raises(AwsUnavailableError):
        gateway.describe(TOKEN_SECRET)


def test_a_concurrent_writers_version_makes_put_pending_report_false(
    failing_aws: ScriptedAws,
) -> None:
    """Real Secrets Manager refuses a different value under an existing version id (moto does
    not): createSecret then keeps the other writer's token."""
    failing_aws.play(
        error_answer(400, "ResourceExistsException", "A resource with the ID you requested exists")
    )
    gateway = gateway_at(failing_aws.endpoint_url)

    assert gateway.put_pending(TOKEN_SECRET, VERSION, "{}", None) is False


def described(version_stages: dict[str, list[str]]) -> Answer:
    """DescribeSecret's answer for the token secret with those versions and labels."""
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{TOKEN_SECRET}-AbCdEf"
    return json_answer({"ARN": arn, "Name": TOKEN_SECRET, "VersionIdsToStages": version_stages})


def test_read_pending_of_an_empty_placeholder_is_none(failing_aws: ScriptedAws) -> None:
    """Secrets Manager's answer while createSecret has not stored a value yet; the labels,
    asked again, show the version is still pending."""
    failing_aws.play(
        error_answer(
            400,
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret value for staging label: AWSPENDING",
        ),
        described({VERSION: ["AWSPENDING"], OTHER_VERSION: ["AWSCURRENT"]}),
    )
    gateway = gateway_at(failing_aws.endpoint_url)

    assert gateway.read_pending(TOKEN_SECRET, VERSION) is None


@pytest.mark.parametrize(
    "answers",
    [
        [error_answer(400, "InvalidRequestException", STAGE_NOT_ON_VERSION)],
        [
            error_answer(
                400,
                "ResourceNotFoundException",
                f"Secrets Manager can't find the specified secret value for VersionId: {VERSION}",
            ),
            described({OTHER_VERSION: ["AWSCURRENT", "AWSPENDING"]}),
        ],
    ],
    ids=["stage-not-associated", "version-not-found"],
)
def test_read_pending_after_the_label_moved_is_the_race_not_an_access_error(
    failing_aws: ScriptedAws, answers: list[Answer]
) -> None:
    """Either answer AWS may give when AWSPENDING left the version between the step's
    DescribeSecret and this read: a lost race, never a permission problem."""
    failing_aws.play(*answers)
    gateway = gateway_at(failing_aws.endpoint_url)

    with pytest.raises(NotPendingVersionError, match=LABEL_MOVED) as raised:
        gateway.read_pending(TOKEN_SECRET, VERSION)
    assert f"version {VERSION} of {TOKEN_SECRET!r}" in str(raised.value)
    assert "superseded this one, or it was abandoned" in str(raised.value)


def test_read_pending_keeps_other_invalid_requests_as_access_errors(
    failing_aws: ScriptedAws,
) -> None:
    failing_aws.play(
        error_answer(
            400,
            "InvalidRequestException",
            "You can't perform this operation on the secret because it was marked for deletion.",
        )
    )
    gateway = gateway_at(failing_aws.endpoint_url)

    with pytest.raises(AwsAccessError, match="InvalidRequestException: You can't perform"):
        gateway.read_pending(TOKEN_SECRET, VERSION)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("call", CALLS)
def test_unreachable_secrets_manager_is_transient(closed_port: int, call: str) -> None:
    gateway = gateway_at(f"http://127.0.0.1:{closed_port}")

    with pytest.raises(AwsUnavailableError, match=r"could not be reached \(EndpointConnection"):
        every_call(gateway)[call]()


# --- the gateway against moto --------------------------------------------------------------------


def test_read_pending_of_secrets_managers_empty_placeholder_is_none(
    secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    token = begin_rotation(token_secret_arn)

    assert SecretsGateway(secretsmanager).read_pending(token_secret_arn, token) is None


def test_read_pending_of_a_version_the_label_left_is_the_race(
    secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    """moto keeps the unlabelled version and answers InvalidRequestException."""
    gateway = SecretsGateway(secretsmanager)
    token = begin_rotation(token_secret_arn)
    gateway.remove_pending(token_secret_arn, token)

    with pytest.raises(NotPendingVersionError, match=LABEL_MOVED):
        gateway.read_pending(token_secret_arn, token)


def test_read_pending_of_a_version_gone_from_the_secret_is_the_race(
    secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    """AWS drops an unlabelled version from DescribeSecret; moto answers ResourceNotFound."""
    with pytest.raises(NotPendingVersionError, match=LABEL_MOVED):
        SecretsGateway(secretsmanager).read_pending(token_secret_arn, VERSION)


def test_remove_pending_of_a_version_the_label_already_left_is_done(
    secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    """Two runs abandoning or superseding the same stale version: the second finds the label
    gone, which is what it asked for."""
    gateway = SecretsGateway(secretsmanager)
    token = begin_rotation(token_secret_arn)
    gateway.remove_pending(token_secret_arn, token)
    before = stages(secretsmanager, token_secret_arn)

    gateway.remove_pending(token_secret_arn, token)

    assert stages(secretsmanager, token_secret_arn) == before
    assert before[token] == []


def test_promote_of_a_version_superseded_by_a_promoted_one_is_the_race(
    secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    """A rotation that superseded this one finished first: AWSCURRENT is no longer on the
    version this one described, and this version lost AWSPENDING."""
    gateway = SecretsGateway(secretsmanager)
    described_current = gateway.describe(token_secret_arn).version_with("AWSCURRENT")
    loser = begin_rotation(token_secret_arn)
    assert gateway.put_pending(token_secret_arn, loser, '{"loser": true}', None)
    winner = begin_rotation(token_secret_arn)
    assert gateway.put_pending(token_secret_arn, winner, '{"winner": true}', None)
    gateway.promote(token_secret_arn, winner, described_current)

    with pytest.raises(NotPendingVersionError, match=LABEL_MOVED):
        gateway.promote(token_secret_arn, loser, described_current)
    assert "AWSCURRENT" in stages(secretsmanager, token_secret_arn)[winner]


def test_promote_without_naming_the_current_version_is_an_access_error(
    secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    gateway = SecretsGateway(secretsmanager)
    gateway.put_pending(token_secret_arn, VERSION, "{}", None)

    with pytest.raises(AwsAccessError, match="InvalidParameterException"):
        gateway.promote(token_secret_arn, VERSION, None)


def test_rotation_token_refused_by_botocore_validation_is_permanent(
    secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    with pytest.raises(AwsAccessError, match="ParamValidationError"):
        SecretsGateway(secretsmanager).put_pending(token_secret_arn, VERSION, "{}", "short")


def test_describe_of_a_missing_secret_names_it(secretsmanager: SecretsManagerClient) -> None:
    with pytest.raises(SecretNotFoundError, match="secret 'google/absent' was not found"):
        SecretsGateway(secretsmanager).describe("google/absent")


def rotation_allowing(
    secretsmanager: SecretsManagerClient, environment: dict[str, str], key_secret: str
) -> Rotation:
    """The rotation of a deployer who lets tags choose `key_secret` besides the default one."""
    allowing = {**environment, "ALLOWED_KEY_SECRET_IDS": key_secret}
    google = GoogleClient(GoogleEndpoints.from_environment(allowing))
    return Rotation(SecretsGateway(secretsmanager), google, allowing)


def test_key_secret_holding_binary_data_is_a_clear_error(
    secretsmanager: SecretsManagerClient, environment: dict[str, str], token_secret_arn: str
) -> None:
    secretsmanager.create_secret(Name="google/binary-key", SecretBinary=b"\x30\x82\x04\xa4")
    secretsmanager.tag_resource(
        SecretId=token_secret_arn,
        Tags=[{"Key": "token-rotation:key-secret-id", "Value": "google/binary-key"}],
    )
    token = begin_rotation(token_secret_arn)
    rotation = rotation_allowing(secretsmanager, environment, "google/binary-key")

    with pytest.raises(SecretNotFoundError) as raised:
        rotation.create_secret(RotationRequest(token_secret_arn, token))
    assert str(raised.value) == (
        "secret 'google/binary-key' holds binary data; store the value as a secret string"
    )


def test_missing_key_secret_is_a_clear_error_naming_it(
    secretsmanager: SecretsManagerClient, environment: dict[str, str], token_secret_arn: str
) -> None:
    secretsmanager.tag_resource(
        SecretId=token_secret_arn,
        Tags=[{"Key": "token-rotation:key-secret-id", "Value": "google/deleted-key"}],
    )
    token = begin_rotation(token_secret_arn)
    rotation = rotation_allowing(secretsmanager, environment, "google/deleted-key")

    with pytest.raises(SecretNotFoundError, match="secret 'google/deleted-key' was not found"):
        rotation.create_secret(RotationRequest(token_secret_arn, token))
    assert "AWSPENDING" in secretsmanager.describe_secret(SecretId=token_secret_arn)[
        "VersionIdsToStages"
    ].get(token, [])


def test_key_secret_tag_outside_the_allowed_set_is_refused_before_any_read(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    """Not SecretNotFoundError: the tagged key secret is refused by name, never looked up."""
    secretsmanager.tag_resource(
        SecretId=token_secret_arn,
        Tags=[{"Key": "token-rotation:key-secret-id", "Value": "google/deleted-key"}],
    )
    token = begin_rotation(token_secret_arn)

    with pytest.raises(ConfigurationError, match="outside the deployer's ceiling"):
        rotation.create_secret(RotationRequest(token_secret_arn, token))
    assert "AWSPENDING" in secretsmanager.describe_secret(SecretId=token_secret_arn)[
        "VersionIdsToStages"
    ].get(token, [])


def test_rotate_secret_refused_for_an_unfinished_rotation_is_its_re_attempt(
    failing_aws: ScriptedAws,
) -> None:
    """Secrets Manager refuses RotateSecret while a rotation is unfinished and runs that one
    again: for the sweep an outcome, not a failure. Any other refusal is one."""
    gateway = gateway_at(failing_aws.endpoint_url)
    failing_aws.play(
        error_answer(
            400,
            "InvalidRequestException",
            "A previous rotation isn't complete. That rotation will be reattempted.",
        )
    )
    assert gateway.rotate(TOKEN_SECRET) is RotateOutcome.REATTEMPTED

    failing_aws.play(
        error_answer(
            400, "InvalidRequestException", "No Lambda rotation function ARN is associated"
        )
    )
    with pytest.raises(AwsAccessError, match="No Lambda rotation function"):
        gateway.rotate(TOKEN_SECRET)

    failing_aws.play(json_answer({"ARN": "arn", "Name": TOKEN_SECRET, "VersionId": VERSION}))
    assert gateway.rotate(TOKEN_SECRET) is RotateOutcome.STARTED


def test_the_listing_calls_follow_every_page(failing_aws: ScriptedAws) -> None:
    gateway = gateway_at(failing_aws.endpoint_url)
    entry = {"Name": TOKEN_SECRET, "Tags": [{"Key": "k", "Value": "v"}], "RotationEnabled": True}
    failing_aws.play(
        json_answer({"SecretList": [{**entry, "ARN": "arn:1"}], "NextToken": "page-2"}),
        json_answer(
            {
                "SecretList": [
                    {**entry, "ARN": "arn:2", "SecretVersionsToStages": {"v": ["AWSCURRENT"]}}
                ]
            }
        ),
    )

    listed = list(gateway.list_tagged("k", "v"))

    assert [(d.arn, d.version_stages, d.tags) for d in listed] == [
        ("arn:1", {}, {"k": "v"}),
        ("arn:2", {"v": ("AWSCURRENT",)}, {"k": "v"}),
    ]
    failing_aws.play(
        json_answer({"Versions": [{"VersionId": "other", "CreatedDate": 1.0}], "NextToken": "2"}),
        json_answer({"Versions": [{"VersionId": VERSION, "CreatedDate": 1_700_000_000.0}]}),
    )
    created = gateway.version_created(TOKEN_SECRET, VERSION)
    assert created is not None
    assert created.timestamp() == 1_700_000_000.0
    failing_aws.play(json_answer({"Versions": [], "NextToken": ""}))
    assert gateway.version_created(TOKEN_SECRET, VERSION) is None
