"""The local deploy enforces template.yaml's parameter constraints as CloudFormation does
(AllowedValues, AllowedPattern on the whole value, MinValue/MaxValue), so that `up --scopes`
with a value AWS would refuse fails locally too."""

import pytest

from localcloud.cloud import check_parameter
from localcloud.intrinsics import TemplateError
from localcloud.template import load_template

PARAMETERS = load_template().document["Parameters"]


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_every_default_is_allowed(name: str) -> None:
    check_parameter(name, PARAMETERS[name], str(PARAMETERS[name].get("Default", "")))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GoogleScopes", "https://www.googleapis.com/auth/drive.readonly openid"),
        ("GoogleScopes", "a,b"),
        ("MinRemainingSeconds", "43200"),
        ("RefreshLeadSeconds", "600"),
        ("RefreshLeadSeconds", "3000"),
        ("LogRetentionInDays", "14"),
    ],
)
def test_values_aws_accepts_pass(name: str, value: str) -> None:
    check_parameter(name, PARAMETERS[name], value)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("GoogleScopes", "a\tb", "does not match"),
        ("GoogleScopes", "", "does not match"),
        ("GoogleScopes", "a  b", "does not match"),
        ("GoogleScopes", "https://x/é", "does not match"),
        ("MinRemainingSeconds", "-1", "outside"),
        ("MinRemainingSeconds", "43201", "outside"),
        ("MinRemainingSeconds", "soon", "not a number"),
        ("RefreshLeadSeconds", "soon", "not a number"),
        ("LogRetentionInDays", "2", "is not one of"),
    ],
)
def test_values_aws_refuses_fail_naming_the_parameter(name: str, value: str, says: str) -> None:
    with pytest.raises(TemplateError, match=f"parameter {name}: .*{says}"):
        check_parameter(name, PARAMETERS[name], value)
