"""The FreshnessSweep Lambda: every 5 minutes, repairs what no single trigger may leave broken (a
lost refresh schedule, a token Google refused, a stuck rotation) through RotateSecret, and
publishes the stack's freshness metrics.

The rules are rotation_core.sweep's and the run is rotation_core.sweep_run's; this builds the
clients, runs it once, and turns its report into metrics and one summary line."""

import os
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final

import boto3
from aws_lambda_powertools.metrics import Metrics, MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambda_adapter import AWS_CLIENT_CONFIG, SERVICE_NAME, log_through_powertools, logger
from lambda_adapter.step_handler import METRICS_NAMESPACE
from rotation_core.config import GoogleEndpoints, managed_by
from rotation_core.errors import ConfigurationError
from rotation_core.google_client import GoogleClient
from rotation_core.secrets import SecretsGateway
from rotation_core.sweep import run_budget, start_spacing
from rotation_core.sweep_run import MAX_CONCURRENCY, FreshnessSweep, NoticeTopic, SweepReport

log_through_powertools("rotation_core")

STACK_DIMENSION: Final = "Stack"
"""Each metric's dimension besides powertools' `service`: the stack's name (MANAGED_BY)."""
LEAST_SECONDS_LEFT_METRIC: Final = "LeastSecondsLeft"
"""The least remaining life of any token the stack manages; 0 when one is missing or refused."""
WITHOUT_VALID_TOKEN_METRIC: Final = "SecretsWithoutValidToken"
"""Managed secrets whose token is missing, expired or refused by Google."""
KEY_DAYS_LEFT_METRIC: Final = "ServiceAccountKeyDaysLeft"
"""Days until the stack's own key must be replaced, negative once overdue; only while it rotates
(ServiceAccountKeyExpiryAlarm)."""
KEY_DAYS_TO_EXPIRY_METRIC: Final = "ServiceAccountKeyDaysToExpiry"
"""Days until Google stops accepting that key; only for a key that expires (a key-expiry
policy)."""
ROTATIONS_STARTED_METRIC: Final = "SweepRotationsStarted"
ROTATIONS_DEFERRED_METRIC: Final = "SweepRotationsDeferred"
TOPIC_VARIABLE: Final = "FAILURE_TOPIC_ARN"

# Per stack: a stack pays for these whatever its number of secrets.
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


@cache
def _sweep_parts() -> tuple[SecretsGateway, GoogleClient, NoticeTopic]:
    """Built on the first invocation and kept warm; a bad setting fails that invocation with a
    clear error instead of breaking the import."""
    topic_arn = os.environ.get(TOPIC_VARIABLE, "").strip()
    if not topic_arn:
        raise ConfigurationError(
            f"environment variable {TOPIC_VARIABLE!r} is not set: it must hold the ARN of the "
            "stack's failure topic (template.yaml sets it to FailureTopic)"
        )
    secrets = SecretsGateway(boto3.client("secretsmanager", config=AWS_CLIENT_CONFIG))
    google = GoogleClient(
        GoogleEndpoints.from_environment(os.environ), max_connections=MAX_CONCURRENCY
    )
    return secrets, google, NoticeTopic(boto3.client("sns", config=AWS_CLIENT_CONFIG), topic_arn)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(_event: Any, context: LambdaContext) -> dict[str, object]:
    secrets, google, topic = _sweep_parts()
    region = os.environ.get("AWS_REGION")
    sweep = FreshnessSweep(
        secrets,
        google,
        os.environ,
        topic.publish,
        clock=lambda: datetime.now(UTC),
        budget=run_budget(region),
        spacing=start_spacing(region),
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    report = sweep.run()
    _publish_metrics(report)
    summary = report.as_payload()
    logger.info("freshness sweep done", extra={"summary": summary})
    return summary


def _publish_metrics(report: SweepReport) -> None:
    """The two freshness metrics every run (an alarm on them needs a point every interval, and
    treats none as breaching), and the key's days left (and to its expiry, if it expires) while
    the stack's key rotates and its secret holds a key; the repair counts only when not 0, so
    that a quiet stack pays for no series of zeros (CloudWatch bills a custom metric for the
    hours it is published). The Google calls are no metric: a quiet run makes them too (it asks
    tokeninfo about each fresh token), so that metric would be billed every hour; the summary
    line carries the count."""
    metrics.add_dimension(name=STACK_DIMENSION, value=managed_by(os.environ))
    least = report.freshness.least_seconds_left
    if least is not None:
        metrics.add_metric(name=LEAST_SECONDS_LEFT_METRIC, unit=MetricUnit.Seconds, value=least)
    metrics.add_metric(
        name=WITHOUT_VALID_TOKEN_METRIC,
        unit=MetricUnit.Count,
        value=report.freshness.without_valid_token,
    )
    key = {
        KEY_DAYS_LEFT_METRIC: None if report.key is None else report.key.days_left,
        KEY_DAYS_TO_EXPIRY_METRIC: None if report.key is None else report.key.days_to_expiry,
    }
    for name, days in key.items():
        if days is not None:
            # CloudWatch has no unit for days.
            metrics.add_metric(name=name, unit=MetricUnit.NoUnit, value=days)
    repairs = {
        ROTATIONS_STARTED_METRIC: report.rotations_started,
        ROTATIONS_DEFERRED_METRIC: len(report.deferred),
    }
    for name, value in repairs.items():
        if value:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
