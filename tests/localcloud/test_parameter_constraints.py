"""The local deploy enforces template.yaml's parameter constraints as CloudFormation does
(AllowedValues, AllowedPattern on the whole value, MinValue/MaxValue), so that `up --scopes`
with a value AWS would refuse fails locally too."""

import pytest

from localcloud.cloud import check_parameter
from localcloud.intrinsics import TemplateError
from localcloud.template import load_template

PARAMETERS = load_template().document["Parameters"]


DAYS = "KeyRotationDays"
"""The template's parameter with a MinValue and a MaxValue (0 to 90)."""


@pytest.mark.parametrize(
    "name", sorted(name for name in PARAMETERS if "Default" in PARAMETERS[name])
)
def test_every_default_is_allowed(name: str) -> None:
    check_parameter(name, PARAMETERS[name], str(PARAMETERS[name]["Default"]))


def test_only_the_scopes_have_no_default_so_none_is_the_broadest() -> None:
    assert [name for name, spec in PARAMETERS.items() if "Default" not in spec] == ["GoogleScopes"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GoogleScopes", "https://www.googleapis.com/auth/drive.readonly openid"),
        ("GoogleScopes", "a,b"),
        ("RefreshLeadSeconds", "600"),
        ("RefreshLeadSeconds", "3000"),
        ("LogRetentionInDays", "14"),
    ],
)
def test_values_aws_accepts_pass(name: str, value: str) -> None:
    check_parameter(name, PARAMETERS[name], value)


@pytest.mark.parametrize("value", ["0", "90"])
def test_numbers_within_min_and_max_value_pass(value: str) -> None:
    check_parameter(DAYS, PARAMETERS[DAYS], value)


@pytest.mark.parametrize(("value", "says"), [("-1", "outside"), ("91", "outside")])
def test_numbers_outside_min_and_max_value_fail(value: str, says: str) -> None:
    with pytest.raises(TemplateError, match=f"parameter {DAYS}: .*{says}"):
        check_parameter(DAYS, PARAMETERS[DAYS], value)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("GoogleScopes", "a\tb", "does not match"),
        ("GoogleScopes", "", "does not match"),
        ("GoogleScopes", "a  b", "does not match"),
        ("GoogleScopes", "https://x/é", "does not match"),
        ("GoogleServiceAccount", "reader", "does not match"),
        ("TokenLifetimeSeconds", "3601", "is not one of"),
        ("RefreshLeadSeconds", "soon", "not a number"),
        ("LogRetentionInDays", "2", "is not one of"),
    ],
)
def test_values_aws_refuses_fail_naming_the_parameter(name: str, value: str, says: str) -> None:
    with pytest.raises(TemplateError, match=f"parameter {name}: .*{says}"):
        check_parameter(name, PARAMETERS[name], value)
