"""SIGTERM and SIGINT stop `python -m localcloud up` cleanly: exit status 0, its state file
removed, and none of its Lambda worker processes left behind."""

import signal
import time
from pathlib import Path

import pytest

from tests.localcloud.up_process import UpProcess, process_alive

SCOPES = "https://www.googleapis.com/auth/drive.readonly https://www.googleapis.com/auth/gmail.send"


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_signal_ends_up_and_all_its_workers(number: signal.Signals, tmp_path: Path) -> None:
    state = tmp_path / "up.json"
    up = UpProcess(state, "--scopes", SCOPES)
    try:
        up.wait_ready()
        described = up.description()
        variables = up.client("lambda").get_function_configuration(
            FunctionName=described.functions["CreateSecretFunction"]
        )["Environment"]["Variables"]
        assert variables["GOOGLE_SCOPES"] == SCOPES
        workers = up.worker_pids()
        # One warm sandbox per function, started before the banner.
        assert len(workers) >= len(described.functions)
        started = time.monotonic()

        status = up.stop(number)

        print(f"{number.name}: stopped in {time.monotonic() - started:.2f} s")
    finally:
        if up.process.poll() is None:
            up.process.kill()
            up.process.wait()
    assert status == 0, up.output()
    assert up.output().splitlines()[-2:] == [f"stopping ({number.name})", "stopped"]
    assert not state.exists()
    assert [pid for pid in workers if process_alive(pid)] == []
