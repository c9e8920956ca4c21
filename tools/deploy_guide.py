"""Tells `make deploy` whether samconfig.toml holds a saved deploy (then plain `sam deploy`) or
not (then `sam deploy --guided`, after printing what it will ask and how to answer).

Exit status: 0 saved, 3 guided; anything else is an error `make deploy` stops on."""

import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from tools.template_parameters import (
    PROJECT_ROOT,
    ParameterGroup,
    parameter_groups,
    template_document,
)

SAVED: Final = 0
GUIDED: Final = 3
SAMCONFIG_PATH: Final = PROJECT_ROOT / "samconfig.toml"
CONFIG_ENVIRONMENT: Final = "default"
"""The samconfig.toml environment `sam deploy` reads when given no --config-env."""
SAM_PROMPTS: Final = (
    (
        "Confirm changes before deploy [Y/n]",
        "Y: SAM shows the change set and asks before applying it",
    ),
    ("Allow SAM CLI IAM role creation [Y/n]", "Y: the stack creates its functions' own roles"),
    ("Disable rollback [y/N]", "N: a failed first deploy removes what it created"),
    ("Save arguments to configuration file [Y/n]", "Y: the next `make deploy` asks nothing"),
    ("SAM configuration file [samconfig.toml]", "Enter"),
    ("SAM configuration environment [default]", "Enter"),
)
"""What `sam deploy --guided` asks after the parameters (SAM CLI 1.170), and the answer."""


def saved_deploy(config: Mapping[str, Any]) -> tuple[str, str] | None:
    """(stack name, region) when samconfig.toml saves a deploy, as a guided run leaves it; None
    when it saves no region, so a first deploy must ask."""
    environment = config.get(CONFIG_ENVIRONMENT, {})
    settings = {
        **environment.get("global", {}).get("parameters", {}),
        **environment.get("deploy", {}).get("parameters", {}),
    }
    region, stack = settings.get("region"), settings.get("stack_name")
    if not region or not stack:
        return None
    return str(stack), str(region)


SOURCE_ANSWERS: Final = (
    ("service-account-key", "nothing more; GoogleServiceAccount may pin the key's account"),
    ("  with delegation", "DelegatedSubject: the Workspace user the tokens act for"),
    ("impersonation", "GoogleServiceAccount; TokenLifetimeSeconds over 3600 if allowed"),
    ("workload-identity-federation", "GoogleServiceAccount and WorkloadIdentityAudience"),
)
"""What to type besides GoogleScopes, by CredentialSource (the template's Rules refuse less)."""


def guide(groups: tuple[ParameterGroup, ...]) -> str:
    """What the guided deploy asks, in its order, with what to answer."""
    asked = [(p.prompt, p.label) for g in groups for p in g.parameters]
    width = max(len(prompt) for prompt, _ in (*asked, *SAM_PROMPTS)) + 2
    lines = [
        "First deploy: samconfig.toml saves no region yet, so this runs `sam deploy --guided`.",
        "It asks for each value below in this order, parameters by name; Enter keeps the",
        "[default] (GoogleScopes has none: type it). docs/reference-parameters.md says when to",
        "change each.",
        f"  {'Stack Name [google-token-rotation]':<{width}}  Enter, or a name of your own",
        f"  {'AWS Region [us-east-1]':<{width}}  the region to deploy to",
    ]
    for group in groups:
        lines.append(f"  {group.label}:")
        for parameter in group.parameters:
            lines.append(f"    {parameter.prompt:<{width - 2}}  {parameter.label}")
    lines.append("  and SAM's own questions:")
    lines.extend(f"    {prompt:<{width - 2}}  {answer}" for prompt, answer in SAM_PROMPTS)
    lines.append("Type GoogleScopes (e.g. https://www.googleapis.com/auth/calendar.readonly) and,")
    lines.append("by CredentialSource, also:")
    source_width = max(len(source) for source, _ in SOURCE_ANSWERS)
    lines.extend(f"  {source:<{source_width}}  {answer}" for source, answer in SOURCE_ANSWERS)
    lines.append("SAM then needs AWS credentials (aws configure) to create the stack.")
    return "\n".join(lines)


def main(samconfig: Path = SAMCONFIG_PATH) -> int:
    try:
        config = tomllib.loads(samconfig.read_text())
    except FileNotFoundError:
        config = {}
    except tomllib.TOMLDecodeError as error:
        print(
            f"{samconfig} is not valid TOML ({error}): fix it, or delete it to deploy guided",
            file=sys.stderr,
        )
        return 2
    saved = saved_deploy(config)
    if saved is None:
        print(guide(parameter_groups(template_document())), flush=True)
        return GUIDED
    stack, region = saved
    print(
        f"Deploying stack {stack} to {region} with the settings samconfig.toml saves; "
        "to change them: .venv-sam/bin/sam deploy --guided",
        flush=True,
    )
    return SAVED


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else SAMCONFIG_PATH))
