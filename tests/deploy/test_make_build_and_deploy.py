"""The deploy path as a newcomer runs it on a fresh clone: `make build` as the README writes it,
then `make deploy`'s guided first run in a terminal, answered as docs/reference-guided-deploy.md
shows, up to where SAM needs a real AWS account.

The clone borrows this checkout's SAM and uv venvs (linked, and its files dated before them so
that make finds them up to date) instead of installing them again; `sam build` still resolves the
functions' requirements from PyPI as a user's first build does."""

import os
import re
import select
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from tools.template_parameters import PROJECT_ROOT, parameter_groups, template_document

BUILD_COMMAND: Final = "make build"
"""The README's build command, run exactly as written."""
DEPLOY_COMMAND: Final = "make deploy"
SCOPE: Final = "https://www.googleapis.com/auth/calendar.readonly"
DEAD_ENDPOINT: Final = "http://127.0.0.1:9"
"""Where the dummy AWS credentials are sent: nothing listens, so nothing leaves the machine."""
PAGE: Final = PROJECT_ROOT / "docs" / "reference-guided-deploy.md"
PROMPT: Final = re.compile(
    r"(?:Stack Name|AWS Region|Parameter (?P<parameter>\w+)|Confirm changes before deploy|"
    r"Allow SAM CLI IAM role creation|Disable rollback|Save arguments to configuration file|"
    r"SAM configuration file|SAM configuration environment)(?: \[[^\]\n]*\])?: $"
)
ANSWERS: Final = {"GoogleScopes": SCOPE}
"""What the transcript types; every other prompt gets Enter, its default."""
ANSI: Final = re.compile(r"\x1b\[[0-9;]*m")
TRANSCRIPT: Final = re.compile(r"```text\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Clone:
    root: Path
    environment: Mapping[str, str]


def user_environment(home: Path) -> dict[str, str]:
    """A newcomer's shell: no AWS settings, no virtual environment first on PATH."""
    path = [entry for entry in os.environ["PATH"].split(":") if "/.venv" not in entry]
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "VIRTUAL_ENV", "MAKE")) and name not in {"MOTO_PORT"}
    }
    return {
        **environment,
        "PATH": ":".join(path),
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
    }


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Clone:
    base = tmp_path_factory.mktemp("fresh-clone")
    root = base / "google-token-rotation"
    subprocess.run(
        ["git", "clone", "--quiet", str(PROJECT_ROOT), str(root)], check=True, capture_output=True
    )
    for venv in (".venv-sam", ".venv-uv"):
        (root / venv).symlink_to((PROJECT_ROOT / venv).resolve())
    for folder, _, files in os.walk(root):
        if ".git" not in Path(folder).parts:
            for name in files:
                os.utime(Path(folder) / name, (0, 0), follow_symlinks=False)
    return Clone(root, user_environment(base))


@pytest.fixture(scope="module")
def built(clone: Clone) -> subprocess.CompletedProcess[str]:
    """With the SAM venv activated, as the README once said to: its python3.12 has no pip."""
    sam_venv = clone.root / ".venv-sam"
    activated = {
        **clone.environment,
        "VIRTUAL_ENV": str(sam_venv),
        "PATH": f"{sam_venv / 'bin'}:{clone.environment['PATH']}",
    }
    return subprocess.run(
        BUILD_COMMAND.split(),
        cwd=clone.root,
        env=activated,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_build_builds_every_function_in_a_fresh_clone(
    clone: Clone, built: subprocess.CompletedProcess[str]
) -> None:
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Failed to find a Python runtime containing pip" not in built.stdout + built.stderr
    assert "Build Succeeded" in built.stdout
    artifacts = clone.root / ".aws-sam" / "build"
    functions = sorted(path.name for path in artifacts.iterdir() if path.is_dir())
    assert functions == sorted(
        [
            "CreateSecretFunction",
            "DescribeFailureFunction",
            "FinishSecretFunction",
            "FreshnessSweepFunction",
            "RotationCoreLayer",
            "RotationEntryFunction",
            "SetSecretFunction",
            "TestSecretFunction",
        ]
    )


def test_the_readmes_deploy_path_starts_with_this_build_command() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    deploying = readme[readme.index("## Deploying to AWS") :]
    assert deploying.split("\n1. ", 1)[1].startswith(f"`{BUILD_COMMAND}`")
    assert f"2. `{DEPLOY_COMMAND}`" in deploying


def test_make_build_without_pip_says_how_to_get_it_in_one_line(clone: Clone) -> None:
    without_pip = PROJECT_ROOT / ".venv" / "bin" / "python"  # uv made it: a python3.12, no pip
    refused = subprocess.run(
        [*BUILD_COMMAND.split(), f"SAM_BUILD_PYTHON={without_pip}"],
        cwd=clone.root,
        env=clone.environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert refused.stderr.splitlines()[0] == (
        f"{without_pip} has no pip, which sam build needs: run '{without_pip} -m ensurepip "
        "--upgrade' (or install your distribution's pip for python3.12), or set "
        "SAM_BUILD_PYTHON=/path/to/a/python3.12-with-pip"
    )


def run_in_terminal(command: list[str], cwd: Path, environment: Mapping[str, str]) -> str:
    """The command's output as a terminal shows it (typed answers echoed), each prompt
    answered once it is printed, until the command exits."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(environment),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    output, answered_up_to = "", 0
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 120)
            assert ready, f"no output for 120 s; so far:\n{output}"
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: the command exited
                break
            if not chunk:
                break
            output += chunk.decode(errors="replace")
            plain = ANSI.sub("", output)
            waiting = [match for match in PROMPT.finditer(plain, answered_up_to)]
            if waiting and waiting[-1].end() == len(plain):
                answered_up_to = len(plain)
                answer = ANSWERS.get(waiting[-1].group("parameter") or "", "")
                os.write(controller, f"{answer}\r".encode())
    finally:
        os.close(controller)
        process.wait(timeout=60)
    return output


@pytest.fixture(scope="module")
def guided(clone: Clone, built: subprocess.CompletedProcess[str]) -> str:
    assert built.returncode == 0, built.stdout + built.stderr
    environment = {
        **clone.environment,
        "AWS_ACCESS_KEY_ID": "dummy",
        "AWS_SECRET_ACCESS_KEY": "dummy",
        "AWS_ENDPOINT_URL": DEAD_ENDPOINT,
        "TERM": "dumb",
    }
    output = run_in_terminal(DEPLOY_COMMAND.split(), clone.root, environment)
    return readable(output)


def readable(output: str) -> str:
    """From the guide `make deploy` prints to SAM's last word, as a reader sees it."""
    text = ANSI.sub("", output).replace("\r\n", "\n").replace("\t", "    ")
    lines = [line.rstrip() for line in text.splitlines()]
    start = next(index for index, line in enumerate(lines) if line.startswith("First deploy:"))
    end = max(index for index, line in enumerate(lines) if line.startswith("Error:"))
    kept = lines[start : end + 1]
    collapsed = [line for index, line in enumerate(kept) if line or (index and kept[index - 1])]
    return "\n".join(collapsed) + "\n"


def test_the_guided_deploy_asks_for_the_parameters_in_group_order(guided: str) -> None:
    asked = re.findall(r"^ +Parameter (\w+)", guided, re.MULTILINE)
    grouped = [
        parameter.name
        for group in parameter_groups(template_document())
        for parameter in group.parameters
    ]
    assert asked == grouped
    assert f"Parameter GoogleScopes []: {SCOPE}" in guided  # required: no default offered


def test_the_guided_deploy_stops_where_aws_is_needed_and_saves_nothing(
    clone: Clone, guided: str
) -> None:
    refused = f'Error: Could not connect to the endpoint URL: "{DEAD_ENDPOINT}/"'
    assert guided.rstrip().endswith(refused)
    assert "Looking for resources needed for deployment" in guided
    unchanged = subprocess.run(
        ["git", "status", "--porcelain", "samconfig.toml"],
        cwd=clone.root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert unchanged.stdout == ""


def test_the_documented_transcript_is_what_make_deploy_prints(guided: str, tmp_path: Path) -> None:
    captured = tmp_path / "transcript.txt"
    captured.write_text(guided)
    [documented] = TRANSCRIPT.findall(PAGE.read_text())
    assert documented == guided, f"{PAGE.name} differs from the captured transcript: {captured}"
