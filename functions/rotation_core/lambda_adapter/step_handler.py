"""The whole Lambda handler of a rotation step: parse the payload, run the core, report metadata."""

import logging
import os
from collections.abc import Callable
from functools import cache
from typing import Final

import boto3
from aws_lambda_powertools.metrics import MetricUnit, single_metric
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
from rotation_core.rotation import PROMOTED_UNVERIFIED, Rotation
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import SecretsGateway
from rotation_core.steps import Step

logging.getLogger("rotation_core")
log_through_powertools("rotation_core")

StepHandler = Callable[[object, LambdaContext], dict[str, object]]
# No custom metric per step or per secret on a normal run (docs/monitoring.md): each step is a
# function of its own, so AWS/Lambda's free Duration and Errors already say how long each step
# takes and how often it fails, and the stack's freshness sweep publishes the freshness metric.
METRICS_NAMESPACE: Final = "GoogleTokenRotation"
UNVERIFIED_PROMOTIONS_METRIC: Final = "UnverifiedPromotions"
"""1 for each token finishSecret promoted without tokeninfo's verdict (tokeninfo unreachable while
the token in use was bad or about to be); sent only then, and a metric is billed only for the
hours it is sent."""
STEP_DIMENSION: Final = "Step"


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
    @logger.inject_lambda_context(clear_state=True, log_event=False)
    def handle(event: object, _context: LambdaContext) -> dict[str, object]:
        logger.append_keys(**{**request_log_keys(event), "step": step.value})
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
    if outcome.action == PROMOTED_UNVERIFIED:
        _count_unverified_promotion(step)
    return outcome.as_payload()


def _count_unverified_promotion(step: Step) -> None:
    """An embedded-metric-format line on stdout, which CloudWatch Logs turns into the metric;
    `service` named here, as the function's POWERTOOLS_SERVICE_NAME would add it."""
    with single_metric(
        name=UNVERIFIED_PROMOTIONS_METRIC,
        unit=MetricUnit.Count,
        value=1,
        namespace=METRICS_NAMESPACE,
        default_dimensions={"service": SERVICE_NAME},
    ) as metric:
        metric.add_dimension(name=STEP_DIMENSION, value=step.value)
