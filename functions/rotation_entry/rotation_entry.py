"""Secrets Manager's rotation Lambda: runs each step as one state-machine execution and waits."""

import os
from functools import cache
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambda_adapter import AWS_CLIENT_CONFIG, log_through_powertools, logger, request_log_keys
from rotation_core.errors import InvalidRequestError
from rotation_core.rotation_request import RotationRequest
from step_execution import EntrySettings, RotationEntryError, run_step_execution

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

log_through_powertools("step_execution")


@cache
def _sfn_client() -> "SFNClient":
    """Built on the first invocation and kept warm; building it at import would fix its region
    and endpoint before the environment is known."""
    return boto3.client("stepfunctions", config=AWS_CLIENT_CONFIG)


# log_event=False, not the default None: with None, POWERTOOLS_LOGGER_LOG_EVENT=true would log the
# whole event, RotationToken included.
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: object, context: LambdaContext) -> dict[str, object]:
    log_keys = request_log_keys(event)
    logger.append_keys(**log_keys)
    try:
        request = RotationRequest.from_rotation_event(event)
        settings = EntrySettings.from_environment(os.environ)
        result = run_step_execution(
            _sfn_client(),
            settings,
            request,
            remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
        )
    except (InvalidRequestError, RotationEntryError) as error:
        logger.error(
            f"{log_keys.get('step', 'the rotation step')} did not succeed",
            extra={"error_type": type(error).__name__, "error_message": str(error)},
        )
        raise
    logger.info(f"{result.step} succeeded", extra={"result": result.as_payload()})
    return result.as_payload()
