"""What a local deploy created, and clients of a local cloud by its endpoint. Light on purpose
(boto3, no moto): the commands that attach to a running `up` import only this."""

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
from botocore.config import Config

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# Secrets Manager's staging labels, the one home of the local cloud's copy (it stands in for AWS
# and never imports the product it runs; the product's own are in rotation_core.secrets).
CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
PREVIOUS = "AWSPREVIOUS"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}


@dataclass
class Deployment:
    """What a local deploy created: physical ids and ARNs by logical id, as stack outputs would."""

    stack_name: str
    refs: dict[str, str]
    attributes: dict[tuple[str, str], str]
    functions: dict[str, str] = field(default_factory=dict)
    """Logical id → deployed function name."""

    @property
    def token_secret_arn(self) -> str:
        return self.refs["TokenSecret"]

    @property
    def key_secret_arn(self) -> str:
        return self.refs["ServiceAccountKeySecret"]

    @property
    def state_machine_arn(self) -> str:
        return self.refs["RotationStateMachine"]

    @property
    def topic_arn(self) -> str:
        return self.refs["FailureTopic"]


class Clients(Protocol):
    """Anything that hands out AWS clients of one local cloud: LocalCloud in its own process,
    an attached `up` (localcloud.remote) in another."""

    def client(self, service: str, **config: Any) -> Any: ...


def client_environment(endpoint: str) -> dict[str, str]:
    """What to export so that boto3 and the AWS CLI talk to the cloud at `endpoint`."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        **FAKE_CREDENTIALS,
    }


def make_client(endpoint: str, service: str, config: Mapping[str, Any]) -> Any:
    """A client of the local cloud at `endpoint`. No botocore retries: a retried RotateSecret
    would start a second rotation, a retried Invoke would run the handler twice."""
    settings = {"retries": {"total_max_attempts": 1}, "read_timeout": 300, **config}
    create: Any = boto3.client
    return create(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        config=Config(**settings),
    )


def check_port_free(port: int) -> None:
    """OSError (EADDRINUSE) when something listens on 127.0.0.1:`port` already."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As werkzeug binds: a port in TIME_WAIT after the last `up` is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
