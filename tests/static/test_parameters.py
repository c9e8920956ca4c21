"""template.yaml's parameters are grouped, labelled and explained, the settings one parameter
implies are derived from it, and the parameter reference page is what the template says."""

import subprocess
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from localcloud.intrinsics import Resolver
from rotation_core.config import RotationSettings
from tests.doc_blocks import doc_block
from tools import deploy_guide
from tools.parameter_reference import REGENERATE, TAG_RULES, settings
from tools.template_parameters import INTERFACE, PROJECT_ROOT, parameter_groups, template_document

DOCUMENT = template_document()
PARAMETERS: Mapping[str, Any] = DOCUMENT["Parameters"]
INTERFACE_SPEC = DOCUMENT["Metadata"][INTERFACE]
GROUPED = [name for group in INTERFACE_SPEC["ParameterGroups"] for name in group["Parameters"]]
ACCOUNT = "reader@demo-project.iam.gserviceaccount.com"
KEY_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack-key-AbCdEf"
AUDIENCE = (
    "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/aws/providers/account"
)


def test_every_parameter_is_in_exactly_one_group() -> None:
    assert sorted(GROUPED) == sorted(PARAMETERS)
    assert len(GROUPED) == len(set(GROUPED))


def test_the_groups_are_the_four_a_deployer_thinks_in() -> None:
    assert [group.label for group in parameter_groups(DOCUMENT)] == [
        "Google credential source",
        "Token",
        "Refresh and rotation",
        "Notifications and logs",
    ]


def test_every_parameter_has_a_label_and_only_parameters_do() -> None:
    labels = INTERFACE_SPEC["ParameterLabels"]
    assert sorted(labels) == sorted(PARAMETERS)
    assert all(str(label["default"]).strip() for label in labels.values())


def test_parameters_are_declared_in_group_order_which_sam_deploy_guided_asks_in() -> None:
    assert list(PARAMETERS) == GROUPED


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_every_description_states_the_default(name: str) -> None:
    spec = PARAMETERS[name]
    description = " ".join(str(spec["Description"]).split())
    if "Default" not in spec:
        assert description.startswith("Required, no default")
    elif spec["Default"] == "":
        assert "empty" in description
    else:
        assert f"default {spec['Default']}" in description.lower() or (
            f"{spec['Default']} (default" in description
        )


def deployed_settings(parameters: Mapping[str, str]) -> RotationSettings:
    """What the functions resolve from the Globals environment these parameter values give."""
    values = {name: str(spec.get("Default", "")) for name, spec in PARAMETERS.items()} | dict(
        parameters
    )
    resolver = Resolver(
        parameters=values,
        pseudo={"AWS::StackName": "stack", "AWS::Region": "us-east-1"},
        conditions=DOCUMENT["Conditions"],
        refs={"ServiceAccountKeySecret": KEY_SECRET},
    )
    variables = DOCUMENT["Globals"]["Function"]["Environment"]["Variables"]
    environment = {name: str(resolver.value(value)) for name, value in variables.items()}
    return RotationSettings.resolve({}, environment)


SCOPES = {"GoogleScopes": "https://www.googleapis.com/auth/calendar.readonly"}


def test_with_a_key_the_service_account_pins_the_keys_own_tokens() -> None:
    resolved = deployed_settings({**SCOPES, "GoogleServiceAccount": ACCOUNT})
    assert (resolved.expected_service_account, resolved.impersonated_service_account) == (
        ACCOUNT,
        None,
    )
    unpinned = deployed_settings(SCOPES)
    assert unpinned.expected_service_account is None


@pytest.mark.parametrize(
    "source",
    [
        {"CredentialSource": "impersonation"},
        {"CredentialSource": "workload-identity-federation", "WorkloadIdentityAudience": AUDIENCE},
    ],
)
def test_impersonation_and_federation_mint_the_service_accounts_tokens(
    source: Mapping[str, str],
) -> None:
    resolved = deployed_settings({**SCOPES, **source, "GoogleServiceAccount": ACCOUNT})
    assert resolved.impersonated_service_account == ACCOUNT
    # Not pinned besides: a tag may still choose another account the stack allows.
    assert resolved.expected_service_account is None


@pytest.mark.parametrize("lead", ["600", "900", "3000"])
def test_the_minimum_remaining_life_is_the_refresh_lead(lead: str) -> None:
    resolved = deployed_settings({**SCOPES, "RefreshLeadSeconds": lead})
    assert resolved.min_remaining_seconds == resolved.refresh_lead_seconds == int(lead)


def test_every_settings_tag_of_the_code_has_a_rule_on_the_reference_page() -> None:
    assert sorted(TAG_RULES) == sorted(setting.tag for setting in settings())


def test_the_reference_page_is_what_its_generator_writes_from_the_template_and_config() -> None:
    """The page's own regeneration command, up to its redirection, run as a reader would."""
    [line] = doc_block("docs/reference-parameters.md", "sh", "tools.parameter_reference").commands()
    assert line == REGENERATE
    command, _, target = line.partition(" > ")
    executable, *arguments = command.split()
    generated = subprocess.run(
        [str(PROJECT_ROOT / executable), *arguments],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    page = (PROJECT_ROOT / target).read_text()
    assert page == generated, f"{target} is stale: run {REGENERATE}"
    for name in PARAMETERS:
        assert f"#### {name}\n" in page


# make deploy: guided the first time, from samconfig.toml after.


def test_the_checked_in_samconfig_saves_no_region_so_the_first_deploy_is_guided() -> None:
    config = tomllib.loads((PROJECT_ROOT / "samconfig.toml").read_text())
    assert deploy_guide.saved_deploy(config) is None
    assert deploy_guide.main(PROJECT_ROOT / "samconfig.toml") == deploy_guide.GUIDED


def test_a_samconfig_a_guided_deploy_saved_deploys_without_asking(tmp_path: Path) -> None:
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text(
        (PROJECT_ROOT / "samconfig.toml")
        .read_text()
        .replace(
            "[default.deploy.parameters]\n",
            '[default.deploy.parameters]\nregion = "eu-west-1"\n',
        )
    )
    config = tomllib.loads(samconfig.read_text())
    assert deploy_guide.saved_deploy(config) == ("google-token-rotation", "eu-west-1")
    assert deploy_guide.main(samconfig) == deploy_guide.SAVED


def test_a_broken_samconfig_stops_make_deploy_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text("[default.deploy.parameters\n")
    assert deploy_guide.main(samconfig) not in {deploy_guide.SAVED, deploy_guide.GUIDED}
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "is not valid TOML" in error


def test_the_guide_runs_under_the_sam_venv_as_make_deploy_runs_it() -> None:
    guided = subprocess.run(
        [str(PROJECT_ROOT / ".venv-sam" / "bin" / "python"), "-m", "tools.deploy_guide"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert guided.returncode == deploy_guide.GUIDED, guided.stderr
    order = [guided.stdout.index(f"    {name} [") for name in GROUPED]
    assert order == sorted(order)
