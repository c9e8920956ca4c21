"""The entry Lambda ships without google-auth (its requirements are empty): it must import none."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_entry_lambda_loads_no_google_module() -> None:
    # A fresh interpreter: in this one the step Lambdas' tests have long imported google.*.
    probe = (
        "import sys, rotation_entry; "
        "print(sorted(m for m in sys.modules if m == 'google' or m.startswith('google.')))"
    )
    path = os.pathsep.join(
        str(ROOT / "functions" / part) for part in ("rotation_entry", "rotation_core")
    )

    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    assert loaded == "[]"
