"""The DescribeFailure Lambda: what follows a failed rotation execution — its notice, if one is
due, and the retry the state machine schedules.

It reads the token secret's staging labels and tags (DescribeSecret, never a value) so that the
notice says what is true now, records the failure streak in status tags, and leaves the rules
and the wording to rotation_core.follow_up and rotation_core.failure_notice."""

import os
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from lambda_adapter import AWS_CLIENT_CONFIG, log_through_powertools, logger
from rotation_core.errors import RotationError
from rotation_core.failure_notice import FailureReport, StageReading, StagesUnreadable
from rotation_core.follow_up import FollowUps
from rotation_core.redaction import safe_external_text
from rotation_core.secrets import SecretsGateway

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

log_through_powertools("rotation_core")

# The notice can go out without the labels: two quick tries, well inside the function's timeout.
_CLIENT_CONFIG = AWS_CLIENT_CONFIG.merge(
    Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 2})
)


@cache
def _secrets_client() -> "SecretsManagerClient":
    """Built on the first invocation and kept warm (the environment is known by then)."""
    return boto3.client("secretsmanager", config=_CLIENT_CONFIG)


def _read_stages(report: FailureReport) -> StageReading:
    if report.secret_id is None:
        return None
    try:
        return SecretsGateway(_secrets_client()).describe(report.secret_id)
    except RotationError as error:
        return StagesUnreadable(type(error).__name__, safe_external_text(error, 300))
    except Exception as error:
        # Whatever else DescribeSecret did (a botocore bug, a bad parameter), the notice goes out.
        return StagesUnreadable(type(error).__name__)


# log_event=False: the failed request may hold the RotationToken.
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: Any, _context: LambdaContext) -> dict[str, object]:
    report = FailureReport.from_payload(event)
    logger.append_keys(
        failed_step=report.step, error_type=report.error, execution_arn=report.execution_arn
    )
    reading = _read_stages(report)
    follow_ups = FollowUps(SecretsGateway(_secrets_client()), os.environ, lambda: datetime.now(UTC))
    follow_up = follow_ups.after_failure(report, reading)
    logger.info(
        "failure follow-up decided",
        extra={
            "stages": "no" if reading is None else type(reading).__name__,
            "subject": None if follow_up.notice is None else follow_up.notice.subject,
            "retry_at": None if follow_up.schedule is None else str(follow_up.schedule.due),
        },
    )
    return follow_up.as_payload()
