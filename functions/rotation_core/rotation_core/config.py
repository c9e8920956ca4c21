"""Per-secret settings: defaults from the function environment, overrides from the secret's tags."""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from rotation_core.errors import ConfigurationError, UnmanagedSecretError
from rotation_core.token_secret import ACCESS_TOKEN_KIND, ID_TOKEN_KIND, TOKEN_KINDS

TAG_PREFIX: Final = "token-rotation:"
SERVICE_ACCOUNT_KEY_SOURCE: Final = "service-account-key"
IMPERSONATION_SOURCE: Final = "impersonation"
WORKLOAD_IDENTITY_SOURCE: Final = "workload-identity-federation"
CREDENTIAL_SOURCES: Final = frozenset(
    {SERVICE_ACCOUNT_KEY_SOURCE, IMPERSONATION_SOURCE, WORKLOAD_IDENTITY_SOURCE}
)
KEY_SOURCES: Final = frozenset({SERVICE_ACCOUNT_KEY_SOURCE, IMPERSONATION_SOURCE})
"""The sources that read a service-account key; federation reads none."""
GOOGLE_TOKEN_URL: Final = "https://oauth2.googleapis.com/token"
GOOGLE_TOKENINFO_URL: Final = "https://oauth2.googleapis.com/tokeninfo"
GOOGLE_STS_URL: Final = "https://sts.googleapis.com/v1/token"
GOOGLE_IAM_CREDENTIALS_URL: Final = (
    "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{}:generateAccessToken"
)
GOOGLE_CERTS_URL: Final = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_IAM_URL: Final = "https://iam.googleapis.com/v1/projects/-/serviceAccounts/{}/keys"
"""IAM's service-account keys collection, {} for the account's e-mail."""
"""Google's public keys for the ID tokens it signs (PEM by kid), as relying parties fetch them."""
GENERATE_ACCESS_TOKEN: Final = ":generateAccessToken"
GENERATE_ID_TOKEN: Final = ":generateIdToken"
MAX_TOKEN_LIFETIME_SECONDS: Final = 43200
DEFAULT_TOKEN_LIFETIME_SECONDS: Final = 3600
"""What Google gives without the org policy that allows longer impersonated tokens."""
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
IMPERSONATED_SERVICE_ACCOUNT = Setting(
    f"{TAG_PREFIX}impersonated-service-account",
    "IMPERSONATED_SERVICE_ACCOUNT",
    "the e-mail of the service account whose tokens the rotation mints (impersonation)",
)
TOKEN_LIFETIME_SECONDS = Setting(
    f"{TAG_PREFIX}token-lifetime-seconds",
    "TOKEN_LIFETIME_SECONDS",
    f"a whole number of seconds between 1 and {MAX_TOKEN_LIFETIME_SECONDS}",
)
DELEGATED_SUBJECT = Setting(
    f"{TAG_PREFIX}delegated-subject",
    "DELEGATED_SUBJECT",
    "the e-mail of the Google Workspace user the key's account acts for (domain-wide delegation)",
)
WORKLOAD_IDENTITY_AUDIENCE = Setting(
    f"{TAG_PREFIX}workload-identity-audience",
    "WORKLOAD_IDENTITY_AUDIENCE",
    "//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/"
    "providers/PROVIDER",
)
TOKEN_KIND = Setting(
    f"{TAG_PREFIX}token-kind",
    "",
    f"one of: {', '.join(TOKEN_KINDS)} (default {ACCESS_TOKEN_KIND})",
)
"""A tag only: which kind a secret holds is the secret's choice, within ID_TOKEN_AUDIENCE."""
ID_TOKEN_AUDIENCE = Setting(
    f"{TAG_PREFIX}audience",
    "ID_TOKEN_AUDIENCES",
    "the audience of the ID token (the Cloud Run service's URL, say), one of the stack's "
    "IdTokenAudiences",
)
DEFAULT_MIN_REMAINING_SECONDS: Final = 900
ALLOWED_LISTS: Final = {
    IMPERSONATED_SERVICE_ACCOUNT: "ALLOWED_IMPERSONATED_SERVICE_ACCOUNTS",
    DELEGATED_SUBJECT: "ALLOWED_DELEGATED_SUBJECTS",
}
"""Environment variables listing what a tag may choose besides the deployer's own value."""
DEFAULT_REFRESH_LEAD_SECONDS: Final = 900


MANAGED_BY_TAG: Final = f"{TAG_PREFIX}managed-by"
MANAGED_BY_VARIABLE: Final = "MANAGED_BY"
ALLOWED_KEY_SECRET_IDS_VARIABLE: Final = "ALLOWED_KEY_SECRET_IDS"
DELEGATES_VARIABLE: Final = "IMPERSONATION_DELEGATES"
KEY_ROTATION_DAYS_VARIABLE: Final = "KEY_ROTATION_DAYS"
MAX_KEY_ROTATION_DAYS: Final = 90
"""Google asks for user-managed keys to be rotated at least every 90 days."""
_ARN_SUFFIX_LENGTH: Final = 7  # Secrets Manager appends "-" and six random characters


@dataclass(frozen=True)
class RotationSettings:
    """What one token secret's rotation needs to know; all of it is safe to log.

    The function environment holds the deployer's settings; they are ceilings: a secret's tags
    may narrow them (fewer scopes, a pinned account, a longer minimum life), never widen them."""

    scopes: tuple[str, ...]
    credential_source: str
    key_secret_id: str | None
    """None for keyless federation, which reads no key."""
    expected_service_account: str | None
    min_remaining_seconds: int
    refresh_lead_seconds: int
    """How long before the token in use expires its successor is minted."""
    impersonated_service_account: str | None = None
    """impersonation only: the account whose tokens are minted with the key's account."""
    token_lifetime_seconds: int = DEFAULT_TOKEN_LIFETIME_SECONDS
    delegates: tuple[str, ...] = ()
    workload_identity_audience: str | None = None
    """Keyless federation only: the pool provider the Lambda's AWS role authenticates to."""
    delegated_subject: str | None = None
    """The key's own tokens only: the Workspace user they act for (domain-wide delegation)."""
    token_kind: str = ACCESS_TOKEN_KIND
    id_token_audience: str | None = None
    """ID-token secrets only: the one audience their tokens are minted for."""

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

        key_secret_id = (
            _key_secret_id(tag(KEY_SECRET_ID), environment) if source in KEY_SOURCES else None
        )

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

        impersonated = None
        if source != SERVICE_ACCOUNT_KEY_SOURCE:
            impersonated = _impersonated(tag(IMPERSONATED_SERVICE_ACCOUNT), environment)
        subject = None
        if source == SERVICE_ACCOUNT_KEY_SOURCE:
            subject = _delegated_subject(tag(DELEGATED_SUBJECT), environment)
        audience = None
        if source == WORKLOAD_IDENTITY_SOURCE:
            audience = _audience(tag(WORKLOAD_IDENTITY_AUDIENCE), environment)
        lifetime = _lifetime_setting(tag(TOKEN_LIFETIME_SECONDS), deployed(TOKEN_LIFETIME_SECONDS))
        delegates = tuple(
            _parse(IMPERSONATED_SERVICE_ACCOUNT, entry, _email)
            for entry in re.split(r"[\s,]+", environment.get(DELEGATES_VARIABLE, ""))
            if entry
        )

        kind = _token_kind(tag(TOKEN_KIND))
        id_token_audience = _id_token_audience(kind, tag(ID_TOKEN_AUDIENCE), environment)
        if kind == ID_TOKEN_KIND:
            # An ID token names the account itself: delegation is for access tokens.
            subject = None

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
            impersonated_service_account=impersonated,
            token_lifetime_seconds=lifetime,
            delegates=delegates,
            workload_identity_audience=audience,
            delegated_subject=subject,
            token_kind=kind,
            id_token_audience=id_token_audience,
        )


def _token_kind(asked: str | None) -> str:
    """Per secret, from its tag only: the stack's own token secret holds access tokens."""
    if asked is None:
        return ACCESS_TOKEN_KIND
    if asked not in TOKEN_KINDS:
        raise ConfigurationError(
            f"invalid tag {TOKEN_KIND.tag!r}: got {asked!r}, expected {TOKEN_KIND.expected}"
        )
    return asked


def id_token_audiences(environment: Mapping[str, str]) -> tuple[str, ...]:
    """The deployer's ceiling for ID tokens: the audiences this stack may mint for (none: it
    mints no ID tokens)."""
    raw = environment.get(ID_TOKEN_AUDIENCE.variable, "")
    return tuple(dict.fromkeys(entry for entry in re.split(r"[\s,]+", raw) if entry))


def _id_token_audience(kind: str, asked: str | None, environment: Mapping[str, str]) -> str | None:
    """An ID-token secret's audience: one of the deployer's, named by the tag (or the only one)."""
    allowed = id_token_audiences(environment)
    if kind != ID_TOKEN_KIND:
        if asked is not None:
            raise ConfigurationError(
                f"tag {ID_TOKEN_AUDIENCE.tag!r} is set on a secret of kind {kind!r}: an audience "
                f"is for ID tokens. Tag the secret {TOKEN_KIND.tag}={ID_TOKEN_KIND}, or remove "
                "the audience tag"
            )
        return None
    ceiling = (
        f"the audiences {', '.join(allowed)}" if allowed else "none (this stack mints no ID tokens)"
    )
    if asked is None:
        if len(allowed) == 1:
            return allowed[0]
        raise ConfigurationError(
            f"tag {ID_TOKEN_AUDIENCE.tag!r} is missing: an ID-token secret names its audience, "
            f"one of the deployer's ceiling, {ceiling} (environment variable "
            f"{ID_TOKEN_AUDIENCE.variable!r}, the stack's IdTokenAudiences parameter)"
        )
    if asked not in allowed:
        raise _outside_ceiling(ID_TOKEN_AUDIENCE, f"names {asked}", ceiling)
    return asked


def _key_secret_id(asked: str | None, environment: Mapping[str, str]) -> str:
    """The deployer's key secret, or one the deployer also allows."""
    deployed = environment.get(KEY_SECRET_ID.variable, "").strip()
    if not deployed:
        raise _missing(KEY_SECRET_ID)
    if asked is None:
        return deployed
    allowed = allowed_key_secret_ids(environment)
    if asked not in allowed:
        raise _outside_ceiling(
            KEY_SECRET_ID,
            f"names key secret {asked!r}",
            f"the allowed key secrets ({', '.join(sorted(allowed))}; "
            f"environment variable {ALLOWED_KEY_SECRET_IDS_VARIABLE!r})",
        )
    return asked


def _lifetime_setting(asked: str | None, deployed: str | None) -> int:
    """The deployer's lifetime is a ceiling: a tag may ask for shorter tokens, never longer."""
    ceiling = (
        DEFAULT_TOKEN_LIFETIME_SECONDS
        if deployed is None
        else _parse(TOKEN_LIFETIME_SECONDS, deployed, _lifetime)
    )
    if asked is None:
        return ceiling
    lifetime = _parse(TOKEN_LIFETIME_SECONDS, asked, _lifetime)
    if lifetime > ceiling:
        raise _outside_ceiling(
            TOKEN_LIFETIME_SECONDS, f"asks for {lifetime} s", f"at most {ceiling} s"
        )
    return lifetime


def _delegated_subject(asked: str | None, environment: Mapping[str, str]) -> str | None:
    """The deployer's subject (none: no delegation), or one the deployer also allows."""
    raw = environment.get(DELEGATED_SUBJECT.variable, "").strip()
    deployed = _parse(DELEGATED_SUBJECT, raw, _email) if raw else None
    return _deployed_or_allowed(DELEGATED_SUBJECT, asked, deployed, environment)


def _deployed_or_allowed(
    setting: Setting, asked: str | None, deployed: str | None, environment: Mapping[str, str]
) -> str | None:
    """What a tag may choose: the deployer's value, or one its allow-list variable names."""
    if asked is None:
        return deployed
    variable = ALLOWED_LISTS[setting]
    listed = re.split(r"[\s,]+", environment.get(variable, ""))
    allowed = {entry for entry in (*listed, deployed) if entry}
    if asked not in allowed:
        raise _outside_ceiling(
            setting,
            f"names {asked}",
            f"the allowed values ({', '.join(sorted(allowed)) or 'none'}; environment "
            f"variable {variable!r})",
        )
    return asked


def _audience(asked: str | None, environment: Mapping[str, str]) -> str:
    """The deployer's pool provider; a tag may only repeat it (it decides who may mint)."""
    raw = environment.get(WORKLOAD_IDENTITY_AUDIENCE.variable, "").strip()
    if not raw:
        raise _missing(WORKLOAD_IDENTITY_AUDIENCE)
    audience = _parse(WORKLOAD_IDENTITY_AUDIENCE, raw, _provider)
    if asked is not None and asked != audience:
        raise _outside_ceiling(WORKLOAD_IDENTITY_AUDIENCE, f"names {asked}", audience)
    return audience


def _provider(raw: str) -> str | None:
    pattern = (
        r"//iam\.googleapis\.com/projects/\d+/locations/global/workloadIdentityPools/"
        r"[a-z0-9-]+/providers/[a-z0-9-]+"
    )
    return raw if re.fullmatch(pattern, raw) else None


def _impersonated(asked: str | None, environment: Mapping[str, str]) -> str:
    """The account to impersonate: the deployer's, or one the deployer also allows."""
    raw = environment.get(IMPERSONATED_SERVICE_ACCOUNT.variable, "").strip()
    if not raw:
        raise _missing(IMPERSONATED_SERVICE_ACCOUNT)
    deployed = _parse(IMPERSONATED_SERVICE_ACCOUNT, raw, _email)
    return (
        _deployed_or_allowed(IMPERSONATED_SERVICE_ACCOUNT, asked, deployed, environment) or deployed
    )


def allowed_key_secret_ids(environment: Mapping[str, str]) -> frozenset[str]:
    """The key secrets a tag may choose from: the deployer's default and any listed besides."""
    listed = re.split(r"[\s,]+", environment.get(ALLOWED_KEY_SECRET_IDS_VARIABLE, ""))
    default = environment.get(KEY_SECRET_ID.variable, "").strip()
    return frozenset(entry for entry in (*listed, default) if entry)


def key_rotation_days(environment: Mapping[str, str]) -> int:
    """Days between rotations of the stack's own key secret; 0 when the key does not rotate."""
    raw = environment.get(KEY_ROTATION_DAYS_VARIABLE, "").strip() or "0"
    days = int(raw) if raw.isdigit() else -1
    if not 0 <= days <= MAX_KEY_ROTATION_DAYS:
        raise ConfigurationError(
            f"environment variable {KEY_ROTATION_DAYS_VARIABLE!r} must be a whole number of days "
            f"from 0 (the key does not rotate) to {MAX_KEY_ROTATION_DAYS}, got {raw!r}: set the "
            "stack's KeyRotationDays parameter"
        )
    return days


def is_rotating_key_secret(arn: str, name: str, environment: Mapping[str, str]) -> bool:
    """The stack's own key secret renews itself when KEY_ROTATION_DAYS is above 0; the other
    allowed key secrets never rotate here (other stacks may own them)."""
    own = environment.get(KEY_SECRET_ID.variable, "").strip()
    return bool(own) and _same_secret(own, arn, name) and key_rotation_days(environment) > 0


def managed_by(environment: Mapping[str, str]) -> str:
    """The value of the tag that marks the token secrets this stack rotates (its name)."""
    owner = environment.get(MANAGED_BY_VARIABLE, "").strip()
    if not owner:
        raise ConfigurationError(
            f"environment variable {MANAGED_BY_VARIABLE!r} is not set: it must hold the value "
            f"of the {MANAGED_BY_TAG!r} tag that marks the token secrets this stack rotates"
        )
    return owner


def managed_secret_check(
    arn: str, name: str, tags: Mapping[str, str], environment: Mapping[str, str]
) -> None:
    """Steps act only on token secrets this stack manages, and never on a key secret."""
    owner = managed_by(environment)
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
    iam_credentials_url: str = GOOGLE_IAM_CREDENTIALS_URL
    """generateAccessToken, with {} where the target account's e-mail goes."""
    sts_url: str = GOOGLE_STS_URL
    certs_url: str = GOOGLE_CERTS_URL
    """Where Google publishes the keys that sign its ID tokens; testSecret fetches them."""
    iam_url: str = GOOGLE_IAM_URL
    """IAM's keys collection for an account ({} for its e-mail): the key's own rotation."""

    @property
    def id_token_url(self) -> str:
        """generateIdToken beside the configured generateAccessToken, {} for the account."""
        if not self.iam_credentials_url.endswith(GENERATE_ACCESS_TOKEN):
            raise ConfigurationError(
                "environment variable 'GOOGLE_IAM_CREDENTIALS_URL' must end with "
                f"{GENERATE_ACCESS_TOKEN!r} (ID tokens are minted at {GENERATE_ID_TOKEN!r} "
                "beside it)"
            )
        return self.iam_credentials_url.removesuffix(GENERATE_ACCESS_TOKEN) + GENERATE_ID_TOKEN

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
            iam_credentials_url=_url(
                environment, "GOOGLE_IAM_CREDENTIALS_URL", GOOGLE_IAM_CREDENTIALS_URL
            ),
            sts_url=_url(environment, "GOOGLE_STS_URL", GOOGLE_STS_URL),
            certs_url=_url(environment, "GOOGLE_CERTS_URL", GOOGLE_CERTS_URL),
            iam_url=_url(environment, "GOOGLE_IAM_URL", GOOGLE_IAM_URL),
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


def _lifetime(raw: str) -> int | None:
    seconds = _seconds(raw)
    return seconds if seconds else None


def _seconds(raw: str) -> int | None:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        return None
    seconds = int(raw)
    return seconds if seconds <= MAX_TOKEN_LIFETIME_SECONDS else None
