"""What the end-to-end tests deploy and inspect: a stack of template.yaml on the local cloud,
and the secret material none of its records may hold (fixtures are in conftest.py)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localcloud.cloud import Deployment, LocalCloud
from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from localcloud.lambda_runtime import FunctionWorker
from localcloud.operations import (
    ExecutionSummary,
    current_value,
    drain_notices,
    executions,
    version_stages,
)

SCOPE = "https://www.googleapis.com/auth/calendar.readonly"
PARAMETERS = {"GoogleScopes": SCOPE}
GOOGLE_TIMEOUT_SECONDS = 1.0
ENTRY_POLL = {"POLL_FIRST_INTERVAL_SECONDS": "0.05"}
"""The entry function's first look at the execution it started, in place of the template's 0.25 s:
a local step ends well within that, and the end-to-end tests run hundreds of steps."""


@dataclass
class Stack:
    """One deployment of template.yaml with a key stored and a queue on its failure topic."""

    cloud: LocalCloud
    deployment: Deployment
    account: ServiceAccountKey
    queue_url: str

    @property
    def secret_arn(self) -> str:
        return self.deployment.token_secret_arn

    def worker(self, logical_id: str) -> FunctionWorker:
        return self.cloud.runtime.worker(self.deployment.functions[logical_id])

    def executions(self) -> list[ExecutionSummary]:
        return executions(self.cloud, self.deployment.state_machine_arn)

    def notices(self) -> list[dict[str, Any]]:
        return drain_notices(self.cloud, self.queue_url)

    def stages(self) -> dict[str, list[str]]:
        return version_stages(self.cloud, self.secret_arn)

    def current(self) -> dict[str, Any]:
        return current_value(self.cloud, self.secret_arn)

    def current_version(self) -> str:
        return next(v for v, stages in self.stages().items() if "AWSCURRENT" in stages)

    def tags(self) -> dict[str, str]:
        described = self.cloud.client("secretsmanager").describe_secret(SecretId=self.secret_arn)
        return {tag["Key"]: tag["Value"] for tag in described.get("Tags", [])}


@dataclass
class SecretMaterial:
    """Tokens and private keys that must never appear in an execution history or a log line."""

    google: GoogleEmulator
    keys: list[str] = field(default_factory=list)

    def add_key(self, private_key_pem: str) -> None:
        self.keys.append(private_key_pem)

    def values(self) -> set[str]:
        """Every token the emulator issued, and every full line of every key's PEM body (a
        leaked key shows at least one of them, whether its newlines are raw or escaped)."""
        lines = {
            line.strip()
            for pem in self.keys
            for line in pem.splitlines()
            if line.strip() and "-----" not in line
        }
        return {token.access_token for token in self.google.issued_tokens()} | lines

    def found_in(self, text: str) -> list[str]:
        """The secret values in `text`, masked so that a failing assertion leaks nothing."""
        return [f"{value[:6]}…({len(value)} chars)" for value in self.values() if value in text]


StackFactory = Callable[..., Stack]
"""deploy_stack's callable: keyword arguments token_secret_name, environment_overrides,
parameters (template parameters besides the suite's)."""
