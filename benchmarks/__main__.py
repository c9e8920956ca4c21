"""Runs every benchmark once on a fresh local cloud and prints a Markdown table of the figures."""

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from benchmarks import baseline, client_reads, cost, key_rotation, scale, scale_day
from localcloud.cloud import Deployment, Invocation, LocalCloud
from localcloud.demo import DEMO_PARAMETERS
from localcloud.operations import rotate_on_schedule, start_manual
from localcloud.template import PROJECT_ROOT, load_template

ROTATIONS = 10
BUILD_DIR = PROJECT_ROOT / ".aws-sam" / "build"
IMPORT_FLOORS = {
    "boto3": "import boto3; boto3.client('secretsmanager', region_name='us-east-1')",
    "boto3 + google-auth": (
        "import boto3; boto3.client('secretsmanager', region_name='us-east-1'); "
        "import google.oauth2.service_account, google.auth.transport.urllib3"
    ),
    "boto3 (stepfunctions)": "import boto3; boto3.client('stepfunctions', region_name='us-east-1')",
}
FLOOR_OF = {
    "CreateSecretFunction": "boto3 + google-auth",
    "SetSecretFunction": "boto3 + google-auth",
    "TestSecretFunction": "boto3 + google-auth",
    "FinishSecretFunction": "boto3 + google-auth",
    "RotationEntryFunction": "boto3 (stepfunctions)",
}


@dataclass
class Row:
    measure: str
    value: str
    note: str = ""


def main() -> int:
    rows: list[Row] = []
    with LocalCloud(sleep_retries=False) as cloud:
        deployment = cloud.deploy(DEMO_PARAMETERS)
        cloud.store_service_account_key(cloud.google.create_service_account())
        rotate_on_schedule(cloud, deployment)  # warms every worker
        cold = {i.function_name: i for i in cloud.invocations if i.cold_start}
        rows += rotation_rows(cloud, deployment)
        rows += manual_rows(cloud, deployment)
        rows += cold_start_rows(deployment, cold)
        measured = cost.measure(cloud, deployment)
        compared = baseline.compare(cloud, deployment, measured)
        # The stack's key (KeyRotationDays 30 by default) renewing itself, after the token's.
        keyed = key_rotation.measure(cloud, deployment)
    rows += package_rows()
    print("| measure | value | note |\n|---|---|---|")
    for row in rows:
        print(f"| {row.measure} | {row.value} | {row.note} |")
    print()
    print("\n".join(cost.report(measured)))
    print()
    print("\n".join(baseline.report(compared)))
    print()
    print("\n".join(key_rotation.report(keyed)))
    print()
    print("\n".join(client_reads.report(client_reads.run())))  # after the local cloud has stopped
    print()
    print("\n".join(scale.report(scale.run())))  # on a local cloud of its own
    print()
    day = scale_day.simulate(scale_day.Scenario())  # a model on a simulated clock, no cloud
    print("\n".join([*scale_day.report(day), "", *scale_day.capacity_report(day)]))
    print()
    print("\n".join(scale_day.check_report()))
    return 0


def rotation_rows(cloud: LocalCloud, deployment: Deployment) -> list[Row]:
    walls, handler_sums, overheads, describes, transitions = [], [], [], [], []
    execution_seconds: list[float] = []
    for _ in range(ROTATIONS):
        first = len(cloud.invocations)
        started = time.perf_counter()
        ran = rotate_on_schedule(cloud, deployment)
        walls.append(time.perf_counter() - started)
        calls = cloud.invocations[first:]
        steps = [i for i in calls if not i.function_name.endswith("RotationEntryFunction")]
        entries = [i for i in calls if i.function_name.endswith("RotationEntryFunction")]
        handler_sums.append(sum(i.duration_ms for i in steps) / 1000)
        describes.append(sum(_result_field(i, "DescribeCalls") for i in entries))
        overheads += [_entry_overhead(cloud, i) for i in entries]
        transitions.append(sum(e.transitions for e in ran))
        execution_seconds += [e.seconds for e in ran]
    wall, handlers = statistics.median(walls), statistics.median(handler_sums)
    return [
        Row("scheduled rotation, wall time (median of 10, warm)", f"{wall:.2f} s"),
        Row(
            "sum of the 4 step handlers' own durations",
            f"{handlers:.3f} s",
            f"wall / handlers = {wall / handlers:.0f}x: 4 executions, moto, polling",
        ),
        Row(
            "entry Lambda: execution end → entry returns",
            f"median {statistics.median(overheads) * 1000:.0f} ms, "
            f"p95 {_p95(overheads) * 1000:.0f} ms",
            f"set by the poll interval (first {_entry_setting('POLL_FIRST_INTERVAL_SECONDS')} s, "
            f"growing 1.5 times, cap {_entry_setting('POLL_MAX_INTERVAL_SECONDS')} s)",
        ),
        Row(
            "one step's execution, start to end (median)",
            f"{statistics.median(execution_seconds) * 1000:.0f} ms",
            "moto's interpreter and its Lambda calls over HTTP",
        ),
        Row("DescribeExecution calls per rotation", f"{statistics.median(describes):.0f}"),
        Row("state transitions per scheduled rotation", f"{statistics.median(transitions):.0f}"),
    ]


def manual_rows(cloud: LocalCloud, deployment: Deployment) -> list[Row]:
    summary = start_manual(cloud, deployment)
    return [
        Row("manual rotation (one execution), wall time", f"{summary.seconds:.2f} s"),
        Row("state transitions per manual rotation", str(summary.transitions)),
    ]


def cold_start_rows(deployment: Deployment, cold: dict[str, Invocation]) -> list[Row]:
    floors = {name: _import_seconds(code) for name, code in IMPORT_FLOORS.items()}
    rows = []
    for logical_id, function_name in deployment.functions.items():
        invocation = cold.get(function_name)
        if invocation is None or invocation.init_ms is None:
            continue
        floor_name = FLOOR_OF[logical_id]
        floor = floors[floor_name]
        rows.append(
            Row(
                f"cold start (handler import), {logical_id}",
                f"{invocation.init_ms:.0f} ms",
                f"import floor ({floor_name}) {floor * 1000:.0f} ms, "
                f"ratio {invocation.init_ms / 1000 / floor:.2f}",
            )
        )
    return rows


def package_rows() -> list[Row]:
    if not BUILD_DIR.is_dir():
        return [Row("unzipped package sizes", "n/a", "run `make check-template` (sam build)")]
    rows = []
    layer = _size(BUILD_DIR / "RotationCoreLayer")
    for logical_id in load_template().functions():
        own = _size(BUILD_DIR / logical_id)
        rows.append(
            Row(
                f"unzipped size, {logical_id}",
                f"{(own + layer) / 1e6:.1f} MB",
                f"own code {own / 1e3:.1f} kB + rotation-core layer {layer / 1e6:.1f} MB",
            )
        )
    return rows


def _entry_setting(name: str) -> str:
    return str(load_template().functions()["RotationEntryFunction"].environment[name])


def _result_field(invocation: Invocation, name: str) -> int:
    result = invocation.result
    return int(result.get(name, 0)) if isinstance(result, dict) else 0


def _entry_overhead(cloud: LocalCloud, invocation: Invocation) -> float:
    result = invocation.result
    assert isinstance(result, dict)
    described = cloud.client("stepfunctions").describe_execution(
        executionArn=result["ExecutionArn"]
    )
    stopped: datetime = described["stopDate"]
    return invocation.ended - stopped.timestamp()


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def _import_seconds(code: str) -> float:
    timed = (
        f"import time; started = time.perf_counter(); {code}; print(time.perf_counter() - started)"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", timed], check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(3)
    ]
    return statistics.median(runs)


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


if __name__ == "__main__":
    sys.exit(main())
