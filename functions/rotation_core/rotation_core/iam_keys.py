"""Google IAM's service-account keys API for one account, called with that account's own token:
create, list and delete, with Google's refusals named by what fixes them."""

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from rotation_core.errors import (
    GoogleResponseError,
    GoogleUnavailableError,
    KeyAdminDeniedError,
    KeyLimitReachedError,
)
from rotation_core.google_client import GoogleClient, describe_google_error, is_transient_status
from rotation_core.redaction import shown_key_id

KEY_ADMIN_SCOPE: Final = "https://www.googleapis.com/auth/cloud-platform"
"""The scope IAM's keys methods accept (with .../auth/iam)."""
KEY_LIMIT: Final = 10
"""Google's hard limit of user-managed keys per service account."""
NO_EXPIRY: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
"""Google's validBeforeTime for a key no key-expiry policy limits."""
_ENDPOINT: Final = "IAM keys endpoint"


def key_admin_fix(account: str) -> str:
    """The one binding key rotation needs at Google, as gcloud writes it."""
    return (
        f"gcloud iam service-accounts add-iam-policy-binding {account} "
        f"--member=serviceAccount:{account} --role=roles/iam.serviceAccountKeyAdmin"
    )


@dataclass(frozen=True)
class GoogleKey:
    """What IAM says of a key; nothing secret."""

    key_id: str
    valid_after: datetime
    valid_before: datetime
    disabled: bool = False

    @property
    def expires(self) -> bool:
        return self.valid_before < NO_EXPIRY

    def describe(self) -> str:
        """Short, for a list of ten in a notice's bounded cause."""
        expiry = f" until {self.valid_before:%Y-%m-%d}" if self.expires else ""
        state = " disabled" if self.disabled else ""
        return f"{shown_key_id(self.key_id)} {self.valid_after:%Y-%m-%d}{expiry}{state}"


@dataclass(frozen=True)
class CreatedKey:
    """A key IAM just created and its key file, which only the key secret may hold."""

    key: GoogleKey
    key_file: str = field(repr=False)


class ServiceAccountKeys:
    """The keys of `account`, managed with an access token of that same account."""

    def __init__(self, google: GoogleClient, account: str, access_token: str) -> None:
        self._google = google
        self._account = account
        self._token = access_token
        self._collection = google.endpoints.iam_url.format(account)

    def listed(self) -> list[GoogleKey]:
        status, body = self._call("GET", self._collection + "?keyTypes=USER_MANAGED", "list")
        entries = body.get("keys", [])
        if status != 200 or not isinstance(entries, list):
            raise self._unexpected("list", status, body)
        return [_google_key(entry) for entry in entries if isinstance(entry, dict)]

    def create(self) -> CreatedKey:
        """A new RSA key and its JSON key file; an account at Google's 10-key limit is refused
        with the keys listed and the commands that free a place."""
        status, body = self._call(
            "POST",
            self._collection,
            "create",
            {"privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE", "keyAlgorithm": "KEY_ALG_RSA_2048"},
        )
        if status == 400 and _google_status(body) == "FAILED_PRECONDITION":
            raise self.limit_reached(self.listed())
        if status != 200:
            raise self._unexpected("create", status, body)
        try:
            key_file = base64.b64decode(str(body["privateKeyData"]), validate=True).decode()
        except (KeyError, ValueError, binascii.Error, UnicodeDecodeError):
            raise GoogleResponseError(
                "Google's IAM keys endpoint created a key but answered without a readable "
                "privateKeyData"
            ) from None
        return CreatedKey(_google_key(body), key_file)

    def delete(self, key_id: str) -> bool:
        """True when IAM deleted the key, False when it was already gone."""
        status, body = self._call("DELETE", f"{self._collection}/{key_id}", "delete")
        if status == 404:
            return False
        if status != 200:
            raise self._unexpected("delete", status, body)
        return True

    def limit_reached(self, keys: list[GoogleKey]) -> KeyLimitReachedError:
        """The commands first: a notice cuts a long cause, and the keys are listed after."""
        listed = "; ".join(key.describe() for key in keys) or "none listed"
        return KeyLimitReachedError(
            f"service account {self._account} already holds Google's limit of {KEY_LIMIT} "
            "user-managed keys, so no new key can be created. Delete those nothing uses with "
            f"'gcloud iam service-accounts keys delete KEY_ID --iam-account={self._account}' "
            "(never the key in the key secret's AWSCURRENT; list them with 'gcloud iam "
            f"service-accounts keys list --iam-account={self._account} --managed-by=user'), "
            f"then rotate the key secret again. Its keys: {listed}"
        )

    def _call(
        self, method: str, url: str, action: str, body: object = None
    ) -> tuple[int, dict[str, object]]:
        status, answer = self._google.api_request(method, url, self._token, _ENDPOINT, body)
        if is_transient_status(status):
            raise GoogleUnavailableError(
                f"Google's IAM keys endpoint answered HTTP {status} to {action}; try again later"
            )
        if status in (401, 403):
            raise KeyAdminDeniedError(
                f"Google's IAM refused to {action} the keys of {self._account}: HTTP {status} "
                f"({describe_google_error(answer)}). The account manages its own keys: grant "
                f"it roles/iam.serviceAccountKeyAdmin on itself ({key_admin_fix(self._account)})"
            )
        return status, answer

    def _unexpected(self, action: str, status: int, body: dict[str, object]) -> Exception:
        return GoogleResponseError(
            f"Google's IAM keys endpoint answered HTTP {status} to {action} "
            f"({describe_google_error(body)})"
        )


def _google_status(body: dict[str, object]) -> object:
    error = body.get("error")
    return error.get("status") if isinstance(error, dict) else None


def _google_key(entry: dict[str, object]) -> GoogleKey:
    try:
        name = str(entry["name"])
        return GoogleKey(
            key_id=name.rsplit("/", 1)[-1],
            valid_after=_timestamp(entry["validAfterTime"]),
            valid_before=_timestamp(entry.get("validBeforeTime", "9999-12-31T23:59:59Z")),
            disabled=entry.get("disabled") is True,
        )
    except (KeyError, ValueError):
        raise GoogleResponseError(
            "Google's IAM keys endpoint answered with a key without name or validAfterTime"
        ) from None


def _timestamp(text: object) -> datetime:
    """IAM's RFC 3339 times, which may carry fractions of a second."""
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    return moment.astimezone(UTC)
