"""Every command the README shows for the local cloud runs as written against a running `up`."""

import json
import re
import shlex
import subprocess
from collections.abc import Iterator

import pytest

from localcloud.deployment import client_environment
from localcloud.template import PROJECT_ROOT
from tests.localcloud.up_process import UpProcess, clean_environment

README = (PROJECT_ROOT / "README.md").read_text()
SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)


def commands_of_block_with(needle: str) -> list[str]:
    """The command lines of the README's one sh block that holds `needle`, comments cut."""
    [block] = [block for block in SHELL_BLOCKS if needle in block]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    process = UpProcess(tmp_path_factory.mktemp("up") / "up.json")
    try:
        process.wait_ready()
        process.pause_the_sweep()
        yield process
    finally:
        process.stop()


def run_as_written(line: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The line as a developer pastes it into a shell at the project's root."""
    arguments = shlex.split(line)
    if arguments[0] == "aws":  # the venv's AWS CLI, as `make venv` installs it
        arguments[0] = str(PROJECT_ROOT / ".venv" / "bin" / "aws")
    return subprocess.run(
        arguments,
        cwd=PROJECT_ROOT,
        env={**clean_environment(), **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_sample_event_commands_chain_on_one_running_up(up: UpProcess) -> None:
    lines = commands_of_block_with("invoke SetSecretFunction")
    assert len(lines) == 5
    environment = {"LOCALCLOUD_STATE_FILE": str(up.state_file)}

    results = [run_as_written(line, environment) for line in lines]

    for line, result in zip(lines, results, strict=True):
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
    actions = [json.loads(result.stdout)["Action"] for result in results[:4]]
    assert actions == ["created", "checked", "verified", "promoted"]
    assert json.loads(results[4].stdout)["status"] == "SUCCEEDED"


def test_the_shell_example_reads_awscurrent_from_up(up: UpProcess) -> None:
    [line] = commands_of_block_with("get-secret-value")
    environment = client_environment(up.endpoint)

    result = run_as_written(line, environment)

    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert value["GOOGLE_ACCESS_TOKEN"].startswith("ya29.")
    current = up.client("secretsmanager").get_secret_value(
        SecretId="google/access-token", VersionStage="AWSCURRENT"
    )
    assert json.loads(current["SecretString"]) == value


def test_every_local_cloud_command_in_the_readme_is_one_of_those_run_here() -> None:
    """A new command added to the README's local cloud section must be added to a test."""
    covered = set(commands_of_block_with("invoke SetSecretFunction"))
    shown = {
        line.split("  #")[0].strip()
        for block in SHELL_BLOCKS
        for line in block.splitlines()
        if "-m localcloud" in line and not re.search(r"-m localcloud (demo|up)\b", line)
    }
    assert shown == covered, shown - covered
