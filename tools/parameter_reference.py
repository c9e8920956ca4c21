"""Writes docs/reference-parameters.md from template.yaml and rotation_core.config, so the page
cannot drift from what is deployed: a test compares the page with this module's output.

    .venv/bin/python -m tools.parameter_reference > docs/reference-parameters.md
"""

import sys
from collections.abc import Iterator, Mapping
from typing import Any, Final

from tools.template_parameters import PROJECT_ROOT, Parameter, parameter_groups, template_document

sys.path.insert(0, str(PROJECT_ROOT / "functions" / "rotation_core"))
from rotation_core import config, refresh, token_secret

REGENERATE: Final = ".venv/bin/python -m tools.parameter_reference > docs/reference-parameters.md"

TAG_RULES: Final[Mapping[str, str]] = {
    config.SCOPES.tag: "some of the stack's scopes, never others",
    config.KEY_SECRET_ID.tag: (
        "the stack's key secret, or one listed in the function environment's "
        f"`{config.ALLOWED_KEY_SECRET_IDS_VARIABLE}`"
    ),
    config.EXPECTED_SERVICE_ACCOUNT.tag: (
        "pins the account of the key's own tokens; only when the stack's `GoogleServiceAccount` "
        "is empty, or names the same account"
    ),
    config.MIN_REMAINING_SECONDS.tag: "more than the stack's, never less",
    config.CREDENTIAL_SOURCE.tag: "only the stack's own source (a tag cannot switch it)",
    config.REFRESH_LEAD_SECONDS.tag: "more than the stack's, never less",
    config.IMPERSONATED_SERVICE_ACCOUNT.tag: (
        "the stack's account, or one listed in "
        f"`{config.ALLOWED_LISTS[config.IMPERSONATED_SERVICE_ACCOUNT]}`"
    ),
    config.TOKEN_LIFETIME_SECONDS.tag: "shorter than the stack's, never longer",
    config.DELEGATED_SUBJECT.tag: (
        f"the stack's user, or one listed in `{config.ALLOWED_LISTS[config.DELEGATED_SUBJECT]}`"
    ),
    config.WORKLOAD_IDENTITY_AUDIENCE.tag: "only the stack's own provider",
    config.TOKEN_KIND.tag: (
        f"`{token_secret.ID_TOKEN_KIND}` only when the stack lists audiences in "
        f"`{config.ID_TOKEN_AUDIENCE.variable}`"
    ),
    config.ID_TOKEN_AUDIENCE.tag: "one of the stack's audiences, never another",
}
"""What a secret's tag may ask relative to the stack's setting (rotation_core.config enforces it;
a tag outside it fails the rotation with a notice naming the tag)."""

STATUS_TAGS: Final[Mapping[str, str]] = {
    refresh.FAILING_SINCE_TAG: "when the current streak of failed rotations began",
    refresh.FAILED_ATTEMPTS_TAG: "how many rotations of the streak failed",
    refresh.NOTIFIED_AT_TAG: "when the streak's last notice was sent (reminders are hourly)",
    refresh.CURRENT_EXPIRES_AT_TAG: "when the token in use expires, for the freshness sweep",
    refresh.REFUSED_VERSION_TAG: "the AWSCURRENT version Google's tokeninfo refused unexpired",
    refresh.UNVERIFIED_VERSION_TAG: "the pending version accepted without tokeninfo's verdict",
}
"""The tags the rotation writes itself; nobody sets them."""

UNITS: Final = (
    ("Seconds", "seconds"),
    ("InDays", "days"),
    ("Days", "days"),
    ("Window", "hours, as 1h to 24h"),
    ("Arn", "ARN"),
)


def settings() -> list[config.Setting]:
    """Every per-secret setting rotation_core.config declares."""
    return [value for value in vars(config).values() if isinstance(value, config.Setting)]


def environment_of(document: Mapping[str, Any]) -> Mapping[str, Any]:
    variables: Mapping[str, Any] = document["Globals"]["Function"]["Environment"]["Variables"]
    return variables


def parameters_of(value: Any) -> set[str]:
    """The parameter names a template value refers to (Ref, in an If or not)."""
    if isinstance(value, Mapping):
        if set(value) == {"Ref"}:
            return {str(value["Ref"])}
        return {name for item in value.values() for name in parameters_of(item)}
    if isinstance(value, list):
        return {name for item in value for name in parameters_of(item)}
    return set()


def unit(parameter: Parameter) -> str:
    for suffix, name in UNITS:
        if parameter.name.endswith(suffix):
            return name
    if parameter.allowed_pattern and "@" in parameter.allowed_pattern:
        return "e-mail address"
    return "text" if parameter.type == "String" else parameter.type.lower()


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(document: Mapping[str, Any]) -> str:
    return "\n".join(_lines(document)) + "\n"


def _lines(document: Mapping[str, Any]) -> Iterator[str]:
    environment = environment_of(document)
    variables_of: dict[str, list[str]] = {}
    for variable, value in environment.items():
        for name in sorted(parameters_of(value)):
            variables_of.setdefault(name, []).append(variable)
    groups = parameter_groups(document)
    yield "# Reference: parameters and tags"
    yield ""
    yield (
        "Every parameter of `template.yaml`, in the groups the CloudFormation console shows and in "
        "the order `sam deploy --guided` asks for them, then every per-secret tag. This page is "
        "generated from `template.yaml` and `functions/rotation_core/rotation_core/config.py`, and "
        "a test fails when it differs from them; after changing either, regenerate it:"
    )
    yield ""
    yield "```sh"
    yield REGENERATE
    yield "```"
    yield ""
    yield "## Parameters"
    yield ""
    yield "| Group | Parameter | Label | Default | Unit |"
    yield "|---|---|---|---|---|"
    for group in groups:
        for parameter in group.parameters:
            yield (
                f"| {group.label} | [`{parameter.name}`](#{parameter.name.lower()}) | "
                f"{_cell(parameter.label)} | {_cell(_shown_default(parameter))} | "
                f"{unit(parameter)} |"
            )
    for group in groups:
        yield ""
        yield f"### {group.label}"
        for parameter in group.parameters:
            yield ""
            yield f"#### {parameter.name}"
            yield ""
            yield f"**{parameter.label}.** {parameter.description}"
            yield ""
            yield f"- Default: {_shown_default(parameter)}"
            yield f"- Unit: {unit(parameter)}"
            if parameter.allowed_values:
                yield f"- Allowed values: {', '.join(_code(v) for v in parameter.allowed_values)}"
            elif parameter.allowed_pattern:
                yield f"- Allowed pattern: `{parameter.allowed_pattern}`"
            variables = variables_of.get(parameter.name, [])
            if variables:
                yield f"- Function environment: {', '.join(_code(v) for v in variables)}"
    yield ""
    yield "## Per-secret tags"
    yield ""
    yield (
        f"A token secret carries `{config.MANAGED_BY_TAG}` = the stack's name: the stack's steps "
        "act on no other secret. The settings tags below are optional; each may only narrow the "
        "stack's own setting, its ceiling, held in the function environment variable named."
    )
    yield ""
    yield "| Tag | Environment variable | What the tag may ask | Value |"
    yield "|---|---|---|---|"
    for setting in settings():
        yield (
            f"| `{setting.tag}` | {_code(setting.variable) or 'none: a tag only'} | "
            f"{_cell(TAG_RULES[setting.tag])} | "
            f"{_cell(setting.expected)} |"
        )
    yield ""
    yield (
        f"The rotation writes its own status tags, under `{refresh.STATUS_TAG_PREFIX}` (a prefix "
        "of their own, so that IAM lets the rotation write these and nothing else):"
    )
    yield ""
    yield "| Tag | What it records |"
    yield "|---|---|"
    for tag, meaning in STATUS_TAGS.items():
        yield f"| `{tag}` | {meaning} |"


def _shown_default(parameter: Parameter) -> str:
    if parameter.default is None:
        return "none: required"
    return _code(parameter.default) or "empty"


if __name__ == "__main__":
    sys.stdout.write(render(template_document()))
