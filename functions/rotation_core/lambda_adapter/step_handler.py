"""The whole Lambda handler of a rotation step: parse the payload, run the core, report metadata."""

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Final

import boto3
from aws_lambda_powertools.metrics import Metrics, MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambda_adapter import (
    AWS_CLIENT_CONFIG,
    SERVICE_NAME,
    log_through_powertools,
    logger,
    request_log_keys,
)
from rotation_core.config import GoogleEndpoints
from rotation_core.errors import RotationError
from rotation_core.google_client import GoogleClient
from rotation_core.rotation import PROMOTED_UNVERIFIED, Rotation, StepOutcome
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import SecretsGateway
from rotation_core.steps import Step

logging.getLogger("rotation_core")
log_through_powertools("rotation_core")

StepHandler = Callable[[object, LambdaContext], dict[str, object]]
METRICS_NAMESPACE: Final = "GoogleTokenRotation"
TOKEN_LIFE_METRIC: Final = "AccessTokenSecondsLeft"
"""Published whenever finishSecret leaves a token AWSCURRENT: the token-near-expiry alarm fires
when none comes for longer than a token lives (missing data counts as breaching)."""
STEP_DURATION_METRIC: Final = "RotationStepDuration"
"""Every run of a step, whatever its outcome (its sample count is the number of runs)."""
STEP_FAILURES_METRIC: Final = "RotationStepFailures"
"""1 for each run that failed; published only then, so a quiet stack pays for no failure series."""
UNVERIFIED_PROMOTIONS_METRIC: Final = "UnverifiedPromotions"
"""1 for each token finishSecret promoted without tokeninfo's verdict (tokeninfo unreachable while
the token in use was bad or about to be); published only then, like the failures."""
STEP_DIMENSION: Final = "Step"

# Per step, not per secret: a stack's metric count (each one billed monthly) stays fixed however
# many secrets it rotates; the secret is in the log line beside the metric.
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


@cache
def _rotation() -> Rotation:
    """Built on the first invocation and kept warm; a bad setting then fails that invocation
    with a clear error instead of breaking the function's import."""
    secrets_client = boto3.client("secretsmanager", config=AWS_CLIENT_CONFIG)
    google = GoogleClient(GoogleEndpoints.from_environment(os.environ))
    return Rotation(SecretsGateway(secrets_client), google, os.environ)


def step_handler(step: Step) -> StepHandler:
    """The whole Lambda handler of one rotation step: parse, run the core, report metadata."""

    # log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: the event holds the
    # RotationToken, which must never reach a log.
    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True, log_event=False)
    def handle(event: object, _context: LambdaContext) -> dict[str, object]:
        logger.append_keys(**{**request_log_keys(event), "step": step.value})
        with _step_metrics(step):
            return _run(step, event)

    return handle


def _run(step: Step, event: object) -> dict[str, object]:
    try:
        request = RotationRequest.for_step(event, step)
        logger.append_keys(manual=request.manual)
        outcome = _rotation().run(step, request)
    except RotationError as error:
        logger.error(
            f"{step.value} failed",
            extra={"error_type": type(error).__name__, "error_message": str(error)},
        )
        # An expected failure's message says it all: without the core's frames the error
        # Step Functions records (and the failure notice quotes) stays short and readable.
        raise error.with_traceback(None) from None
    logger.info(f"{step.value} done", extra={"outcome": outcome.as_payload()})
    if step is Step.FINISH:
        _publish_token_life(outcome)
    if outcome.action == PROMOTED_UNVERIFIED:
        metrics.add_metric(name=UNVERIFIED_PROMOTIONS_METRIC, unit=MetricUnit.Count, value=1)
    return outcome.as_payload()


@contextmanager
def _step_metrics(step: Step) -> Iterator[None]:
    """The run's duration, and a failure when it raised anything at all (an unexpected error
    fails the step as surely as an expected one)."""
    metrics.add_dimension(name=STEP_DIMENSION, value=step.value)
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        metrics.add_metric(name=STEP_FAILURES_METRIC, unit=MetricUnit.Count, value=1)
        raise
    finally:
        elapsed = (time.perf_counter() - started) * 1000
        metrics.add_metric(name=STEP_DURATION_METRIC, unit=MetricUnit.Milliseconds, value=elapsed)


def _publish_token_life(outcome: StepOutcome) -> None:
    """An embedded-metric-format line on stdout, which CloudWatch Logs turns into the metric."""
    if outcome.metadata is None or outcome.secret_name is None:
        return
    left = (outcome.metadata.expires_at - datetime.now(UTC)).total_seconds()
    with single_metric(
        name=TOKEN_LIFE_METRIC,
        unit=MetricUnit.Seconds,
        value=max(0.0, left),
        namespace=METRICS_NAMESPACE,
    ) as metric:
        metric.add_dimension(name="TokenSecret", value=outcome.secret_name)
