"""Secrets Manager's rotation Lambda: runs each step as one state-machine execution and waits."""

import os
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities.data_classes import SecretsManagerEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambda_adapter import AWS_CLIENT_CONFIG, log_through_powertools, logger
from step_execution import EntrySettings, RotationEntryError, RotationEvent, run_step_execution

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

log_through_powertools("step_execution")


@cache
def _sfn_client() -> "SFNClient":
    """Built on the first invocation and kept warm; building it at import would fix its region
    and endpoint before the environment is known."""
    return boto3.client("stepfunctions", config=AWS_CLIENT_CONFIG)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, object]:
    rotation_event = SecretsManagerEvent(event)
    logger.append_keys(
        step=rotation_event.get("Step"),
        secret_id=rotation_event.get("SecretId"),
        client_request_token=rotation_event.get("ClientRequestToken"),
    )
    try:
        request = RotationEvent.from_event(rotation_event)
        settings = EntrySettings.from_environment(os.environ)
        result = run_step_execution(
            _sfn_client(),
            settings,
            request,
            remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
        )
    except RotationEntryError as error:
        logger.error(
            f"{rotation_event.get('Step')} did not succeed",
            extra={"error_type": type(error).__name__, "error_message": str(error)},
        )
        raise
    logger.info(f"{result.step} succeeded", extra={"result": result.as_payload()})
    return result.as_payload()
