"""The runbook rehearsed on a running `up`, as an operator would: cause a failure the way
docs/runbook.md's "Rehearse on the local cloud" says, read the notice's Runbook entry, run that
entry's commands verbatim in a shell, and see the rotation recover."""

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.deployment import client_environment
from localcloud.template import PROJECT_ROOT
from rotation_core.runbook import runbook_link
from tests.localcloud.up_process import UpProcess, clean_environment, localcloud
from tests.runbook_page import RUNBOOK, entries, sections, shell_blocks

BEFORE = sections()["Before you start"]
REHEARSE = sections()["Rehearse on the local cloud"]
STAND_INS = dict(re.findall(r"^\| `(gcloud [^`]+)` \| `([^`]+)` \|$", REHEARSE, re.MULTILINE))
"""What the page tells the operator to run on the local cloud in place of a gcloud line."""
LOCAL_SCHEDULE_GROUP = re.search(r"`SCHEDULE_GROUP=([^`]+)`", BEFORE)
LOCAL_STACK = re.search(r"`STACK=([^`]+)`", BEFORE)
NOT_REHEARSED = {
    "output TokenSecretArn": "describe-stacks: the local cloud deploys without CloudFormation, "
    "so the page gives the banner's values instead",
    "add-iam-policy-binding": "gcloud with no local stand-in: the key source `up` runs needs no "
    "IAM binding",
    "allowServiceAccountCredentialLifetimeExtension": "gcloud with no local stand-in: `up` mints "
    "1-hour tokens with a key, which no organization policy governs",
    "https://oauth2.googleapis.com/tokeninfo": "asks Google's own tokeninfo about the token; "
    "`up`'s token is the emulator's",
    "describe-stack-resources": "reads the CloudFormation stack, which the local cloud has not",
    "output RotationEntryLogGroupName": "reads the stack's outputs through describe-stacks",
    "--rotation-lambda-arn": "reads the stack's outputs through describe-stacks",
}
"""Blocks of the page (found by a string in them) that no test here runs, and why."""
REHEARSED = (
    "google delete-key",
    "gcloud iam service-accounts keys create",
    'start-execution --state-machine-arn "$STATE_MACHINE" --name "manual-',
    "--query '{Stages: VersionIdsToStages, Status:",
    "--status-filter FAILED",
    "Key=token-rotation:scopes,Value=",
    "untag-resource",
    "bad-input-",
    "delete-schedule-group",
    "create-schedule-group",
    "list-schedules --group-name \"$SCHEDULE_GROUP\" --query 'Schedules[].[Name, State]'",
    "get-execution-history",
    "google fail /token",
    "google recover",
    "--query VersionIdsToStages",
    "--query 'Tags'",
    "{Enabled: RotationEnabled",
    "list-secrets --filters",
    "--status-filter TIMED_OUT",
)
"""Blocks the tests below run (each found by a string in it)."""


def block_with(needle: str, text: str = RUNBOOK) -> str:
    [block] = [block for block in shell_blocks(text) if needle in block]
    return block


def entry_block(anchor: str, index: int = 0) -> str:
    return shell_blocks(entries()[anchor])[index]


def as_rehearsed(block: str) -> str:
    """The block with each gcloud line replaced by the page's local stand-in for it."""
    for line in block.splitlines():
        if line.startswith("gcloud ") and line not in STAND_INS:
            pytest.fail(f"the page gives no local stand-in for: {line}")
    return "\n".join(STAND_INS.get(line, line) for line in block.splitlines())


class Operator:
    """A shell at the project's root with what the page says to set on the local cloud."""

    def __init__(self, up: UpProcess) -> None:
        refs = up.description().refs
        assert LOCAL_SCHEDULE_GROUP is not None
        assert LOCAL_STACK is not None
        exported = {
            **client_environment(up.endpoint),
            "LOCALCLOUD_STATE_FILE": str(up.state_file),
        }
        self.up = up
        self.variables = {
            "STACK": LOCAL_STACK[1],
            "SECRET": refs["TokenSecret"],
            "KEY_SECRET": refs["ServiceAccountKeySecret"],
            "STATE_MACHINE": refs["RotationStateMachine"],
            "SCHEDULE_GROUP": LOCAL_SCHEDULE_GROUP[1],
        }
        environment = clean_environment()
        # The AWS CLI and Python the README's `make venv` installs.
        environment["PATH"] = f"{PROJECT_ROOT / '.venv' / 'bin'}:{environment['PATH']}"
        self.environment = {**environment, **exported, **self.variables}

    def run(self, block: str, *, expect: int = 0) -> subprocess.CompletedProcess[str]:
        """The block as typed into a shell (stopping at the first failing command)."""
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block],
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
        result = self.run(block_with('--name "manual-'))
        assert json.loads(result.stdout) == {"Status": "SUCCEEDED", "Error": None}

    def confirm_recovered(self) -> None:
        shown: Any = json.loads(self.run(block_with("--query '{Stages: VersionIdsToStages")).stdout)
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


@pytest.fixture
def operator(up: UpProcess) -> Operator:
    return Operator(up)


def test_a_deleted_key_is_fixed_with_its_entrys_commands(operator: Operator) -> None:
    start = operator.up.mark()
    operator.run(block_with("google delete-key", REHEARSE))
    operator.notice("googlegrantrejectederror", start)

    # The refusal the page explains, exactly as it quotes it: normal after a failed rotation.
    refused = operator.run('aws secretsmanager rotate-secret --secret-id "$SECRET"', expect=255)
    quoted = re.search(r"exits 255 with `([^`]+)`", " ".join(RUNBOOK.split()))
    assert quoted is not None
    assert quoted[1] in " ".join(refused.stderr.split())

    recovered = operator.up.mark()
    operator.run(as_rehearsed(entry_block("googlegrantrejectederror")))
    assert not (PROJECT_ROOT / "key.json").exists()
    operator.rotate_now()
    operator.notice("recovered", recovered)
    operator.confirm_recovered()


def test_the_retry_a_failure_notice_promises_comes_on_up(operator: Operator) -> None:
    start = operator.up.mark()
    operator.run(block_with("google delete-key", REHEARSE))
    at = operator.notice("googlegrantrejectederror", start)
    promised = operator.up.wait_for(r'"NextAttempt": "RotateSecret runs again at ', start=start)
    assert promised < at

    # While the retry is due, the entries' read-only commands, on this failure.
    *_, execution = re.findall(r'"ExecutionArn": "([^"]+)"', operator.up.output(start))
    operator.environment["EXECUTION_ARN"] = execution  # the page: the notice's ExecutionArn
    history = operator.run(entry_block("other-errors"))
    assert "GoogleGrantRejectedError" in history.stdout
    failed = operator.run(block_with("--status-filter FAILED"))
    assert "createSecret-" in failed.stdout
    for anchor in ("rotationinprogresserror", "unmanagedsecreterror", "rotationnotenablederror"):
        operator.run(entry_block(anchor))
    listed = operator.run(block_with("list-secrets --filters"))
    assert "google/access-token" in listed.stdout
    operator.run(entry_block("rotationfailuresalarm"))

    # The fix without "rotate now": the retry the notice names does the rest.
    operator.run(as_rehearsed(entry_block("googlegrantrejectederror")))
    fired = operator.up.wait_for(
        r"\[scheduler\].*RefreshScheduleGroup/\S+ fired secretsmanager:rotateSecret",
        start=start,
        timeout=120,
    )
    # As the page says: the retry's RotateSecret is refused, and the rotation re-runs all the same.
    assert "failed: InvalidRequestException" in operator.up.output(fired).splitlines()[0]
    operator.notice("recovered", start)
    operator.confirm_recovered()


def test_a_tag_asking_for_a_scope_the_stack_does_not_grant(operator: Operator) -> None:
    start = operator.up.mark()
    operator.run(block_with("Key=token-rotation:scopes,Value=", REHEARSE))
    operator.notice("configurationerror", start)

    shown = operator.run(entry_block("configurationerror"))
    assert "cloud-platform" in shown.stdout
    operator.rotate_now()
    operator.confirm_recovered()


def test_a_wrong_input_and_a_misspelt_step_then_the_right_input(operator: Operator) -> None:
    start = operator.up.mark()
    operator.run(block_with("bad-input-", REHEARSE))
    operator.notice("input-validation", start)
    operator.notice("unknown-step", start)

    operator.rotate_now()
    operator.confirm_recovered()


def test_the_schedule_group_deleted_then_recreated(operator: Operator) -> None:
    start = operator.up.mark()
    operator.run(block_with("delete-schedule-group", REHEARSE))
    # Until the scheduleNextRotation notice lands, this failure is reported as finishSecret's.
    operator.up.wait_for(
        r'"Runbook": "docs/runbook\.md#(next-refresh-not-scheduled|other-errors)"', start=start
    )

    operator.run(entry_block("next-refresh-not-scheduled", 0))
    operator.rotate_now()
    listed = operator.run(entry_block("next-refresh-not-scheduled", 1))
    assert re.search(r"^refresh-\S+\tENABLED$", listed.stdout, re.MULTILINE), listed.stdout
    operator.confirm_recovered()


def test_a_google_outage_is_armed_and_ended(operator: Operator) -> None:
    armed = operator.run(block_with("google fail /token", REHEARSE))
    assert json.loads(armed.stdout) == {"Route": "/token", "Status": 503, "Count": 20}

    ended = operator.run(block_with("google recover", REHEARSE))
    assert json.loads(ended.stdout) == {"FailuresDropped": 20}


def test_every_block_of_the_page_is_rehearsed_here_or_said_why_not() -> None:
    for block in shell_blocks():
        rehearsed = [needle for needle in REHEARSED if needle in block]
        skipped = [needle for needle in NOT_REHEARSED if needle in block]
        assert len(rehearsed) + len(skipped) >= 1, f"no test runs this block:\n{block}"


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
