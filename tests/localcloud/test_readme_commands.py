"""The commands the README and the docs pages show for a running local cloud run as written
against `up`, started itself from the line docs/local-cloud.md shows."""

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.deployment import client_environment
from localcloud.template import PROJECT_ROOT
from tests.doc_blocks import doc_block
from tests.localcloud.up_process import UpProcess, clean_environment

CALENDAR = "https://www.googleapis.com/auth/calendar.readonly"
DRIVE = "https://www.googleapis.com/auth/drive.readonly"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    [line] = [
        command
        for command in doc_block("docs/local-cloud.md", "sh", "-m localcloud up").commands()
        if " -m localcloud up" in command
    ]
    # The Drive scope too, as `--scopes` (on the same line) allows: docs/many-secrets.md adds a
    # Drive token secret to this stack.
    process = UpProcess(
        tmp_path_factory.mktemp("up") / "up.json",
        "--scopes",
        f"{CALENDAR} {DRIVE}",
        command=tuple(shlex.split(line)),
    )
    try:
        process.wait_ready()
        process.pause_the_sweep()
        yield process
    finally:
        process.stop()


def shell_environment(environment: dict[str, str]) -> dict[str, str]:
    """A developer's shell at the project's root, with the venv's AWS CLI (as `make venv`
    installs it) first on PATH."""
    path = f"{PROJECT_ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**clean_environment(), "PATH": path, **environment}


def run_as_written(line: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The line as a developer pastes it into a shell at the project's root."""
    return subprocess.run(
        ["bash", "-c", line],
        cwd=PROJECT_ROOT,
        env=shell_environment(environment),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_sample_event_commands_chain_on_one_running_up(up: UpProcess) -> None:
    lines = doc_block("docs/local-cloud.md", "sh", "invoke SetSecretFunction").commands()
    assert len(lines) == 5
    environment = {"LOCALCLOUD_STATE_FILE": str(up.state_file)}

    results = [run_as_written(line, environment) for line in lines]

    for line, result in zip(lines, results, strict=True):
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
    actions = [json.loads(result.stdout)["Action"] for result in results[:4]]
    assert actions == ["created", "checked", "verified", "promoted"]
    assert json.loads(results[4].stdout)["status"] == "SUCCEEDED"


def test_the_shell_example_reads_awscurrent_from_up(up: UpProcess) -> None:
    [line] = doc_block("README.md", "sh", "get-secret-value").commands()

    result = run_as_written(line, client_environment(up.endpoint))

    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert value["GOOGLE_ACCESS_TOKEN"].startswith("ya29.")
    current = up.client("secretsmanager").get_secret_value(
        SecretId="google/access-token", VersionStage="AWSCURRENT"
    )
    assert json.loads(current["SecretString"]) == value


def test_the_sweep_runs_by_hand_as_its_page_shows(up: UpProcess, tmp_path: Path) -> None:
    block = doc_block("docs/freshness-sweep.md", "sh", "FreshnessSweepFunction")
    # The page tells the operator to set STACK to the stack's name: `up`'s is the page's example.
    assert f"STACK={up.description().stack_name}\n" in block.text

    result = subprocess.run(
        ["bash", "-euc", block.text],
        cwd=tmp_path,
        env=shell_environment(client_environment(up.endpoint)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "FunctionError" not in result.stdout, (tmp_path / "summary.json").read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["Secrets"] >= 1


def test_a_token_secret_is_added_to_up_as_its_page_shows(up: UpProcess) -> None:
    [line] = doc_block("docs/many-secrets.md", "sh", "tools/add-token-secret").commands()
    # The page's one placeholder, which the stack's AddTokenSecretCommand output fills in.
    entry_function = up.description().functions["RotationEntryFunction"]
    assert f"--managed-by {up.description().stack_name} " in line

    result = run_as_written(
        line.replace("<RotationEntryFunctionArn>", entry_function),
        client_environment(up.endpoint),
    )

    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    added = up.client("secretsmanager").get_secret_value(
        SecretId="google/drive-token", VersionStage="AWSCURRENT"
    )
    value = json.loads(added["SecretString"])
    assert value["GOOGLE_ACCESS_TOKEN"].startswith("ya29.")
    assert value["scopes"] == [DRIVE]
