"""The stack's key secret renews itself on the whole local cloud: RotateSecret through the entry
function and the state machine, Google's 10-key limit, a new key Google accepts only after a
while, a key expiring under an organisation's key-expiry policy, a key deleted behind the stack's
back, and a Lambda crash at each step of the key's rotation; token secrets keep minting valid
tokens through all of it.

One stack serves the module (a deploy costs seconds): each test starts from a key secret whose
AWSCURRENT key works and leaves it so. Only the first-key case deploys a stack of its own."""

import base64
import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from localcloud.deployment import CURRENT, PENDING, PREVIOUS
from localcloud.faults import (
    Crash,
    crash_after_get_secret_value,
    crash_after_google_answers,
    crash_after_update_secret_version_stage,
)
from localcloud.google_emulator import RecordedRequest
from localcloud.operations import (
    ExecutionSummary,
    rotate_on_schedule,
    subscribe_queue,
)
from localcloud.scheduler import LocalScheduler
from rotation_core.key_rotation import KEY_VALID_BEFORE_TAG
from rotation_core.refresh import schedule_name
from tests.e2e.stacks import PARAMETERS, SecretMaterial, Stack, StackFactory
from tests.support import step_attempts

ROTATION_DAYS = 30
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
TASKS = ("CreateSecret", "SetSecret", "TestSecret", "FinishSecret")
KEY_LIMIT = 10
LATER = timedelta(hours=1)


# --- the module's stack ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def key_stack(cloud: LocalCloud) -> Iterator[Stack]:
    """A stack whose key renews itself every ROTATION_DAYS, with an account of its own (keys at
    Google outlive a test) holding the key-admin role on itself, and one token in use."""
    suffix = uuid.uuid4().hex[:12]
    deployment = cloud.deploy(
        {
            **PARAMETERS,
            "TokenSecretName": f"e2e/{suffix}/token",
            "KeyRotationDays": str(ROTATION_DAYS),
        },
        stack_name=f"e2e-{suffix}",
    )
    assert cloud.prewarm() == {}
    account = cloud.google.create_service_account(
        f"rotator-{suffix}@demo-project.iam.gserviceaccount.com"
    )
    cloud.store_service_account_key(account)
    queue_url = subscribe_queue(cloud, deployment.topic_arn, name=f"e2e-{suffix}-notices")
    stack = Stack(cloud, deployment, account, queue_url)
    yield stack
    for name in deployment.functions.values():
        cloud.runtime.worker(name).stop()


@pytest.fixture(autouse=True)
def google_for_the_stack(cloud: LocalCloud, key_stack: Stack) -> Iterator[None]:
    """Google as the module's stack needs it, whatever the last test did to it: the account
    manages its own keys, no key-expiry policy, no failure queued, new keys usable at once."""
    cloud.google.reset()
    cloud.google.grant_key_admin(
        key_stack.account.client_email, f"serviceAccount:{key_stack.account.client_email}"
    )
    cloud.google.key_propagation_seconds = 0
    cloud.corrections.retry_waits.clear()
    key_stack.notices()
    yield
    cloud.google.key_propagation_seconds = 5.0


@pytest.fixture(autouse=True)
def no_secret_material_leaks(
    cloud: LocalCloud, key_stack: Stack, secret_material: SecretMaterial
) -> Iterator[None]:
    """After each test: no execution it caused and no log line it printed holds a token or any
    key the key secret ever held (the keys Google made during the test included)."""
    first_line = len(cloud.logs.lines)
    seen = {execution.arn for execution in key_stack.executions()}
    yield
    for pem in key_pems(key_stack):
        secret_material.add_key(pem)
    for execution in key_stack.executions():
        if execution.arn in seen:
            continue
        record = json.dumps([execution.input, execution.output, execution.history], default=str)
        leaked = secret_material.found_in(record)
        assert not leaked, f"execution {execution.name} holds secret material: {leaked}"
    log_text = "\n".join(line for _, line in cloud.logs.lines[first_line:])
    leaked = secret_material.found_in(log_text)
    assert not leaked, f"function logs hold secret material: {leaked}"


# --- reading the key secret and Google ---------------------------------------------------------


def key_file(stack: Stack, stage: str = CURRENT) -> dict[str, str]:
    answer = stack.cloud.client("secretsmanager").get_secret_value(
        SecretId=stack.deployment.key_secret_arn, VersionStage=stage
    )
    document: dict[str, str] = json.loads(answer["SecretString"])
    return document


def key_id(stack: Stack, stage: str = CURRENT) -> str | None:
    """The key id in the key secret's version at `stage` (None: `{}`, as the stack creates it)."""
    return key_file(stack, stage).get("private_key_id")


def key_in_use(stack: Stack) -> str:
    """The key id in AWSCURRENT, which always holds a key once the stack's key is stored."""
    key = key_id(stack)
    assert key is not None, "the key secret's AWSCURRENT holds no key"
    return key


def key_pems(stack: Stack) -> list[str]:
    """Every private key any version of the key secret holds."""
    secrets = stack.cloud.client("secretsmanager")
    arn = stack.deployment.key_secret_arn
    versions = secrets.list_secret_version_ids(SecretId=arn, IncludeDeprecated=True)["Versions"]
    pems = []
    for version in versions:
        try:
            value = secrets.get_secret_value(SecretId=arn, VersionId=version["VersionId"])
        except secrets.exceptions.ResourceNotFoundException:
            continue  # a rotation's AWSPENDING before createSecret stored anything
        pem = json.loads(value.get("SecretString") or "{}").get("private_key")
        if pem:
            pems.append(pem)
    return pems


def at_google(stack: Stack) -> set[str]:
    """The ids of the account's user-managed keys, as keys.list shows them now."""
    return {key.key_id for key in stack.cloud.google.user_managed_keys(stack.account.client_email)}


def held(stack: Stack) -> set[str]:
    """The key ids AWSCURRENT and AWSPREVIOUS hold: the only keys of the stack at Google."""
    return {key for key in (key_id(stack), key_id(stack, PREVIOUS)) if key is not None}


def google_accepts(stack: Stack, key: str | None) -> bool:
    """Whether Google's token endpoint accepts assertions signed by `key` now."""
    google = stack.cloud.google
    return any(
        found.key_id == key and found.usable(google.now())
        for found in google.user_managed_keys(stack.account.client_email)
    )


def token_valid(stack: Stack) -> bool:
    return stack.cloud.google.token_info(stack.current()["GOOGLE_ACCESS_TOKEN"]) is not None


def rotate_key(stack: Stack) -> list[ExecutionSummary]:
    """RotateSecret on the key secret, as its rotation schedule calls it; the executions it
    caused, oldest first."""
    before = {execution.arn for execution in stack.executions()}
    stack.cloud.client("secretsmanager").rotate_secret(SecretId=stack.deployment.key_secret_arn)
    return [execution for execution in stack.executions() if execution.arn not in before]


def steps_of(found: list[ExecutionSummary]) -> list[tuple[str, str]]:
    return [(execution.name.split("-", 1)[0], execution.status) for execution in found]


def key_schedule(stack: Stack) -> dict[str, Any]:
    """The key secret's one EventBridge Scheduler schedule (its next rotation, or its retry)."""
    answer: dict[str, Any] = stack.cloud.client("scheduler").get_schedule(
        GroupName=stack.deployment.refs["RefreshScheduleGroup"],
        Name=schedule_name(stack.deployment.key_secret_arn),
    )
    return answer


def due_of(schedule: dict[str, Any]) -> datetime:
    expression = schedule["ScheduleExpression"]
    return datetime.strptime(expression, "at(%Y-%m-%dT%H:%M:%S)").replace(tzinfo=UTC)


def simulated_now(stack: Stack) -> datetime:
    return datetime.fromtimestamp(stack.cloud.clock.now(), UTC)


def refresh_scheduler(stack: Stack) -> LocalScheduler:
    """Fires the stack's refresh and key schedules (not the sweep, not the rotation rules)."""
    return LocalScheduler(stack.cloud, group=stack.deployment.refs["RefreshScheduleGroup"])


def signing_key_ids(requests: list[RecordedRequest]) -> set[str]:
    """The key ids (the JWT header's kid) of the assertions minted at Google's /token."""
    kids = set()
    for request in requests:
        if request.path == "/token" and request.status == 200:
            header = request.form["assertion"].split(".", 1)[0]
            decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
            kids.add(str(decoded["kid"]))
    return kids


def with_standby(stack: Stack) -> None:
    """A key rotation first when the key secret holds no working standby in AWSPREVIOUS."""
    if not google_accepts(stack, key_id(stack, PREVIOUS)):
        assert steps_of(rotate_key(stack)) == [(step, "SUCCEEDED") for step in STEPS]
        stack.notices()


def rfc3339(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(int(epoch_seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shown(key: str | None) -> str:
    """A key id as notices and logs show it."""
    assert key is not None
    return key[:12] + "…"


# --- 1. the scheduled rotation -------------------------------------------------------------------


def test_a_scheduled_key_rotation_renews_the_key_the_token_secrets_then_mint_with(
    key_stack: Stack,
) -> None:
    stack = key_stack
    described = stack.cloud.client("secretsmanager").describe_secret(
        SecretId=stack.deployment.key_secret_arn
    )
    assert described["RotationEnabled"] is True
    assert described["RotationRules"] == {"AutomaticallyAfterDays": ROTATION_DAYS}
    assert described["RotationLambdaARN"].endswith(
        ":function:" + stack.deployment.functions["RotationEntryFunction"]
    )
    before = key_id(stack)
    started = simulated_now(stack)

    found = rotate_key(stack)

    assert steps_of(found) == [(step, "SUCCEEDED") for step in STEPS]
    new = key_id(stack)
    assert new not in (None, before)
    assert key_id(stack, PREVIOUS) == before
    assert google_accepts(stack, new)
    assert at_google(stack) == {before, new}
    assert stack.notices() == []
    # The key's next rotation: a one-time schedule ROTATION_DAYS on, RotateSecret on the key.
    schedule = key_schedule(stack)
    every = timedelta(days=ROTATION_DAYS)
    # Whole seconds, rounded up, after the moment finishSecret promoted the key.
    assert (
        started + every <= due_of(schedule) <= simulated_now(stack) + every + timedelta(seconds=1)
    )
    assert schedule["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:secretsmanager:rotateSecret"
    assert json.loads(schedule["Target"]["Input"]) == {"SecretId": stack.deployment.key_secret_arn}

    # The token secret's next rotation mints with the new key, and Google accepts the token.
    stack.cloud.google.requests.clear()
    assert {e.status for e in rotate_on_schedule(stack.cloud, stack.deployment)} == {"SUCCEEDED"}
    assert signing_key_ids(stack.cloud.google.requests) == {new}
    assert token_valid(stack)


# --- 2. Google's 10-key limit --------------------------------------------------------------------


def test_an_account_at_google_s_10_key_limit_refuses_the_key_rotation_until_a_key_is_deleted(
    key_stack: Stack,
) -> None:
    stack, google = key_stack, key_stack.cloud.google
    email = stack.account.client_email
    in_use = key_in_use(stack)
    # Later that day someone deletes the stack's standby by hand, and keys made outside the
    # stack fill the account: the rotation has no key of its own to retire and Google refuses
    # an eleventh.
    stack.cloud.clock.advance(LATER.total_seconds())
    for key in at_google(stack) - {in_use}:
        google.revoke_key(key)
    others = [google.create_service_account(email) for _ in range(KEY_LIMIT - 1)]
    try:
        version_in_use = stack.current_version()

        [refused] = rotate_key(stack)

        assert (steps_of([refused]), refused.error) == (
            [("createSecret", "FAILED")],
            "KeyLimitReachedError",
        )
        [notice] = stack.notices()
        message = notice["Message"]
        assert (message["Step"], message["Error"]) == ("createSecret", "KeyLimitReachedError")
        assert message["Runbook"] == "docs/runbook.md#keylimitreachederror"
        assert key_id(stack) == in_use
        refused_keys = at_google(stack)
        assert refused_keys == {in_use} | {other.private_key_id for other in others}

        # The token secrets keep rotating with the key in use.
        assert {e.status for e in rotate_on_schedule(stack.cloud, stack.deployment)} == {
            "SUCCEEDED"
        }
        assert stack.current_version() != version_in_use
        assert token_valid(stack)

        # One key deleted at Google: the retry the notice promised renews the key.
        google.revoke_key(others.pop().private_key_id)
        retry_at = due_of(key_schedule(stack))
        assert message["NextAttempt"].startswith(
            f"RotateSecret runs again at {retry_at:%Y-%m-%dT%H:%M:%S}"
        )
        stack.cloud.clock.advance_to(retry_at.timestamp())
        [retry] = refresh_scheduler(stack).fire_due()

        assert retry.error_code == "InvalidRequestException", "RotateSecret re-attempts it"
        renewed = key_id(stack)
        assert renewed != in_use
        assert key_id(stack, PREVIOUS) == in_use
        assert google_accepts(stack, renewed)
        [recovered] = stack.notices()
        assert recovered["Subject"].startswith("Google token rotation recovered (")
        assert len(at_google(stack)) == KEY_LIMIT

        # What the refusal told the user: every key it found, and the commands to free a place.
        cause = message["Cause"]
        assert all(shown(key) in cause for key in refused_keys)
        assert f"gcloud iam service-accounts keys list --iam-account={email}" in cause
        assert f"gcloud iam service-accounts keys delete KEY_ID --iam-account={email}'" in cause
    finally:
        for other in {other.private_key_id for other in others} & at_google(stack):
            google.revoke_key(other)


def test_a_key_someone_else_makes_on_the_account_just_after_a_rotation_is_never_deleted(
    key_stack: Stack,
) -> None:
    """The account is shared: a key made there by hand (for another application, say) is not
    the stack's to delete, however soon after the stack's own keys.create it was made."""
    stack, google = key_stack, key_stack.cloud.google
    assert steps_of(rotate_key(stack)) == [(step, "SUCCEEDED") for step in STEPS]
    theirs = google.create_service_account(stack.account.client_email).private_key_id
    try:
        assert steps_of(rotate_key(stack)) == [(step, "SUCCEEDED") for step in STEPS]

        assert at_google(stack) == held(stack) | {theirs}
    finally:
        if theirs in at_google(stack):
            google.revoke_key(theirs)


# --- 4. a key deleted behind the stack's back --------------------------------------------------


def test_a_key_deleted_by_someone_else_is_replaced_with_the_standby_and_said_once(
    key_stack: Stack,
) -> None:
    stack, google = key_stack, key_stack.cloud.google
    with_standby(stack)
    deleted, standby = key_in_use(stack), key_id(stack, PREVIOUS)

    google.revoke_key(deleted)

    # The token secret's next rotation mints with the standby and starts the key's rotation,
    # which replaces the deleted key: the token never stops being valid.
    try:
        assert {e.status for e in rotate_on_schedule(stack.cloud, stack.deployment)} == {
            "SUCCEEDED"
        }
        assert token_valid(stack)
        replacement = key_id(stack)
        assert replacement not in (deleted, standby)
        assert google_accepts(stack, replacement)
        [notice] = stack.notices()
        assert notice["Subject"].startswith("Google service-account key replaced (")
        message = notice["Message"]
        assert (message["RefusedKey"], message["NewKey"]) == (shown(deleted), shown(replacement))
        assert message["Runbook"] == "docs/runbook.md#key-replaced"
        # No key of the stack is left behind at Google: the standby that made the replacement
        # is one the key secret's labels still hold, so a later rotation deletes it.
        assert at_google(stack) == held(stack)
    finally:
        # Whatever this test found, the tests after it start from the stack's own keys only.
        for orphan in at_google(stack) - held(stack):
            google.revoke_key(orphan)


def test_a_first_key_deleted_with_no_standby_fails_with_a_notice_naming_the_fix(
    deploy_stack: StackFactory,
) -> None:
    stack = deploy_stack(parameters={"KeyRotationDays": str(ROTATION_DAYS)})
    assert {e.status for e in rotate_on_schedule(stack.cloud, stack.deployment)} == {"SUCCEEDED"}
    in_use = stack.current()
    assert key_id(stack, PREVIOUS) is None

    stack.cloud.google.revoke_key(stack.account.private_key_id)
    [failed] = rotate_key(stack)

    assert (steps_of([failed]), failed.error) == (
        [("createSecret", "FAILED")],
        "GoogleGrantRejectedError",
    )
    [notice] = stack.notices()
    message = notice["Message"]
    assert (message["Step"], message["Error"]) == ("createSecret", "GoogleGrantRejectedError")
    assert "invalid_grant" in message["Cause"]
    assert "service-account key is current and enabled" in message["Cause"]
    # The runbook's entry is the fix: a new key made and put in the key secret.
    assert message["Runbook"] == "docs/runbook.md#googlegrantrejectederror"
    assert key_id(stack) == stack.account.private_key_id
    # The token in use was minted before the key went: it stays valid until it expires.
    expires = datetime.fromisoformat(in_use["expires_at"])
    stack.cloud.clock.advance_to((expires - timedelta(minutes=1)).timestamp())
    assert stack.cloud.google.token_info(in_use["GOOGLE_ACCESS_TOKEN"]) is not None


# --- 4b. a new key Google does not accept yet ----------------------------------------------------

NEW_KEY_WAITS = [5.0, 7.5, 11.25, 16.875, 25.3125, 37.96875]
"""TestSecret's Retry on NewKeyNotYetAcceptedError: 5 s, 1.5 times longer each time, six retries
(104 s in all, within the core's 180-s bound for a new key)."""


@contextlib.contextmanager
def retry_waits_on_the_clock(stack: Stack) -> Iterator[list[float]]:
    """The state machine's Retry waits pass on the simulated clock, where Google's key
    propagation is measured, instead of taking no time; the waits taken are yielded."""
    corrections = stack.cloud.corrections
    corrections.retry_waits.clear()
    corrections.retry_clock = stack.cloud.clock
    try:
        yield corrections.retry_waits
    finally:
        corrections.retry_clock = None


def test_a_new_key_google_accepts_after_a_while_is_retried_by_the_state_machine_until_it_is(
    key_stack: Stack,
) -> None:
    """Google takes 20 s to accept the new key: testSecret fails three times with
    NewKeyNotYetAcceptedError, the state machine waits 5, 7.5 and 11.25 s, and the fourth try
    promotes the key, with no notice."""
    stack = key_stack
    before = key_in_use(stack)
    stack.cloud.google.key_propagation_seconds = 20

    with retry_waits_on_the_clock(stack) as waits:
        found = rotate_key(stack)

    assert steps_of(found) == [(step, "SUCCEEDED") for step in STEPS]
    tested = found[STEPS.index("testSecret")]
    assert step_attempts(tested.task_attempts) == {"TestSecret": 4}
    assert waits == NEW_KEY_WAITS[:3]
    refusals = [
        event["taskFailedEventDetails"]["error"]
        for event in tested.history
        if event["type"] == "TaskFailed"
    ]
    assert refusals == ["NewKeyNotYetAcceptedError"] * 3
    assert key_id(stack) not in (None, before)
    assert stack.notices() == []


def test_a_new_key_google_still_refuses_after_six_retries_fails_with_its_runbook_entry(
    key_stack: Stack,
) -> None:
    """Past the six retries (104 s of waits) the execution fails and says so once; AWSCURRENT keeps
    the key that works, and the rotation Secrets Manager tries again completes once Google
    accepts the key it made."""
    stack = key_stack
    before = key_in_use(stack)
    stack.cloud.google.key_propagation_seconds = 150

    with retry_waits_on_the_clock(stack) as waits:
        found = rotate_key(stack)

    assert steps_of(found)[-1] == ("testSecret", "FAILED")
    assert found[-1].error == "NewKeyNotYetAcceptedError"
    assert waits == NEW_KEY_WAITS
    [notice] = stack.notices()
    assert notice["Message"]["Runbook"] == "docs/runbook.md#newkeynotyetacceptederror"
    assert key_in_use(stack) == before
    assert google_accepts(stack, before)
    made = key_id(stack, PENDING)
    assert made is not None

    # Secrets Manager re-attempts the same rotation (RotateSecret is refused meanwhile); a minute
    # on, Google accepts the key, still within the 180-s bound, and the re-attempt promotes it.
    stack.cloud.clock.advance(60)
    entry = stack.worker("RotationEntryFunction")
    results = [entry.invoke({**found[0].input, "Step": step}) for step in STEPS]

    assert [result.error for result in results] == [None] * len(STEPS)
    assert key_in_use(stack) == made
    assert at_google(stack) == {before, made}


# --- 5. a crash at each step ---------------------------------------------------------------------


def is_keys_create(request: RecordedRequest) -> bool:
    return request.method == "POST" and request.path.endswith("/keys")


def is_tokeninfo(request: RecordedRequest) -> bool:
    return request.path == "/tokeninfo"


CRASHES: dict[str, Callable[[Stack], AbstractContextManager[Crash]]] = {
    # Google made the key; the function dies before it is stored (a key only Google holds).
    "createSecret": lambda stack: crash_after_google_answers(
        stack.worker("CreateSecretFunction"), stack.cloud.google, is_keys_create
    ),
    # The function dies reading the new key.
    "setSecret": lambda stack: crash_after_get_secret_value(
        stack.worker("SetSecretFunction"), stack.deployment.key_secret_arn, PENDING
    ),
    # The new key minted and tokeninfo answered; the function dies before it says so.
    "testSecret": lambda stack: crash_after_google_answers(
        stack.worker("TestSecretFunction"), stack.cloud.google, is_tokeninfo
    ),
    # AWSCURRENT moved to the new key; the function dies before it hears so.
    "finishSecret": lambda stack: crash_after_update_secret_version_stage(
        stack.worker("FinishSecretFunction"), stack.deployment.key_secret_arn
    ),
}


def test_a_crash_during_each_step_of_the_key_rotation_is_retried_and_leaves_no_key_behind(
    key_stack: Stack,
) -> None:
    """Each step's Lambda dies once, at its worst moment, in one rotation."""
    stack = key_stack
    before = key_in_use(stack)
    assert google_accepts(stack, before)

    with contextlib.ExitStack() as faults:
        crashes = {step: faults.enter_context(CRASHES[step](stack)) for step in STEPS}
        found = rotate_key(stack)

    assert [step for step, crash in crashes.items() if not crash.fired] == []
    assert steps_of(found) == [(step, "SUCCEEDED") for step in STEPS]
    for execution, task in zip(found, TASKS, strict=True):
        failures = [
            event["taskFailedEventDetails"]["error"]
            for event in execution.history
            if event["type"] == "TaskFailed"
            # The key's first follow-up: UpdateSchedule finds none, CreateSchedule makes it.
            and event["taskFailedEventDetails"]["error"] != "Scheduler.ResourceNotFoundException"
        ]
        assert (task, failures) == (task, ["Runtime.ExitError"])
        assert execution.task_attempts[task] == 2
    new = key_in_use(stack)
    assert new != before
    assert key_id(stack, PREVIOUS) == before
    assert google_accepts(stack, new)
    # Exactly the keys AWSCURRENT and AWSPREVIOUS hold exist at Google: no orphan.
    assert at_google(stack) == {before, new}
    assert stack.notices() == []


# --- 3. a key expiring (last: the keys it leaves expire) -----------------------------------------

POLICY_HOURS = 1
"""The organisation's key-expiry policy, compressed from Google's 8 hours at least (the emulator
takes any) so that the walk past the key's expiry takes a few token refreshes, not ten: the key
is due a quarter of its life before it expires, as an 8-hour key is after 6 hours."""
WALK_STEP = timedelta(minutes=15)


def published(stack: Stack, metric: str, since_line: int) -> list[float]:
    """The values the stack's sweep published for `metric` (CloudWatch embedded metric format)."""
    values: list[float] = []
    for name, line in stack.cloud.logs.lines[since_line:]:
        if name != stack.deployment.functions["FreshnessSweepFunction"] or '"_aws"' not in line:
            continue
        document = json.loads(line)
        if metric in document and document.get("Stack") == stack.deployment.stack_name:
            value = document[metric]
            values += value if isinstance(value, list) else [value]
    return values


def key_rotations(found: list[ExecutionSummary], key_secret_arn: str) -> set[str]:
    """The versions of the key secret whose rotations started among `found`."""
    return {
        execution.input["ClientRequestToken"]
        for execution in found
        if execution.input.get("SecretId") == key_secret_arn
        and execution.name.startswith("createSecret-")
    }


def test_a_key_an_expiry_policy_limits_is_replaced_before_it_expires_and_tokens_stay_valid(
    key_stack: Stack,
) -> None:
    stack, google = key_stack, key_stack.cloud.google
    email = stack.account.client_email
    google.set_key_expiry_policy(POLICY_HOURS)
    assert steps_of(rotate_key(stack)) == [(step, "SUCCEEDED") for step in STEPS]
    assert {e.status for e in rotate_on_schedule(stack.cloud, stack.deployment)} == {"SUCCEEDED"}
    first_key = key_in_use(stack)
    seen = {key.key_id: key for key in google.user_managed_keys(email)}
    expires = seen[first_key].valid_before
    key_tags = stack.cloud.client("secretsmanager").describe_secret(
        SecretId=stack.deployment.key_secret_arn
    )["Tags"]
    assert {"Key": KEY_VALID_BEFORE_TAG, "Value": rfc3339(expires)} in key_tags
    # The key's own schedule lost: only the sweep can replace it in time.
    stack.cloud.client("scheduler").delete_schedule(
        GroupName=stack.deployment.refs["RefreshScheduleGroup"],
        Name=schedule_name(stack.deployment.key_secret_arn),
    )
    first_line, executed = len(stack.cloud.logs.lines), len(stack.executions())
    invoked = len(stack.cloud.invocations)
    scheduler = LocalScheduler(stack.cloud, stack=stack.deployment)

    # Time passes as EventBridge Scheduler lets it pass: the sweep every few minutes, the
    # refresh and key schedules when due. The token applications read is valid all along.
    keys_in_use = [first_key]
    while stack.cloud.clock.now() < expires:
        stack.cloud.clock.advance(WALK_STEP.total_seconds())
        scheduler.fire_due()
        assert token_valid(stack), f"no valid token at {simulated_now(stack)}"
        if key_in_use(stack) != keys_in_use[-1]:
            keys_in_use.append(key_in_use(stack))
        seen |= {key.key_id: key for key in google.user_managed_keys(email)}

    # The key was replaced before it expired, by one rotation the sweep started when it was due.
    [_, successor] = keys_in_use
    sweeps = [
        invocation.result
        for invocation in stack.cloud.invocations[invoked:]
        if invocation.function_name == stack.deployment.functions["FreshnessSweepFunction"]
    ]
    assert {"Action": "rotate", "Reason": "service-account key due"}.items() <= next(
        run["ServiceAccountKey"].items()
        for run in sweeps
        if isinstance(run, dict) and run["ServiceAccountKey"]["Action"] != "nothing"
    )
    assert seen[successor].valid_after < expires
    walk = stack.executions()[executed:]
    assert len(key_rotations(walk, stack.deployment.key_secret_arn)) == 1
    assert {execution.status for execution in walk} == {"SUCCEEDED"}
    assert at_google(stack) == held(stack)
    # Past the first key's expiry, the token secret mints with its successor.
    google.requests.clear()
    assert {e.status for e in rotate_on_schedule(stack.cloud, stack.deployment)} == {"SUCCEEDED"}
    assert signing_key_ids(google.requests) == {successor}
    assert stack.notices() == []
    # The sweep said how many days the key had left: under the quarter of its life.
    days_left = published(stack, "ServiceAccountKeyDaysLeft", first_line)
    assert days_left
    assert 0 < days_left[0] <= POLICY_HOURS * 0.75 / 24
    assert 0 < published(stack, "ServiceAccountKeyDaysToExpiry", first_line)[0] <= POLICY_HOURS / 24
