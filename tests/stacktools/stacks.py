"""Deployed stacks as DescribeStacks describes them, one per credential source, with fixed values
so that google-setup's output can be compared with reviewed text."""

from collections.abc import Mapping

from stacktools.stack import DeployedStack

ACCOUNT = "210987654321"
REGION = "eu-west-1"
KEY_SECRET = (
    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:tokens-ServiceAccountKeySecret-AbC123"
)
ROLE = "tokens-CreateSecretFunctionRole-1A2B3C4D5E6F"
BASE_OUTPUTS = {
    "TokenSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:google/token-XyZ789",
    "CreateSecretRoleArn": f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
    "RotationStateMachineArn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:Rotation-Q1w2E3",
    "FailureTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:tokens-FailureTopic-R4t5Y6",
    "RefreshScheduleGroupName": "tokens-RefreshScheduleGroup-U7i8O9",
    "PutKeyCommand": (
        f"aws secretsmanager put-secret-value --secret-id {KEY_SECRET} "
        "--secret-string file://service-account-key.json"
    ),
}
BASE_PARAMETERS = {
    "CredentialSource": "service-account-key",
    "GoogleScopes": "https://www.googleapis.com/auth/calendar.readonly",
    "GoogleServiceAccount": "",
    "TokenLifetimeSeconds": "3600",
    "WorkloadIdentityAudience": "",
    "DelegatedSubject": "",
    "KeyRotationDays": "30",
}
SOURCES: Mapping[str, Mapping[str, str]] = {
    "service-account-key": {
        "GoogleServiceAccount": "calendar-reader@acme-tokens.iam.gserviceaccount.com"
    },
    "impersonation": {
        "CredentialSource": "impersonation",
        "GoogleServiceAccount": "calendar-reader@acme-tokens.iam.gserviceaccount.com",
        "TokenLifetimeSeconds": "43200",
    },
    "workload-identity-federation": {
        "CredentialSource": "workload-identity-federation",
        "GoogleServiceAccount": "calendar-reader@acme-tokens.iam.gserviceaccount.com",
        "WorkloadIdentityAudience": (
            "//iam.googleapis.com/projects/386512094217/locations/global/"
            "workloadIdentityPools/aws-pool/providers/aws-provider"
        ),
        "TokenLifetimeSeconds": "43200",
    },
    "domain-wide-delegation": {
        "GoogleServiceAccount": "calendar-reader@acme-tokens.iam.gserviceaccount.com",
        "DelegatedSubject": "room-booking@acme.example",
        "GoogleScopes": (
            "https://www.googleapis.com/auth/calendar.readonly "
            "https://www.googleapis.com/auth/calendar.events"
        ),
    },
}


def deployed(source: str, **parameters: str) -> DeployedStack:
    settings = {**BASE_PARAMETERS, **SOURCES[source], **parameters}
    outputs = dict(BASE_OUTPUTS)
    if settings["CredentialSource"] == "workload-identity-federation":
        del outputs["PutKeyCommand"]
    return DeployedStack(
        name="tokens",
        region=REGION,
        partition="aws",
        account_id=ACCOUNT,
        parameters=settings,
        outputs=outputs,
    )
