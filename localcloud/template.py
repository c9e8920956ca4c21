"""Reads template.yaml with SAM Globals merged: one view for the checks and the local cloud."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfnlint.decode.cfn_yaml import load as load_cfn_yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"


@dataclass(frozen=True)
class FunctionSpec:
    """One AWS::Serverless::Function with Globals applied; intrinsic values are left unresolved."""

    logical_id: str
    code_uri: Path
    handler: str
    timeout_seconds: int
    memory_mb: int
    runtime: str
    environment: Mapping[str, Any]
    layers: tuple[Any, ...]
    policies: tuple[Any, ...]

    @property
    def module_name(self) -> str:
        return self.handler.rpartition(".")[0]

    @property
    def function_name(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True)
class StateMachineSpec:
    logical_id: str
    definition_path: Path
    substitutions: Mapping[str, Any]
    policies: tuple[Any, ...]


@dataclass(frozen=True)
class Template:
    document: Mapping[str, Any]

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        resources: Mapping[str, Mapping[str, Any]] = self.document["Resources"]
        return resources

    def of_type(self, resource_type: str) -> dict[str, Mapping[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if resource["Type"] == resource_type
        }

    def functions(self) -> dict[str, FunctionSpec]:
        globals_ = self.document.get("Globals", {}).get("Function", {})
        specs = {}
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            properties = resource["Properties"]
            environment = {
                **globals_.get("Environment", {}).get("Variables", {}),
                **properties.get("Environment", {}).get("Variables", {}),
            }
            specs[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_uri=PROJECT_ROOT / properties["CodeUri"],
                handler=properties["Handler"],
                timeout_seconds=int(properties.get("Timeout", globals_.get("Timeout", 3))),
                memory_mb=int(properties.get("MemorySize", globals_.get("MemorySize", 128))),
                runtime=properties.get("Runtime", globals_.get("Runtime")),
                environment=environment,
                layers=tuple(properties.get("Layers", globals_.get("Layers", []))),
                policies=tuple(properties.get("Policies", [])),
            )
        return specs

    def state_machine(self) -> StateMachineSpec:
        ((logical_id, resource),) = self.of_type("AWS::Serverless::StateMachine").items()
        properties = resource["Properties"]
        return StateMachineSpec(
            logical_id=logical_id,
            definition_path=PROJECT_ROOT / properties["DefinitionUri"],
            substitutions=properties.get("DefinitionSubstitutions", {}),
            policies=tuple(properties.get("Policies", [])),
        )

    def layer_content(self, layer_reference: Any) -> Path:
        """The folder a `!Ref SomeLayer` points at (its ContentUri)."""
        logical_id = layer_reference["Ref"]
        return PROJECT_ROOT / str(self.resources[logical_id]["Properties"]["ContentUri"])


def load_template(path: Path = TEMPLATE_PATH) -> Template:
    return Template(load_cfn_yaml(str(path)))
