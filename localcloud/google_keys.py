"""Service accounts' user-managed keys as IAM keeps them (when each starts and stops being
accepted, disabling, the 10-key limit, the organisation's key-expiry policy) and the IAM keys
API's resources and requests: kept apart from the emulator's HTTP."""

import datetime
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import parse_qs, unquote

KEY_ADMIN_ROLE: Final = "roles/iam.serviceAccountKeyAdmin"
MAX_KEYS_PER_ACCOUNT: Final = 10
USER_MANAGED: Final = "USER_MANAGED"
GOOGLE_CREDENTIALS_FILE: Final = "TYPE_GOOGLE_CREDENTIALS_FILE"
RSA_2048: Final = "KEY_ALG_RSA_2048"
# What Google shows as the end of a key that never expires.
NO_EXPIRY: Final = "9999-12-31T23:59:59Z"
_KEY_TYPES: Final = frozenset({"KEY_TYPE_UNSPECIFIED", USER_MANAGED, "SYSTEM_MANAGED"})
_PRIVATE_KEY_TYPES: Final = frozenset({"TYPE_UNSPECIFIED", GOOGLE_CREDENTIALS_FILE})
_KEY_ALGORITHMS: Final = frozenset({"KEY_ALG_UNSPECIFIED", RSA_2048})
_CREATE_FIELDS: Final = frozenset({"privateKeyType", "keyAlgorithm"})
_KEYS_PATH: Final = re.compile(
    r"/v1/projects/(?P<project>[^/]+)/serviceAccounts/(?P<account>[^/:]+)/keys"
    r"(?:/(?P<key>[^/:]+)(?::(?P<verb>[A-Za-z]+))?)?"
)


class InvalidKeyRequestError(ValueError):
    """The request's parameters or body are not what the keys API takes (INVALID_ARGUMENT)."""


class KeyLimitError(Exception):
    """The account already holds MAX_KEYS_PER_ACCOUNT keys (Google's FAILED_PRECONDITION)."""


@dataclass(frozen=True)
class ManagedKey:
    """One user-managed key as IAM lists it; times are epoch seconds on the emulator clock."""

    key_id: str
    client_email: str
    valid_after: float
    """When the key was made (Google's validAfterTime)."""
    valid_before: float
    """When the key expires (validBeforeTime); math.inf without a key-expiry policy."""
    usable_from: float
    """When the token endpoint starts accepting it: a key made through the API needs a short
    while to reach every Google server; test set-up keys are usable at once (-math.inf)."""
    disabled: bool
    """Disabled at the time it was looked up."""

    def usable(self, now: float) -> bool:
        """Whether Google accepts assertions it signs at `now`."""
        return not self.disabled and self.usable_from <= now < self.valid_before

    def resource(self) -> dict[str, object]:
        """The ServiceAccountKey resource of keys.get and keys.list (no private key data)."""
        resource: dict[str, object] = {
            "name": key_name(self.client_email, self.key_id),
            "validAfterTime": _rfc3339(self.valid_after),
            "validBeforeTime": NO_EXPIRY
            if math.isinf(self.valid_before)
            else _rfc3339(self.valid_before),
            "keyAlgorithm": RSA_2048,
            "keyOrigin": "GOOGLE_PROVIDED",
            "keyType": USER_MANAGED,
        }
        if self.disabled:
            resource["disabled"] = True
        return resource


@dataclass
class _StoredKey:
    key: ManagedKey
    public_key_pem: str
    disabled_until: float = -math.inf
    """Emulator time from which the key is enabled again (math.inf: until enabled)."""

    def view(self, now: float) -> ManagedKey:
        return replace(self.key, disabled=now < self.disabled_until)


class ServiceAccountKeys:
    """Every account's user-managed keys, in the order they were made, with the organisation's
    key-expiry policy (constraints/iam.serviceAccountKeyExpiryHours) applied to new ones.
    Thread-safe; `now` is the emulator clock."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._keys: dict[str, _StoredKey] = {}
        self._expiry_seconds: float | None = None

    def set_expiry_policy(self, hours: float | None) -> None:
        """Keys made from now on expire `hours` after they are made; None lifts the policy.
        Google allows 8 to 2,160 hours; any positive number is taken, so tests can compress
        time. Keys already made keep their expiry, as at Google."""
        if hours is not None and not (hours > 0 and math.isfinite(hours)):
            raise ValueError(
                f"the key-expiry policy is a positive number of hours (or None), not {hours!r}"
            )
        with self._lock:
            self._expiry_seconds = None if hours is None else hours * 3600

    @property
    def expiry_hours(self) -> float | None:
        with self._lock:
            return None if self._expiry_seconds is None else self._expiry_seconds / 3600

    def add(
        self,
        key_id: str,
        client_email: str,
        public_key_pem: str,
        *,
        propagation_seconds: float | None = None,
        enforce_limit: bool = False,
    ) -> ManagedKey:
        """Registers a key made now. With `propagation_seconds` (a key made through the API) it
        is accepted only that long after; with `enforce_limit`, an account already holding
        MAX_KEYS_PER_ACCOUNT keys (disabled and expired ones count) raises KeyLimitError."""
        now = self._now()
        with self._lock:
            if enforce_limit and len(self._of_account(client_email)) >= MAX_KEYS_PER_ACCOUNT:
                raise KeyLimitError(f"{client_email} already has {MAX_KEYS_PER_ACCOUNT} keys")
            expiry = self._expiry_seconds
            key = ManagedKey(
                key_id=key_id,
                client_email=client_email,
                valid_after=now,
                valid_before=math.inf if expiry is None else now + expiry,
                usable_from=-math.inf if propagation_seconds is None else now + propagation_seconds,
                disabled=False,
            )
            self._keys[key_id] = _StoredKey(key, public_key_pem)
        return key

    def get(self, key_id: str, client_email: str | None = None) -> ManagedKey:
        """The key now; KeyError when there is none (or it belongs to another account than
        `client_email`, when given)."""
        now = self._now()
        with self._lock:
            return self._stored(key_id, client_email).view(now)

    def of_account(self, client_email: str) -> list[ManagedKey]:
        now = self._now()
        with self._lock:
            return [stored.view(now) for stored in self._of_account(client_email)]

    def delete(self, key_id: str, client_email: str | None = None) -> None:
        """Deletes the key (KeyError when unknown, as for get); tokens it minted stay valid."""
        with self._lock:
            self._stored(key_id, client_email)
            del self._keys[key_id]

    def disable(
        self, key_id: str, client_email: str | None = None, *, until: float = math.inf
    ) -> None:
        """Disables the key until emulator time `until` (math.inf: until enable)."""
        with self._lock:
            self._stored(key_id, client_email).disabled_until = until

    def enable(self, key_id: str, client_email: str | None = None) -> None:
        with self._lock:
            self._stored(key_id, client_email).disabled_until = -math.inf

    def verification_keys(self, client_email: str) -> dict[str, str]:
        """The public keys (PEM by key id) the token endpoint checks the account's assertions
        against now: usable keys only, so the others fail as a bad signature does at Google."""
        now = self._now()
        with self._lock:
            return {
                stored.key.key_id: stored.public_key_pem
                for stored in self._of_account(client_email)
                if stored.view(now).usable(now)
            }

    def _of_account(self, client_email: str) -> list[_StoredKey]:
        return [stored for stored in self._keys.values() if stored.key.client_email == client_email]

    def _stored(self, key_id: str, client_email: str | None) -> _StoredKey:
        stored = self._keys.get(key_id)
        if stored is None or client_email not in (None, stored.key.client_email):
            raise KeyError(f"no registered key {key_id!r}")
        return stored


@dataclass(frozen=True)
class KeyCall:
    """One request of the IAM keys API, from its method and path."""

    action: str
    """create, list, get, delete, disable or enable."""
    project: str
    account: str
    """The account as the path names it: its e-mail or its unique id."""
    key_id: str | None

    @property
    def permission(self) -> str:
        return f"iam.serviceAccountKeys.{self.action}"


def is_keys_path(path: str) -> bool:
    return _KEYS_PATH.fullmatch(path) is not None


def key_call(method: str, path: str) -> KeyCall | None:
    """The call the request makes, or None when the keys API has no such method on the path."""
    match = _KEYS_PATH.fullmatch(path)
    if match is None:
        return None
    key_id, verb = match["key"], match["verb"]
    if key_id is None:
        action = {"POST": "create", "GET": "list"}.get(method)
    elif verb is None:
        action = {"GET": "get", "DELETE": "delete"}.get(method)
    else:
        action = verb if method == "POST" and verb in ("disable", "enable") else None
    if action is None:
        return None
    return KeyCall(action, match["project"], unquote(match["account"]), key_id)


def key_name(client_email: str, key_id: str) -> str:
    return f"projects/{project_of(client_email)}/serviceAccounts/{client_email}/keys/{key_id}"


def project_of(client_email: str) -> str:
    domain = client_email.rpartition("@")[2]
    return domain.removesuffix(".iam.gserviceaccount.com").split(".")[0]


def requested_key_types(raw_query: str) -> frozenset[str]:
    """keys.list's keyTypes (repeatable); none asked means every type.
    InvalidKeyRequestError names a value that is not a key type."""
    asked = parse_qs(raw_query).get("keyTypes", [])
    for value in asked:
        if value not in _KEY_TYPES:
            # Unverified text: Google's usual answer to a bad enum value in the query.
            raise InvalidKeyRequestError(
                "Invalid value at 'key_types' "
                f"(type.googleapis.com/google.iam.admin.v1.ListServiceAccountKeysRequest.KeyType), "
                f'"{value}"'
            )
    if not asked or "KEY_TYPE_UNSPECIFIED" in asked:
        return frozenset({USER_MANAGED, "SYSTEM_MANAGED"})
    return frozenset(asked)


def check_create_request(request: dict[str, object]) -> None:
    """keys.create's body: the emulator makes Google credentials files of RSA 2048 keys only.
    InvalidKeyRequestError says what is wrong."""
    unknown = sorted(set(request) - _CREATE_FIELDS)
    if unknown:
        raise InvalidKeyRequestError(
            f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
        )
    private_key_type = request.get("privateKeyType", GOOGLE_CREDENTIALS_FILE)
    if private_key_type not in _PRIVATE_KEY_TYPES:
        raise InvalidKeyRequestError(
            f"The emulator makes {GOOGLE_CREDENTIALS_FILE} keys only, not {private_key_type!r}."
        )
    algorithm = request.get("keyAlgorithm", RSA_2048)
    if algorithm not in _KEY_ALGORITHMS:
        raise InvalidKeyRequestError(f"The emulator makes {RSA_2048} keys only, not {algorithm!r}.")


def _rfc3339(epoch: float) -> str:
    # Google shows key times to the second.
    moment = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
