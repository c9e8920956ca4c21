"""The main job: deploy the stack locally and watch scheduled, manual and failing rotations."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from localcloud.cloud import Deployment, LocalCloud
from localcloud.operations import (
    ExecutionSummary,
    current_value,
    drain_notices,
    mask,
    rotate_on_schedule,
    start_manual,
    subscribe_queue,
    token_info,
    version_stages,
)

DEMO_PARAMETERS = {
    "GoogleScopes": "https://www.googleapis.com/auth/calendar.readonly",
    # Loud on purpose: see the template's rule and the README's "Limitations".
    "AcknowledgeTokenExpiryGap": "yes",
}


@dataclass
class Expectations:
    """Each check the demo makes; the exit status says whether all held."""

    say: Callable[[str], None]
    failures: list[str] = field(default_factory=list)

    def check(self, holds: bool, description: str) -> None:
        self.say(f"    {'✔' if holds else '✘'} {description}")
        if not holds:
            self.failures.append(description)


def run_demo(say: Callable[[str], None] = print) -> int:
    started = time.monotonic()
    with LocalCloud() as cloud:
        expect = Expectations(say)
        say("1. Deploying template.yaml to the local cloud (moto + Google emulator)")
        say("   AcknowledgeTokenExpiryGap=yes: a 1-hour token cannot span a 4-hour schedule")
        deployment = cloud.deploy(DEMO_PARAMETERS)
        for logical_id, name in deployment.functions.items():
            say(f"   function {logical_id:24} {name}")
        say(f"   state machine  {deployment.state_machine_arn}")
        account = cloud.google.create_service_account()
        cloud.store_service_account_key(account)
        say(f"   stored a key file for {account.client_email} in {deployment.key_secret_arn}")
        queue_url = subscribe_queue(cloud, deployment.topic_arn)
        show_versions(cloud, deployment, say)

        say("\n2. Rotating as the schedule would: RotateSecret")
        scheduled = rotate_on_schedule(cloud, deployment)
        show_executions(scheduled, say)
        expect.check(
            [e.status for e in scheduled] == ["SUCCEEDED"] * 4,
            "four executions, one per step, all SUCCEEDED",
        )
        first = show_current(cloud, deployment, say)
        expect.check(_valid_at_google(cloud, first), "the new AWSCURRENT token is valid at Google")

        say("\n3. A manual execution, as typed into the Step Functions console")
        manual = start_manual(cloud, deployment)
        show_executions([manual], say)
        expect.check(manual.status == "SUCCEEDED", "the manual execution SUCCEEDED")
        second = show_current(cloud, deployment, say)
        expect.check(
            second["GOOGLE_ACCESS_TOKEN"] != first["GOOGLE_ACCESS_TOKEN"],
            "it promoted a new token",
        )

        say("\n4. Failure: Google answers invalid_grant (the key was deleted at Google)")
        cloud.google.revoke_key(account.private_key_id)
        failed = rotate_on_schedule(cloud, deployment)
        show_executions(failed, say)
        expect.check(
            [e.status for e in failed] == ["FAILED"], "the rotation stopped at createSecret"
        )
        expect.check(
            all(e.task_attempts.get("CreateSecret") == 1 for e in failed),
            "createSecret ran once: invalid_grant is permanent, so no retries",
        )
        time.sleep(0.2)
        notices = drain_notices(cloud, queue_url)
        expect.check(len(notices) == 1, f"exactly one failure notice arrived ({len(notices)})")
        for notice in notices:
            say(f"    Subject: {notice['Subject']}")
            say("    " + json.dumps(notice["Message"], indent=2).replace("\n", "\n    "))
        third = show_current(cloud, deployment, say)
        expect.check(third == second, "AWSCURRENT still holds the previous token")
        expect.check(_valid_at_google(cloud, third), "... and Google still accepts it")
        leaked = str(second["GOOGLE_ACCESS_TOKEN"]) in cloud.logs.text()
        expect.check(not leaked, "no token appears in any function's logs")

    elapsed = time.monotonic() - started
    if expect.failures:
        say(f"\nDemo FAILED after {elapsed:.1f} s: {len(expect.failures)} expectation(s) broken")
        return 1
    say(f"\nDemo passed in {elapsed:.1f} s: every expectation held")
    return 0


def show_versions(cloud: LocalCloud, deployment: Deployment, say: Callable[[str], None]) -> None:
    for label, arn in (("token", deployment.token_secret_arn), ("key", deployment.key_secret_arn)):
        say(f"   {label} secret versions:")
        for version, stages in version_stages(cloud, arn).items():
            say(f"     {version}  {', '.join(stages)}")


def show_executions(found: list[ExecutionSummary], say: Callable[[str], None]) -> None:
    for execution in found:
        say(f"   {execution.name}: {execution.status} in {execution.seconds:.2f} s")
        say("     " + " → ".join(f"{name} {seconds:.2f}s" for name, seconds in execution.states))


def show_current(
    cloud: LocalCloud, deployment: Deployment, say: Callable[[str], None]
) -> dict[str, object]:
    value = current_value(cloud, deployment.token_secret_arn)
    say(
        f"   AWSCURRENT: token {mask(str(value.get('GOOGLE_ACCESS_TOKEN', '')))}, "
        f"expires {value.get('expires_at')}, scopes {value.get('scopes')}"
    )
    show_versions(cloud, deployment, say)
    return value


def _valid_at_google(cloud: LocalCloud, value: dict[str, object]) -> bool:
    """Asks the emulator's tokeninfo over HTTP, as an application's first call would."""
    return token_info(cloud, str(value.get("GOOGLE_ACCESS_TOKEN", ""))) is not None
