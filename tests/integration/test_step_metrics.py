"""Every step publishes its duration, and a failure when it fails, as embedded-metric lines per
step (never per secret), through the real handlers against moto and the Google emulator."""

import json
from typing import Any

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from rotation_core.steps import Step
from tests.support import begin_rotation, invoke_step, stdout_so_far


def step_metric_documents(out: str) -> list[dict[str, Any]]:
    documents = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [document for document in documents if "RotationStepDuration" in document]


def test_each_step_publishes_its_duration_by_step_and_service(
    lambda_environment: dict[str, str],
    token_secret_arn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = begin_rotation(token_secret_arn)

    for step in Step:
        invoke_step(
            step, {"SecretId": token_secret_arn, "ClientRequestToken": token, "Step": step.value}
        )
    documents = step_metric_documents(stdout_so_far(capsys))

    assert [document["Step"] for document in documents] == [step.value for step in Step]
    published = {Step(document["Step"]): document for document in documents}
    for step, document in published.items():
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "GoogleTokenRotation"
        assert [sorted(d) for d in directive["Dimensions"]] == [["Step", "service"]]
        assert directive["Metrics"] == [{"Name": "RotationStepDuration", "Unit": "Milliseconds"}]
        assert document["Step"] == step.value
        assert document["service"] == "google-token-rotation"
        (duration,) = document["RotationStepDuration"]
        assert 0 < duration < 60_000
        assert "RotationStepFailures" not in document
        assert token_secret_arn not in json.dumps(document)


@pytest.mark.parametrize(
    "event",
    [
        {
            "SecretId": "google/no-such-secret",
            "ClientRequestToken": "t" * 36,
            "Step": "createSecret",
        },
        {"Step": "createSecret"},
    ],
    ids=["missing-secret", "malformed-event"],
)
def test_a_failed_step_counts_one_failure_and_still_its_duration(
    lambda_environment: dict[str, str],
    secretsmanager: SecretsManagerClient,
    capsys: pytest.CaptureFixture[str],
    event: dict[str, object],
) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the step raises, it is counted
        invoke_step(Step.CREATE, event)

    (document,) = step_metric_documents(stdout_so_far(capsys))
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert {m["Name"] for m in directive["Metrics"]} == {
        "RotationStepDuration",
        "RotationStepFailures",
    }
    assert document["RotationStepFailures"] == [1.0]
    assert document["Step"] == "createSecret"
