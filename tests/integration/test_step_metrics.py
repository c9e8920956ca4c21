"""The steps publish no custom metric of their own: each step is a function of its own, so
AWS/Lambda's free per-function Duration and Errors already say how long each step takes and how
often it fails, and a custom metric per step or per secret would be billed every month for
nothing more (docs/monitoring.md). Through the real handlers against moto and the Google
emulator."""

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from benchmarks.cost import embedded_metrics
from rotation_core.steps import Step
from tests.support import begin_rotation, invoke_step, stdout_so_far


def published_metrics(out: str) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """Every custom metric the embedded-metric-format lines among `out` would create."""
    return [metric for line in out.splitlines() for metric in embedded_metrics(line)]


def test_a_whole_rotation_publishes_no_custom_metric(
    lambda_environment: dict[str, str],
    token_secret_arn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = begin_rotation(token_secret_arn)

    outputs = [
        invoke_step(
            step, {"SecretId": token_secret_arn, "ClientRequestToken": token, "Step": step.value}
        )
        for step in Step
    ]

    assert outputs[-1]["Action"] == "promoted"
    # Where powertools prints a metric line (print, to stdout), there is none.
    assert published_metrics(stdout_so_far(capsys)) == []


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
def test_a_failed_step_publishes_no_custom_metric_either(
    lambda_environment: dict[str, str],
    secretsmanager: SecretsManagerClient,
    capsys: pytest.CaptureFixture[str],
    event: dict[str, object],
) -> None:
    """Its failure is AWS/Lambda's Errors of the createSecret function, and its notice."""
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the step raises
        invoke_step(Step.CREATE, event)

    assert published_metrics(stdout_so_far(capsys)) == []
