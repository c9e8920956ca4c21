"""Per-secret settings: defaults from the function environment, overrides from the secret's tags."""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from rotation_core.errors import ConfigurationError

TAG_PREFIX: Final = "token-rotation:"
SERVICE_ACCOUNT_KEY_SOURCE: Final = "service-account-key"
CREDENTIAL_SOURCES: Final = frozenset({SERVICE_ACCOUNT_KEY_SOURCE})
GOOGLE_TOKEN_URL: Final = "https://oauth2.googleapis.com/token"
GOOGLE_TOKENINFO_URL: Final = "https://oauth2.googleapis.com/tokeninfo"
MAX_TOKEN_LIFETIME_SECONDS: Final = 43200
_SCOPE = re.compile(r"^[\x21-\x7e]+$")


@dataclass(frozen=True)
class Setting:
    """One setting, readable from a secret tag and from a function environment variable."""

    tag: str
    variable: str
    expected: str

    def source_names(self) -> str:
        return f"tag {self.tag!r} or environment variable {self.variable!r}"


SCOPES = Setting(
    f"{TAG_PREFIX}scopes",
    "GOOGLE_SCOPES",
    "one or more OAuth scope URLs separated by spaces or commas",
)
KEY_SECRET_ID = Setting(
    f"{TAG_PREFIX}key-secret-id",
    "SERVICE_ACCOUNT_KEY_SECRET_ID",
    "the name or ARN of the secret that holds the service-account key file",
)
EXPECTED_SERVICE_ACCOUNT = Setting(
    f"{TAG_PREFIX}service-account",
    "EXPECTED_SERVICE_ACCOUNT",
    "a service-account e-mail such as name@project.iam.gserviceaccount.com",
)
MIN_REMAINING_SECONDS = Setting(
    f"{TAG_PREFIX}min-remaining-seconds",
    "MIN_REMAINING_SECONDS",
    f"a whole number of seconds between 0 and {MAX_TOKEN_LIFETIME_SECONDS}",
)
CREDENTIAL_SOURCE = Setting(
    f"{TAG_PREFIX}credential-source",
    "CREDENTIAL_SOURCE",
    f"one of: {', '.join(sorted(CREDENTIAL_SOURCES))}",
)
DEFAULT_MIN_REMAINING_SECONDS: Final = 900


@dataclass(frozen=True)
class RotationSettings:
    """What one token secret's rotation needs to know; all of it is safe to log."""

    scopes: tuple[str, ...]
    credential_source: str
    key_secret_id: str
    expected_service_account: str | None
    min_remaining_seconds: int

    @classmethod
    def resolve(cls, tags: Mapping[str, str], environment: Mapping[str, str]) -> "RotationSettings":
        def lookup(setting: Setting) -> str | None:
            # An empty tag counts as absent, so it cannot hide the function's default.
            value = tags.get(setting.tag, "").strip() or environment.get(setting.variable, "")
            return value.strip() or None

        credential_source = _parse(
            CREDENTIAL_SOURCE, lookup(CREDENTIAL_SOURCE) or SERVICE_ACCOUNT_KEY_SOURCE, _source
        )
        key_secret_id = lookup(KEY_SECRET_ID)
        if key_secret_id is None:
            raise ConfigurationError(
                f"missing setting: set {KEY_SECRET_ID.source_names()} to {KEY_SECRET_ID.expected}"
            )
        raw_scopes = lookup(SCOPES)
        if raw_scopes is None:
            raise ConfigurationError(
                f"missing setting: set {SCOPES.source_names()} to {SCOPES.expected}"
            )
        expected_account = lookup(EXPECTED_SERVICE_ACCOUNT)
        raw_minimum = lookup(MIN_REMAINING_SECONDS)
        return cls(
            scopes=_parse(SCOPES, raw_scopes, _scopes),
            credential_source=credential_source,
            key_secret_id=key_secret_id,
            expected_service_account=(
                None
                if expected_account is None
                else _parse(EXPECTED_SERVICE_ACCOUNT, expected_account, _email)
            ),
            min_remaining_seconds=(
                DEFAULT_MIN_REMAINING_SECONDS
                if raw_minimum is None
                else _parse(MIN_REMAINING_SECONDS, raw_minimum, _seconds)
            ),
        )


@dataclass(frozen=True)
class GoogleEndpoints:
    """Where Google lives and how long we wait for it; environment only, never from tags,
    so that whoever may tag a secret cannot send its token elsewhere."""

    token_url: str
    tokeninfo_url: str
    timeout_seconds: float

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> "GoogleEndpoints":
        raw_timeout = environment.get("GOOGLE_HTTP_TIMEOUT_SECONDS", "10")
        try:
            timeout = float(raw_timeout)
        except ValueError:
            timeout = 0.0
        if not 0 < timeout <= 60:
            raise ConfigurationError(
                "environment variable 'GOOGLE_HTTP_TIMEOUT_SECONDS' must be a number of seconds "
                f"above 0 and at most 60, got {raw_timeout!r}"
            )
        return cls(
            token_url=_url(environment, "GOOGLE_TOKEN_URL", GOOGLE_TOKEN_URL),
            tokeninfo_url=_url(environment, "GOOGLE_TOKENINFO_URL", GOOGLE_TOKENINFO_URL),
            timeout_seconds=timeout,
        )


def _url(environment: Mapping[str, str], variable: str, default: str) -> str:
    url = environment.get(variable, "").strip() or default
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigurationError(
            f"environment variable {variable!r} is not a URL: {url!r}"
        ) from None
    local = parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost"}
    if not (parts.scheme == "https" and parts.hostname) and not local:
        raise ConfigurationError(
            f"environment variable {variable!r} must be an https:// URL "
            "(plain http only for a local emulator on 127.0.0.1 or localhost)"
        )
    return url


def _parse[T](setting: Setting, raw: str, parser: Callable[[str], T | None]) -> T:
    parsed = parser(raw)
    if parsed is None:
        raise ConfigurationError(
            f"invalid setting {setting.source_names()}: got {raw!r}, expected {setting.expected}"
        )
    return parsed


def _source(raw: str) -> str | None:
    return raw if raw in CREDENTIAL_SOURCES else None


def _scopes(raw: str) -> tuple[str, ...] | None:
    scopes = tuple(dict.fromkeys(part for part in re.split(r"[\s,]+", raw) if part))
    return scopes if scopes and all(_SCOPE.match(scope) for scope in scopes) else None


def _email(raw: str) -> str | None:
    return raw if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", raw) else None


def _seconds(raw: str) -> int | None:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        return None
    seconds = int(raw)
    return seconds if seconds <= MAX_TOKEN_LIFETIME_SECONDS else None
