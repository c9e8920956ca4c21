"""Secrets Manager's rotation Lambda: runs each step as one state-machine execution and waits."""

import os
from functools import cache
from typing import TYPE_CHECKING, Final

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambda_adapter import AWS_CLIENT_CONFIG, log_through_powertools, logger
from rotation_core.errors import InvalidRequestError
from rotation_core.rotation_request import RotationRequest
from step_execution import EntrySettings, RotationEntryError, run_step_execution

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

log_through_powertools("step_execution")

LOGGED_FIELD_LENGTH: Final = 256
"""The most of an event field a log key holds: the keys go on every line, the event is unchecked."""


@cache
def _sfn_client() -> "SFNClient":
    """Built on the first invocation and kept warm; building it at import would fix its region
    and endpoint before the environment is known."""
    return boto3.client("stepfunctions", config=AWS_CLIENT_CONFIG)


# log_event=False, not the default None: with None, POWERTOOLS_LOGGER_LOG_EVENT=true would log the
# whole event, RotationToken included.
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: object, context: LambdaContext) -> dict[str, object]:
    fields = event if isinstance(event, dict) else {}
    step = _loggable(fields.get("Step"))
    logger.append_keys(
        step=step,
        secret_id=_loggable(fields.get("SecretId")),
        client_request_token=_loggable(fields.get("ClientRequestToken")),
    )
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
            f"{step or 'the rotation step'} did not succeed",
            extra={"error_type": type(error).__name__, "error_message": str(error)},
        )
        raise
    logger.info(f"{result.step} succeeded", extra={"result": result.as_payload()})
    return result.as_payload()


def _loggable(value: object) -> str | None:
    """A string field cut to LOGGED_FIELD_LENGTH; anything else is left out of the log keys."""
    return value[:LOGGED_FIELD_LENGTH] if isinstance(value, str) else None
