"""The rotation request, validated in one place: the entry Lambda and every step parse it here."""

import re
from dataclasses import dataclass
from typing import Final

from rotation_core.errors import InvalidRequestError
from rotation_core.redaction import describe_kind, shown_if_short
from rotation_core.steps import STEP_NAMES, Step

MAX_SECRET_ID_LENGTH: Final = 2048
"""Secrets Manager's own limit on SecretId (botocore's SecretIdType)."""
_CLIENT_REQUEST_TOKEN = re.compile(r"[\x21-\x7e]{32,64}")
_ROTATION_TOKEN = re.compile(r"[A-Za-z0-9-]{36,256}")
_EXPECTED_SHAPE: Final = (
    'a JSON object {"Step": "createSecret", "SecretId": "<name or ARN>", '
    '"ClientRequestToken": "<version id>", "RotationToken": "<optional>"}'
)


@dataclass(frozen=True)
class RotationRequest:
    """One step of one rotation. `manual` is a run started by a person rather than by Secrets
    Manager: rotation need not be enabled, and createSecret makes the pending version itself.
    `step` is None only in a manual chain's payload, where each step Lambda knows its own."""

    secret_id: str
    token: str
    step: Step | None = None
    rotation_token: str | None = None
    manual: bool = False

    def __repr__(self) -> str:
        # The RotationToken is opaque and sensitive: it never reaches a log through a repr.
        return (
            f"RotationRequest(secret_id={self.secret_id!r}, token={self.token!r}, "
            f"step={self.step}, manual={self.manual})"
        )

    @classmethod
    def from_rotation_event(cls, event: object) -> "RotationRequest":
        """Secrets Manager's event to the rotation function: Step required, Manual refused."""
        request = cls._parse(event)
        if request.step is None:
            raise InvalidRequestError(f"'Step' is missing: a rotation event is {_EXPECTED_SHAPE}")
        if request.manual:
            raise InvalidRequestError(
                "'Manual' is not part of a Secrets Manager rotation event; start a manual "
                'rotation as a state-machine execution with input {"SecretId": "<name or ARN>"}'
            )
        return request

    @classmethod
    def for_step(cls, payload: object, step: Step) -> "RotationRequest":
        """A step Lambda's payload; a Step in it, when present, must name this very step."""
        request = cls._parse(payload)
        if request.step is not None and request.step is not step:
            raise InvalidRequestError(
                f"the payload names step {request.step.value!r}, but this is the {step.value} "
                "function: send it to the function of that step"
            )
        return cls(request.secret_id, request.token, step, request.rotation_token, request.manual)

    @classmethod
    def _parse(cls, payload: object) -> "RotationRequest":
        if not isinstance(payload, dict):
            raise InvalidRequestError(
                f"the request must be {_EXPECTED_SHAPE}, got {describe_kind(payload)}"
            )
        step = payload.get("Step")
        secret_id = payload.get("SecretId")
        token = payload.get("ClientRequestToken")
        rotation_token = payload.get("RotationToken")
        manual = payload.get("Manual", False)
        # No message below echoes a field's value: it may be huge, hostile or sensitive.
        if step is not None and step not in STEP_NAMES:
            raise InvalidRequestError(
                f"'Step' must be one of {', '.join(STEP_NAMES)} (camelCase), "
                f"got {shown_if_short(step)}"
            )
        if not isinstance(secret_id, str) or not secret_id.strip():
            raise InvalidRequestError(
                "'SecretId' must be the token secret's name or ARN (a non-empty string), "
                f"got {describe_kind(secret_id)}"
            )
        if len(secret_id) > MAX_SECRET_ID_LENGTH:
            raise InvalidRequestError(
                f"'SecretId' is {len(secret_id)} characters long; Secrets Manager allows at most "
                f"{MAX_SECRET_ID_LENGTH}: pass the token secret's name or ARN"
            )
        if not isinstance(token, str) or not _CLIENT_REQUEST_TOKEN.fullmatch(token):
            raise InvalidRequestError(
                "'ClientRequestToken' must be the rotation's version id (32 to 64 printable "
                f"characters, no spaces), got {describe_kind(token)}"
            )
        if rotation_token is not None and not (
            isinstance(rotation_token, str) and _ROTATION_TOKEN.fullmatch(rotation_token)
        ):
            raise InvalidRequestError(
                "'RotationToken' must be the opaque token from the rotation event "
                "(36 to 256 letters, digits and hyphens) when present"
            )
        if not isinstance(manual, bool):
            raise InvalidRequestError("'Manual' must be true or false when present")
        return cls(secret_id, token, None if step is None else Step(step), rotation_token, manual)
