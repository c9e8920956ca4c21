"""The Google side of a deployed stack, step by step: every gcloud command, in order, filled in
with the stack's own values, for the credential source it was deployed with."""

import re
import shlex
from dataclasses import dataclass
from typing import Final

from stacktools.stack import (
    CREATE_SECRET_ROLE_ARN,
    CREDENTIAL_SOURCE,
    DELEGATED_SUBJECT,
    GOOGLE_SERVICE_ACCOUNT,
    KEY_ROTATION_DAYS,
    PUT_KEY_COMMAND,
    WORKLOAD_IDENTITY_AUDIENCE,
    DeployedStack,
)

KEY_SOURCE: Final = "service-account-key"
IMPERSONATION_SOURCE: Final = "impersonation"
KEYLESS_SOURCE: Final = "workload-identity-federation"
DEFAULT_KEY_ACCOUNT_NAME: Final = "token-rotation"
KEY_FILE: Final = "service-account-key.json"
TOKEN_CREATOR_ROLE: Final = "roles/iam.serviceAccountTokenCreator"
WORKLOAD_IDENTITY_USER_ROLE: Final = "roles/iam.workloadIdentityUser"
KEY_ADMIN_ROLE: Final = "roles/iam.serviceAccountKeyAdmin"
KEY_CREATION_POLICY: Final = "constraints/iam.disableServiceAccountKeyCreation"
KEY_EXPIRY_POLICY: Final = "constraints/iam.serviceAccountKeyExpiryHours"
LIFETIME_POLICY: Final = "constraints/iam.allowServiceAccountCredentialLifetimeExtension"
# Google's own mapping for AWS providers, given explicitly: attribute.aws_role is the assumed
# role without its session name, so one binding covers every session of the role.
AWS_ATTRIBUTE_MAPPING: Final = (
    "google.subject=assertion.arn,"
    "attribute.aws_role=assertion.arn.contains('assumed-role') ? "
    "assertion.arn.extract('{account_arn}assumed-role/') + 'assumed-role/' + "
    "assertion.arn.extract('assumed-role/{role_name}/') : assertion.arn"
)
_ONE_HOUR: Final = 3600

_USER_MANAGED_ACCOUNT = re.compile(
    r"(?P<name>[a-z][a-z0-9-]{4,28}[a-z0-9])@(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])"
    r"\.iam\.gserviceaccount\.com"
)
_PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_AUDIENCE = re.compile(
    r"//iam\.googleapis\.com/projects/(?P<number>[0-9]+)/locations/global/"
    r"workloadIdentityPools/(?P<pool>[^/]+)/providers/(?P<provider>[^/]+)"
)
_ROLE_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):role/(.*/)?(?P<name>[^/]+)"
)
_SAFE_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


class SetupInputError(Exception):
    """The stack and the options do not say enough to fill the steps in: the message says what
    to pass."""


@dataclass(frozen=True)
class Step:
    """One thing to do: why, then the commands (none when it is done in a console)."""

    title: str
    notes: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()


def google_setup(
    stack: DeployedStack, *, project: str | None = None, key_account: str | None = None
) -> str:
    """The whole setup as text to read and paste into a shell (comments, then commands)."""
    return render(stack, setup_steps(stack, project=project, key_account=key_account))


def setup_steps(
    stack: DeployedStack, *, project: str | None = None, key_account: str | None = None
) -> list[Step]:
    if project is not None and not _PROJECT_ID.fullmatch(project):
        raise SetupInputError(
            f"--project {project!r} is not a Google project id (6 to 30 lower-case letters, "
            "digits and hyphens, starting with a letter)"
        )
    if key_account is not None and not _USER_MANAGED_ACCOUNT.fullmatch(key_account):
        raise SetupInputError(
            f"--key-account {key_account!r} is not a service account's e-mail "
            "(NAME@PROJECT_ID.iam.gserviceaccount.com)"
        )
    source = stack.credential_source
    if source == KEYLESS_SOURCE:
        return _keyless(stack, project)
    if source == IMPERSONATION_SOURCE:
        return _impersonation(stack, project, key_account)
    if source == KEY_SOURCE:
        return _key(stack, project, key_account)
    raise SetupInputError(
        f"stack {stack.name} has {CREDENTIAL_SOURCE} {source!r}, which this tool does not know: "
        "update the tools with the template (git pull)"
    )


def render(stack: DeployedStack, steps: list[Step]) -> str:
    lines = [
        f"# Google-side setup for stack {stack.name} (region {stack.region}, AWS account "
        f"{stack.account_id}),",
        f"# credential source {stack.credential_source}. Run the commands in order, signed in "
        "to gcloud as an IAM administrator of the project.",
    ]
    for number, step in enumerate(steps, start=1):
        lines += ["", f"# {number}. {step.title}"]
        lines += [f"#    {note}" if note else "#" for note in step.notes]
        lines += step.commands
    return "\n".join(lines) + "\n"


# --- the sources ---------------------------------------------------------------------------


def _key(stack: DeployedStack, project: str | None, key_account: str | None) -> list[Step]:
    expected = stack.parameter(GOOGLE_SERVICE_ACCOUNT)
    account = key_account or expected or _default_account(project, stack, GOOGLE_SERVICE_ACCOUNT)
    if expected and key_account and key_account != expected:
        raise SetupInputError(
            f"--key-account {key_account} is not {expected}, the {GOOGLE_SERVICE_ACCOUNT} of "
            f"stack {stack.name}, which every token must belong to: leave --key-account out"
        )
    project = project or _project_of(account)
    subject = stack.parameter(DELEGATED_SUBJECT)
    steps = [
        _enable_apis(project, ["iam.googleapis.com"], "service accounts and their keys"),
        _create_account(account, "the account whose tokens the secret holds"),
    ]
    if subject:
        steps.append(_delegation(stack, account, subject))
    else:
        steps.append(_reach_the_data(stack, account))
    steps += [_create_key(account, project), _store_key(stack)]
    steps += [*_renew_key(stack, account, project), _check(stack)]
    return steps


def _impersonation(
    stack: DeployedStack, project: str | None, key_account: str | None
) -> list[Step]:
    target = stack.parameter(GOOGLE_SERVICE_ACCOUNT)
    project = project or _project_of(target)
    account = key_account or f"{DEFAULT_KEY_ACCOUNT_NAME}@{project}.iam.gserviceaccount.com"
    if account == target:
        raise SetupInputError(
            f"--key-account {account} is the {GOOGLE_SERVICE_ACCOUNT} itself: name the "
            "account whose key mints its tokens"
        )
    steps = [
        _enable_apis(
            project,
            ["iam.googleapis.com", "iamcredentials.googleapis.com"],
            "service accounts and keys; IAM Credentials mints the impersonated tokens",
        ),
        _create_account(account, "the key's account: it can do nothing but mint the tokens"),
        _create_account(target, f"the account whose tokens the secret holds ({_target_note()})"),
        _reach_the_data(stack, target),
        Step(
            f"Let {account} mint {target}'s tokens:",
            commands=(_binding(target, f"serviceAccount:{account}", TOKEN_CREATOR_ROLE),),
        ),
    ]
    steps += _longer_lifetime(stack, target, project)
    steps += [_create_key(account, project), _store_key(stack)]
    steps += [*_renew_key(stack, account, project), _check(stack)]
    return steps


def _keyless(stack: DeployedStack, project: str | None) -> list[Step]:
    target = stack.parameter(GOOGLE_SERVICE_ACCOUNT)
    audience = stack.parameter(WORKLOAD_IDENTITY_AUDIENCE)
    pool = _AUDIENCE.fullmatch(audience)
    if pool is None:
        raise SetupInputError(
            f"stack {stack.name} has {WORKLOAD_IDENTITY_AUDIENCE} {audience!r}, not a pool "
            "provider's name (//iam.googleapis.com/projects/NUMBER/locations/global/"
            "workloadIdentityPools/POOL/providers/PROVIDER): deploy it with one"
        )
    project = project or _project_of(target)
    role_arn = stack.output(CREATE_SECRET_ROLE_ARN)
    role = _ROLE_ARN.fullmatch(role_arn)
    if role is None:
        raise SetupInputError(
            f"stack {stack.name}'s {CREATE_SECRET_ROLE_ARN} {role_arn!r} is not an IAM role ARN"
        )
    assumed_role = f"arn:{role['partition']}:sts::{role['account']}:assumed-role/{role['name']}"
    pool_name = (
        f"//iam.googleapis.com/projects/{pool['number']}/locations/global/"
        f"workloadIdentityPools/{pool['pool']}"
    )
    member = f"principalSet:{pool_name}/attribute.aws_role/{assumed_role}"
    steps = [
        Step(
            f"Before deploying: the number of project {project}, which names the pool:",
            notes=(
                f"it must print {pool['number']}, the number in the stack's "
                f"{WORKLOAD_IDENTITY_AUDIENCE}.",
            ),
            commands=(
                f"gcloud projects describe {project} --format={_word('value(projectNumber)')}",
            ),
        ),
        _enable_apis(
            project,
            [
                "iam.googleapis.com",
                "iamcredentials.googleapis.com",
                "sts.googleapis.com",
                "cloudresourcemanager.googleapis.com",
            ],
            "STS exchanges the AWS identity; IAM Credentials mints the impersonated tokens",
        ),
        _create_account(target, f"the account whose tokens the secret holds ({_target_note()})"),
        _reach_the_data(stack, target),
        Step(
            f"The workload identity pool {pool['pool']}:",
            commands=(
                _command(
                    "gcloud iam workload-identity-pools create",
                    pool["pool"],
                    project=project,
                    location="global",
                    display_name=f"AWS account {stack.account_id}",
                ),
            ),
        ),
        Step(
            f"Its AWS provider {pool['provider']}, trusting AWS account {stack.account_id} only:",
            notes=(
                "the mapping is Google's own for AWS, given explicitly: attribute.aws_role is "
                "the role a caller assumed, whatever its session.",
            ),
            commands=(
                _command(
                    "gcloud iam workload-identity-pools providers create-aws",
                    pool["provider"],
                    project=project,
                    location="global",
                    workload_identity_pool=pool["pool"],
                    account_id=stack.account_id,
                    attribute_mapping=AWS_ATTRIBUTE_MAPPING,
                ),
            ),
        ),
        Step(
            "Deploy the stack with these values (done: this is the deployed stack's setup):",
            notes=(
                f"{CREDENTIAL_SOURCE}={KEYLESS_SOURCE}",
                f"{WORKLOAD_IDENTITY_AUDIENCE}={audience}",
                f"{GOOGLE_SERVICE_ACCOUNT}={target}",
            ),
        ),
        Step(
            f"After deploying: let the stack's createSecret role impersonate {target}.",
            notes=(
                f"{CREATE_SECRET_ROLE_ARN} is {role_arn};",
                f"Google's pool sees the function as {assumed_role}/<session>,",
                "and attribute.aws_role leaves the session out.",
            ),
            commands=(_binding(target, member, WORKLOAD_IDENTITY_USER_ROLE),),
        ),
    ]
    steps += _longer_lifetime(stack, target, project)
    steps.append(_check(stack))
    return steps


# --- the steps -----------------------------------------------------------------------------


def _enable_apis(project: str, apis: list[str], why: str) -> Step:
    return Step(
        f"Enable the APIs ({why}):",
        commands=(f"gcloud services enable {' '.join(apis)} --project={project}",),
    )


def _create_account(email: str, what: str) -> Step:
    found = _USER_MANAGED_ACCOUNT.fullmatch(email)
    if found is None:
        return Step(f"{email} is {what}; it is not an account you create: nothing to do.")
    return Step(
        f"Create {email}, {what} (skip if it exists):",
        commands=(
            _command(
                "gcloud iam service-accounts create",
                found["name"],
                project=found["project"],
                display_name="Google tokens kept fresh in AWS Secrets Manager",
            ),
        ),
    )


def _target_note() -> str:
    return f"{GOOGLE_SERVICE_ACCOUNT}; it needs no key"


def _reach_the_data(stack: DeployedStack, account: str) -> Step:
    return Step(
        f"Give {account} access to what the application reads:",
        notes=(
            f"the tokens carry the scopes {' '.join(stack.scopes)},",
            "and scopes only narrow what the account itself may do: share the data with it",
            "(a calendar, a folder) or grant it a role on the resource.",
        ),
    )


def _delegation(stack: DeployedStack, account: str, subject: str) -> Step:
    return Step(
        f"Domain-wide delegation: let {account} act for {subject} (Google Workspace).",
        notes=(
            "Its client id is what this prints. A Workspace super administrator then opens",
            "admin.google.com > Security > Access and data control > API controls >",
            "Manage Domain Wide Delegation > Add new, and enters that client id with exactly",
            f"these OAuth scopes: {','.join(stack.scopes)}",
        ),
        commands=(
            f"gcloud iam service-accounts describe {account} "
            f"--format={_word('value(oauth2ClientId)')}",
        ),
    )


def _longer_lifetime(stack: DeployedStack, target: str, project: str) -> list[Step]:
    lifetime = stack.token_lifetime_seconds
    if lifetime <= _ONE_HOUR:
        return []
    return [
        Step(
            f"Tokens of {lifetime} s (over an hour) need the organization policy "
            f"{LIFETIME_POLICY} to list {target}:",
            notes=("an organization policy administrator runs it.",),
            commands=(
                f"gcloud resource-manager org-policies allow {LIFETIME_POLICY} {target} "
                f"--project={project}",
            ),
        )
    ]


def _create_key(account: str, project: str) -> Step:
    return Step(
        f"A key of {account}:",
        notes=(
            'If it fails with "Key creation is not allowed", the organization policy',
            f"{KEY_CREATION_POLICY} is enforced: deploy with",
            f"{CREDENTIAL_SOURCE}={KEYLESS_SOURCE} (no key), or have an organization policy",
            "administrator lift it for this project alone:",
            f"gcloud resource-manager org-policies disable-enforce {KEY_CREATION_POLICY} "
            f"--project={project}",
        ),
        commands=(f"gcloud iam service-accounts keys create {KEY_FILE} --iam-account={account}",),
    )


def _renew_key(stack: DeployedStack, account: str, project: str) -> list[Step]:
    """The key renews itself (KeyRotationDays above 0) as its own account: that account may
    manage its own keys, and no other account's, nor anything else in the project."""
    days = stack.key_rotation_days
    if days <= 0:
        return []
    return [
        Step(
            f"Let {account} renew its own key ({KEY_ROTATION_DAYS}={days}):",
            notes=(
                f"every {days} days the stack, signed in with the key in use, creates the",
                "account's next key, tests it, makes it the key in use and deletes the key",
                "before last. The role is bound on the account itself, not on the project:",
                "it manages this account's keys and nothing else.",
                f"If the organization policy {KEY_EXPIRY_POLICY} is enforced,",
                "each new key expires after the hours it sets: the stack renews a key before",
                "it expires, 7 days before or, for shorter-lived keys, after three quarters of",
                "its life. This shows the hours in force for the project:",
                f"gcloud resource-manager org-policies describe {KEY_EXPIRY_POLICY} "
                f"--project={project} --effective",
            ),
            commands=(_binding(account, f"serviceAccount:{account}", KEY_ADMIN_ROLE),),
        )
    ]


def _store_key(stack: DeployedStack) -> Step:
    return Step(
        "Store it in the stack's key secret (its output PutKeyCommand), then delete the file:",
        commands=(stack.output(PUT_KEY_COMMAND), f"rm {KEY_FILE}"),
    )


def _check(stack: DeployedStack) -> Step:
    return Step(
        "Rotate once and check the whole chain (docs/post-deploy-check.md):",
        commands=(
            ".venv/bin/python -m stacktools check "
            f"--stack-name {stack.name} --region {stack.region}",
        ),
    )


def _binding(target: str, member: str, role: str) -> str:
    return _command(
        "gcloud iam service-accounts add-iam-policy-binding", target, member=member, role=role
    )


# --- values --------------------------------------------------------------------------------


def _project_of(email: str) -> str:
    found = _USER_MANAGED_ACCOUNT.fullmatch(email)
    if found is None:
        raise SetupInputError(
            f"cannot tell the Google project from {email!r}: pass --project PROJECT_ID"
        )
    return found["project"]


def _default_account(project: str | None, stack: DeployedStack, parameter: str) -> str:
    if project is None:
        raise SetupInputError(
            f"stack {stack.name} does not name the key's service account ({parameter} is "
            "empty): pass --key-account EMAIL, or --project PROJECT_ID to create "
            f"{DEFAULT_KEY_ACCOUNT_NAME}@PROJECT_ID.iam.gserviceaccount.com"
        )
    return f"{DEFAULT_KEY_ACCOUNT_NAME}@{project}.iam.gserviceaccount.com"


def _command(program: str, *arguments: str, **flags: str) -> str:
    words = [program, *(_word(argument) for argument in arguments)]
    words += [f"--{name.replace('_', '-')}={_word(value)}" for name, value in flags.items()]
    return " ".join(words)


def _word(value: str) -> str:
    """One shell word: as it is when plain, else in double quotes when nothing in it expands
    there (easier to read than shlex's single quotes around quotes), else shlex's quoting."""
    if _SAFE_WORD.fullmatch(value):
        return value
    if not re.search(r'["$`\\!]', value):
        return f'"{value}"'
    return shlex.quote(value)
