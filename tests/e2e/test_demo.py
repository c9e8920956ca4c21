"""`make demo`, the README's first command, run as a newcomer runs it: every chapter, every check.
The command is the line docs/local-cloud.md shows, which tests/static/test_doc_commands.py checks
is what `make demo` runs."""

import shlex
import subprocess

from localcloud.template import PROJECT_ROOT
from tests.doc_blocks import doc_block
from tests.localcloud.up_process import clean_environment

CHAPTERS = (
    "1. Deploy template.yaml",
    "2. A scheduled rotation",
    "3. A manual rotation",
    "4. Refresh before expiry",
    "5. A failure",
    "6. Where things stand",
    "7. How an application reads the token",
    "8. The recommended source: keyless",
    "9. The application: the Python example lists a Google Calendar",
    "10. A long-running reader keeps working across a rotation",
    "11. An ID token for Cloud Run",
)


def test_the_demo_tells_the_whole_story_and_every_expectation_holds() -> None:
    [line] = [
        command
        for command in doc_block("docs/local-cloud.md", "sh", "-m localcloud demo").commands()
        if command.endswith(" demo")
    ]
    demo = subprocess.run(
        shlex.split(line),
        cwd=PROJECT_ROOT,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    positions = [out.index(chapter) for chapter in CHAPTERS]
    assert positions == sorted(positions)
    assert "✘" not in out
    assert "Subject: Google token rotation failed at createSecret" in out
    assert '"GOOGLE_ACCESS_TOKEN": "ya29.' in out  # the application's read, masked
    assert "Stand-up" in out  # the Python example's listing
    assert "old token → 401\n     new token → 200" in out  # the reader moved on without a restart
    assert "HTTP 200" in out  # the Cloud Run example's call with the rotated ID token
    assert "Demo passed" in out
