"""Lambda glue every function shares: one logger, bounded log keys, AWS client settings."""

import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from botocore.config import Config

SERVICE_NAME = "google-token-rotation"
# Three calls in all: botocore's own retries absorb a throttle; longer outages are the state
# machine's (or Secrets Manager's) to retry.
AWS_CLIENT_CONFIG = Config(
    connect_timeout=5, read_timeout=15, retries={"mode": "standard", "total_max_attempts": 3}
)

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE_NAME))


def log_through_powertools(*logger_names: str) -> None:
    """Route the standard-library loggers of our own modules through the powertools logger."""
    copy_config_to_registered_loggers(source_logger=logger, include=set(logger_names))


_LOGGED_FIELDS = {
    "Step": "step",
    "SecretId": "secret_id",
    "ClientRequestToken": "client_request_token",
}
_MAX_LOGGED_FIELD_LENGTH = 256


def request_log_keys(event: object) -> dict[str, str]:
    """The request's ids for every log line, bounded, whatever shape the event has; never the
    RotationToken."""
    if not isinstance(event, dict):
        return {}
    return {
        key: value[:_MAX_LOGGED_FIELD_LENGTH]
        for field, key in _LOGGED_FIELDS.items()
        if isinstance(value := event.get(field), str)
    }
