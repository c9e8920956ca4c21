"""The client package's first example, as each document shows it, run verbatim in a clean venv:
its install line with pip (offline, from a wheelhouse of the project's own venv), then its
Python block against a stack on the local cloud. Also the install by the published name from a
wheelhouse, since the name is not on PyPI."""

import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from localcloud.operations import rotate_on_schedule
from tests.clean_venv import (
    CLIENT,
    canonical,
    clean_venv,
    dependency_wheelhouse,
    installed,
    offline_pip_environment,
)
from tests.doc_blocks import doc_block
from tests.e2e.stacks import StackFactory

DOCUMENTS = ["README.md", "client/README.md", "docs/reading-the-token.md"]
DEFAULT_TOKEN_SECRET = "google/access-token"
"""The name the examples use: the template's default token secret."""


def first_example(document: str) -> tuple[str, str]:
    """The document's install block and its first Python example: what a reader installs, then
    runs."""
    install, example = {
        "README.md": (
            doc_block("README.md", "sh", "pip install"),
            doc_block("README.md", "python", "SecretCredentials("),
        ),
        "client/README.md": (
            doc_block("client/README.md", "sh", "pip install './client"),
            doc_block("client/README.md", "python", "SecretCredentials("),
        ),
        "docs/reading-the-token.md": (
            doc_block("docs/reading-the-token.md", "sh", "pip install"),
            doc_block("docs/reading-the-token.md", "python", "SecretCredentials("),
        ),
    }[document]
    return install.text, example.text


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dependency_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


def clone_at(folder: Path) -> Path:
    """`folder`, holding a copy of client/ as a clone of the repository does: the install lines
    run there."""
    shutil.copytree(CLIENT, folder / "client", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def run_shell(block: str, cwd: Path, environment: dict[str, str]) -> None:
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert ran.returncode == 0, f"{block}\n{ran.stdout}\n{ran.stderr}"


@pytest.fixture(scope="module")
def installed_by(
    wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """The bin folder of a clean venv in which `install` ran in a clone, once per distinct
    install block: documents that show the same line share its venv."""
    venvs: dict[str, Path] = {}

    def install_with(install: str) -> Path:
        if install not in venvs:
            folder = tmp_path_factory.mktemp("install")
            bin_folder = clean_venv(folder / "venv")
            clone = clone_at(folder / "clone")
            run_shell(install, clone, offline_pip_environment(bin_folder, wheelhouse))
            venvs[install] = bin_folder
        return venvs[install]

    return install_with


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_first_example_runs_as_written_in_a_clean_venv(
    deploy_stack: StackFactory,
    wheelhouse: Path,
    installed_by: Callable[[str], Path],
    tmp_path: Path,
    document: str,
) -> None:
    install, example = first_example(document)
    stack = deploy_stack(token_secret_name=DEFAULT_TOKEN_SECRET)
    rotate_on_schedule(stack.cloud, stack.deployment)
    google = stack.cloud.google
    google.add_calendar(stack.account.client_email, readers=[])  # the account's "primary"
    bin_folder = installed_by(install)
    environment = offline_pip_environment(bin_folder, wheelhouse)

    # As written, but Google's address is the emulator's.
    ran = subprocess.run(
        [
            bin_folder / "python",
            "-c",
            example.replace("https://www.googleapis.com/", google.api_root_url),
        ],
        cwd=tmp_path,
        env={**environment, **stack.cloud.client_environment()},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert ran.returncode == 0, ran.stderr
    status, expiry = ran.stdout.split(maxsplit=1)
    assert status == "200"
    expires_at = datetime.fromisoformat(stack.current()["expires_at"])
    assert datetime.fromisoformat(expiry.strip()) == expires_at.replace(tzinfo=None)
    assert [r.bearer for r in google.requests if r.path.startswith("/calendar/")] == [
        stack.current()["GOOGLE_ACCESS_TOKEN"]
    ]


def test_the_published_name_installs_from_a_wheelhouse_alone(
    wheelhouse: Path, tmp_path: Path
) -> None:
    block = doc_block("client/README.md", "sh", "--find-links wheelhouse").text
    bin_folder = clean_venv(tmp_path / "venv")
    clone = clone_at(tmp_path / "clone")

    run_shell(block, clone, offline_pip_environment(bin_folder, wheelhouse))

    packages = installed(bin_folder)
    assert packages["google-token-secret"] == "0.1.0"
    assert {"boto3", "google-auth", "requests"} <= packages.keys()
    # The folder holds everything installed: the second line needs nothing else.
    in_folder = {canonical(wheel.name.split("-")[0]) for wheel in (clone / "wheelhouse").iterdir()}
    assert packages.keys() - {"pip"} <= in_folder
