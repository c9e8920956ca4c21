"""`python -m stacktools`: google-setup prints the Google-side steps for a deployed stack; check
rotates once and checks the whole chain. Both read the stack through CloudFormation's
DescribeStacks, with the AWS credentials, region and endpoint boto3 finds."""

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from stacktools.google_setup import SetupInputError, google_setup
from stacktools.post_deploy_check import (
    DEFAULT_TIMEOUT_SECONDS,
    GOOGLE_TOKENINFO_URL,
    CheckSettings,
    format_results,
    run_checks,
)
from stacktools.stack import DEFAULT_STACK_NAME, StackError, read_stack

TOKENINFO_URL_VARIABLE = "GOOGLE_TOKENINFO_URL"
_EXIT_FAILED = 1
_EXIT_USAGE = 2
# RotateSecret is not retried (a retry could start a second rotation); where the rotation runs
# inside the call (the local cloud), it needs a long read timeout.
_CLIENT_CONFIG = Config(retries={"total_max_attempts": 1}, read_timeout=300)


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        clients = _client_factory(arguments.region)
        stack = read_stack(clients("cloudformation"), arguments.stack_name)
        if arguments.command == "google-setup":
            print(
                google_setup(stack, project=arguments.project, key_account=arguments.key_account),
                end="",
            )
            return 0
        settings = CheckSettings(
            tokeninfo_url=arguments.tokeninfo_url,
            rotate=not arguments.no_rotate,
            timeout_seconds=arguments.timeout,
        )
        results = run_checks(clients, stack, settings)
    except (StackError, SetupInputError) as error:
        print(f"{arguments.command}: {error}", file=sys.stderr)
        return _EXIT_USAGE
    except NoRegionError:
        print(
            f"{arguments.command}: no AWS region: pass --region or set AWS_REGION", file=sys.stderr
        )
        return _EXIT_USAGE
    except NoCredentialsError:
        print(
            f"{arguments.command}: no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY), or run `aws configure`",
            file=sys.stderr,
        )
        return _EXIT_USAGE
    except (ClientError, BotoCoreError) as error:
        print(f"{arguments.command}: AWS refused or failed: {error}", file=sys.stderr)
        return _EXIT_USAGE
    print(format_results(results), end="")
    return 0 if all(result.ok for result in results) else _EXIT_FAILED


def _client_factory(region: str | None) -> Callable[[str], Any]:
    session = boto3.Session(region_name=region)
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in made:
            made[service] = session.client(service, config=_CLIENT_CONFIG)  # type: ignore[call-overload]
        return made[service]

    return client


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stacktools", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser(
        "google-setup",
        help="print the Google-side setup of the deployed stack, every gcloud command in order",
    )
    _stack_arguments(setup)
    setup.add_argument(
        "--project",
        metavar="PROJECT_ID",
        help="the Google project (default: the project of the stack's service account)",
    )
    setup.add_argument(
        "--key-account",
        metavar="EMAIL",
        help="the service account whose key the stack holds (default: ExpectedServiceAccount, "
        "else token-rotation@PROJECT_ID.iam.gserviceaccount.com)",
    )
    check = commands.add_parser(
        "check", help="rotate once and check the token, Google, the next refresh, alarm and topic"
    )
    _stack_arguments(check)
    check.add_argument(
        "--no-rotate",
        action="store_true",
        help="check what is there without rotating first",
    )
    check.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"how long to follow the rotation (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    check.add_argument(
        "--tokeninfo-url",
        default=os.environ.get(TOKENINFO_URL_VARIABLE) or GOOGLE_TOKENINFO_URL,
        metavar="URL",
        help=f"Google's tokeninfo (default ${TOKENINFO_URL_VARIABLE}, else {GOOGLE_TOKENINFO_URL})",
    )
    return parser


def _stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack-name",
        default=DEFAULT_STACK_NAME,
        help=f"the deployed stack (default {DEFAULT_STACK_NAME}, as samconfig.toml names it)",
    )
    parser.add_argument("--region", help="its AWS region (default: AWS_REGION, or your profile's)")


if __name__ == "__main__":
    sys.exit(main())
