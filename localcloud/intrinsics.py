"""Resolves the CloudFormation intrinsic functions template.yaml uses, against a local deploy."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

NO_VALUE: Final = object()
"""`Ref: AWS::NoValue`: the list item or property it stands for is left out."""


class TemplateError(Exception):
    """template.yaml uses what the local cloud cannot resolve, or what CloudFormation refuses."""


@dataclass
class Resolver:
    """Knows parameter values, pseudo parameters, conditions and the resources created so far."""

    parameters: Mapping[str, str]
    pseudo: Mapping[str, str]
    conditions: Mapping[str, Any]
    mappings: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def condition(self, name: str) -> bool:
        return bool(self.value(self.conditions[name]))

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, Mapping):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            handler = _FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, argument)
        resolved = {key: self.value(item) for key, item in node.items()}
        return {key: v for key, v in resolved.items() if v is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        for source in (self.parameters, self.pseudo, self.refs):
            if name in source:
                return source[name]
        raise TemplateError(f"Ref to {name!r}, which is not (yet) deployed")

    def get_att(self, logical_id: str, attribute: str) -> str:
        try:
            return self.attributes[(logical_id, attribute)]
        except KeyError:
            raise TemplateError(f"GetAtt {logical_id}.{attribute} is not available") from None

    def find_in_map(self, argument: list[Any]) -> Any:
        name, first, second = (str(self.value(part)) for part in argument)
        try:
            return self.mappings[name][first][second]
        except KeyError:
            raise TemplateError(f"FindInMap {name} {first} {second}: no such entry") from None

    def substitute(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        local = {name: str(self.value(value)) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return local[name]
            if "." in name:
                return self.get_att(*name.split(".", 1))
            return str(self.ref(name))

        return re.sub(r"\$\{([A-Za-z0-9_:.]+)\}", replace, text)


def _if(resolver: Resolver, argument: list[Any]) -> Any:
    name, when_true, when_false = argument
    return resolver.value(when_true if resolver.condition(name) else when_false)


_FUNCTIONS: dict[str, Any] = {
    "Ref": lambda r, name: r.ref(name),
    "Fn::GetAtt": lambda r, arg: r.get_att(*(arg.split(".", 1) if isinstance(arg, str) else arg)),
    "Fn::Sub": lambda r, arg: r.substitute(arg),
    "Fn::FindInMap": lambda r, arg: r.find_in_map(arg),
    "Fn::If": _if,
    "Fn::Equals": lambda r, arg: str(r.value(arg[0])) == str(r.value(arg[1])),
    "Fn::Not": lambda r, arg: not r.value(arg[0]),
    "Fn::And": lambda r, arg: all(r.value(item) for item in arg),
    "Fn::Or": lambda r, arg: any(r.value(item) for item in arg),
    # A rule's Fn::Contains: the list holds the value, compared as strings as CloudFormation does.
    "Fn::Contains": lambda r, arg: str(r.value(arg[1])) in {str(r.value(item)) for item in arg[0]},
    "Condition": lambda r, name: r.condition(name),
}


def references(node: Any) -> set[str]:
    """Logical ids a node refers to (Ref, GetAtt, Sub), to deploy resources in dependency order."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value.split(".")[0] if isinstance(value, str) else value[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {
                    name.split(".")[0] for name in re.findall(r"\$\{([A-Za-z0-9_.]+)\}", text)
                }
                if not isinstance(value, str):
                    found |= references(value[1])
            else:
                found |= references(value)
    return found
