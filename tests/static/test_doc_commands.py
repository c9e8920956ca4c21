"""Every command and example a reader is shown (README.md, docs/*.md) is claimed by a test that
runs it as written; a new block nobody claims fails here. Commands too long to run in the suite
(a simulated week, the benchmarks) are checked as far as they go without running: `make -n` and
their program's own argument parser."""

import ast
import importlib
import os
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import scale_day
from localcloud.__main__ import _parser as localcloud_parser
from localcloud.__main__ import main as localcloud_main
from tests.doc_blocks import ROOT, RUNNABLE_LANGUAGES, Block, blocks, doc_block, pages

Claim = tuple[str, str, str]


def claims() -> Iterator[tuple[Path, Claim]]:
    """Every `doc_block(page, language, containing)` call in the tests, with its file."""
    for source in sorted((ROOT / "tests").rglob("*.py")):
        module = ast.parse(source.read_text(), str(source))
        constants = {
            target.id: statement.value.value
            for statement in module.body
            if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant)
            for target in statement.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(module):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name != "doc_block" or source.name == "doc_blocks.py":
                continue
            arguments = [
                constants.get(argument.id) if isinstance(argument, ast.Name) else
                getattr(argument, "value", None)
                for argument in node.args
            ]  # fmt: skip
            literal = len(arguments) == 3 and all(isinstance(a, str) for a in arguments)
            assert literal, (
                f"{source}:{node.lineno}: call doc_block with three literal strings "
                "(or module-level string constants)"
            )
            yield source, (str(arguments[0]), str(arguments[1]), str(arguments[2]))


def runnable_blocks() -> list[Block]:
    return [
        block for page in pages() for block in blocks(page) if block.language in RUNNABLE_LANGUAGES
    ]


def test_every_runnable_block_of_every_page_is_claimed_by_a_test() -> None:
    claimed = [claim for _, claim in claims()]
    unclaimed = [
        f"{block.page}:{block.line} ({block.language})"
        for block in runnable_blocks()
        if not any(
            page == block.page and language == block.language and needle in block.text
            for page, language, needle in claimed
        )
    ]
    assert not unclaimed, (
        "these blocks are shown to readers but no test runs them; run each from a test through "
        f"tests.doc_blocks.doc_block(page, language, containing): {unclaimed}"
    )


def test_every_claim_names_exactly_one_block() -> None:
    for source, (page, language, needle) in claims():
        assert (ROOT / page).is_file(), f"{source}: no page {page}"
        matching = [b for b in blocks(page) if b.language == language and needle in b.text]
        assert len(matching) == 1, (
            f"{source}: {len(matching)} {language} blocks of {page} hold {needle!r}"
        )


def test_the_shell_blocks_use_one_language_name() -> None:
    """`bash`, `shell` or `console` blocks would slip past the claim check above."""
    others = [
        f"{block.page}:{block.line}"
        for page in pages()
        for block in blocks(page)
        if block.language in {"bash", "shell", "console", "zsh", "javascript", "py"}
    ]
    assert not others, f"use sh, js or python: {others}"


def dry_run(line: str) -> str:
    """What `make` would run for a documented `make ...` line, without running it."""
    arguments = shlex.split(line)
    assert arguments[0] == "make"
    # Under `make test` this runs inside make: the outer make's flags must not reach this one.
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
    }
    planned = subprocess.run(
        ["make", "--dry-run", "--always-make", *arguments[1:]],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return planned.stdout


def test_the_two_commands_are_the_demo_the_suite_runs_and_the_ci_entry_point() -> None:
    demo, test = doc_block("README.md", "sh", "make demo").commands()
    assert (demo, test) == ("make demo", "make test")
    # tests/e2e/test_demo.py runs this very line (docs/local-cloud.md) and checks every chapter.
    [shown_demo] = [
        line
        for line in doc_block("docs/local-cloud.md", "sh", "-m localcloud demo").commands()
        if line.endswith(" demo")
    ]
    assert shown_demo in dry_run(demo).splitlines()
    # `make test` runs the suite itself: dry-running it would still run its recursive make.
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^test: ", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_make_docs_serves_the_site_the_strict_build_checks() -> None:
    [line] = doc_block("README.md", "sh", "make docs").commands()
    assert ".venv/bin/python -m mkdocs serve" in dry_run(line).splitlines()


@pytest.mark.parametrize("line", doc_block("docs/freshness-soak.md", "sh", "make soak").commands())
def test_each_soak_command_runs_a_soak_the_local_cloud_accepts(line: str) -> None:
    [soak] = [planned for planned in dry_run(line).splitlines() if " -m localcloud soak" in planned]
    arguments = localcloud_parser().parse_args(shlex.split(soak.split(" -m localcloud ")[1]))
    settings = dict(token.split("=", 1) for token in shlex.split(line)[2:])
    assert arguments.lifetimes == int(settings.get("LIFETIMES", "168"))
    assert arguments.seed == (int(settings["SEED"]) if "SEED" in settings else None)
    assert arguments.source == settings.get("SOURCE", arguments.source)
    expiry = settings.get("KEY_EXPIRY_HOURS")
    assert arguments.key_expiry_hours == (int(expiry) if expiry else None)


@pytest.mark.parametrize(
    ("options", "refusal"),
    [
        (["--key-expiry-hours", "0"], "'0' is not a whole number of hours from 1 to 2160"),
        (["--key-expiry-hours", "8h"], "'8h' is not a whole number of hours from 1 to 2160"),
        (
            ["--key-expiry-hours", "8", "--source", "workload-identity-federation"],
            "--key-expiry-hours applies to a source with a service-account key",
        ),
    ],
)
def test_a_key_expiry_policy_the_soak_cannot_run_is_refused_naming_the_fix(
    options: list[str], refusal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        localcloud_main(["soak", *options])

    assert exited.value.code == 2
    assert refusal in capsys.readouterr().err


def test_the_scale_commands_are_the_benchmarks_and_their_arguments_parse() -> None:
    bench, day, replay = doc_block("docs/scale.md", "sh", "benchmarks.scale_day").commands()
    assert ".venv/bin/python -m benchmarks" in dry_run(bench).splitlines()
    for line in (day, replay):
        program, module, *arguments = shlex.split(line)
        assert (program, module) == (".venv/bin/python", "-m")
        assert arguments[0] == "benchmarks.scale_day"
        scale_day.parser().parse_args(arguments[1:])


def test_make_coverage_measures_tiers_that_exist_and_packages_that_import() -> None:
    """`make help` offers it; coverage names its packages in pyproject.toml."""
    [planned] = [line for line in dry_run("make coverage").splitlines() if " -m pytest " in line]
    tiers = [argument for argument in shlex.split(planned) if argument.startswith("tests/")]
    assert "--cov" in shlex.split(planned)
    assert tiers
    assert all((ROOT / tier).is_dir() for tier in tiers)
    source = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]["run"]
    for package in source["source"]:
        importlib.import_module(package)
