"""StartExecution as AWS answers it: localcloud.fidelity's corrections of moto's Step Functions,
and the answers moto already gives as AWS does that the entry Lambda relies on, over real HTTP
(test_fidelity.py's style), with execution switched on (what the local cloud runs) and off (moto's
plain backend)."""

import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.core.config import default_user_config

from localcloud.cloud import ROLE_ARN, ensure_lambda_role
from tests.support import REGION, wait_until_closed

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})
PASS = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
# StartExecution input: at most 262,144 bytes in UTF-8 (botocore model and API reference).
LIMIT = 262_144
SAME = '{"Step": "setSecret", "SecretId": "s", "ClientRequestToken": "token"}'


def execute_state_machines(endpoint: str, on: bool) -> None:
    urllib3.PoolManager().request(
        "POST",
        f"{endpoint}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": on}},
    )


@pytest.fixture(params=[True, False], ids=["executing", "not-executing"])
def sfn(request: pytest.FixtureRequest, moto_endpoint: str) -> Iterator["SFNClient"]:
    """Step Functions with execution on (the local cloud's setting) or off; the setting is put
    back afterwards (it is process-wide)."""
    # moto's GET /moto-api/config leaves this setting out; the server runs in this process.
    saved = default_user_config.get("stepfunctions", {}).get("execute_state_machine", False)
    execute_state_machines(moto_endpoint, request.param)
    make_client = boto3.client
    ensure_lambda_role(
        make_client("iam", region_name=REGION, endpoint_url=moto_endpoint, config=ONE_ATTEMPT)
    )
    client: SFNClient = make_client(
        "stepfunctions", region_name=REGION, endpoint_url=moto_endpoint, config=ONE_ATTEMPT
    )
    yield client
    execute_state_machines(moto_endpoint, saved)


@pytest.fixture
def machine(sfn: "SFNClient") -> str:
    return sfn.create_state_machine(
        name=f"fidelity-{uuid.uuid4().hex[:8]}", definition=json.dumps(PASS), roleArn=ROLE_ARN
    )["stateMachineArn"]


def input_of(size: int, filler: str = "x") -> str:
    """A JSON object of exactly `size` bytes in UTF-8, made of `filler` (one character) and as
    many "x" as it takes to make up the size."""
    frame = len(json.dumps({"padding": ""}))
    count, remainder = divmod(size - frame, len(filler.encode("utf-8")))
    text = json.dumps({"padding": filler * count + "x" * remainder}, ensure_ascii=False)
    assert len(text.encode("utf-8")) == size
    return text


def test_unnamed_executions_get_a_uuid_each(sfn: "SFNClient", machine: str) -> None:
    """moto named an execution started without a name "None" (its ARN ended in
    ":None"), so a second unnamed start failed with ExecutionAlreadyExists. AWS generates a UUID
    as the name: `aws stepfunctions start-execution --state-machine-arn X --input '{...}'`
    works any number of times, with the same input too."""
    started = [
        sfn.start_execution(stateMachineArn=machine, input='{"SecretId": "same"}')["executionArn"]
        for _ in range(3)
    ]

    assert len(set(started)) == 3
    for arn in started:
        name = arn.rsplit(":", 1)[1]
        assert str(uuid.UUID(name)) == name
        description = sfn.describe_execution(executionArn=arn)
        assert description["name"] == name
        assert description["input"] == '{"SecretId": "same"}'
    listed = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert {execution["executionArn"] for execution in listed} == set(started)


def test_a_named_execution_keeps_its_name(sfn: "SFNClient", machine: str) -> None:
    arn = sfn.start_execution(stateMachineArn=machine, name="createSecret-token-1", input="{}")[
        "executionArn"
    ]

    assert arn.endswith(":createSecret-token-1")
    assert sfn.describe_execution(executionArn=arn)["name"] == "createSecret-token-1"


@pytest.mark.parametrize(
    "text",
    [input_of(LIMIT + 1), input_of(LIMIT + 2, "é"), input_of(4 * LIMIT)],
    ids=["one-byte-over", "two-byte-characters", "a-megabyte"],
)
def test_an_input_over_256_kib_is_refused(sfn: "SFNClient", machine: str, text: str) -> None:
    """moto accepted any input. AWS refuses one over 262,144 bytes in UTF-8 (the limit counts
    bytes, not characters: the two-byte case has half as many characters) with
    InvalidExecutionInput, and starts nothing."""
    with pytest.raises(ClientError) as refused:
        sfn.start_execution(stateMachineArn=machine, input=text)

    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidExecutionInput"
    assert "exceeds the maximum allowed size" in error["Message"]
    assert f"{len(text.encode())} bytes" in error["Message"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert sfn.list_executions(stateMachineArn=machine)["executions"] == []


def test_an_input_of_exactly_256_kib_is_accepted(sfn: "SFNClient", machine: str) -> None:
    text = input_of(LIMIT, "é")

    arn = sfn.start_execution(stateMachineArn=machine, input=text)["executionArn"]

    assert sfn.describe_execution(executionArn=arn)["input"] == text


# moto already answers these as AWS does (no correction): StartExecution is idempotent for a
# Standard execution still RUNNING with the same name and input, and refuses the name with
# ExecutionAlreadyExists once the execution has closed or for another input (botocore's model of
# StartExecution). The entry Lambda starts a step's attempt 1 before looking for it and relies
# on both answers; these tests catch a moto upgrade that changes them.


@pytest.fixture
def waiting(sfn: "SFNClient") -> Iterator[tuple[str, str]]:
    """A state machine whose execution waits a minute, and one such execution running (stopped
    afterwards, so no execution thread outlives the test)."""
    machine = sfn.create_state_machine(
        name=f"fidelity-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(
            {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 60, "End": True}}}
        ),
        roleArn=ROLE_ARN,
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, name="setSecret-token-1", input=SAME)[
        "executionArn"
    ]
    yield machine, arn
    if sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        sfn.stop_execution(executionArn=arn)


def test_a_repeated_start_of_a_running_execution_answers_with_it(
    sfn: "SFNClient", waiting: tuple[str, str]
) -> None:
    machine, arn = waiting
    first = sfn.describe_execution(executionArn=arn)

    again = sfn.start_execution(stateMachineArn=machine, name="setSecret-token-1", input=SAME)

    assert (again["executionArn"], again["startDate"]) == (arn, first["startDate"])
    assert [
        e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]
    ] == [arn]


def test_a_start_with_another_input_or_after_the_end_is_refused(
    sfn: "SFNClient", waiting: tuple[str, str]
) -> None:
    machine, arn = waiting

    with pytest.raises(ClientError) as other_input:
        sfn.start_execution(stateMachineArn=machine, name="setSecret-token-1", input="{}")
    sfn.stop_execution(executionArn=arn)
    wait_until_closed(sfn, arn)
    with pytest.raises(ClientError) as closed:
        sfn.start_execution(stateMachineArn=machine, name="setSecret-token-1", input=SAME)

    for refused in (other_input, closed):
        assert refused.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1
