"""How `up` renders what it streams: powertools records compact, everything else untouched."""

import io
import json
import re
import threading

from localcloud.watch import Console, render_log_line

VERSION = "8f14e45f-ceea-467f-a8e5-1b0b3c2d9e01"
EXECUTION = (
    "arn:aws:states:us-east-1:123456789012:execution:google-token-rotation-RotationStateMachine:"
    f"createSecret-{VERSION}-1"
)


def record(**fields: object) -> str:
    context = {
        "level": "INFO",
        "location": "handle:55",
        "timestamp": "2026-11-26 03:49:27,204+0000",
        "service": "google-token-rotation",
        "cold_start": True,
        "function_name": "google-token-rotation-CreateSecretFunction",
        "function_memory_size": "256",
        "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:x",
        "function_request_id": "c8a92131-1e3c-4cd4-bce3-03f9ec87000b",
        "secret_id": "arn:aws:secretsmanager:us-east-1:123456789012:secret:google/access-token-x",
    }
    return json.dumps({**context, **fields})


def test_a_record_keeps_level_message_and_its_own_keys_with_short_ids() -> None:
    line = record(
        message="createSecret done",
        step="createSecret",
        client_request_token=VERSION,
        manual=False,
        version_id=VERSION,
        execution_arn=EXECUTION,
        outcome={"Step": "createSecret", "Action": "created", "SecretArn": "arn:...", "X": 1},
    )

    assert render_log_line(line) == (
        "INFO  createSecret done  step=createSecret version=8f14e45f manual=false "
        f"execution=createSecret-{VERSION}-1 action=created"
    )


def test_an_error_message_stays_on_one_line_quoted_and_bounded() -> None:
    message = "Google refused:\n  HTTP 400 " + "x" * 500

    rendered = render_log_line(
        record(level="ERROR", message="createSecret failed", error_message=message)
    )

    assert "\n" not in rendered
    assert rendered.startswith('ERROR createSecret failed  error_message="Google refused: HTTP 400')
    assert rendered.endswith("…")
    assert len(rendered) < 400


def test_lines_that_are_not_powertools_records_pass_unchanged() -> None:
    for line in ("plain print()", "[1, 2]", '{"no": "message"}', "Traceback (most recent"):
        assert render_log_line(line) == line


def test_the_console_writes_whole_lines_from_many_threads() -> None:
    stream = io.StringIO()
    console = Console(stream, ["CreateSecretFunction"], clock=lambda: 0.25)

    def write(number: int) -> None:
        for index in range(50):
            console.line("notice", f"subject {number}-{index}", ["{", '  "a": 1', "}"])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 * 50 * 4
    for start in range(0, len(lines), 4):
        assert re.fullmatch(r"\d\d:\d\d:00\.250 \[notice\] +subject \d-\d+", lines[start])
        assert lines[start + 1 : start + 4] == ["    {", '      "a": 1', "    }"]


def test_a_closed_stream_silences_the_console() -> None:
    stream = io.StringIO()
    console = Console(stream)
    stream.close()

    console.line("notice", "nobody reads this")
    console.line("notice", "nor this")
