"""The runbook rehearsed on a running `up`, as an operator would: cause a failure the way
docs/runbook.md's "Rehearse on the local cloud" says, read the notice's Runbook entry, run that
entry's commands verbatim in a shell, and see the rotation recover."""

import copy
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from localcloud.deployment import client_environment
from localcloud.template import PROJECT_ROOT
from rotation_core.runbook import runbook_link
from tests.doc_blocks import doc_block
from tests.localcloud.up_process import UpProcess, clean_environment, localcloud
from tests.runbook_page import RUNBOOK, sections

PAGE = "docs/runbook.md"
GOOGLE_CLIENT = (
    PROJECT_ROOT / "functions" / "rotation_core" / "rotation_core" / "google_client.py"
).read_text()
"""Where Google's refusals are turned into the notice's Cause, with the fix they name."""
REHEARSE = sections()["Rehearse on the local cloud"]
STAND_INS = dict(re.findall(r"^\| `(gcloud [^`]+)` \| `([^`]+)` \|$", REHEARSE, re.MULTILINE))
"""What the page tells the operator to run on the local cloud in place of a gcloud line."""
VARIABLES = ("STACK", "SECRET", "KEY_SECRET", "STATE_MACHINE", "SCHEDULE_GROUP")


def as_rehearsed(block: str) -> str:
    """The block with each gcloud line replaced by the page's local stand-in for it."""
    for line in block.splitlines():
        if line.startswith("gcloud ") and line not in STAND_INS:
            pytest.fail(f"the page gives no local stand-in for: {line}")
    return "\n".join(STAND_INS.get(line, line) for line in block.splitlines())


class Operator:
    """A shell at the project's root with what the page says to set: `up`'s exports, then the
    variables "Before you start" reads from the stack's outputs."""

    def __init__(self, up: UpProcess) -> None:
        description = up.description()
        environment = clean_environment()
        # The AWS CLI and Python the README's `make venv` installs.
        environment["PATH"] = f"{PROJECT_ROOT / '.venv' / 'bin'}:{environment['PATH']}"
        self.up = up
        self.environment = {
            **environment,
            **client_environment(up.endpoint),
            "GOOGLE_TOKENINFO_URL": description.google_tokeninfo_url,
            "LOCALCLOUD_STATE_FILE": str(up.state_file),
        }
        before = doc_block(PAGE, "sh", "output TokenSecretArn").text
        # The shell keeps the block's `output` function: later entries call it.
        self.functions = "\n".join(line for line in before.splitlines() if "() {" in line)
        shown = " ".join(f'"${name}"' for name in VARIABLES)
        values = self.run(f"{before}printf '%s\\n' {shown}").stdout.splitlines()
        self.variables = dict(zip(VARIABLES, values, strict=True))
        refs = description.refs
        assert self.variables["SECRET"] == refs["TokenSecret"]
        assert self.variables["KEY_SECRET"] == refs["ServiceAccountKeySecret"]
        assert self.variables["STATE_MACHINE"] == refs["RotationStateMachine"]
        self.environment |= self.variables

    def new_shell(self) -> "Operator":
        """Another shell with the same settings: what one test exports stays in its own."""
        shell = copy.copy(self)
        shell.environment = dict(self.environment)
        return shell

    def run(self, block: str, *, expect: int = 0) -> subprocess.CompletedProcess[str]:
        """The block as typed into a shell (stopping at the first failing command)."""
        functions = getattr(self, "functions", "")
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", f"{functions}\n{block}"],
            cwd=PROJECT_ROOT,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == expect, f"{block}\n{result.stdout}\n{result.stderr}"
        return result

    def notice(self, anchor: str, start: int, timeout: float = 60.0) -> int:
        """Waits for a notice on `up`'s console naming the entry `anchor`."""
        link = re.escape(json.dumps(runbook_link(anchor)))
        return self.up.wait_for(rf'"Runbook": {link}', start=start, timeout=timeout)

    def rotate_now(self) -> None:
        result = self.run(doc_block(PAGE, "sh", '--name "manual-').text)
        assert json.loads(result.stdout) == {"Status": "SUCCEEDED", "Error": None}

    def confirm_recovered(self) -> None:
        confirm = doc_block(PAGE, "sh", "{Stages: VersionIdsToStages, Status:").text
        shown: Any = json.loads(self.run(confirm).stdout)
        current = [v for v, stages in shown["Stages"].items() if "AWSCURRENT" in stages]
        pending = [v for v, stages in shown["Stages"].items() if "AWSPENDING" in stages]
        assert len(current) == 1
        assert pending in ([], current)
        tags = {tag["Key"] for tag in shown["Status"]}
        assert "token-rotation-status:failing-since" not in tags


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    process = UpProcess(tmp_path_factory.mktemp("up") / "up.json")
    try:
        process.wait_ready()
        process.pause_the_sweep()
        yield process
    finally:
        process.stop()
        (PROJECT_ROOT / "key.json").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def _before_you_start(up: UpProcess) -> Operator:
    """The page's "Before you start" runs once (a few seconds of AWS CLI calls): the outputs it
    reads are the same for every test of the module."""
    return Operator(up)


@pytest.fixture
def operator(_before_you_start: Operator) -> Operator:
    return _before_you_start.new_shell()


def key_fix() -> str:
    return as_rehearsed(doc_block(PAGE, "sh", "gcloud iam service-accounts keys create").text)


def test_a_deleted_key_is_fixed_with_its_entrys_commands(operator: Operator) -> None:
    start = operator.up.mark()
    operator.run(doc_block(PAGE, "sh", "google delete-key").text)
    operator.notice("googlegrantrejectederror", start)

    # The refusal the page explains, exactly as it quotes it: normal after a failed rotation.
    refused = operator.run('aws secretsmanager rotate-secret --secret-id "$SECRET"', expect=255)
    quoted = re.search(r"exits 255 with `([^`]+)`", " ".join(RUNBOOK.split()))
    assert quoted is not None
    assert quoted[1] in " ".join(refused.stderr.split())

    recovered = operator.up.mark()
    operator.run(key_fix())
    assert not (PROJECT_ROOT / "key.json").exists()
    operator.rotate_now()
    operator.notice("recovered", recovered)
    operator.confirm_recovered()


def test_the_retry_a_failure_notice_promises_comes_on_up(operator: Operator) -> None:
    start = operator.up.mark()
    operator.run(doc_block(PAGE, "sh", "google delete-key").text)
    at = operator.notice("googlegrantrejectederror", start)
    promised = operator.up.wait_for(r'"NextAttempt": "RotateSecret runs again at ', start=start)
    assert promised < at

    # While the retry is due, the entries' read-only commands, on this failure.
    *_, execution = re.findall(r'"ExecutionArn": "([^"]+)"', operator.up.output(start))
    operator.environment["EXECUTION_ARN"] = execution  # the page: the notice's ExecutionArn
    history = operator.run(doc_block(PAGE, "sh", "get-execution-history").text)
    assert "GoogleGrantRejectedError" in history.stdout
    failed = operator.run(doc_block(PAGE, "sh", "--status-filter FAILED").text)
    assert "createSecret-" in failed.stdout
    operator.run(doc_block(PAGE, "sh", "--query VersionIdsToStages").text)
    operator.run(doc_block(PAGE, "sh", "--query 'Tags'").text)
    operator.run(doc_block(PAGE, "sh", "{Enabled: RotationEnabled").text)
    listed = operator.run(doc_block(PAGE, "sh", "list-secrets --filters").text)
    assert "google/access-token" in listed.stdout
    operator.run(doc_block(PAGE, "sh", "--status-filter TIMED_OUT").text)
    sweep = operator.run(doc_block(PAGE, "sh", "FreshnessSweepSchedule").text)
    assert "FreshnessSweepSchedule\t" in sweep.stdout  # DISABLED here: the tests paused it
    operator.run(doc_block(PAGE, "sh", "output RotationEntryLogGroupName").text)

    # The fix without "rotate now": the retry the notice names does the rest, a minute on (the
    # test moves `up`'s clock there instead of waiting for it).
    operator.run(key_fix())
    clock = f"{operator.up.description().control_url}/clock/advance"
    refused = requests.post(clock, json={"Seconds": 0}, timeout=10)
    assert (refused.status_code, refused.json()) == (
        400,
        {"error": "Seconds must be 1 to 86400, not 0"},
    )
    advanced = requests.post(clock, json={"Seconds": 60}, timeout=10)
    assert advanced.status_code == 200, advanced.text
    fired = operator.up.wait_for(
        r"\[scheduler\].*RefreshScheduleGroup/\S+ fired secretsmanager:rotateSecret",
        start=start,
        timeout=120,
    )
    # As the page says: the retry's RotateSecret is refused, and the rotation re-runs all the same.
    said = operator.up.output(fired).splitlines()[0]
    assert "failed: InvalidRequestException" in said
    assert "expected after a failed rotation: Secrets Manager re-attempts that rotation" in said
    operator.notice("recovered", start)
    operator.confirm_recovered()


def test_a_tag_asking_for_a_scope_the_stack_does_not_grant(operator: Operator) -> None:
    start = operator.up.mark()
    operator.run(doc_block(PAGE, "sh", "Key=token-rotation:scopes,Value=").text)
    operator.notice("configurationerror", start)

    shown = operator.run(doc_block(PAGE, "sh", "untag-resource").text)
    assert "cloud-platform" in shown.stdout
    operator.rotate_now()
    operator.confirm_recovered()


def test_a_wrong_input_and_a_misspelt_step_then_the_right_input(operator: Operator) -> None:
    start = operator.up.mark()
    operator.run(doc_block(PAGE, "sh", "bad-input-").text)
    operator.notice("input-validation", start)
    operator.notice("unknown-step", start)

    operator.rotate_now()
    operator.confirm_recovered()


def test_the_schedule_group_deleted_then_recreated(operator: Operator) -> None:
    start = operator.up.mark()
    operator.run(doc_block(PAGE, "sh", "delete-schedule-group").text)
    operator.notice("next-refresh-not-scheduled", start)

    operator.run(doc_block(PAGE, "sh", "create-schedule-group").text)
    operator.rotate_now()
    counted = operator.run(doc_block(PAGE, "sh", "length(Schedules)").text)
    assert int(counted.stdout) >= 1
    operator.confirm_recovered()


def test_rotation_switched_back_on_and_the_token_asked_about(operator: Operator) -> None:
    rules = re.search(r"sets `(\{[^`]+\})`", " ".join(RUNBOOK.split()))
    assert rules is not None
    operator.environment["ROTATION_RULES"] = rules[1]  # the page: the rules the secret had

    operator.run(doc_block(PAGE, "sh", "--rotation-lambda-arn").text)
    operator.confirm_recovered()
    answer = operator.run(doc_block(PAGE, "sh", "jq -j .GOOGLE_ACCESS_TOKEN").text)
    assert int(json.loads(answer.stdout)["expires_in"]) > 0


def test_a_shorter_token_lifetime_asked_for_by_tag(operator: Operator) -> None:
    """The lifetime fix's AWS half runs; its gcloud half is held to the error that sends
    operators there (gcloud cannot reach the emulator)."""
    block = doc_block(PAGE, "sh", "allowServiceAccountCredentialLifetimeExtension").text
    gcloud, aws = block.splitlines()
    assert "constraints/iam.allowServiceAccountCredentialLifetimeExtension" in gcloud
    assert "iam.allowServiceAccountCredentialLifetimeExtension" in GOOGLE_CLIENT
    try:
        operator.run(aws)
        operator.rotate_now()
        operator.confirm_recovered()
    finally:
        operator.up.client("secretsmanager").untag_resource(
            SecretId=operator.variables["SECRET"], TagKeys=["token-rotation:token-lifetime-seconds"]
        )


def test_the_binding_fix_is_the_command_the_refusal_quotes() -> None:
    """gcloud cannot reach the emulator: the line is held to the one Google's refusal names."""
    [line] = doc_block(PAGE, "sh", "add-iam-policy-binding").commands()
    quoted = "gcloud iam service-accounts add-iam-policy-binding"
    assert line.startswith(f'{quoted} "$TARGET" ')
    assert quoted in GOOGLE_CLIENT
    assert "--role=roles/iam.serviceAccountTokenCreator" in line
    assert "--role=roles/iam.serviceAccountTokenCreator" in GOOGLE_CLIENT


def test_a_google_outage_is_armed_and_ended(operator: Operator) -> None:
    armed = operator.run(doc_block(PAGE, "sh", "google fail /token").text)
    assert json.loads(armed.stdout) == {"Route": "/token", "Status": 503, "Count": 20}

    ended = operator.run(doc_block(PAGE, "sh", "google recover").text)
    assert json.loads(ended.stdout) == {"FailuresDropped": 20}


def test_a_google_action_refused_says_why_in_one_line(operator: Operator) -> None:
    refused = operator.run(
        ".venv/bin/python -m localcloud google fail /token --status 200 --count 3", expect=2
    )

    assert refused.stderr == (
        "google fail refused: Status must be an HTTP error status (400-599), not 200\n"
    )
    unwritable = operator.run(
        ".venv/bin/python -m localcloud google create-key /no/such/dir/key.json", expect=2
    )
    assert unwritable.stderr == "cannot write /no/such/dir/key.json: No such file or directory\n"


def test_a_google_action_without_a_running_up_says_what_to_start(tmp_path: Path) -> None:
    result = localcloud("google", "delete-key", "--state-file", str(tmp_path / "none.json"))

    assert result.returncode == 2
    assert result.stderr.startswith("no running `up` to act on: start `python -m localcloud up`")
    assert result.stderr.count("\n") == 1


def test_the_key_secrets_keys_are_listed_and_an_expiry_policy_is_set(operator: Operator) -> None:
    google = ".venv/bin/python -m localcloud google"
    stored_key = operator.run('aws secretsmanager get-secret-value --secret-id "$KEY_SECRET"')
    stored_key_id = json.loads(json.loads(stored_key.stdout)["SecretString"])["private_key_id"]

    policy = operator.run(f"{google} key-expiry-policy 720")
    operator.run(f"{google} create-key key.json")
    listed = json.loads(operator.run(f"{google} list-keys").stdout)
    lifted = operator.run(f"{google} key-expiry-policy none")
    refused = operator.run(f"{google} key-expiry-policy 0", expect=2)

    assert json.loads(policy.stdout) == {"KeyExpiryHours": 720.0}
    created_id = json.loads((PROJECT_ROOT / "key.json").read_text())["private_key_id"]
    ends = {key["name"].rpartition("/")[2]: key["validBeforeTime"] for key in listed["Keys"]}
    assert ends[stored_key_id] == "9999-12-31T23:59:59Z"
    assert ends[created_id] != "9999-12-31T23:59:59Z"
    assert json.loads(lifted.stdout) == {"KeyExpiryHours": None}
    assert refused.stderr == (
        "google key-expiry-policy refused: Hours must be a positive number (Google allows 8 to "
        "2160) or null, not 0.0\n"
    )
