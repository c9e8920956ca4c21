"""The local deploy reads template.yaml as CloudFormation and SAM would: intrinsic functions,
Globals, the state machine's definition and substitutions, and the template's Rules."""

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from graphlib import TopologicalSorter
from typing import Any

import pytest

from localcloud import fidelity
from localcloud.cloud import LocalCloud
from localcloud.deployment import Deployment
from localcloud.intrinsics import Resolver, TemplateError, references
from localcloud.operations import current_value, rotate_on_schedule
from localcloud.scheduler import LocalScheduler
from localcloud.template import PROJECT_ROOT, FunctionSpec, Template, load_template

PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "stack",
}
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:stack-FailureTopic"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:stack-Entry"
SCOPES = {"GoogleScopes": "https://www.googleapis.com/auth/calendar.readonly"}
"""GoogleScopes has no default: every deploy names its own."""
STEP_FUNCTIONS = {
    "CreateSecretFunction": "create_secret",
    "SetSecretFunction": "set_secret",
    "TestSecretFunction": "test_secret",
    "FinishSecretFunction": "finish_secret",
}
FUNCTIONS = {
    **STEP_FUNCTIONS,
    "RotationEntryFunction": "rotation_entry",
    "DescribeFailureFunction": "describe_failure",
    "FreshnessSweepFunction": "freshness_sweep",
}


@pytest.fixture
def resolver() -> Resolver:
    return Resolver(
        parameters={"Scopes": "calendar", "Email": "", "KeyArn": "", "Minutes": "15"},
        pseudo=PSEUDO,
        conditions={
            "HasEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Email"}, ""]}]},
            "CreateKey": {"Fn::Equals": [{"Ref": "KeyArn"}, ""]},
            "Both": {"Fn::And": [{"Condition": "HasEmail"}, {"Condition": "CreateKey"}]},
            "Either": {"Fn::Or": [{"Condition": "HasEmail"}, {"Condition": "CreateKey"}]},
            "FifteenMinutes": {"Fn::Equals": [{"Ref": "Minutes"}, 15]},
        },
        refs={"Topic": TOPIC_ARN, "KeySecret": "arn:aws:secretsmanager:key"},
        attributes={("Entry", "Arn"): FUNCTION_ARN, ("Machine", "Name"): "stack-Machine"},
    )


# Resolver: Ref, GetAtt, Sub, conditions.


def test_ref_resolves_parameters_pseudo_parameters_and_deployed_resources(
    resolver: Resolver,
) -> None:
    assert resolver.value({"Ref": "Scopes"}) == "calendar"
    assert resolver.value({"Ref": "AWS::AccountId"}) == "123456789012"
    assert resolver.value({"Ref": "Topic"}) == TOPIC_ARN


def test_ref_to_an_unknown_or_undeployed_name_is_a_template_error(resolver: Resolver) -> None:
    with pytest.raises(TemplateError, match="'NotDeployedYet'"):
        resolver.value({"Ref": "NotDeployedYet"})


def test_get_att_takes_the_dotted_and_the_list_form(resolver: Resolver) -> None:
    assert resolver.value({"Fn::GetAtt": "Entry.Arn"}) == FUNCTION_ARN
    assert resolver.value({"Fn::GetAtt": ["Entry", "Arn"]}) == FUNCTION_ARN
    with pytest.raises(TemplateError, match=r"Entry\.Version"):
        resolver.value({"Fn::GetAtt": ["Entry", "Version"]})


def test_sub_replaces_references_attributes_and_pseudo_parameters(resolver: Resolver) -> None:
    text = (
        "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${Machine.Name}:*"
    )

    assert resolver.value({"Fn::Sub": text}) == (
        "arn:aws:states:us-east-1:123456789012:execution:stack-Machine:*"
    )
    assert resolver.value({"Fn::Sub": "notify ${Topic} for ${Scopes}"}) == (
        f"notify {TOPIC_ARN} for calendar"
    )


def test_sub_list_form_resolves_its_own_variables_first(resolver: Resolver) -> None:
    node = {
        "Fn::Sub": [
            "put ${Key} in ${AWS::Region} (${Scopes})",
            {"Key": {"Fn::If": ["CreateKey", {"Ref": "KeySecret"}, {"Ref": "KeyArn"}]}},
        ]
    }

    assert resolver.value(node) == "put arn:aws:secretsmanager:key in us-east-1 (calendar)"


def test_sub_with_an_unknown_name_is_a_template_error(resolver: Resolver) -> None:
    with pytest.raises(TemplateError, match="'Missing'"):
        resolver.value({"Fn::Sub": "${Missing}-suffix"})
    with pytest.raises(TemplateError, match=r"Missing\.Arn"):
        resolver.value({"Fn::Sub": "${Missing.Arn}"})


def test_conditions_evaluate_equals_not_and_or(resolver: Resolver) -> None:
    assert resolver.condition("CreateKey") is True
    assert resolver.condition("HasEmail") is False
    assert resolver.condition("Both") is False
    assert resolver.condition("Either") is True
    assert resolver.condition("FifteenMinutes") is True, "Equals compares as strings: 15 == '15'"


def test_if_picks_the_branch_of_its_condition(resolver: Resolver) -> None:
    node = {"Fn::If": ["HasEmail", {"Ref": "Email"}, {"Fn::Sub": "no e-mail in ${AWS::Region}"}]}

    assert resolver.value(node) == "no e-mail in us-east-1"
    assert resolver.value({"Fn::If": ["CreateKey", {"Ref": "KeySecret"}, "unused"]}) == (
        "arn:aws:secretsmanager:key"
    )


def test_the_unused_branch_of_an_if_is_never_resolved(resolver: Resolver) -> None:
    """A resource skipped by its Condition may be referenced from the branch not taken."""
    node = {"Fn::If": ["HasEmail", {"Ref": "SkippedSubscription"}, "none"]}

    assert resolver.value(node) == "none"


def test_nested_properties_resolve_throughout_and_plain_mappings_stay_mappings(
    resolver: Resolver,
) -> None:
    properties = {
        "Environment": {"Variables": {"TOPIC": {"Ref": "Topic"}, "FIXED": "1"}},
        "Targets": [{"Arn": {"Fn::GetAtt": "Entry.Arn"}}, "literal"],
        "Count": 3,
    }

    assert resolver.value(properties) == {
        "Environment": {"Variables": {"TOPIC": TOPIC_ARN, "FIXED": "1"}},
        "Targets": [{"Arn": FUNCTION_ARN}, "literal"],
        "Count": 3,
    }


# references(): the dependency order of a deploy.


def test_references_find_refs_get_atts_and_sub_names() -> None:
    node = {
        "A": {"Ref": "Topic"},
        "B": [{"Fn::GetAtt": "Entry.Arn"}, {"Fn::GetAtt": ["Machine", "Name"]}],
        "C": {"Fn::Sub": "${AWS::Region}:${Bucket}:${LogGroup.Arn}"},
        "D": {"Fn::Sub": ["${Local}", {"Local": {"Fn::If": ["Cond", {"Ref": "Key"}, "x"]}}]},
    }

    found = references(node)

    assert {"Topic", "Entry", "Machine", "Bucket", "LogGroup", "Key"} <= found
    assert not any(name.startswith("AWS::") for name in found), "pseudo parameters are no resources"


def test_the_template_deploys_in_dependency_order() -> None:
    """The order the local deploy uses (references plus DependsOn, as cloud.py computes it)."""
    resources = load_template().resources

    def depends_on(resource: Mapping[str, Any]) -> set[str]:
        depends = resource.get("DependsOn", [])
        return {depends} if isinstance(depends, str) else set(depends)

    graph = {
        logical_id: (references(resource) | depends_on(resource)) & set(resources)
        for logical_id, resource in resources.items()
    }
    order = list(TopologicalSorter(graph).static_order())
    position = {logical_id: index for index, logical_id in enumerate(order)}

    assert set(order) == set(resources)
    for function in STEP_FUNCTIONS:
        assert position[function] < position["RotationStateMachine"]
    assert position["FailureTopic"] < position["RotationStateMachine"]
    assert position["StateMachineLogGroup"] < position["RotationStateMachine"]
    assert position["RotationStateMachine"] < position["RotationEntryFunction"]
    assert position["RotationEntryLogGroup"] < position["RotationEntryFunction"]
    assert position["TokenSecret"] < position["TokenRotationSchedule"]
    assert position["SecretsManagerMayInvokeRotationEntry"] < position["TokenRotationSchedule"]


# template.py: SAM's view of the functions and the state machine.


def synthetic_template(architectures: list[str]) -> Template:
    return Template(
        {
            "Globals": {
                "Function": {
                    "Runtime": "python3.12",
                    "Architectures": architectures,
                    "Timeout": 60,
                    "MemorySize": 256,
                    "Layers": [{"Ref": "Layer"}],
                    "Environment": {"Variables": {"SHARED": "global", "LEVEL": "INFO"}},
                }
            },
            "Resources": {
                "Layer": {
                    "Type": "AWS::Serverless::LayerVersion",
                    "Properties": {"ContentUri": "functions/rotation_core/"},
                },
                "Plain": {
                    "Type": "AWS::Serverless::Function",
                    "Properties": {"CodeUri": "functions/set_secret/", "Handler": "plain.main"},
                },
                "Tuned": {
                    "Type": "AWS::Serverless::Function",
                    "Properties": {
                        "CodeUri": "functions/rotation_entry/",
                        "Handler": "package.module.handle",
                        "Timeout": 300,
                        "MemorySize": 512,
                        "Environment": {"Variables": {"LEVEL": "DEBUG", "OWN": {"Ref": "X"}}},
                    },
                },
                "Topic": {"Type": "AWS::SNS::Topic"},
            },
        }
    )


def test_globals_are_merged_into_every_function_and_the_function_wins() -> None:
    functions = synthetic_template(["arm64"]).functions()

    assert set(functions) == {"Plain", "Tuned"}
    plain, tuned = functions["Plain"], functions["Tuned"]
    assert (plain.runtime, plain.timeout_seconds, plain.memory_mb) == ("python3.12", 60, 256)
    assert (tuned.runtime, tuned.timeout_seconds, tuned.memory_mb) == ("python3.12", 300, 512)
    assert plain.environment == {"SHARED": "global", "LEVEL": "INFO"}
    assert tuned.environment == {"SHARED": "global", "LEVEL": "DEBUG", "OWN": {"Ref": "X"}}
    assert plain.layers == tuned.layers == ({"Ref": "Layer"},)
    assert plain.code_uri == PROJECT_ROOT / "functions" / "set_secret"


def test_function_specs_do_not_depend_on_the_architecture() -> None:
    """Functions run on the host's own architecture locally: arm64 in the template is no bar."""
    assert synthetic_template(["arm64"]).functions() == synthetic_template(["x86_64"]).functions()
    assert "architecture" not in {name.lower() for name in FunctionSpec.__dataclass_fields__}


def test_handler_names_split_into_module_and_function() -> None:
    functions = synthetic_template(["arm64"]).functions()

    assert (functions["Plain"].module_name, functions["Plain"].function_name) == ("plain", "main")
    assert functions["Tuned"].module_name == "package.module"
    assert functions["Tuned"].function_name == "handle"


def test_the_template_functions_carry_the_globals_and_their_code() -> None:
    template = load_template()
    globals_ = template.document["Globals"]["Function"]

    functions = template.functions()

    assert set(functions) == set(FUNCTIONS)
    for logical_id, module in FUNCTIONS.items():
        spec = functions[logical_id]
        assert spec.runtime == globals_["Runtime"] == "python3.12"
        assert spec.memory_mb == globals_["MemorySize"]
        assert spec.layers == tuple(globals_["Layers"])
        assert spec.environment["POWERTOOLS_SERVICE_NAME"] == "google-token-rotation"
        assert (spec.module_name, spec.function_name) == (module, "lambda_handler")
        assert (spec.code_uri / f"{module}.py").is_file()
    for logical_id in STEP_FUNCTIONS:
        assert functions[logical_id].timeout_seconds == globals_["Timeout"] == 60
    assert functions["RotationEntryFunction"].timeout_seconds == 300


def test_the_state_machine_spec_covers_every_placeholder_of_its_definition() -> None:
    spec = load_template().state_machine()

    assert spec.logical_id == "RotationStateMachine"
    assert spec.definition_path == PROJECT_ROOT / "statemachine" / "rotation.asl.json"
    definition = spec.definition_path.read_text()
    json.loads(definition)
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", definition))
    assert placeholders
    assert placeholders == set(spec.substitutions)
    for logical_id in STEP_FUNCTIONS:
        assert spec.substitutions[f"{logical_id}Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]}


def test_a_layer_reference_points_at_its_content_folder() -> None:
    template = load_template()
    (layer,) = template.document["Globals"]["Function"]["Layers"]

    content = template.layer_content(layer)

    assert content == PROJECT_ROOT / "functions" / "rotation_core"
    assert (content / "rotation_core").is_dir()
    assert synthetic_template(["arm64"]).layer_content({"Ref": "Layer"}) == content


# The deploy's rule check.


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCloud]:
    """A local cloud of its own (its moto server shares the process's moto backends). Starting
    one sets MOTO_PORT and the Lambda dispatcher for the process: monkeypatch puts them back."""
    monkeypatch.delenv("MOTO_PORT", raising=False)
    monkeypatch.setattr(fidelity.CORRECTIONS, "dispatch", fidelity.CORRECTIONS.dispatch)
    monkeypatch.setattr(fidelity.CORRECTIONS, "sleep_retries", fidelity.CORRECTIONS.sleep_retries)
    with LocalCloud() as running:
        yield running


@pytest.mark.parametrize("lead", ["599", "601", "3300", "0"])
def test_deploy_refuses_a_refresh_lead_outside_the_token_lifetime(
    cloud: LocalCloud, lead: str
) -> None:
    """CloudFormation checks Rules before it creates anything, and quotes AssertDescription."""
    rule = load_template().document["Rules"]["RefreshLeadFitsTheTokenLifetime"]
    description = " ".join(rule["Assertions"][0]["AssertDescription"].split())
    secrets_before = cloud.client("secretsmanager").list_secrets()["SecretList"]
    functions_before = cloud.client("lambda").list_functions()["Functions"]

    with pytest.raises(TemplateError) as refused:
        cloud.deploy({**SCOPES, "RefreshLeadSeconds": lead})

    assert str(refused.value) == f"rule RefreshLeadFitsTheTokenLifetime: {description}"
    assert "RefreshLeadSeconds" in str(refused.value)
    assert cloud.deployment is None
    assert cloud.client("secretsmanager").list_secrets()["SecretList"] == secrets_before
    assert cloud.client("lambda").list_functions()["Functions"] == functions_before


def test_deploy_refuses_unknown_parameters(cloud: LocalCloud) -> None:
    with pytest.raises(TemplateError, match="unknown parameters: AcknowledgeGap"):
        cloud.deploy({**SCOPES, "AcknowledgeGap": "yes"})


def test_deploy_refuses_a_missing_google_scopes_by_name(cloud: LocalCloud) -> None:
    """As CloudFormation: a parameter without a default must be given, before anything exists."""
    with pytest.raises(TemplateError) as refused:
        cloud.deploy({"TokenSecretName": f"no-scopes-{uuid.uuid4().hex[:8]}/token"})

    assert str(refused.value) == (
        "parameters without a default need a value: GoogleScopes (pass them to deploy)"
    )
    assert cloud.deployment is None


# A customer-managed KMS key for the key secret.


def test_the_key_secret_is_created_under_the_given_kms_key_and_rotations_still_read_it(
    cloud: LocalCloud,
) -> None:
    """moto records the key and does not encrypt with it; what is checked here is that the
    template hands the key to Secrets Manager and that the stack still rotates."""
    kms_key_arn = cloud.client("kms").create_key()["KeyMetadata"]["Arn"]
    suffix = uuid.uuid4().hex[:12]
    deployment = cloud.deploy(
        {
            **SCOPES,
            "ServiceAccountKeyKmsKeyArn": kms_key_arn,
            "TokenSecretName": f"kms-{suffix}/token",
        },
        stack_name=f"kms-{suffix}",
    )
    secrets = cloud.client("secretsmanager")
    assert secrets.describe_secret(SecretId=deployment.key_secret_arn)["KmsKeyId"] == kms_key_arn
    assert "KmsKeyId" not in secrets.describe_secret(SecretId=deployment.token_secret_arn)
    cloud.store_service_account_key(cloud.google.create_service_account())

    found = rotate_on_schedule(cloud, deployment)

    assert [execution.status for execution in found] == ["SUCCEEDED"] * 4
    assert current_value(cloud, deployment.token_secret_arn)["GOOGLE_ACCESS_TOKEN"]


def test_deploy_refuses_a_kms_key_for_a_key_secret_that_federation_does_not_have(
    cloud: LocalCloud,
) -> None:
    rule = load_template().document["Rules"]["KeyEncryptionNeedsAKey"]
    description = " ".join(rule["Assertions"][0]["AssertDescription"].split())
    kms_key_arn = cloud.client("kms").create_key()["KeyMetadata"]["Arn"]
    federation = {
        **SCOPES,
        "CredentialSource": "workload-identity-federation",
        "GoogleServiceAccount": "rotator@demo-project.iam.gserviceaccount.com",
        "WorkloadIdentityAudience": (
            "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/aws/"
            "providers/account"
        ),
    }

    with pytest.raises(TemplateError) as refused:
        cloud.deploy({**federation, "ServiceAccountKeyKmsKeyArn": kms_key_arn})

    assert str(refused.value) == f"rule KeyEncryptionNeedsAKey: {description}"
    assert cloud.deployment is None


# The key secret renews itself (KeyRotationDays).

FEDERATION = {
    "CredentialSource": "workload-identity-federation",
    "GoogleServiceAccount": "rotator@demo-project.iam.gserviceaccount.com",
    "WorkloadIdentityAudience": (
        "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/aws/"
        "providers/account"
    ),
}


def _own_stack(cloud: LocalCloud, parameters: Mapping[str, str]) -> Deployment:
    suffix = uuid.uuid4().hex[:12]
    return cloud.deploy(
        {**SCOPES, "TokenSecretName": f"keyrot-{suffix}/token", **parameters},
        stack_name=f"keyrot-{suffix}",
    )


def _rotating_secrets(cloud: LocalCloud, deployment: Deployment) -> dict[str, float]:
    """The stack's secrets with a rotation schedule, with its period in days."""
    stack = set(deployment.refs.values())
    return {
        rule.secret_arn: rule.period_seconds / 86400
        for rule in cloud.rotation_rules
        if rule.secret_arn in stack
    }


def _key_rotation_days(cloud: LocalCloud, deployment: Deployment, logical_id: str) -> str:
    configuration = cloud.client("lambda").get_function_configuration(
        FunctionName=deployment.functions[logical_id]
    )
    days: str = configuration["Environment"]["Variables"]["KEY_ROTATION_DAYS"]
    return days


def test_the_key_secret_renews_itself_every_key_rotation_days(cloud: LocalCloud) -> None:
    """Through the stack's entry function, and not at deploy: the new key secret holds {} until
    the deployer puts a key in it."""
    deployment = _own_stack(cloud, {"KeyRotationDays": "7"})
    key_secret = deployment.key_secret_arn

    described = cloud.client("secretsmanager").describe_secret(SecretId=key_secret)

    assert described["RotationEnabled"] is True
    assert described["RotationLambdaARN"] == deployment.attributes[("RotationEntryFunction", "Arn")]
    assert described["RotationRules"] == {"AutomaticallyAfterDays": 7}
    assert list(described["VersionIdsToStages"].values()) == [["AWSCURRENT"]]
    assert _rotating_secrets(cloud, deployment) == {
        deployment.token_secret_arn: 4 / 24,
        key_secret: 7,
    }
    assert _key_rotation_days(cloud, deployment, "CreateSecretFunction") == "7"
    assert _key_rotation_days(cloud, deployment, "FreshnessSweepFunction") == "7"


@pytest.mark.parametrize(
    "parameters", [{"KeyRotationDays": "0"}, FEDERATION], ids=["switched-off", "keyless"]
)
def test_no_key_renews_itself_when_switched_off_or_keyless(
    cloud: LocalCloud, parameters: Mapping[str, str]
) -> None:
    deployment = _own_stack(cloud, parameters)

    assert _rotating_secrets(cloud, deployment) == {deployment.token_secret_arn: 4 / 24}
    if "ServiceAccountKeySecret" in deployment.refs:
        described = cloud.client("secretsmanager").describe_secret(
            SecretId=deployment.key_secret_arn
        )
        assert not described.get("RotationEnabled")
    assert _key_rotation_days(cloud, deployment, "TestSecretFunction") == "0"


def test_an_existing_key_secret_renews_itself_on_the_stacks_schedule(cloud: LocalCloud) -> None:
    """ServiceAccountKeySecretArn: a secret the stack did not create still rotates with the
    stack's schedule, which fires RotateSecret on it every KeyRotationDays of simulated time."""
    secrets = cloud.client("secretsmanager")
    existing = secrets.create_secret(
        Name=f"existing-{uuid.uuid4().hex[:12]}/key", SecretString="{}"
    )["ARN"]
    deployment = _own_stack(cloud, {"ServiceAccountKeySecretArn": existing, "KeyRotationDays": "7"})
    assert _rotating_secrets(cloud, deployment)[existing] == 7
    [rule] = [rule for rule in cloud.rotation_rules if rule.secret_arn == existing]

    cloud.clock.advance_to(rule.deployed_at + 7 * 86400)
    fired = LocalScheduler(cloud, stack=deployment).fire_due()

    assert [(f.kind, f.due_at) for f in fired if f.name == existing] == [
        ("rotation", rule.deployed_at + 7 * 86400)
    ]


def test_deploy_refuses_key_rotation_days_that_are_not_whole_days(cloud: LocalCloud) -> None:
    """A Number parameter takes 7.5 and 030, which rate() refuses: the template's rule names
    the fix before anything exists."""
    rule = load_template().document["Rules"]["KeyRotationDaysAreWholeDays"]
    description = " ".join(rule["Assertions"][0]["AssertDescription"].split())
    for days in ("7.5", "030"):
        with pytest.raises(TemplateError) as refused:
            cloud.deploy({**SCOPES, "KeyRotationDays": days})
        assert str(refused.value) == f"rule KeyRotationDaysAreWholeDays: {description}"
    with pytest.raises(TemplateError, match=r"KeyRotationDays: 91 is outside \[0, 90\]"):
        cloud.deploy({**SCOPES, "KeyRotationDays": "91"})
    assert cloud.deployment is None
