"""google-setup's text for each credential source is the reviewed text in golden/, and what the
stack and options cannot fill in is refused with what to pass."""

import os
from pathlib import Path

import pytest

from stacktools.google_setup import SetupInputError, google_setup
from tests.stacktools.stacks import SOURCES, deployed

GOLDEN = Path(__file__).parent / "golden"
# UPDATE_GOLDEN=1 rewrites the files: review the diff before committing it.
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_the_setup_of_each_source_is_the_reviewed_text(source: str) -> None:
    text = google_setup(deployed(source))
    expected = GOLDEN / f"google-setup-{source}.txt"
    if UPDATE:
        expected.write_text(text)
    assert text == expected.read_text()


def test_keyless_binds_the_assumed_role_of_the_create_secret_role_on_the_pool() -> None:
    text = google_setup(deployed("workload-identity-federation"))

    member = (
        "--member=principalSet://iam.googleapis.com/projects/386512094217/locations/global/"
        "workloadIdentityPools/aws-pool/attribute.aws_role/"
        "arn:aws:sts::210987654321:assumed-role/tokens-CreateSecretFunctionRole-1A2B3C4D5E6F"
    )
    assert member in text
    assert "--role=roles/iam.workloadIdentityUser" in text
    order = ["workload-identity-pools create ", "providers create-aws", "Deploy the stack", member]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)


def test_the_org_policy_names_have_one_form() -> None:
    texts = "".join(google_setup(deployed(source)) for source in SOURCES)
    for name in (
        "iam.disableServiceAccountKeyCreation",
        "iam.allowServiceAccountCredentialLifetimeExtension",
        "iam.serviceAccountKeyExpiryHours",
    ):
        assert texts.count(name) == texts.count(f"constraints/{name}") > 0


def test_a_key_account_the_stack_does_not_name_needs_a_project_or_an_account() -> None:
    stack = deployed("service-account-key", GoogleServiceAccount="")

    with pytest.raises(SetupInputError, match="pass --key-account EMAIL, or --project PROJECT_ID"):
        google_setup(stack)
    text = google_setup(stack, project="acme-tokens")
    assert "--iam-account=token-rotation@acme-tokens.iam.gserviceaccount.com" in text


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"project": "Acme Tokens"}, "is not a Google project id"),
        ({"key_account": "someone@gmail.com"}, "is not a service account's e-mail"),
        (
            {"key_account": "other-account@acme-tokens.iam.gserviceaccount.com"},
            "which every token must belong to",
        ),
    ],
)
def test_bad_options_are_refused_with_what_to_pass(options: dict[str, str], problem: str) -> None:
    with pytest.raises(SetupInputError, match=problem):
        google_setup(deployed("service-account-key"), **options)


def test_a_short_token_life_needs_no_lifetime_policy() -> None:
    text = google_setup(deployed("impersonation", TokenLifetimeSeconds="3600"))

    assert "allowServiceAccountCredentialLifetimeExtension" not in text


KEY_ADMIN_BINDING = (
    "gcloud iam service-accounts add-iam-policy-binding {account} "
    "--member=serviceAccount:{account} --role=roles/iam.serviceAccountKeyAdmin"
)


@pytest.mark.parametrize(
    ("source", "account"),
    [
        ("service-account-key", "calendar-reader@acme-tokens.iam.gserviceaccount.com"),
        ("domain-wide-delegation", "calendar-reader@acme-tokens.iam.gserviceaccount.com"),
        ("impersonation", "token-rotation@acme-tokens.iam.gserviceaccount.com"),
    ],
)
def test_a_key_that_renews_itself_needs_its_account_to_manage_its_own_keys(
    source: str, account: str
) -> None:
    """Bound on the key's own account (for impersonation the key's, not the impersonated one),
    after the key is stored and before the check; none when the key does not renew itself."""
    binding = KEY_ADMIN_BINDING.format(account=account)

    text = google_setup(deployed(source, KeyRotationDays="45"))

    assert binding + "\n" in text
    assert "(KeyRotationDays=45)" in text
    assert "every 45 days" in text
    order = ["rm service-account-key.json", binding, "stacktools check"]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)
    for off in ({"KeyRotationDays": "0"}, {"KeyRotationDays": ""}):
        assert "serviceAccountKeyAdmin" not in google_setup(deployed(source, **off))


def test_keyless_federation_has_no_key_to_renew() -> None:
    text = google_setup(deployed("workload-identity-federation", KeyRotationDays="30"))

    assert "serviceAccountKeyAdmin" not in text
    assert "serviceAccountKeyExpiryHours" not in text
