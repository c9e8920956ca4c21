"""The main job: deploy the stack locally and watch scheduled, manual and failing rotations."""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

from google.auth.transport.requests import AuthorizedSession

from google_token_secret import SecretCredentials
from localcloud.cloud import ACCOUNT_ID, Deployment, LocalCloud
from localcloud.deployment import CURRENT
from localcloud.google_emulator import ServiceAccountKey
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
from localcloud.scheduler import LocalScheduler
from localcloud.template import PROJECT_ROOT

DEMO_PARAMETERS = {
    "GoogleScopes": "https://www.googleapis.com/auth/calendar.readonly",
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
        say("Google access tokens kept in AWS Secrets Manager, rotated by Step Functions:")
        say("all of it on this machine (moto for AWS, an emulator for Google).\n")
        deployment, account, queue_url = deploy(cloud, say)
        first = scheduled_rotation(cloud, deployment, expect)
        manual = manual_rotation(cloud, deployment, expect, first)
        second = refresh_before_expiry(cloud, deployment, expect, manual)
        say("\n5. A failure: Google answers invalid_grant (the key was deleted at Google)")
        cloud.google.revoke_key(account.private_key_id)
        failed_rotation(cloud, deployment, expect, queue_url, second)
        say("\n6. Where things stand")
        show_versions(cloud, deployment, say)
        leaked = str(second["GOOGLE_ACCESS_TOKEN"]) in cloud.logs.text()
        expect.check(not leaked, "no token appears in any function's logs")
        say("\n7. How an application reads the token (AWS CLI, against this local cloud)")
        read = show_application_read(cloud, deployment, say)
        expect.check(read, "an application reads AWSCURRENT with the AWS CLI")
        say("\n8. The recommended source: keyless, 12-hour tokens (Workload Identity Federation)")
        keyless = keyless_rotation(cloud, expect)
        say("\n9. The application: the Python example lists a Google Calendar with the token")
        calendar_application(cloud, deployment, account, expect)
        say("\n10. A long-running reader keeps working across a rotation, without a restart")
        long_running_reader(cloud, keyless, expect)
        say("\n11. An ID token for Cloud Run: a keyless stack rotates one, and the Python example")
        say("    calls the service with it")
        cloud_run_caller(cloud, expect)

    elapsed = time.monotonic() - started
    if expect.failures:
        say(f"\nDemo FAILED after {elapsed:.1f} s: {len(expect.failures)} expectation(s) broken")
        return 1
    say(f"\nDemo passed in {elapsed:.1f} s: every expectation held")
    return 0


def deploy(
    cloud: LocalCloud, say: Callable[[str], None]
) -> tuple[Deployment, ServiceAccountKey, str]:
    say("1. Deploy template.yaml to the local cloud")
    deployment = cloud.deploy(DEMO_PARAMETERS)
    say(f"   token secret   {deployment.token_secret_arn}")
    say("                  applications read GOOGLE_ACCESS_TOKEN here")
    say(f"   key secret     {deployment.key_secret_arn}")
    say("                  only the createSecret function may read it")
    say(f"   state machine  {deployment.state_machine_arn}")
    say(f"   functions      {', '.join(sorted(deployment.functions))}")
    account = cloud.google.create_service_account()
    cloud.store_service_account_key(account)
    say(f"   stored the key file of service account {account.client_email}")
    return deployment, account, subscribe_queue(cloud, deployment.topic_arn)


def scheduled_rotation(
    cloud: LocalCloud, deployment: Deployment, expect: Expectations
) -> dict[str, Any]:
    say = expect.say
    say("\n2. A scheduled rotation: Secrets Manager calls the entry Lambda once per step,")
    say("   and each step runs as one Step Functions execution")
    scheduled = rotate_on_schedule(cloud, deployment)
    show_executions(scheduled, say)
    expect.check(
        [e.status for e in scheduled] == ["SUCCEEDED"] * 4,
        "four executions, one per step, all SUCCEEDED",
    )
    current = show_current(cloud, deployment, say)
    expect.check(_valid_at_google(cloud, current), "Google's tokeninfo accepts the new token")
    return current


def manual_rotation(
    cloud: LocalCloud, deployment: Deployment, expect: Expectations, before: dict[str, Any]
) -> dict[str, Any]:
    say = expect.say
    say("\n3. A manual rotation, as started from the Step Functions console")
    say('   input {"SecretId": "<token secret>"}: one execution runs all four steps')
    manual = start_manual(cloud, deployment)
    show_executions([manual], say)
    expect.check(manual.status == "SUCCEEDED", "the manual execution SUCCEEDED")
    current = show_current(cloud, deployment, say)
    expect.check(
        current["GOOGLE_ACCESS_TOKEN"] != before["GOOGLE_ACCESS_TOKEN"], "it promoted a new token"
    )
    return current


def refresh_before_expiry(
    cloud: LocalCloud, deployment: Deployment, expect: Expectations, before: dict[str, Any]
) -> dict[str, Any]:
    say = expect.say
    say("\n4. Refresh before expiry: every rotation schedules the next one")
    group = deployment.refs["RefreshScheduleGroup"]
    schedule = _the_schedule(cloud, group)
    name, due = schedule["Name"], _due(schedule)
    say(f"   EventBridge Scheduler, group {group}:")
    say(f"     {name}  {schedule['ScheduleExpression']} UTC  → secretsmanager:RotateSecret")
    lead = datetime.fromisoformat(str(before["expires_at"])) - due
    expect.check(lead == timedelta(seconds=900), "it is due 15 minutes before the token expires")
    say(f"   The local cloud's clock jumps to {due:%H:%M:%S} and its scheduler fires what is due:")
    cloud.clock.advance(due.timestamp() - cloud.clock.now())
    for firing in LocalScheduler(cloud, group=group).fire_due():
        outcome = firing.error_code or "accepted: Secrets Manager ran the four steps"
        say(f"     {firing.target} on the token secret: {outcome}")
    current = show_current(cloud, deployment, say)
    expect.check(
        current["GOOGLE_ACCESS_TOKEN"] != before["GOOGLE_ACCESS_TOKEN"],
        "the schedule rotated the token 15 minutes before it would have expired",
    )
    following = _due(_the_schedule(cloud, group))
    say(f"   and the next rotation is due at {following:%H:%M:%S}")
    expect.check(
        datetime.fromisoformat(str(current["expires_at"])) - following == lead,
        "... and scheduled the next one, a lead before the new token expires",
    )
    return current


KEYLESS_AUDIENCE = (
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/aws-pool/"
    "providers/aws-provider"
)
KEYLESS_TARGET = "calendar-reader@demo-project.iam.gserviceaccount.com"


def keyless_rotation(cloud: LocalCloud, expect: Expectations) -> Deployment:
    """A second stack with no key at all: createSecret's own AWS role is exchanged at Google's
    STS, and the federated token mints the target account's 12-hour token."""
    say = expect.say
    google = cloud.google
    google.create_keyless_service_account(KEYLESS_TARGET)
    google.register_workload_identity_provider(KEYLESS_AUDIENCE, ACCOUNT_ID)
    google.allow_lifetime_extension(KEYLESS_TARGET)
    caller = cloud.client("sts").get_caller_identity()["Arn"]
    google.grant_token_creator(KEYLESS_TARGET, caller)
    say(f"   Google side: pool provider trusting account {ACCOUNT_ID}; {caller} may mint")
    say(f"   {KEYLESS_TARGET}'s tokens; the org policy allows it 12 hours")
    deployment = cloud.deploy(
        {
            **DEMO_PARAMETERS,
            "TokenSecretName": "google/keyless-access-token",
            "CredentialSource": "workload-identity-federation",
            "WorkloadIdentityAudience": KEYLESS_AUDIENCE,
            "GoogleServiceAccount": KEYLESS_TARGET,
            "TokenLifetimeSeconds": "43200",
        },
        stack_name="google-token-rotation-keyless",
    )
    expect.check(
        "ServiceAccountKeySecret" not in deployment.refs, "no key secret exists in this stack"
    )
    found = rotate_on_schedule(cloud, deployment)
    show_executions(found, say)
    expect.check([e.status for e in found] == ["SUCCEEDED"] * 4, "the keyless rotation SUCCEEDED")
    current = show_current(cloud, deployment, say)
    expect.check(current.get("service_account") == KEYLESS_TARGET, "the token is the target's")
    expires = datetime.fromisoformat(str(current["expires_at"]))
    now = datetime.fromtimestamp(cloud.clock.now(), UTC)
    expect.check(expires - now > timedelta(hours=11, minutes=59), "it lives 12 hours")
    following = _due(_the_schedule(cloud, deployment.refs["RefreshScheduleGroup"]))
    say(f"   next rotation due at {following:%H:%M:%S}: 62 rotations a month instead of 973")
    # A first token's successor comes at the secret's own moment, at the latest a lead before.
    expect.check(
        expires - following >= timedelta(seconds=900), "the refresh follows the 12-hour expiry"
    )
    expect.check(_valid_at_google(cloud, current), "Google's tokeninfo accepts it")
    return deployment


def calendar_application(
    cloud: LocalCloud, deployment: Deployment, account: ServiceAccountKey, expect: Expectations
) -> None:
    """examples/python/list_events.py, run as its own process the way an operator would."""
    say = expect.say
    _add_calendar(cloud, DEMO_CALENDAR, readers=[account.client_email])
    environment = {
        "TOKEN_SECRET_ID": _secret_name(deployment.token_secret_arn),
        "CALENDAR_ID": DEMO_CALENDAR,
        "GOOGLE_API_ROOT_URL": cloud.google.api_root_url,
    }
    listed = _run_example(cloud, EXAMPLE, environment, say)
    expect.check(
        listed.returncode == 0 and "Stand-up" in listed.stdout,
        "the example listed the calendar's events with AWSCURRENT's token",
    )
    token = str(current_value(cloud, deployment.token_secret_arn)["GOOGLE_ACCESS_TOKEN"])
    bearers = [r.bearer for r in cloud.google.requests if r.path.startswith("/calendar/")]
    expect.check(bearers == [token], "Google saw exactly that token, once")
    expect.check(token not in listed.stdout + listed.stderr, "the example never prints the token")


def long_running_reader(cloud: LocalCloud, deployment: Deployment, expect: Expectations) -> None:
    """One SecretCredentials in a thread that lists the calendar every 0.2 s while the stack
    rotates the token and the old one expires at Google."""
    say = expect.say
    google = cloud.google
    _add_calendar(cloud, KEYLESS_TARGET, readers=[])  # the account's own: "primary"
    secrets = cloud.client("secretsmanager", retries={"total_max_attempts": 3})
    reads: list[str] = []
    secrets.meta.events.register(
        "provide-client-params.secrets-manager.GetSecretValue",
        lambda params, **_: reads.append(params["VersionStage"]),
    )
    credentials = SecretCredentials(deployment.token_secret_arn, client=secrets)
    reader = _CalendarReader(
        credentials, f"{google.api_root_url}calendar/v3/calendars/primary/events"
    )
    reader.start()
    try:
        reader.wait_for_rounds(2)
        old = current_value(cloud, deployment.token_secret_arn)
        due = _due(_the_schedule(cloud, deployment.refs["RefreshScheduleGroup"]))
        say(f"   the reader lists every 0.2 s; the clock jumps to {due:%H:%M:%S}, when the refresh")
        say("   is due, the stack rotates, then the clock passes the old token's expiry")
        cloud.clock.advance_to(due.timestamp())
        rotated = rotate_on_schedule(cloud, deployment)
        expect.check(
            [e.status for e in rotated] == ["SUCCEEDED"] * 4, "the stack rotated the token"
        )
        new = current_value(cloud, deployment.token_secret_arn)
        cloud.clock.advance_to(datetime.fromisoformat(str(old["expires_at"])).timestamp() + 1)
        picked_up = reader.wait_for_version(_current_version(cloud, deployment))
        reader.wait_for_rounds(reader.rounds + 2)
    finally:
        reader.stop()
    which = {old["GOOGLE_ACCESS_TOKEN"]: "old token", new["GOOGLE_ACCESS_TOKEN"]: "new token"}
    seen = [
        f"{which[r.bearer]} → {r.status}"
        for r in google.requests
        if r.path.startswith("/calendar/") and r.bearer in which
    ]
    say("   what Google saw, in order:")
    for summary in _runs(seen):
        say(f"     {summary}")
    say("   (the reader runs on this machine's clock, behind the local cloud's jump, so Google's")
    say("   401 told it first and it re-read the secret at once; on one clock it re-reads 5")
    say("   minutes before expires_at, when the new version is already there: no 401 at all)")
    expect.check(picked_up, "the reader moved to the new token version without a restart")
    expect.check(
        not reader.failures,
        "every listing the application asked for succeeded"
        + (f" (failures: {', '.join(reader.failures)})" if reader.failures else ""),
    )
    expect.check(
        reads == [CURRENT, CURRENT],
        f"it read the secret twice, once per token version ({len(reads)} GetSecretValue calls)",
    )


ID_TOKEN_SERVICE = "invoices"
ID_TOKEN_SECRET = "google/id-token"
CLOUD_RUN_EXAMPLE = PROJECT_ROOT / "examples" / "python" / "call_cloud_run.py"


def cloud_run_caller(cloud: LocalCloud, expect: Expectations) -> None:
    """A third stack, keyless, whose token secret holds ID tokens for one Cloud Run service
    (within its IdTokenAudiences); examples/python/call_cloud_run.py calls the service with
    AWSCURRENT's token, then a service of another audience refuses that token."""
    say = expect.say
    google = cloud.google
    service_url = google.deploy_cloud_run(ID_TOKEN_SERVICE, invokers=[KEYLESS_TARGET])
    other_url = google.deploy_cloud_run("reports", invokers=[KEYLESS_TARGET])
    caller = cloud.client("sts").get_caller_identity()["Arn"]
    google.grant_open_id_token_creator(KEYLESS_TARGET, caller)
    say(f"   Google side: Cloud Run service {ID_TOKEN_SERVICE} at {service_url};")
    say(f"   {KEYLESS_TARGET} may invoke it (roles/run.invoker),")
    say(f"   and {caller} may mint that account's ID tokens")
    say("   (roles/iam.serviceAccountOpenIdTokenCreator)")
    deployment = cloud.deploy(
        {
            **DEMO_PARAMETERS,
            "TokenSecretName": ID_TOKEN_SECRET,
            "CredentialSource": "workload-identity-federation",
            "WorkloadIdentityAudience": KEYLESS_AUDIENCE,
            "GoogleServiceAccount": KEYLESS_TARGET,
            "IdTokenAudiences": service_url,
        },
        stack_name="google-token-rotation-id-token",
    )
    tags = {"token-rotation:token-kind": "id-token", "token-rotation:audience": service_url}
    cloud.client("secretsmanager").tag_resource(
        SecretId=deployment.token_secret_arn,
        Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
    )
    say(f"   stack google-token-rotation-id-token, IdTokenAudiences={service_url};")
    say(f"   its token secret {ID_TOKEN_SECRET} tagged")
    for tag in (f"{key}={tagged}" for key, tagged in tags.items()):
        say(f"     {tag}")
    rotated = rotate_on_schedule(cloud, deployment)
    show_executions(rotated, say)
    expect.check(
        [e.status for e in rotated] == ["SUCCEEDED"] * 4, "the ID-token rotation SUCCEEDED"
    )
    value = current_value(cloud, deployment.token_secret_arn)
    token = str(value.get("GOOGLE_ID_TOKEN", ""))
    say(f"   AWSCURRENT now holds ID token {mask(token)}")
    say(f"     for        {value.get('audience')}")
    say(f"     issued to  {value.get('service_account')} at {value.get('issued_at')}")
    say(f"     expires    {value.get('expires_at')}")
    expect.check(
        "GOOGLE_ACCESS_TOKEN" not in value and value.get("audience") == service_url,
        "the secret holds an ID token for the service's URL, and no access token",
    )
    called = _call_cloud_run(cloud, service_url, say)
    expect.check(
        called.returncode == 0 and called.stdout.startswith("HTTP 200"),
        "the example called the service with AWSCURRENT's ID token: 200",
    )
    refused = _call_cloud_run(cloud, other_url, say)
    expect.check(
        refused.returncode == 1 and "(HTTP 401)" in refused.stderr,
        "a service of another audience refuses the same token: 401, in one line",
    )
    bearers = {r.bearer for r in google.requests if r.path.startswith("/run/")}
    expect.check(bearers == {token}, "both services saw that token and no other")
    output = called.stdout + called.stderr + refused.stdout + refused.stderr
    expect.check(token not in output, "the example never prints the token")


def _call_cloud_run(
    cloud: LocalCloud, url: str, say: Callable[[str], None]
) -> subprocess.CompletedProcess[str]:
    """examples/python/call_cloud_run.py, run as its own process the way an operator would."""
    environment = {"TOKEN_SECRET_ID": ID_TOKEN_SECRET, "CLOUD_RUN_URL": url}
    return _run_example(cloud, CLOUD_RUN_EXAMPLE, environment, say)


def _run_example(
    cloud: LocalCloud, example: Path, environment: dict[str, str], say: Callable[[str], None]
) -> subprocess.CompletedProcess[str]:
    """One of examples/python, run as its own process with `environment` exported, the way an
    operator would; what it prints is shown as it would be in their terminal."""
    say(f"   $ export {' '.join(f'{k}={v}' for k, v in environment.items())}")
    say(f"   $ python {example.relative_to(PROJECT_ROOT)}")
    ran = subprocess.run(  # noqa: S603 - this interpreter and our own example
        [sys.executable, str(example)],
        env={**os.environ, **cloud.client_environment(), **environment},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    for line in (ran.stdout + ran.stderr).splitlines():
        say(f"   {line}")
    return ran


class _CalendarReader(threading.Thread):
    """An application's worker: lists the calendar over and over on one credential."""

    def __init__(self, credentials: SecretCredentials, events_url: str) -> None:
        super().__init__(name="calendar-reader", daemon=True)
        self._session = AuthorizedSession(credentials)
        self._credentials = credentials
        self._url = events_url
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self.rounds = 0
        self.versions: list[str] = []
        self.failures: list[str] = []

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                outcome = str(self._session.get(self._url, timeout=10).status_code)
            except Exception as error:  # the demo reports any failure; an application would retry
                outcome = type(error).__name__
            if outcome != "200":
                self.failures.append(outcome)
            with self._progress:
                self.rounds += 1
                self.versions.append(self._credentials.version_id)
                self._progress.notify_all()
            self._stopping.wait(0.2)

    def wait_for_rounds(self, rounds: int) -> bool:
        with self._progress:
            return self._progress.wait_for(lambda: self.rounds >= rounds, timeout=30)

    def wait_for_version(self, version: str) -> bool:
        with self._progress:
            return self._progress.wait_for(lambda: version in self.versions, timeout=30)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=15)


DEMO_CALENDAR = "team-calendar@demo-project.example"
EXAMPLE = PROJECT_ROOT / "examples" / "python" / "list_events.py"


def _add_calendar(cloud: LocalCloud, calendar_id: str, readers: list[str]) -> None:
    """A calendar at Google with two events ahead of both the real and the local clock."""
    cloud.google.add_calendar(calendar_id, readers=readers)
    soon = datetime.fromtimestamp(max(cloud.clock.now(), time.time()), UTC).replace(microsecond=0)
    for days, summary in ((1, "Stand-up"), (2, "Design review")):
        start = soon + timedelta(days=days)
        cloud.google.add_event(calendar_id, summary, start, start + timedelta(minutes=30))


def _runs(lines: list[str]) -> list[str]:
    """Consecutive repeats folded: "old token → 200 (7 times)"."""
    folded: list[str] = []
    for line, repeats in ((key, len(list(group))) for key, group in groupby(lines)):
        folded.append(line if repeats == 1 else f"{line} ({repeats} times)")
    return folded


def _current_version(cloud: LocalCloud, deployment: Deployment) -> str:
    stages = version_stages(cloud, deployment.token_secret_arn)
    return next(version for version, labels in stages.items() if CURRENT in labels)


def _the_schedule(cloud: LocalCloud, group: str) -> dict[str, Any]:
    """The one schedule of the stack's group: the token secret's next rotation."""
    scheduler = cloud.client("scheduler")
    [listed] = scheduler.list_schedules(GroupName=group)["Schedules"]
    schedule: dict[str, Any] = scheduler.get_schedule(GroupName=group, Name=listed["Name"])
    return schedule


def _due(schedule: dict[str, Any]) -> datetime:
    moment = datetime.strptime(str(schedule["ScheduleExpression"]), "at(%Y-%m-%dT%H:%M:%S)")
    return moment.replace(tzinfo=UTC)


def failed_rotation(
    cloud: LocalCloud,
    deployment: Deployment,
    expect: Expectations,
    queue_url: str,
    before: dict[str, Any],
) -> None:
    say = expect.say
    failed = rotate_on_schedule(cloud, deployment)
    show_executions(failed, say)
    expect.check([e.status for e in failed] == ["FAILED"], "the rotation stopped at createSecret")
    expect.check(
        all(e.task_attempts.get("CreateSecret") == 1 for e in failed),
        "createSecret ran once: invalid_grant is permanent, so no retries",
    )
    notices = _wait_for_notices(cloud, queue_url)
    expect.check(len(notices) == 1, f"exactly one failure notice arrived ({len(notices)})")
    for notice in notices:
        say("   the notice, as an e-mail subscriber reads it:")
        say(f"     Subject: {notice['Subject']}")
        say("     " + json.dumps(notice["Message"], indent=2).replace("\n", "\n     "))
        cause = str(notice["Message"].get("Cause", ""))
        expect.check(
            "Traceback" not in cause and 'File "' not in cause and ".py" not in cause,
            "its cause is one readable sentence: no stack frames, no file paths",
        )
    retry = _due(_the_schedule(cloud, deployment.refs["RefreshScheduleGroup"]))
    say(f"   the failed rotation scheduled its own retry: RotateSecret at {retry:%H:%M:%S}")
    say("   (waits of 1, 2, 4 ... up to 15 minutes; one reminder an hour while it fails)")
    expect.check(
        # A minute after the failure, in whole seconds (rounded up, never early).
        timedelta(0)
        < retry - datetime.fromtimestamp(cloud.clock.now(), UTC)
        <= timedelta(minutes=1, seconds=1),
        "the retry comes a minute later",
    )
    current = show_current(cloud, deployment, say)
    expect.check(current == before, "AWSCURRENT still holds the token of step 4")
    expect.check(_valid_at_google(cloud, current), "... and Google still accepts it")


def show_versions(cloud: LocalCloud, deployment: Deployment, say: Callable[[str], None]) -> None:
    say("   token secret versions (newest last; a version without labels is deprecated):")
    for version, stages in version_stages(cloud, deployment.token_secret_arn).items():
        say(f"     {version}  {', '.join(stages) or '-'}")


def show_executions(found: list[ExecutionSummary], say: Callable[[str], None]) -> None:
    for execution in found:
        outcome = execution.status + (f" ({execution.error})" if execution.error else "")
        say(f"   {execution.name}: {outcome} in {execution.seconds:.2f} s")
        say("     " + " → ".join(name for name, _ in execution.states))


def show_current(
    cloud: LocalCloud, deployment: Deployment, say: Callable[[str], None]
) -> dict[str, Any]:
    value = current_value(cloud, deployment.token_secret_arn)
    expires = datetime.fromisoformat(str(value.get("expires_at")))
    minutes = round((expires.timestamp() - cloud.clock.now()) / 60)
    say(f"   AWSCURRENT now holds token {mask(str(value.get('GOOGLE_ACCESS_TOKEN', '')))}")
    say(f"     issued to  {value.get('service_account')} at {value.get('issued_at')}")
    say(f"     expires    {value.get('expires_at')} (in {minutes} minutes)")
    say(f"     scopes     {' '.join(value.get('scopes', []))}")
    return value


def show_application_read(
    cloud: LocalCloud, deployment: Deployment, say: Callable[[str], None]
) -> bool:
    """The command an application's operator would type, run for real with the AWS CLI."""
    command = [
        "aws",
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        _secret_name(deployment.token_secret_arn),
        "--version-stage",
        CURRENT,
        "--query",
        "SecretString",
        "--output",
        "text",
    ]
    say(f"   $ export {' '.join(f'{k}={v}' for k, v in cloud.client_environment().items())}")
    say(f"   $ {' '.join(command)}")
    aws = Path(sys.executable).with_name("aws")
    if not aws.exists():
        say(f"   (no AWS CLI at {aws}: make venv installs it)")
        return False
    answer = subprocess.run(  # noqa: S603 - our own venv's AWS CLI, fixed arguments
        [str(aws), *command[1:]],
        env={**os.environ, **cloud.client_environment()},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if answer.returncode != 0:
        say(f"   (the AWS CLI failed: {answer.stderr.strip()[:300]})")
        return False
    value = json.loads(answer.stdout)
    value["GOOGLE_ACCESS_TOKEN"] = mask(str(value["GOOGLE_ACCESS_TOKEN"]))
    say("   " + json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n   "))
    say("   (the token is masked here; the real output holds it whole)")
    say("   Then send it as 'Authorization: Bearer <GOOGLE_ACCESS_TOKEN>' to a Google API,")
    say("   and read the secret again a few minutes before expires_at.")
    return True


def _secret_name(arn: str) -> str:
    """The name in a secret's ARN, without the six characters Secrets Manager appends."""
    return arn.split(":secret:", 1)[1].rsplit("-", 1)[0]


def _wait_for_notices(cloud: LocalCloud, queue_url: str) -> list[dict[str, Any]]:
    """SNS delivers to the queue shortly after the publish."""
    deadline = time.monotonic() + 5
    notices = drain_notices(cloud, queue_url)
    while not notices and time.monotonic() < deadline:
        time.sleep(0.1)
        notices = drain_notices(cloud, queue_url)
    return notices


def _valid_at_google(cloud: LocalCloud, value: dict[str, object]) -> bool:
    """Asks the emulator's tokeninfo over HTTP, as an application's first call would."""
    return token_info(cloud, str(value.get("GOOGLE_ACCESS_TOKEN", ""))) is not None
