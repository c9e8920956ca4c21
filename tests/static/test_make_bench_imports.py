"""`make bench` runs `python -m benchmarks` outside pytest, whose pythonpath hides a gap."""

import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def test_make_bench_s_module_imports_without_pytest_s_pythonpath() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    finished = subprocess.run(
        [sys.executable, "-c", "import benchmarks.__main__"],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
