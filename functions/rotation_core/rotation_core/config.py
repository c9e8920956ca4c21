"""Per-secret settings: defaults from the function environment, overrides from the secret's tags."""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from rotation_core.errors import ConfigurationError, UnmanagedSecretError

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
REFRESH_LEAD_SECONDS = Setting(
    f"{TAG_PREFIX}refresh-lead-seconds",
    "REFRESH_LEAD_SECONDS",
    f"a whole number of seconds between 0 and {MAX_TOKEN_LIFETIME_SECONDS}",
)
DEFAULT_MIN_REMAINING_SECONDS: Final = 900
DEFAULT_REFRESH_LEAD_SECONDS: Final = 900


MANAGED_BY_TAG: Final = f"{TAG_PREFIX}managed-by"
MANAGED_BY_VARIABLE: Final = "MANAGED_BY"
ALLOWED_KEY_SECRET_IDS_VARIABLE: Final = "ALLOWED_KEY_SECRET_IDS"
_ARN_SUFFIX_LENGTH: Final = 7  # Secrets Manager appends "-" and six random characters


@dataclass(frozen=True)
class RotationSettings:
    """What one token secret's rotation needs to know; all of it is safe to log.

    The function environment holds the deployer's settings; they are ceilings: a secret's tags
    may narrow them (fewer scopes, a pinned account, a longer minimum life), never widen them."""

    scopes: tuple[str, ...]
    credential_source: str
    key_secret_id: str
    expected_service_account: str | None
    min_remaining_seconds: int
    refresh_lead_seconds: int
    """How long before the token in use expires its successor is minted."""

    @classmethod
    def resolve(cls, tags: Mapping[str, str], environment: Mapping[str, str]) -> "RotationSettings":
        def tag(setting: Setting) -> str | None:
            # An empty tag counts as absent, so it cannot hide the function's default.
            return tags.get(setting.tag, "").strip() or None

        def deployed(setting: Setting) -> str | None:
            return environment.get(setting.variable, "").strip() or None

        source = _parse(
            CREDENTIAL_SOURCE, deployed(CREDENTIAL_SOURCE) or SERVICE_ACCOUNT_KEY_SOURCE, _source
        )
        if (asked_source := tag(CREDENTIAL_SOURCE)) is not None and asked_source != source:
            raise _outside_ceiling(CREDENTIAL_SOURCE, f"asks for {asked_source!r}", repr(source))

        key_secret_id = deployed(KEY_SECRET_ID)
        if key_secret_id is None:
            raise _missing(KEY_SECRET_ID)
        if (asked_key := tag(KEY_SECRET_ID)) is not None:
            allowed = allowed_key_secret_ids(environment)
            if asked_key not in allowed:
                raise _outside_ceiling(
                    KEY_SECRET_ID,
                    f"names key secret {asked_key!r}",
                    f"the allowed key secrets ({', '.join(sorted(allowed))}; "
                    f"environment variable {ALLOWED_KEY_SECRET_IDS_VARIABLE!r})",
                )
            key_secret_id = asked_key

        raw_scopes = deployed(SCOPES)
        if raw_scopes is None:
            raise _missing(SCOPES)
        scopes = _parse(SCOPES, raw_scopes, _scopes)
        if (raw_asked_scopes := tag(SCOPES)) is not None:
            asked_scopes = _parse(SCOPES, raw_asked_scopes, _scopes)
            wider = [scope for scope in asked_scopes if scope not in scopes]
            if wider:
                raise _outside_ceiling(
                    SCOPES, f"asks for {', '.join(wider)}", f"the scopes {', '.join(scopes)}"
                )
            scopes = asked_scopes

        pinned = deployed(EXPECTED_SERVICE_ACCOUNT)
        account = None if pinned is None else _parse(EXPECTED_SERVICE_ACCOUNT, pinned, _email)
        if (raw_account := tag(EXPECTED_SERVICE_ACCOUNT)) is not None:
            asked_account = _parse(EXPECTED_SERVICE_ACCOUNT, raw_account, _email)
            if account is not None and asked_account != account:
                raise _outside_ceiling(
                    EXPECTED_SERVICE_ACCOUNT,
                    f"names {asked_account}",
                    f"the pinned service account {account}",
                )
            account = asked_account

        def at_least_deployed(setting: Setting, default: int) -> int:
            """A margin of time: a tag may ask for more than the deployer's, never less."""
            raw = deployed(setting)
            floor = default if raw is None else _parse(setting, raw, _seconds)
            if (raw_asked := tag(setting)) is None:
                return floor
            asked = _parse(setting, raw_asked, _seconds)
            if asked < floor:
                raise _outside_ceiling(setting, f"asks for {asked} s", f"at least {floor} s")
            return asked

        return cls(
            scopes=scopes,
            credential_source=source,
            key_secret_id=key_secret_id,
            expected_service_account=account,
            min_remaining_seconds=at_least_deployed(
                MIN_REMAINING_SECONDS, DEFAULT_MIN_REMAINING_SECONDS
            ),
            refresh_lead_seconds=at_least_deployed(
                REFRESH_LEAD_SECONDS, DEFAULT_REFRESH_LEAD_SECONDS
            ),
        )


def allowed_key_secret_ids(environment: Mapping[str, str]) -> frozenset[str]:
    """The key secrets a tag may choose from: the deployer's default and any listed besides."""
    listed = re.split(r"[\s,]+", environment.get(ALLOWED_KEY_SECRET_IDS_VARIABLE, ""))
    default = environment.get(KEY_SECRET_ID.variable, "").strip()
    return frozenset(entry for entry in (*listed, default) if entry)


def managed_secret_check(
    arn: str, name: str, tags: Mapping[str, str], environment: Mapping[str, str]
) -> None:
    """Steps act only on token secrets this stack manages, and never on a key secret."""
    owner = environment.get(MANAGED_BY_VARIABLE, "").strip()
    if not owner:
        raise ConfigurationError(
            f"environment variable {MANAGED_BY_VARIABLE!r} is not set: it must hold the value "
            f"of the {MANAGED_BY_TAG!r} tag that marks the token secrets this stack rotates"
        )
    if any(_same_secret(entry, arn, name) for entry in allowed_key_secret_ids(environment)):
        raise UnmanagedSecretError(
            f"secret {name!r} is a service-account key secret, not a token secret: nothing "
            "was read or written. Pass the token secret's name or ARN"
        )
    if tags.get(MANAGED_BY_TAG) != owner:
        raise UnmanagedSecretError(
            f"secret {name!r} is not a token secret managed by {owner!r} (it lacks the tag "
            f"{MANAGED_BY_TAG}={owner}): nothing was read or written. Pass a managed token "
            "secret's name or ARN"
        )


def _same_secret(entry: str, arn: str, name: str) -> bool:
    """An id as a deployer may write it: the full ARN, the ARN without its suffix, or the name."""
    return entry in (arn, name) or (
        arn.startswith(entry) and len(arn) - len(entry) == _ARN_SUFFIX_LENGTH
    )


def _missing(setting: Setting) -> ConfigurationError:
    return ConfigurationError(
        f"missing setting: set environment variable {setting.variable!r} to {setting.expected} "
        f"(the deployer's setting; a {setting.tag!r} tag may only narrow it)"
    )


def _outside_ceiling(setting: Setting, asked: str, ceiling: str) -> ConfigurationError:
    return ConfigurationError(
        f"tag {setting.tag!r} {asked}, outside the deployer's ceiling: {ceiling} "
        f"(environment variable {setting.variable!r}). Tags may only narrow the deployer's "
        "settings: fix or remove the tag, or widen the ceiling in the stack's parameters"
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
