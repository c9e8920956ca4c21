"""The local cloud's command line: demo, up, invoke (like sam local invoke), start-execution."""

import argparse
import json
import sys
import threading
from pathlib import Path

from localcloud.cloud import Deployment, LocalCloud
from localcloud.demo import DEMO_PARAMETERS, run_demo
from localcloud.operations import invoke_function, local_event, mask, start_manual


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo", help="deploy locally and run scheduled, manual and failing rotations"
    )
    commands.add_parser("up", help="deploy locally and serve until interrupted")
    invoke = commands.add_parser("invoke", help="invoke one function with an event file")
    invoke.add_argument("function", help="logical id from template.yaml, e.g. CreateSecretFunction")
    invoke.add_argument("-e", "--event", type=Path, required=True, help="event JSON file")
    invoke.add_argument(
        "--begin-rotation",
        action="store_true",
        help="first create the AWSPENDING version, as Secrets Manager does before createSecret",
    )
    execution = commands.add_parser("start-execution", help="a manual run, as from the console")
    execution.add_argument(
        "-e", "--event", type=Path, help="input JSON (default: the token secret)"
    )
    arguments = parser.parse_args(argv)

    if arguments.command == "demo":
        return run_demo()
    with LocalCloud() as cloud:
        deployment = _deploy_with_key(cloud)
        if arguments.command == "up":
            return _serve(cloud, deployment)
        if arguments.command == "invoke":
            return _invoke(
                cloud, deployment, arguments.function, arguments.event, arguments.begin_rotation
            )
        payload = json.loads(arguments.event.read_text()) if arguments.event else None
        summary = start_manual(cloud, deployment, local_event(payload, deployment))
        print(
            json.dumps(
                {"name": summary.name, "status": summary.status, "states": summary.states}, indent=2
            )
        )
        return 0 if summary.status == "SUCCEEDED" else 1


def _deploy_with_key(cloud: LocalCloud) -> Deployment:
    deployment = cloud.deploy(DEMO_PARAMETERS)
    cloud.store_service_account_key(cloud.google.create_service_account())
    return deployment


def _serve(cloud: LocalCloud, deployment: Deployment) -> int:
    print("The local cloud is up. In another shell:")
    for name, value in cloud.client_environment().items():
        print(f"  export {name}={value}")
    print(f"  aws secretsmanager rotate-secret --secret-id {deployment.token_secret_arn}")
    print(f"  aws stepfunctions list-executions --state-machine-arn {deployment.state_machine_arn}")
    print(f"Google emulator: {cloud.google.base_url}. Press Ctrl-C to stop.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopping")
    return 0


def _invoke(
    cloud: LocalCloud, deployment: Deployment, logical_id: str, event_path: Path, begin: bool
) -> int:
    if logical_id not in deployment.functions:
        known = ", ".join(sorted(deployment.functions))
        print(f"unknown function {logical_id!r}: use one of {known}", file=sys.stderr)
        return 2
    event = json.loads(event_path.read_text())
    result = invoke_function(cloud, deployment, logical_id, event, begin_rotation=begin)
    print(json.dumps(result.error if result.failed else result.payload, indent=2))
    current = cloud.client("secretsmanager").get_secret_value(
        SecretId=deployment.token_secret_arn, VersionStage="AWSCURRENT"
    )
    token = json.loads(current["SecretString"]).get("GOOGLE_ACCESS_TOKEN", "")
    print(f"AWSCURRENT token now: {mask(token)}", file=sys.stderr)
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
