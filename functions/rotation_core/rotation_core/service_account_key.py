"""Parses a Google service-account key file into signing credentials, failing clearly and safely."""

import json
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from google.auth.crypt import RSASigner
from google.oauth2 import service_account

from rotation_core.errors import InvalidServiceAccountKeyError

_REQUIRED_FIELDS = ("type", "client_email", "client_id", "private_key_id", "private_key")
_STORE_AS_DOWNLOADED = "store the key file exactly as downloaded from Google Cloud"


@dataclass(frozen=True)
class ServiceAccountKey:
    """A parsed key: the identity is safe to log, the signer never leaves this object."""

    client_email: str
    client_id: str
    private_key_id: str
    _signer: RSASigner

    def __repr__(self) -> str:
        return (
            f"ServiceAccountKey(client_email={self.client_email!r}, "
            f"private_key_id={self.private_key_id!r}, private_key=<redacted>)"
        )

    def credentials(self, scopes: tuple[str, ...], token_uri: str) -> service_account.Credentials:
        return service_account.Credentials(
            signer=self._signer,
            service_account_email=self.client_email,
            token_uri=token_uri,
            scopes=list(scopes),
        )

    def id_token_credentials(
        self, audience: str, token_uri: str
    ) -> service_account.IDTokenCredentials:
        """The JWT-bearer grant with target_audience: Google answers with an ID token."""
        return service_account.IDTokenCredentials(
            signer=self._signer,
            service_account_email=self.client_email,
            token_uri=token_uri,
            target_audience=audience,
        )


@dataclass(frozen=True)
class KeyMetadata:
    """What a key secret's step reports of the key: its id and account, nothing secret."""

    key_id: str
    service_account: str
    valid_before: datetime | None = None
    """None while unknown, or when no key-expiry policy limits the key."""

    def as_payload(self) -> dict[str, object]:
        payload: dict[str, object] = {"KeyId": self.key_id, "ServiceAccount": self.service_account}
        if self.valid_before is not None:
            payload["KeyValidBefore"] = self.valid_before.strftime("%Y-%m-%dT%H:%M:%SZ")
        return payload


def parse_service_account_key(secret_string: str, secret_id: str) -> ServiceAccountKey:
    """Read the key file JSON held in secret `secret_id`; errors name the field, never the value."""
    where = f"service-account key in secret {secret_id!r}"
    try:
        document = json.loads(secret_string)
    except ValueError:
        raise InvalidServiceAccountKeyError(
            f"the {where} is not JSON; {_STORE_AS_DOWNLOADED} (the whole .json file as the "
            "secret string, not base64 or a file path)"
        ) from None
    if isinstance(document, str):
        raise InvalidServiceAccountKeyError(
            f"the {where} is a JSON string holding JSON (encoded twice); {_STORE_AS_DOWNLOADED}"
        )
    if not isinstance(document, dict):
        raise InvalidServiceAccountKeyError(f"the {where} must be a JSON object")
    if not document:
        raise InvalidServiceAccountKeyError(
            f"the {where} is empty ({{}}, as first deployed): put the key file into it with "
            f"'aws secretsmanager put-secret-value --secret-id {secret_id} "
            "--secret-string file://service-account-key.json'"
        )
    for field in _REQUIRED_FIELDS:
        value = document.get(field)
        if not isinstance(value, str) or not value.strip():
            raise InvalidServiceAccountKeyError(
                f"the {where} has no {field!r} field (or it is empty); {_STORE_AS_DOWNLOADED}"
            )
    if document["type"] != "service_account":
        raise InvalidServiceAccountKeyError(
            f"the {where} is not a service-account key (its 'type' field is not "
            "'service_account'); store the key of a service account, as downloaded from Google "
            "Cloud"
        )
    private_key = _load_private_key(document["private_key"], where)
    return ServiceAccountKey(
        client_email=document["client_email"],
        client_id=document["client_id"],
        private_key_id=document["private_key_id"],
        _signer=RSASigner(private_key, key_id=document["private_key_id"]),
    )


def _load_private_key(pem: str, where: str) -> RSAPrivateKey:
    field = f"'private_key' field of the {where}"
    if "\\n" in pem and "\n" not in pem.strip():
        raise InvalidServiceAccountKeyError(
            f"the {field} holds literal '\\n' sequences instead of line breaks (escaped twice); "
            f"{_STORE_AS_DOWNLOADED}"
        )
    if "PUBLIC KEY" in pem or "CERTIFICATE" in pem:
        raise InvalidServiceAccountKeyError(
            f"the {field} holds a public key or certificate, not the private key; "
            f"{_STORE_AS_DOWNLOADED}"
        )
    if "ENCRYPTED" in pem:
        raise InvalidServiceAccountKeyError(
            f"the {field} is encrypted with a passphrase; Google key files hold an unencrypted "
            f"key: {_STORE_AS_DOWNLOADED}"
        )
    try:
        key = load_pem_private_key(pem.encode("utf-8"), password=None)
    except TypeError:
        raise InvalidServiceAccountKeyError(
            f"the {field} is encrypted with a passphrase; {_STORE_AS_DOWNLOADED}"
        ) from None
    except (ValueError, UnicodeError):
        raise InvalidServiceAccountKeyError(
            f"the {field} is not a readable PEM private key (truncated or corrupted?); "
            f"{_STORE_AS_DOWNLOADED}"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise InvalidServiceAccountKeyError(
            f"the {field} is a {type(key).__name__.removeprefix('_')}, but Google service-account "
            f"keys are RSA; {_STORE_AS_DOWNLOADED}"
        )
    return key
