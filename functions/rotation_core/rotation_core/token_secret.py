"""The token secret's JSON schema, one place for both kinds: an access token or an ID token for one
audience, each with the non-secret metadata the rotation and applications read."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from rotation_core.errors import InvalidTokenSecretError

ACCESS_TOKEN_FIELD = "GOOGLE_ACCESS_TOKEN"
ID_TOKEN_FIELD: Final = "GOOGLE_ID_TOKEN"
ACCESS_TOKEN_KIND: Final = "access-token"
ID_TOKEN_KIND: Final = "id-token"
TOKEN_KINDS: Final = (ACCESS_TOKEN_KIND, ID_TOKEN_KIND)
PLACEHOLDER: Final = json.dumps({ACCESS_TOKEN_FIELD: ""})
"""The value a token secret is created with and holds until its first rotation (template.yaml's
TokenSecret is deployed with exactly this string)."""


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z and whole seconds, the form every reader can parse."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: object, field: str) -> datetime:
    """Read an RFC 3339 timestamp written by `format_timestamp` (any offset accepted)."""
    if not isinstance(text, str):
        raise InvalidTokenSecretError(f"field {field!r} must be an RFC 3339 timestamp string")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTokenSecretError(
            f"field {field!r} is not an RFC 3339 timestamp (expected e.g. 2026-01-31T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise InvalidTokenSecretError(f"field {field!r} has no time zone; write it in UTC with Z")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class TokenMetadata:
    """What may be logged, returned and put in payloads: everything about a token but the token."""

    token_type: str
    expires_at: datetime
    issued_at: datetime
    scopes: tuple[str, ...]
    service_account: str
    service_account_client_id: str
    subject: str | None = None
    """The Workspace user a domain-wide-delegation token acts for."""

    def as_payload(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "ExpiresAt": format_timestamp(self.expires_at),
            "IssuedAt": format_timestamp(self.issued_at),
            "Scopes": list(self.scopes),
            "ServiceAccount": self.service_account,
        }
        if self.subject is not None:
            payload["Subject"] = self.subject
        return payload


@dataclass(frozen=True)
class TokenSecretValue:
    """One version of the token secret; repr and str hide the token."""

    access_token: str
    metadata: TokenMetadata

    def __repr__(self) -> str:
        return f"TokenSecretValue(access_token=<redacted>, metadata={self.metadata!r})"

    __str__ = __repr__

    def to_secret_string(self) -> str:
        meta = self.metadata
        document = {
            ACCESS_TOKEN_FIELD: self.access_token,
            "token_type": meta.token_type,
            "expires_at": format_timestamp(meta.expires_at),
            "issued_at": format_timestamp(meta.issued_at),
            "scopes": list(meta.scopes),
            "service_account": meta.service_account,
            "service_account_client_id": meta.service_account_client_id,
        }
        if meta.subject is not None:
            document["subject"] = meta.subject
        return json.dumps(document, sort_keys=True)

    @classmethod
    def from_secret_string(cls, secret_string: str) -> "TokenSecretValue":
        """Parse a stored access-token value; every problem names the field and never echoes
        the value."""
        stored = parse_token_secret(secret_string)
        if not isinstance(stored, TokenSecretValue):
            raise InvalidTokenSecretError(
                f"the token secret holds an ID token ({ID_TOKEN_FIELD}), not an access token"
            )
        return stored

    @classmethod
    def _from_document(cls, document: dict[str, object]) -> "TokenSecretValue":
        access_token = document.get(ACCESS_TOKEN_FIELD)
        if not isinstance(access_token, str) or not access_token:
            raise InvalidTokenSecretError(
                f"field {ACCESS_TOKEN_FIELD!r} must be a non-empty string"
            )
        scopes = document.get("scopes")
        if (
            not isinstance(scopes, list)
            or not scopes
            or not all(isinstance(s, str) and s for s in scopes)
        ):
            raise InvalidTokenSecretError("field 'scopes' must be a non-empty list of strings")
        return cls(
            access_token=access_token,
            metadata=TokenMetadata(
                token_type=_required_string(document, "token_type"),
                expires_at=parse_timestamp(document.get("expires_at"), "expires_at"),
                issued_at=parse_timestamp(document.get("issued_at"), "issued_at"),
                scopes=tuple(scopes),
                service_account=_required_string(document, "service_account"),
                service_account_client_id=_required_string(document, "service_account_client_id"),
                subject=_required_string(document, "subject") if "subject" in document else None,
            ),
        )


@dataclass(frozen=True)
class IdTokenMetadata:
    """What may be logged, returned and put in payloads about an ID token: all but the token."""

    expires_at: datetime
    issued_at: datetime
    audience: str
    """The one service the token is for (its aud claim): a Cloud Run URL, an IAP client id."""
    service_account: str

    def as_payload(self) -> dict[str, object]:
        return {
            "ExpiresAt": format_timestamp(self.expires_at),
            "IssuedAt": format_timestamp(self.issued_at),
            "Audience": self.audience,
            "ServiceAccount": self.service_account,
        }


@dataclass(frozen=True)
class IdTokenSecretValue:
    """One version of an ID-token secret (a Google-signed JWT for one audience); repr and str
    hide the token."""

    id_token: str
    metadata: IdTokenMetadata

    def __repr__(self) -> str:
        return f"IdTokenSecretValue(id_token=<redacted>, metadata={self.metadata!r})"

    __str__ = __repr__

    def to_secret_string(self) -> str:
        meta = self.metadata
        document = {
            ID_TOKEN_FIELD: self.id_token,
            "audience": meta.audience,
            "expires_at": format_timestamp(meta.expires_at),
            "issued_at": format_timestamp(meta.issued_at),
            "service_account": meta.service_account,
        }
        return json.dumps(document, sort_keys=True)

    @classmethod
    def _from_document(cls, document: dict[str, object]) -> "IdTokenSecretValue":
        return cls(
            id_token=_required_string(document, ID_TOKEN_FIELD),
            metadata=IdTokenMetadata(
                expires_at=parse_timestamp(document.get("expires_at"), "expires_at"),
                issued_at=parse_timestamp(document.get("issued_at"), "issued_at"),
                audience=_required_string(document, "audience"),
                service_account=_required_string(document, "service_account"),
            ),
        )


StoredToken = TokenSecretValue | IdTokenSecretValue
"""What a token secret's version holds once the rotation has written it."""
StoredMetadata = TokenMetadata | IdTokenMetadata


def parse_token_secret(secret_string: str) -> StoredToken:
    """Parse a stored value of either kind (the field its token is in says which); every problem
    names the field and never echoes the value."""
    try:
        document = json.loads(secret_string)
    except ValueError:
        raise InvalidTokenSecretError("the token secret value is not JSON") from None
    if not isinstance(document, dict):
        raise InvalidTokenSecretError("the token secret value must be a JSON object")
    if ID_TOKEN_FIELD not in document:
        return TokenSecretValue._from_document(document)
    if ACCESS_TOKEN_FIELD in document:
        raise InvalidTokenSecretError(
            f"the token secret value holds both {ACCESS_TOKEN_FIELD!r} and {ID_TOKEN_FIELD!r}: "
            "a token secret holds one kind of token"
        )
    return IdTokenSecretValue._from_document(document)


def token_kind(stored: StoredToken) -> str:
    return ID_TOKEN_KIND if isinstance(stored, IdTokenSecretValue) else ACCESS_TOKEN_KIND


def is_token_secret_string(secret_string: str) -> bool:
    """Whether a secret's value is one the rotation may replace: the placeholder a token secret
    is created with, or a value the rotation wrote. Anything else belongs to someone else."""
    try:
        document = json.loads(secret_string)
    except (ValueError, RecursionError):
        # RecursionError: a foreign value may nest deeper than the parser goes.
        return False
    if document == json.loads(PLACEHOLDER):
        return True
    try:
        parse_token_secret(secret_string)
    except InvalidTokenSecretError:
        return False
    return True


def _required_string(document: dict[str, object], field: str) -> str:
    value = document.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidTokenSecretError(f"field {field!r} must be a non-empty string")
    return value
