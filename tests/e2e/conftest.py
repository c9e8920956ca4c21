"""One local cloud for the end-to-end tests, a fresh stack per test, and a check after every test
that no execution history and no function log line holds a token or a private key."""

import json
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

import pytest

from localcloud.cloud import LocalCloud
from localcloud.operations import subscribe_queue
from tests.e2e.stacks import (
    ENTRY_POLL,
    GOOGLE_TIMEOUT_SECONDS,
    PARAMETERS,
    SecretMaterial,
    Stack,
    StackFactory,
)


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    """Retry waits recorded, not slept; Google timeouts short, so hangs cost one second."""
    with LocalCloud(sleep_retries=False, google_timeout_seconds=GOOGLE_TIMEOUT_SECONDS) as cloud:
        yield cloud
    # The corrections are process-wide: leave them as the other suites expect them.
    cloud.corrections.sleep_retries = True
    cloud.corrections.retry_waits.clear()


@pytest.fixture
def secret_material(cloud: LocalCloud) -> SecretMaterial:
    return SecretMaterial(cloud.google)


@pytest.fixture
def deploy_stack(cloud: LocalCloud, secret_material: SecretMaterial) -> Iterator[StackFactory]:
    """Deploys a fresh stack (unique names, so stacks of one module never meet); after the test,
    checks every execution history and every log line of the test for secret material, then
    stops the stacks' functions."""
    cloud.corrections.retry_waits.clear()
    cloud.google.reset()
    first_log_line = len(cloud.logs.lines)
    stacks: list[Stack] = []

    def deploy(
        *,
        token_secret_name: str | None = None,
        environment_overrides: Mapping[str, Mapping[str, str]] | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> Stack:
        suffix = uuid.uuid4().hex[:12]
        deployment = cloud.deploy(
            {
                **PARAMETERS,
                "TokenSecretName": token_secret_name or f"e2e/{suffix}/token",
                **(parameters or {}),
            },
            stack_name=f"e2e-{suffix}",
            environment_overrides={
                **(environment_overrides or {}),
                "RotationEntryFunction": {
                    **ENTRY_POLL,
                    **(environment_overrides or {}).get("RotationEntryFunction", {}),
                },
            },
        )
        # Warm sandboxes, as provisioned concurrency keeps them: the functions start in
        # parallel instead of one cold start per step.
        with ThreadPoolExecutor() as pool:
            init_errors = pool.map(
                lambda name: cloud.runtime.worker(name).prewarm(), deployment.functions.values()
            )
            account = cloud.google.create_service_account()
            secret_material.add_key(account.private_key_pem)
            cloud.store_service_account_key(account)
            queue_url = subscribe_queue(cloud, deployment.topic_arn, name=f"e2e-{suffix}-notices")
            assert list(init_errors) == [None] * len(deployment.functions)
        stack = Stack(cloud, deployment, account, queue_url)
        stacks.append(stack)
        return stack

    yield deploy

    try:
        for stack in stacks:
            for execution in stack.executions():
                record = json.dumps(
                    [execution.input, execution.output, execution.history], default=str
                )
                leaked = secret_material.found_in(record)
                assert not leaked, f"execution {execution.name} holds secret material: {leaked}"
        log_text = "\n".join(line for _, line in cloud.logs.lines[first_log_line:])
        leaked = secret_material.found_in(log_text)
        assert not leaked, f"function logs hold secret material: {leaked}"
    finally:
        for stack in stacks:
            for name in stack.deployment.functions.values():
                cloud.runtime.worker(name).stop()
            # Frees the name for the next stack (the sample events' tests share one).
            cloud.client("secretsmanager").delete_secret(
                SecretId=stack.secret_arn, ForceDeleteWithoutRecovery=True
            )


@pytest.fixture
def stack(deploy_stack: StackFactory) -> Stack:
    return deploy_stack()
