"""`python -m localcloud up` as a developer watches it, and the commands that run on it from
other processes: one `up` subprocess for the module, driven through boto3 and the CLI."""

import datetime
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from localcloud.deployment import ACCOUNT_ID
from localcloud.remote import SSM_PARAMETER, UpDescription
from tests.localcloud.up_process import (
    UpProcess,
    free_port,
    json_output,
    localcloud,
)

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
STEP_FUNCTIONS = (
    "CreateSecretFunction",
    "SetSecretFunction",
    "TestSecretFunction",
    "FinishSecretFunction",
)
SAMPLE_TOKEN = "8f14e45f-ceea-467f-a8e5-1b0b3c2d9e01"
NOTICE_SUBJECT = "Google token rotation failed at createSecret (google/access-token)"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    process = UpProcess(tmp_path_factory.mktemp("up") / "up.json")
    try:
        started = time.monotonic()
        process.wait_ready()
        print(f"up was ready after {time.monotonic() - started:.2f} s")
        process.pause_the_sweep()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def described(up: UpProcess) -> UpDescription:
    return up.description()


@pytest.fixture
def clean_secret(up: UpProcess, described: UpDescription) -> Iterator[None]:
    """No AWSPENDING left on a non-current version by an earlier test, before and after."""
    _clear_pending(up, described.refs["TokenSecret"])
    yield
    _clear_pending(up, described.refs["TokenSecret"])


def _clear_pending(up: UpProcess, secret_arn: str) -> None:
    secretsmanager = up.client("secretsmanager")
    stages = secretsmanager.describe_secret(SecretId=secret_arn)["VersionIdsToStages"]
    for version, labels in stages.items():
        if "AWSPENDING" in labels and "AWSCURRENT" not in labels:
            secretsmanager.update_secret_version_stage(
                SecretId=secret_arn, VersionStage="AWSPENDING", RemoveFromVersionId=version
            )


def _current(up: UpProcess, secret_arn: str) -> tuple[str, str]:
    """(version id, access token) of AWSCURRENT."""
    answer = up.client("secretsmanager").get_secret_value(
        SecretId=secret_arn, VersionStage="AWSCURRENT"
    )
    return answer["VersionId"], json.loads(answer["SecretString"])["GOOGLE_ACCESS_TOKEN"]


def _token_info(described: UpDescription, access_token: str) -> dict[str, str] | None:
    """tokeninfo at the URL `up` printed; None when it refuses the token."""
    answer = urllib3.PoolManager().request(
        "POST",
        described.google_tokeninfo_url,
        fields={"access_token": access_token},
        encode_multipart=False,
    )
    if answer.status != 200:
        return None
    info: dict[str, str] = json.loads(answer.data)
    return info


def _assert_no_secret_in_output(up: UpProcess, described: UpDescription) -> None:
    """Neither the current token nor any piece of the stored key reached `up`'s output."""
    _, token = _current(up, described.refs["TokenSecret"])
    key = json.loads(
        up.client("secretsmanager").get_secret_value(
            SecretId=described.refs["ServiceAccountKeySecret"], VersionStage="AWSCURRENT"
        )["SecretString"]
    )
    body = "".join(line for line in key["private_key"].splitlines() if "-----" not in line)
    output = up.output()
    assert token not in output
    assert body[100:160] not in output
    assert body[-120:-60] not in output


# --- the banner and the description ----------------------------------------------------------


def test_the_banner_says_where_everything_is_and_what_to_paste(
    up: UpProcess, described: UpDescription
) -> None:
    banner = up.output(0)
    token_secret = described.refs["TokenSecret"]
    machine = described.refs["RotationStateMachine"]

    assert f"  export AWS_ENDPOINT_URL=http://127.0.0.1:{up.port}\n" in banner
    # Not the default state file: the banner says how the other commands find this `up`.
    assert f"  export LOCALCLOUD_STATE_FILE={up.state_file.resolve()}\n" in banner
    for name in ("AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert f"  export {name}=" in banner
    assert f"  export GOOGLE_TOKENINFO_URL={described.google_tokeninfo_url}\n" in banner
    assert re.search(r"Google token\s+http://127\.0\.0\.1:\d+/token\n", banner)
    assert f" {described.google_tokeninfo_url}\n" in banner
    assert (
        f"aws secretsmanager get-secret-value --secret-id {token_secret} --version-stage AWSCURRENT"
    ) in banner
    assert f"aws secretsmanager rotate-secret --secret-id {token_secret}" in banner
    assert f"aws stepfunctions list-executions --state-machine-arn {machine}" in banner
    start = re.search(r"aws stepfunctions start-execution .* --input '(.*)'", banner)
    assert start is not None
    assert json.loads(start.group(1)) == {"SecretId": token_secret}
    assert "invoke CreateSecretFunction -e events/steps/create_secret.json --begin-rotation" in (
        banner
    )
    assert re.search(r"\n  schedules\s+fire here when due, on this cloud's clock", banner)


def test_the_banner_and_the_description_tell_the_truth(
    up: UpProcess, described: UpDescription
) -> None:
    """The emulator answers at the banner's tokeninfo URL (the rotation test shows it is the
    functions' Google), and the SSM parameter (for --endpoint) says what the state file says."""
    assert _token_info(described, "not-a-token") is None
    assert described.pid == up.pid
    assert described.endpoint == up.endpoint
    parameter = up.client("ssm").get_parameter(Name=SSM_PARAMETER)["Parameter"]["Value"]
    assert UpDescription.from_json(parameter) == described


# --- what `up` streams -------------------------------------------------------------------------


@pytest.mark.usefixtures("clean_secret")
def test_a_rotation_streams_each_functions_log_lines_and_each_execution_end(
    up: UpProcess, described: UpDescription
) -> None:
    mark = up.mark()
    started = time.monotonic()

    version = up.client("secretsmanager").rotate_secret(SecretId=described.refs["TokenSecret"])[
        "VersionId"
    ]

    print(f"rotation against up: {time.monotonic() - started:.2f} s")
    short = version[:8]
    for logical_id in ("RotationEntryFunction", *STEP_FUNCTIONS):
        up.wait_for(rf"^\S+ \[{logical_id}\]\s+INFO\s+.*\bversion={short}\b", start=mark)
    for step in STEPS:
        up.wait_for(rf"^\S+ \[execution\]\s+{step}-{version}-1 SUCCEEDED in \d", start=mark)
    current_version, token = _current(up, described.refs["TokenSecret"])
    assert current_version == version
    info = _token_info(described, token)
    assert info is not None
    assert info["scope"] == "https://www.googleapis.com/auth/calendar.readonly"
    streamed = up.output(mark)
    # Compact: powertools' context keys stay out, each record is one line.
    assert '"function_arn"' not in streamed
    assert "function_request_id" not in streamed
    _assert_no_secret_in_output(up, described)


@pytest.mark.usefixtures("clean_secret")
def test_a_failing_rotation_shows_its_notice_and_its_failed_execution(
    up: UpProcess, described: UpDescription
) -> None:
    secretsmanager = up.client("secretsmanager")
    key_secret = described.refs["ServiceAccountKeySecret"]
    key_file = secretsmanager.get_secret_value(SecretId=key_secret, VersionStage="AWSCURRENT")[
        "SecretString"
    ]
    secretsmanager.put_secret_value(SecretId=key_secret, SecretString="{}")
    try:
        mark = up.mark()
        version = secretsmanager.rotate_secret(SecretId=described.refs["TokenSecret"])["VersionId"]

        notice = up.wait_for(rf"^\S+ \[notice\]\s+{re.escape(NOTICE_SUBJECT)}$", start=mark)
        up.wait_for(r'^    \s*"Step": "createSecret",$', start=notice)
        up.wait_for(
            rf'^    \s*"SecretId": "{re.escape(described.refs["TokenSecret"])}",$', start=notice
        )
        up.wait_for(
            rf"^\S+ \[execution\]\s+createSecret-{version}-1 FAILED in \d+\.\d+ s: \w+Error: ",
            start=mark,
        )
        up.wait_for(r"^\S+ \[CreateSecretFunction\]\s+ERROR\s+createSecret failed ", start=mark)
    finally:
        secretsmanager.put_secret_value(SecretId=key_secret, SecretString=key_file)
    _assert_no_secret_in_output(up, described)


@pytest.mark.usefixtures("clean_secret")
def test_a_refresh_schedule_fires_under_up_when_due(
    up: UpProcess, described: UpDescription
) -> None:
    """What the state machine upserts after a rotation (a one-time RotateSecret in the stack's
    refresh group), due in a few seconds: `up` fires it on its clock, unmoved so real, says so,
    and the rotation runs."""
    stack = described.stack_name
    scheduler_api = up.client("scheduler")
    groups = scheduler_api.list_schedule_groups(NamePrefix=stack)["ScheduleGroups"]
    (group,) = [found["Name"] for found in groups]
    role_arn = up.client("iam").get_role(RoleName=f"{stack}-RefreshSchedulerRole")["Role"]["Arn"]
    name = f"test-refresh-{uuid.uuid4().hex[:8]}"
    due = datetime.datetime.fromtimestamp(int(time.time()) + 2, datetime.UTC)
    mark = up.mark()

    scheduler_api.create_schedule(
        GroupName=group,
        Name=name,
        ScheduleExpression=f"at({due:%Y-%m-%dT%H:%M:%S})",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": "arn:aws:scheduler:::aws-sdk:secretsmanager:rotateSecret",
            "RoleArn": role_arn,
            "Input": json.dumps({"SecretId": described.refs["TokenSecret"]}),
        },
    )

    fired = up.wait_for(
        rf"^\S+ \[scheduler\]\s+{re.escape(group)}/{name} fired secretsmanager:rotateSecret "
        rf"\(due {due.astimezone():%H:%M:%S}\): ok$",
        start=mark,
    )
    # RotateSecret runs the rotation inside the call: it had ended when the firing was said.
    up.wait_for(r"^\S+ \[execution\]\s+finishSecret-\S+ SUCCEEDED in ", start=mark)
    assert fired > mark
    assert name not in {
        schedule["Name"] for schedule in scheduler_api.list_schedules(GroupName=group)["Schedules"]
    }


def test_a_schedule_up_cannot_fire_is_said_not_skipped_silently(
    up: UpProcess, described: UpDescription
) -> None:
    name = f"test-cron-{uuid.uuid4().hex[:8]}"
    mark = up.mark()

    up.client("scheduler").create_schedule(
        Name=name,
        ScheduleExpression="cron(0 8 * * ? *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": "arn:aws:scheduler:::aws-sdk:secretsmanager:rotateSecret",
            "RoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/any",
            "Input": json.dumps({"SecretId": described.refs["TokenSecret"]}),
        },
    )

    up.wait_for(
        rf"^\S+ \[scheduler\]\s+default/{name} is not fired by the local cloud: only at\(\) "
        r"and rate\(N minutes\|hours\|days\) schedules are fired locally, not cron\(0 8 ",
        start=mark,
    )
    up.client("scheduler").delete_schedule(Name=name)


# --- commands in other processes, on the running `up` ----------------------------------------


@pytest.mark.usefixtures("clean_secret")
def test_invoke_chains_the_sample_step_events_on_the_running_up(
    up: UpProcess, described: UpDescription
) -> None:
    """Each invoke is its own process; all four steps act on the one cloud `up` serves (a fresh
    cloud per command would fail setSecret: no pending value)."""
    mark = up.mark()
    state = str(up.state_file)
    # As the banner says: export LOCALCLOUD_STATE_FILE, then paste the commands.
    exported = {"LOCALCLOUD_STATE_FILE": state}
    actions = []
    for logical_id, step in zip(STEP_FUNCTIONS, STEPS, strict=True):
        event = f"events/steps/{step.removesuffix('Secret')}_secret.json"
        begin = ["--begin-rotation"] if step == "createSecret" else []
        completed = localcloud("invoke", logical_id, "-e", event, *begin, environment=exported)
        assert f"on the running `up` at {up.endpoint} (pid {up.pid})" in completed.stderr
        outcome = json_output(completed)
        assert outcome["VersionId"] == SAMPLE_TOKEN
        actions.append(outcome["Action"])

    assert actions == ["created", "checked", "verified", "promoted"]
    assert _current(up, described.refs["TokenSecret"])[0] == SAMPLE_TOKEN
    for logical_id in STEP_FUNCTIONS:
        up.wait_for(rf"\[{logical_id}\]\s+INFO\s+.*\bversion={SAMPLE_TOKEN[:8]}\b", start=mark)

    # The rotation finished: beginning it again must not take AWSCURRENT off its version.
    again = localcloud(
        "invoke",
        "CreateSecretFunction",
        "-e",
        "events/steps/create_secret.json",
        "--begin-rotation",
        "--state-file",
        state,
    )
    assert again.returncode == 2, again.stderr
    assert "never begins a rotation on a used ClientRequestToken" in again.stderr
    assert _current(up, described.refs["TokenSecret"])[0] == SAMPLE_TOKEN
    _assert_no_secret_in_output(up, described)


@pytest.mark.usefixtures("clean_secret")
def test_start_execution_runs_on_the_up_named_by_its_endpoint(
    up: UpProcess, described: UpDescription, tmp_path: Path
) -> None:
    mark = up.mark()

    summary = json_output(
        localcloud(
            "start-execution",
            "-e",
            "events/statemachine/manual_rotation.json",
            "--endpoint",
            up.endpoint,
            # No state file there: the endpoint alone finds the rest (its SSM parameter).
            "--state-file",
            str(tmp_path / "none.json"),
        )
    )

    assert summary["status"] == "SUCCEEDED"
    up.wait_for(rf"^\S+ \[execution\]\s+{re.escape(summary['name'])} SUCCEEDED in ", start=mark)
    up.wait_for(r"\[FinishSecretFunction\]\s+INFO\s+.*\bmanual=true\b", start=mark)
    executions = up.client("stepfunctions").list_executions(
        stateMachineArn=described.refs["RotationStateMachine"]
    )["executions"]
    assert summary["name"] in {e["name"] for e in executions}


def test_an_endpoint_where_no_up_answers_is_refused_at_once(tmp_path: Path) -> None:
    started = time.monotonic()

    completed = localcloud(
        "invoke",
        "CreateSecretFunction",
        "-e",
        "events/steps/create_secret.json",
        "--endpoint",
        f"http://127.0.0.1:{free_port()}",
    )

    assert completed.returncode == 2
    assert "no local cloud `up` answers at" in completed.stderr
    assert time.monotonic() - started < 20


# --- what `up` refuses -----------------------------------------------------------------------


def test_a_second_up_on_the_same_state_file_is_refused(up: UpProcess) -> None:
    completed = localcloud("up", "--state-file", str(up.state_file), timeout=60)

    assert completed.returncode == 1
    assert f"another `up` (pid {up.pid}) serves {up.endpoint}" in completed.stderr
    assert up.description().pid == up.pid


def test_a_taken_port_is_refused_instead_of_hanging(up: UpProcess, tmp_path: Path) -> None:
    state = tmp_path / "up.json"

    completed = localcloud("up", "--port", str(up.port), "--state-file", str(state), timeout=60)

    assert completed.returncode == 1
    assert f"cannot serve on 127.0.0.1:{up.port}" in completed.stderr
    assert not state.exists()


def test_scopes_outside_the_template_pattern_are_refused(tmp_path: Path) -> None:
    state = tmp_path / "up.json"

    completed = localcloud("up", "--scopes", "a\tb", "--state-file", str(state), timeout=60)

    assert completed.returncode == 2
    assert "parameter GoogleScopes" in completed.stderr
    assert not state.exists()
