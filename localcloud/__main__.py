"""The local cloud's command line: demo, up, invoke (like sam local invoke), start-execution, soak,
google (what happens at Google, on a running `up`).

invoke and start-execution run on a running `up` when there is one (found through its state
file, or named with --endpoint), and otherwise on a fresh local cloud of their own."""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcloud.deployment import CURRENT, Clients, Deployment
from localcloud.google_emulator import ROUTES as GOOGLE_ROUTES
from localcloud.operations import ExecutionSummary, local_event, mask, start_manual
from localcloud.remote import (
    STATE_FILE_VARIABLE,
    AttachedCloud,
    AttachError,
    refuse_to_start,
    running_up,
    state_file,
)
from localcloud.watch import Console, render_log_line

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

_EXIT_USAGE = 2
_MAX_KEY_EXPIRY_HOURS = 2160
_KEYLESS_SOURCE = "workload-identity-federation"
# localcloud.cloud, .demo and .up import moto (a second of start-up): the commands that run on
# a running `up` never need it, so those imports wait until a command does.


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    if getattr(arguments, "key_expiry_hours", None) and arguments.source == _KEYLESS_SOURCE:
        parser.error(
            "--key-expiry-hours applies to a source with a service-account key: "
            f"{_KEYLESS_SOURCE} has none (leave the option out)"
        )
    if arguments.command in {"demo", "soak", "google"}:
        return _google(arguments) if arguments.command == "google" else _self_contained(arguments)
    if arguments.command == "up":
        path = state_file(arguments.state_file)
        # run_up checks this too; checking first refuses at once, without importing moto.
        refusal = refuse_to_start(path, arguments.port)
        if refusal is not None:
            print(refusal, file=sys.stderr)
            return 1
        from localcloud.up import run_up  # noqa: PLC0415 - moto only when needed

        return run_up(
            port=arguments.port, scopes=arguments.scopes, state_path=path, log_format=arguments.logs
        )
    try:
        attached = _attach(arguments)
    except AttachError as error:
        print(error, file=sys.stderr)
        return _EXIT_USAGE
    if attached is not None:
        print(
            f"on the running `up` at {attached.description.endpoint} "
            f"(pid {attached.description.pid}); its output shows the function logs",
            file=sys.stderr,
        )
        return _run(arguments, attached, attached.deployment)
    from localcloud.cloud import LocalCloud  # noqa: PLC0415 - moto only when needed

    with LocalCloud() as cloud:
        deployment = _deploy_with_key(cloud)
        # A fresh cloud's function logs go to stderr, as `sam local invoke` shows them.
        console = Console(sys.stderr, deployment.functions)
        names = {name: logical_id for logical_id, name in deployment.functions.items()}
        cloud.logs.subscribe(
            lambda name, line: console.line(names.get(name, name), render_log_line(line))
        )
        return _run(arguments, cloud, deployment)


def _self_contained(arguments: argparse.Namespace) -> int:
    """The commands that run on a local cloud of their own, start to end."""
    if arguments.command == "demo":
        from localcloud.demo import run_demo  # noqa: PLC0415 - moto only when needed

        return run_demo()
    from localcloud.soak import soak_exit_code  # noqa: PLC0415 - moto only when needed

    return soak_exit_code(
        arguments.lifetimes, arguments.seed, arguments.source, arguments.key_expiry_hours
    )


def _key_expiry_hours(text: str) -> int:
    try:
        hours = int(text)
    except ValueError:
        hours = 0
    if not 1 <= hours <= _MAX_KEY_EXPIRY_HOURS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of hours from 1 to {_MAX_KEY_EXPIRY_HOURS} "
            "(Google's constraints/iam.serviceAccountKeyExpiryHours allows 8 to 2160)"
        )
    return hours


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo", help="deploy locally and run scheduled, manual and failing rotations"
    )
    soak = commands.add_parser(
        "soak",
        help="token lifetimes of simulated time with random faults, reading AWSCURRENT each minute",
    )
    soak.add_argument(
        "--lifetimes", type=int, default=168, help="1-hour token lifetimes to run (default: a week)"
    )
    soak.add_argument("--seed", type=int, help="replay a run (default: a random seed, printed)")
    soak.add_argument(
        "--source",
        choices=("service-account-key", "impersonation", _KEYLESS_SOURCE),
        default="service-account-key",
        help="the credential source the stack is deployed with",
    )
    soak.add_argument(
        "--key-expiry-hours",
        type=_key_expiry_hours,
        metavar="HOURS",
        help="the organisation's key-expiry policy in whole hours, 1 to 2160 (Google allows 8 "
        "and up; shorter ones renew the key more often; default: drawn from the seed, 30 to 60)",
    )
    up = commands.add_parser(
        "up",
        help="deploy locally and serve until stopped, showing logs, notices and executions",
        description="Deploy template.yaml on a local cloud and serve it until SIGINT/SIGTERM, "
        "streaming every function's log lines, every failure notice and every execution's end.",
    )
    up.add_argument(
        "--port", type=int, default=0, help="moto's port on 127.0.0.1 (default: a free one)"
    )
    up.add_argument(
        "--scopes",
        metavar='"SCOPE [SCOPE ...]"',
        help="GoogleScopes, space- or comma-separated (default: the demo's calendar.readonly)",
    )
    up.add_argument(
        "--logs",
        choices=("compact", "json"),
        default="compact",
        help="function log lines as LEVEL message key=value (compact) or as printed (json)",
    )
    _state_file_argument(up)
    invoke = commands.add_parser("invoke", help="invoke one function with an event file")
    invoke.add_argument("function", help="logical id from template.yaml, e.g. CreateSecretFunction")
    invoke.add_argument("-e", "--event", type=Path, required=True, help="event JSON file")
    invoke.add_argument(
        "--begin-rotation",
        action="store_true",
        help="first create the AWSPENDING version, as Secrets Manager does before createSecret",
    )
    _target_arguments(invoke)
    execution = commands.add_parser("start-execution", help="a manual run, as from the console")
    execution.add_argument(
        "-e", "--event", type=Path, help="input JSON (default: the token secret)"
    )
    _target_arguments(execution)
    google = commands.add_parser(
        "google",
        help="on a running `up`: what happens at Google, to rehearse the runbook",
        description="What happens at Google, done to a running `up`'s emulator: gcloud and the "
        "Cloud console do these for a real account (docs/runbook.md).",
    )
    actions = google.add_subparsers(dest="action", required=True)
    actions.add_parser("delete-key", help="delete, at Google, the key the key secret holds")
    create = actions.add_parser(
        "create-key", help="a new key of the key secret's service account, written to FILE"
    )
    create.add_argument("file", type=Path, metavar="FILE", help="where to write the key file")
    actions.add_parser(
        "list-keys", help="the user-managed keys of the key secret's service account"
    )
    policy = actions.add_parser(
        "key-expiry-policy",
        help="the org policy constraints/iam.serviceAccountKeyExpiryHours: new keys expire "
        "after HOURS",
    )
    policy.add_argument(
        "hours", type=_hours, metavar="HOURS", help='hours (Google: 8 to 2160), or "none" to lift'
    )
    fail = actions.add_parser("fail", help="the next requests to a Google route fail")
    fail.add_argument("route", choices=GOOGLE_ROUTES, help="which of Google's endpoints")
    fail.add_argument("--status", type=int, default=503, help="HTTP status (default: 503)")
    fail.add_argument("--count", type=int, default=1, help="how many requests (default: 1)")
    actions.add_parser("recover", help="Google's outage ends: drop the failures still queued")
    for action in actions.choices.values():
        _state_file_argument(action)
    return parser


def _hours(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'HOURS is a number of hours or "none", not {text!r}'
        ) from None


def _state_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-file",
        type=Path,
        help=f"where `up` describes itself (default: ${STATE_FILE_VARIABLE}, "
        "else .localcloud/up.json in the project)",
    )


def _target_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--endpoint",
        metavar="URL",
        help="run on the `up` serving this AWS endpoint, e.g. http://127.0.0.1:4566",
    )
    target.add_argument(
        "--fresh",
        action="store_true",
        help="deploy a fresh local cloud for this command even when an `up` is running",
    )
    _state_file_argument(parser)


def _google(arguments: argparse.Namespace) -> int:
    """One action at the running `up`'s Google emulator; it needs a running `up`."""
    try:
        description = running_up(state_file(arguments.state_file))
        if description is None:
            raise AttachError(
                "no running `up` to act on: start `python -m localcloud up` first (or give "
                f"--state-file / ${STATE_FILE_VARIABLE} of the one running)"
            )
        cloud = AttachedCloud(description)
        if arguments.action == "fail":
            request = {"Route": arguments.route, "Status": arguments.status}
            answer = cloud.google("fail", {**request, "Count": arguments.count})
        elif arguments.action == "key-expiry-policy":
            answer = cloud.google(arguments.action, {"Hours": arguments.hours})
        else:
            answer = cloud.google(arguments.action, {})
    except AttachError as error:
        print(error, file=sys.stderr)
        return _EXIT_USAGE
    if arguments.action != "create-key":
        print(json.dumps(answer, indent=2))
        return 0
    try:
        # A key file is a credential: only its owner may read it, as gcloud writes it.
        descriptor = os.open(arguments.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as error:
        print(f"cannot write {arguments.file}: {error.strerror}", file=sys.stderr)
        return _EXIT_USAGE
    with os.fdopen(descriptor, "w") as key_file:
        json.dump(answer, key_file, indent=2)
    key_id, account = answer["private_key_id"], answer["client_email"]
    print(f"created key [{key_id}] of [{account}] at [{arguments.file}]")
    return 0


def _attach(arguments: argparse.Namespace) -> AttachedCloud | None:
    if arguments.endpoint:
        return AttachedCloud.at_endpoint(arguments.endpoint)
    if arguments.fresh:
        return None
    path = state_file(arguments.state_file)
    description = running_up(path)
    if description is None:
        if path.exists():
            print(f"{path} names an `up` that is gone: using a fresh cloud", file=sys.stderr)
        return None
    return AttachedCloud(description)


def _run(
    arguments: argparse.Namespace, cloud: "LocalCloud | AttachedCloud", deployment: Deployment
) -> int:
    if arguments.command == "invoke":
        return _invoke(
            cloud, deployment, arguments.function, arguments.event, arguments.begin_rotation
        )
    payload = json.loads(arguments.event.read_text()) if arguments.event else None
    summary = start_manual(cloud, deployment, local_event(payload, deployment))
    print(json.dumps(_summary(summary), indent=2))
    return 0 if summary.status == "SUCCEEDED" else 1


def _summary(summary: ExecutionSummary) -> dict[str, Any]:
    described: dict[str, Any] = {"name": summary.name, "status": summary.status}
    if summary.error is not None:
        described["error"] = summary.error
    described["states"] = summary.states
    return described


def _deploy_with_key(cloud: "LocalCloud") -> Deployment:
    from localcloud.demo import DEMO_PARAMETERS  # noqa: PLC0415 - moto only when needed

    deployment = cloud.deploy(DEMO_PARAMETERS)
    cloud.store_service_account_key(cloud.google.create_service_account())
    return deployment


def _invoke(
    cloud: "LocalCloud | AttachedCloud",
    deployment: Deployment,
    logical_id: str,
    event_path: Path,
    begin: bool,
) -> int:
    if logical_id not in deployment.functions:
        known = ", ".join(sorted(deployment.functions))
        print(f"unknown function {logical_id!r}: use one of {known}", file=sys.stderr)
        return _EXIT_USAGE
    event = local_event(json.loads(event_path.read_text()), deployment)
    if begin:
        try:
            cloud.begin_rotation(event["SecretId"], event["ClientRequestToken"])
        except AttachError as error:
            print(error, file=sys.stderr)
            return _EXIT_USAGE
    output, failed = _call(cloud, deployment.functions[logical_id], event)
    print(json.dumps(output, indent=2))
    print(f"AWSCURRENT token now: {_current_token(cloud, deployment)}", file=sys.stderr)
    return 1 if failed else 0


def _call(
    cloud: "LocalCloud | AttachedCloud", function_name: str, event: Any
) -> tuple[object, bool]:
    """The handler's result, or its error object, and whether it failed."""
    if isinstance(cloud, AttachedCloud):
        return cloud.invoke(function_name, event)
    result = cloud.runtime.worker(function_name).invoke(event)
    return (result.error if result.failed else result.payload), result.failed


def _current_token(cloud: Clients, deployment: Deployment) -> str:
    current = cloud.client("secretsmanager").get_secret_value(
        SecretId=deployment.token_secret_arn, VersionStage=CURRENT
    )
    return mask(json.loads(current["SecretString"]).get("GOOGLE_ACCESS_TOKEN", ""))


if __name__ == "__main__":
    exit_status = main()
    # Every command has stopped what it started (workers, servers, `up`'s state file) when main
    # returns; the interpreter's own teardown of moto's and botocore's objects would add about a
    # second to every command, so the process ends here.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_status)
