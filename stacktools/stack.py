"""Everything the operator tools read from a deployed stack, in one module: the template's
parameter and output names live here only (a static test checks each exists in template.yaml)."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

DEFAULT_STACK_NAME: Final = "google-token-rotation"

# Parameters (their values as deployed).
CREDENTIAL_SOURCE: Final = "CredentialSource"
GOOGLE_SCOPES: Final = "GoogleScopes"
GOOGLE_SERVICE_ACCOUNT: Final = "GoogleServiceAccount"
"""The key's own account (service-account-key, optional) or the one impersonated (required)."""
TOKEN_LIFETIME_SECONDS: Final = "TokenLifetimeSeconds"
WORKLOAD_IDENTITY_AUDIENCE: Final = "WorkloadIdentityAudience"
DELEGATED_SUBJECT: Final = "DelegatedSubject"
KEY_ROTATION_DAYS: Final = "KeyRotationDays"
"""Days between renewals of the key (0: never); a stack deployed before it existed has none."""
PARAMETERS_READ: Final = (
    CREDENTIAL_SOURCE,
    GOOGLE_SCOPES,
    GOOGLE_SERVICE_ACCOUNT,
    TOKEN_LIFETIME_SECONDS,
    WORKLOAD_IDENTITY_AUDIENCE,
    DELEGATED_SUBJECT,
    KEY_ROTATION_DAYS,
)

# Outputs.
TOKEN_SECRET_ARN: Final = "TokenSecretArn"
PUT_KEY_COMMAND: Final = "PutKeyCommand"
CREATE_SECRET_ROLE_ARN: Final = "CreateSecretRoleArn"
ROTATION_STATE_MACHINE_ARN: Final = "RotationStateMachineArn"
FAILURE_TOPIC_ARN: Final = "FailureTopicArn"
REFRESH_SCHEDULE_GROUP_NAME: Final = "RefreshScheduleGroupName"
OUTPUTS_READ: Final = (
    TOKEN_SECRET_ARN,
    PUT_KEY_COMMAND,
    CREATE_SECRET_ROLE_ARN,
    ROTATION_STATE_MACHINE_ARN,
    FAILURE_TOPIC_ARN,
    REFRESH_SCHEDULE_GROUP_NAME,
)
# The only output that exists for some sources alone (not with workload-identity-federation).
CONDITIONAL_OUTPUTS: Final = frozenset({PUT_KEY_COMMAND})

# The freshness alarm's metric, as template.yaml's TokenFreshnessAlarm watches it.
FRESHNESS_NAMESPACE: Final = "GoogleTokenRotation"
FRESHNESS_METRIC: Final = "LeastSecondsLeft"
FRESHNESS_STACK_DIMENSION: Final = "Stack"

_USABLE_STATUS = re.compile(r"(CREATE|UPDATE|IMPORT)_COMPLETE|UPDATE_ROLLBACK_COMPLETE")
_STACK_ID = re.compile(r"arn:(?P<partition>aws[a-z-]*):cloudformation:[^:]+:(?P<account>\d{12}):")


class StackError(Exception):
    """The stack cannot be read or lacks what the tools need: the message names the fix."""


@dataclass(frozen=True)
class DeployedStack:
    """A stack's parameters and outputs as CloudFormation's DescribeStacks answers them."""

    name: str
    region: str
    partition: str
    account_id: str
    parameters: Mapping[str, str]
    outputs: Mapping[str, str]

    def parameter(self, name: str) -> str:
        return self.parameters.get(name, "").strip()

    def output(self, name: str) -> str:
        value = self.outputs.get(name, "").strip()
        if not value:
            raise StackError(
                f"stack {self.name} has no output {name}: deploy this version of template.yaml "
                "(make deploy)"
            )
        return value

    @property
    def credential_source(self) -> str:
        return self.parameter(CREDENTIAL_SOURCE)

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(re.split(r"[ ,]+", self.parameter(GOOGLE_SCOPES).strip(" ,")))

    @property
    def token_lifetime_seconds(self) -> int:
        raw = self.parameter(TOKEN_LIFETIME_SECONDS) or "3600"
        return int(raw)

    @property
    def key_rotation_days(self) -> int:
        raw = self.parameter(KEY_ROTATION_DAYS) or "0"
        return int(raw)


def read_stack(cloudformation: Any, stack_name: str) -> DeployedStack:
    """DescribeStacks for one stack; StackError when it is missing or not in a usable state."""
    region = cloudformation.meta.region_name
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        if "does not exist" in message:
            raise StackError(
                f"no stack {stack_name} in {region}: pass --stack-name (the name `make deploy` "
                "used) and --region (or AWS_REGION) where it was deployed"
            ) from None
        raise StackError(f"cannot describe stack {stack_name} in {region}: {message}") from None
    (stack,) = stacks
    status = stack["StackStatus"]
    if not _USABLE_STATUS.fullmatch(status):
        raise StackError(
            f"stack {stack_name} is {status}: wait until its deploy completes, or fix what the "
            "CloudFormation console's Events tab names and deploy again"
        )
    found = _STACK_ID.match(stack["StackId"])
    if found is None:
        raise StackError(f"stack {stack_name} has an unexpected StackId {stack['StackId']!r}")
    return DeployedStack(
        name=stack["StackName"],
        region=region,
        partition=found["partition"],
        account_id=found["account"],
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in stack["Parameters"]},
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
    )
