"""The operator tools against the local cloud, through the command line's own code: the stack
read through DescribeStacks, google-setup filled in from it, and the post-deploy check green on a
healthy stack and naming the fix of each failure it can be made to see."""

import uuid
from collections.abc import Callable

import pytest

from localcloud.cloud import LocalCloud
from localcloud.deployment import ACCOUNT_ID, CURRENT
from rotation_core.refresh import schedule_name
from stacktools.__main__ import main
from tests.e2e.stacks import PARAMETERS, Stack

Run = Callable[..., tuple[int, str, str]]
AUDIENCE = (
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/aws-pool/"
    "providers/aws-provider"
)


@pytest.fixture
def run(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    """`python -m stacktools ARGS` on this cloud, as a user's shell with its exports runs it:
    (exit status, stdout, stderr)."""
    for name, value in cloud.client_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GOOGLE_TOKENINFO_URL", cloud.google.tokeninfo_url)

    def command(*arguments: str) -> tuple[int, str, str]:
        status = main(list(arguments))
        out, err = capsys.readouterr()
        return status, out, err

    return command


def _failed(out: str) -> list[str]:
    return [
        line.split(":", 1)[0].removeprefix("FAILED").strip()
        for line in out.splitlines()
        if line.startswith("FAILED")
    ]


def test_describe_stacks_answers_what_was_deployed(cloud: LocalCloud, stack: Stack) -> None:
    deployment = stack.deployment

    (described,) = cloud.client("cloudformation").describe_stacks(StackName=deployment.stack_name)[
        "Stacks"
    ]

    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}
    assert described["StackStatus"] == "CREATE_COMPLETE"
    assert outputs["TokenSecretArn"] == deployment.token_secret_arn
    assert outputs["RotationStateMachineArn"] == deployment.state_machine_arn
    assert outputs["PutKeyCommand"].endswith(
        f"--secret-id {deployment.key_secret_arn} --secret-string file://service-account-key.json"
    )
    role = f"{deployment.stack_name}-CreateSecretFunctionRole"
    assert outputs["CreateSecretRoleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{role}"
    create_secret = cloud.client("lambda").get_function_configuration(
        FunctionName=deployment.functions["CreateSecretFunction"]
    )
    assert create_secret["Role"] == outputs["CreateSecretRoleArn"]
    assert parameters["GoogleScopes"] == PARAMETERS["GoogleScopes"]
    assert parameters["CredentialSource"] == "service-account-key"


def test_the_check_is_all_green_on_a_healthy_stack_and_never_shows_the_token(
    run: Run,
    stack: Stack,
) -> None:
    status, out, err = run("check", "--stack-name", stack.deployment.stack_name)

    assert (status, err) == (0, "")
    assert [line.split(":", 1)[0] for line in out.splitlines()[:-1]] == [
        "ok      rotation",
        "ok      token",
        "ok      google",
        "ok      next refresh",
        "ok      alarm",
        "ok      topic",
    ]
    assert out.splitlines()[-1] == "6/6 ok: all checks passed"
    assert stack.current()["GOOGLE_ACCESS_TOKEN"] not in out
    assert len(stack.executions()) == 4


def test_google_refusing_the_key_fails_the_rotation_and_points_to_the_google_setup(
    cloud: LocalCloud,
    run: Run,
    stack: Stack,
) -> None:
    cloud.google.disable_key(stack.account.private_key_id)

    status, out, _ = run("check", "--stack-name", stack.deployment.stack_name)

    assert status == 1
    assert _failed(out) == ["rotation", "token", "google"]
    rotation = out.splitlines()[0]
    assert "createSecret-" in rotation
    assert "GoogleGrantRejectedError" in rotation
    assert "fix: Google refused: run `python -m stacktools google-setup`" in out
    assert "AWSCURRENT holds no GOOGLE_ACCESS_TOKEN yet" in out


def test_each_lost_piece_fails_its_own_check_with_its_fix(
    cloud: LocalCloud,
    run: Run,
    stack: Stack,
) -> None:
    name = stack.deployment.stack_name
    assert run("check", "--stack-name", name)[0] == 0
    group = stack.deployment.refs["RefreshScheduleGroup"]

    cloud.client("scheduler").delete_schedule(GroupName=group, Name=schedule_name(stack.secret_arn))
    status, out, _ = run("check", "--stack-name", name, "--no-rotate")
    assert (status, _failed(out)) == (1, ["next refresh"])
    assert "fix: the freshness sweep re-creates it within 5 minutes" in out

    cloud.google.revoke_token(stack.current()["GOOGLE_ACCESS_TOKEN"])
    status, out, _ = run("check", "--stack-name", name, "--no-rotate")
    assert (status, _failed(out)) == (1, ["google", "next refresh"])
    assert "tokeninfo says the token is not valid" in out
    assert "fix: check the account in the Google console, then rotate again" in out

    cloud.client("cloudwatch").delete_alarms(AlarmNames=[f"{name}-TokenFreshnessAlarm"])
    cloud.client("sns").delete_topic(TopicArn=stack.deployment.topic_arn)
    status, out, _ = run("check", "--stack-name", name, "--no-rotate")
    assert (status, _failed(out)) == (1, ["google", "next refresh", "alarm", "topic"])
    assert (
        "fix: deploy the stack again (make deploy): CloudFormation re-creates TokenFreshnessAlarm"
        in out
    )
    assert (
        "fix: deploy the stack again (make deploy): CloudFormation re-creates FailureTopic" in out
    )


def test_an_unfinished_rotation_is_followed_to_its_end(
    cloud: LocalCloud,
    run: Run,
    stack: Stack,
) -> None:
    """RotateSecret is refused while AWSPENDING waits on another version; Secrets Manager then
    re-attempts that rotation, and the check follows it instead of failing."""
    pending = str(uuid.uuid4())
    cloud.begin_rotation(stack.secret_arn, pending)

    status, out, _ = run("check", "--stack-name", stack.deployment.stack_name)

    assert status == 0, out
    assert out.startswith(
        "ok      rotation: a rotation was unfinished; Secrets Manager re-attempted it and "
        f"version {pending} is AWSCURRENT"
    )
    assert CURRENT in stack.stages()[pending]


def test_a_stack_that_is_not_there_is_one_line_naming_the_fix(run: Run) -> None:
    status, out, err = run("check", "--stack-name", "no-such-stack")

    assert (status, out) == (2, "")
    assert err == (
        "check: no stack no-such-stack in us-east-1: pass --stack-name (the name `make deploy` "
        "used) and --region (or AWS_REGION) where it was deployed\n"
    )


def test_google_setup_of_a_keyless_stack_binds_its_create_secret_role(
    cloud: LocalCloud,
    run: Run,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    name = f"e2e-keyless-{suffix}"
    cloud.deploy(
        {
            **PARAMETERS,
            "TokenSecretName": f"e2e/{suffix}/keyless",
            "CredentialSource": "workload-identity-federation",
            "WorkloadIdentityAudience": AUDIENCE,
            "ImpersonatedServiceAccount": "reader@demo-project.iam.gserviceaccount.com",
        },
        stack_name=name,
    )

    status, out, err = run("google-setup", "--stack-name", name)

    assert (status, err) == (0, "")
    assert (
        "--member=principalSet://iam.googleapis.com/projects/123456789/locations/global/"
        "workloadIdentityPools/aws-pool/attribute.aws_role/"
        f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{name}-CreateSecretFunctionRole "
        "--role=roles/iam.workloadIdentityUser"
    ) in out
    assert f"python -m stacktools check --stack-name {name} --region us-east-1" in out
