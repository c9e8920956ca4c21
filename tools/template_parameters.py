"""template.yaml's parameters as its Interface groups and labels them: one reading for the
parameter reference page, the guide `make deploy` prints and the tests that keep them true."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfnlint.decode.cfn_yaml import load as load_cfn_yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
INTERFACE = "AWS::CloudFormation::Interface"


@dataclass(frozen=True)
class Parameter:
    """One template parameter, with what the console shows for it."""

    name: str
    label: str
    type: str
    default: str | None
    """None: no default, the deployer must give a value."""
    description: str
    allowed_values: tuple[str, ...]
    allowed_pattern: str | None

    @property
    def prompt(self) -> str:
        """As `sam deploy --guided` asks for it: no default and an empty one both show []."""
        return f"{self.name} [{self.default or ''}]"


@dataclass(frozen=True)
class ParameterGroup:
    label: str
    parameters: tuple[Parameter, ...]


def template_document(path: Path = TEMPLATE_PATH) -> Mapping[str, Any]:
    document: Mapping[str, Any] = load_cfn_yaml(str(path))
    return document


def parameter_groups(document: Mapping[str, Any]) -> tuple[ParameterGroup, ...]:
    """The Interface's groups in order, each with its parameters as the template declares them.
    A parameter missing from the groups or the labels is a KeyError here: tests check both."""
    interface = document["Metadata"][INTERFACE]
    labels = interface["ParameterLabels"]
    specs = document["Parameters"]
    return tuple(
        ParameterGroup(
            label=str(group["Label"]["default"]),
            parameters=tuple(
                _parameter(name, str(labels[name]["default"]), specs[name])
                for name in group["Parameters"]
            ),
        )
        for group in interface["ParameterGroups"]
    )


def _parameter(name: str, label: str, spec: Mapping[str, Any]) -> Parameter:
    default = spec.get("Default")
    return Parameter(
        name=name,
        label=label,
        type=str(spec["Type"]),
        default=None if default is None else str(default),
        description=" ".join(str(spec.get("Description", "")).split()),
        allowed_values=tuple(str(value) for value in spec.get("AllowedValues", ())),
        allowed_pattern=spec.get("AllowedPattern"),
    )
