"""Clean virtual environments for the client package, offline: `python3.12 -m venv`, and a
wheelhouse of its dependencies made from the project's own venv, so that pip installs them with
--no-index at the versions the locks pin, with no registry and no download."""

import base64
import hashlib
import importlib.metadata
import os
import re
import subprocess
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

from localcloud.template import PROJECT_ROOT

CLIENT = PROJECT_ROOT / "client"
_NOT_PACKED = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
"""Left out of a dist-info: written by the installer, not part of the wheel."""


def client_requirements() -> list[Requirement]:
    """Everything installing the client can ask for: its dependencies, every extra's, and its
    build backend (pip builds ./client in an isolated environment of its own)."""
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())
    texts = [
        *project["project"]["dependencies"],
        *(r for extra in project["project"]["optional-dependencies"].values() for r in extra),
        *project["build-system"]["requires"],
    ]
    return [Requirement(text) for text in texts]


def dependency_wheelhouse(folder: Path) -> Path:
    """Writes a wheel of every installed distribution the client's requirements reach, as the
    project's venv holds it (its files and metadata, RECORD written anew); returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    packed: set[str] = set()
    pending = client_requirements()
    while pending:
        requirement = pending.pop()
        name = canonical(requirement.name)
        if name in packed:
            continue
        distribution = importlib.metadata.distribution(requirement.name)
        assert requirement.specifier.contains(distribution.version, prereleases=True), (
            f"the project's venv has {requirement.name} {distribution.version}, which does not "
            f"satisfy {requirement}: run `make venv`"
        )
        _pack(distribution, folder)
        packed.add(name)
        extras = {"", *requirement.extras}
        for text in distribution.requires or []:
            needed = Requirement(text)
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in extras
            ):
                pending.append(needed)
    return folder


def python312() -> str:
    """The python3.12 the Makefile uses (on PATH or in pyenv)."""
    found = subprocess.run(
        [PROJECT_ROOT / "tools" / "find-python312"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found, "python3.12 not found: install it, as `make` asks"
    return found


def clean_venv(folder: Path) -> Path:
    """`python3.12 -m venv folder`: pip and nothing else. Its bin folder."""
    subprocess.run([python312(), "-m", "venv", folder], check=True, timeout=120)
    return folder / "bin"


def offline_pip_environment(bin_folder: Path, wheelhouse: Path) -> dict[str, str]:
    """An environment in which `pip` is the venv's and finds packages only in `wheelhouse`:
    no AWS settings, no PYTHONPATH, nothing of the project's venv."""
    return {
        "PATH": f"{bin_folder}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheelhouse),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def installed(bin_folder: Path) -> dict[str, str]:
    """Name → version of every distribution in the venv."""
    listed = subprocess.run(
        [bin_folder / "python", "-m", "pip", "list", "--format=freeze"],
        env={"PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    pairs = (line.split("==") for line in listed.stdout.splitlines())
    return {canonical(name): version for name, version in pairs}


def canonical(name: str) -> str:
    """A distribution's name as pip compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pack(distribution: importlib.metadata.Distribution, folder: Path) -> None:
    """A wheel of one installed distribution: its files under site-packages, bytecode and
    installer records left out (scripts are made again by pip from entry_points.txt)."""
    metadata = next(
        path
        for path in distribution.files or []
        if path.parts[0].endswith(".dist-info") and path.name == "METADATA"
    )
    dist_info = Path(str(distribution.locate_file(metadata))).parent
    stem = dist_info.name.removesuffix(".dist-info")
    tags = [
        line.removeprefix("Tag: ")
        for line in (dist_info / "WHEEL").read_text().splitlines()
        if line.startswith("Tag: ")
    ]
    parts = [sorted({tag.split("-")[i] for tag in tags}) for i in range(3)]
    wheel = folder / f"{stem}-{'-'.join('.'.join(p) for p in parts)}.whl"
    files = [
        path
        for path in distribution.files or []
        if path.parts[0] != ".."
        and "__pycache__" not in path.parts
        and not (path.parts[0] == dist_info.name and path.name in _NOT_PACKED)
    ]
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            content = Path(str(distribution.locate_file(path))).read_bytes()
            archive.writestr(path.as_posix(), content)
            digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
            record.append(f"{path.as_posix()},sha256={digest.decode()},{len(content)}")
        record.append(f"{dist_info.name}/RECORD,,")
        archive.writestr(f"{dist_info.name}/RECORD", "\n".join(record) + "\n")
