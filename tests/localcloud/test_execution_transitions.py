"""Billed state transitions, counted where AWS counts them: in the executions' histories. The
real ASL runs on the local cloud (moto's interpreter, the real handlers, the Google emulator);
every execution must enter exactly the states tests/asl_paths.py walks from the ASL, so the
counts tests/static/test_asl_transitions.py asserts are the ones a deployment is billed."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from localcloud.cloud import Deployment, LocalCloud
from localcloud.operations import (
    ExecutionSummary,
    drain_notices,
    executions,
    rotate_on_schedule,
    start_manual,
    subscribe_queue,
)
from tests.asl_paths import (
    BILLED_TRANSITIONS_LIMIT,
    MANUAL_TRANSITIONS,
    SCHEDULED_TRANSITIONS,
    STEPS,
    Outcomes,
    describe_result,
    finish_result,
    scheduled_rotation,
    succeeding,
    transitions,
    walk,
)
from tests.support import local_cloud_of_its_own


@dataclass
class Local:
    cloud: LocalCloud
    deployment: Deployment
    queue_url: str
    first_rotation: list[ExecutionSummary]

    def rotate(self) -> list[ExecutionSummary]:
        return rotate_on_schedule(self.cloud, self.deployment)


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    """One deployment with a key stored; its first rotation (which creates the secret's refresh
    schedule) is kept for the test of that path. Starting a local cloud sets MOTO_PORT, the
    Lambda dispatcher and the retry clock for the whole process: they are put back after."""
    suffix = uuid.uuid4().hex[:12]
    with local_cloud_of_its_own() as cloud:
        deployment = cloud.deploy(
            {"TokenSecretName": f"transitions/{suffix}/token"},
            stack_name=f"transitions-{suffix}",
        )
        cloud.store_service_account_key(cloud.google.create_service_account())
        for name in deployment.functions.values():
            assert cloud.runtime.worker(name).prewarm() is None
        queue_url = subscribe_queue(cloud, deployment.topic_arn, name=f"transitions-{suffix}")
        first = rotate_on_schedule(cloud, deployment)
        yield Local(cloud, deployment, queue_url, first)
        cloud.client("secretsmanager").delete_secret(
            SecretId=deployment.token_secret_arn, ForceDeleteWithoutRecovery=True
        )


def entered(execution: ExecutionSummary) -> list[str]:
    """The states the execution entered, in order: one billed transition each."""
    names = [
        event["stateEnteredEventDetails"]["name"]
        for event in execution.history
        if event["type"].endswith("StateEntered")
    ]
    assert len(names) == execution.transitions
    return names


def step_of(execution: ExecutionSummary) -> str:
    return execution.name.split("-", 1)[0]


def test_a_scheduled_rotation_enters_the_states_the_asl_walk_predicts(local: Local) -> None:
    ran = local.rotate()

    assert [(step_of(e), e.status) for e in ran] == [(step, "SUCCEEDED") for step in STEPS]
    walks = scheduled_rotation()
    assert [entered(e) for e in ran] == [w.states for w in walks]
    billed = sum(e.transitions for e in ran)
    assert billed == transitions(walks) == SCHEDULED_TRANSITIONS <= BILLED_TRANSITIONS_LIMIT


def test_the_secrets_first_rotation_also_creates_its_schedule(local: Local) -> None:
    ran = local.first_rotation

    assert [e.status for e in ran] == ["SUCCEEDED"] * 4
    walks = scheduled_rotation(succeeding(first_schedule=True))
    assert [entered(e) for e in ran] == [w.states for w in walks]
    assert entered(ran[-1])[-1] == "CreateNextRotationSchedule"
    assert sum(e.transitions for e in ran) == SCHEDULED_TRANSITIONS + 1


def test_a_manual_rotation_enters_the_states_the_asl_walk_predicts(local: Local) -> None:
    manual = start_manual(local.cloud, local.deployment)

    assert manual.status == "SUCCEEDED"
    assert entered(manual) == walk({"SecretId": "any"}, succeeding()).states
    assert manual.transitions == MANUAL_TRANSITIONS
    assert manual.task_attempts == {
        "ManualCreateSecret": 1,
        "ManualSetSecret": 1,
        "ManualTestSecret": 1,
        "FinishSecret": 1,
        "ScheduleNextRotation": 1,
    }


def test_a_failed_rotation_and_the_one_that_recovers_enter_the_walked_states(
    local: Local,
) -> None:
    """A key file that is not one fails createSecret (one notice, a retry scheduled); once it
    is stored again, Secrets Manager's retry of the same rotation succeeds and, ending the
    streak, sends the one recovered notice."""
    drain_notices(local.cloud, local.queue_url)
    keys = local.cloud.client("secretsmanager")
    key_secret = local.deployment.key_secret_arn
    key_file = keys.get_secret_value(SecretId=key_secret)["SecretString"]
    keys.put_secret_value(SecretId=key_secret, SecretString="{}")
    try:
        [failed] = local.rotate()
    finally:
        keys.put_secret_value(SecretId=key_secret, SecretString=key_file)

    assert (step_of(failed), failed.status) == ("createSecret", "FAILED")
    failing = Outcomes(
        {"DescribeFailure": describe_result()}, {"CreateSecret": "InvalidServiceAccountKeyError"}
    )
    failure_walk = walk(failed.input, failing)
    assert entered(failed) == failure_walk.states
    assert failed.transitions == 9

    entry = local.cloud.runtime.worker(local.deployment.functions["RotationEntryFunction"])
    results = [entry.invoke({**failed.input, "Step": step}) for step in STEPS]

    assert [r.error for r in results] == [None] * 4
    retried = [
        e for e in _executions_of(local, failed.input["ClientRequestToken"]) if e.arn != failed.arn
    ]
    walks = scheduled_rotation(Outcomes({"FinishSecret": finish_result(notice=True)}))
    assert [entered(e) for e in retried] == [w.states for w in walks]
    assert entered(retried[-1])[-2:] == ["NotifyRecovered", "ScheduleNextRotation"]
    assert sum(e.transitions for e in retried) == SCHEDULED_TRANSITIONS + 1
    subjects = [n["Subject"] for n in drain_notices(local.cloud, local.queue_url)]
    assert len(subjects) == 2
    assert subjects[0].startswith("Google token rotation failed at createSecret")
    assert subjects[1].startswith("Google token rotation recovered (")


def _executions_of(local: Local, version: str) -> list[ExecutionSummary]:
    """The executions of one rotation version, oldest first."""
    return [
        e for e in executions(local.cloud, local.deployment.state_machine_arn) if version in e.name
    ]
