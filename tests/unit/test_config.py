"""Per-secret settings (the deployer's environment, narrowed by tags) and the Google endpoints
(environment only). What tags may NOT do (widen a ceiling) is in test_trust_boundary.py."""

import pytest

from rotation_core.config import (
    CREDENTIAL_SOURCE,
    EXPECTED_SERVICE_ACCOUNT,
    IMPERSONATED_SERVICE_ACCOUNT,
    KEY_SECRET_ID,
    MAX_TOKEN_LIFETIME_SECONDS,
    MIN_REMAINING_SECONDS,
    REFRESH_LEAD_SECONDS,
    SCOPES,
    TOKEN_LIFETIME_SECONDS,
    GoogleEndpoints,
    RotationSettings,
    Setting,
)
from rotation_core.errors import ConfigurationError

CALENDAR = "https://www.googleapis.com/auth/calendar.readonly"
DRIVE = "https://www.googleapis.com/auth/drive.readonly"
ACCOUNT = "rotator@demo-project.iam.gserviceaccount.com"
OTHER_KEY = "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-key"
ENVIRONMENT = {"GOOGLE_SCOPES": CALENDAR, "SERVICE_ACCOUNT_KEY_SECRET_ID": "google/key"}
# A deployer who allows every scope and key secret the tests below narrow to.
WIDE = {
    **ENVIRONMENT,
    "GOOGLE_SCOPES": f"{CALENDAR} {DRIVE} openid email",
    "ALLOWED_KEY_SECRET_IDS": f"google/key-2 {OTHER_KEY}",
    "MIN_REMAINING_SECONDS": "0",
    "REFRESH_LEAD_SECONDS": "0",
}
MARGINS = [MIN_REMAINING_SECONDS, REFRESH_LEAD_SECONDS]
"""Settings of seconds a tag may raise above the deployer's, never lower."""


def resolve(tags: dict[str, str], environment: dict[str, str] | None = None) -> RotationSettings:
    return RotationSettings.resolve(tags, ENVIRONMENT if environment is None else environment)


def resolve_from(where: str, setting: Setting, raw: str) -> RotationSettings:
    """`raw` as the deployer's environment variable, or as a tag under the WIDE ceiling."""
    if where == "environment":
        return resolve({}, {**ENVIRONMENT, setting.variable: raw})
    return resolve({setting.tag: raw}, WIDE)


def assert_names_setting(error: ConfigurationError, setting: Setting) -> None:
    """Every configuration error says where the value comes from and what is expected."""
    message = str(error)
    assert repr(setting.tag) in message
    assert repr(setting.variable) in message
    assert setting.expected in message


# --- RotationSettings.resolve -------------------------------------------------------------------


def test_environment_alone_gives_the_defaults() -> None:
    settings = resolve({})

    assert settings == RotationSettings(
        scopes=(CALENDAR,),
        credential_source="service-account-key",
        key_secret_id="google/key",
        expected_service_account=None,
        min_remaining_seconds=900,
        refresh_lead_seconds=900,
    )


def test_tags_narrow_the_environment_within_its_ceiling() -> None:
    environment = {
        **ENVIRONMENT,
        "GOOGLE_SCOPES": f"{CALENDAR} {DRIVE}",
        "ALLOWED_KEY_SECRET_IDS": OTHER_KEY,
        "MIN_REMAINING_SECONDS": "600",
        "REFRESH_LEAD_SECONDS": "600",
        "CREDENTIAL_SOURCE": "service-account-key",
    }
    tags = {
        SCOPES.tag: DRIVE,
        KEY_SECRET_ID.tag: OTHER_KEY,
        EXPECTED_SERVICE_ACCOUNT.tag: ACCOUNT,
        MIN_REMAINING_SECONDS.tag: "1800",
        REFRESH_LEAD_SECONDS.tag: "1200",
        CREDENTIAL_SOURCE.tag: "service-account-key",
    }

    settings = resolve(tags, environment)

    assert settings == RotationSettings(
        scopes=(DRIVE,),
        credential_source="service-account-key",
        key_secret_id=OTHER_KEY,
        expected_service_account=ACCOUNT,
        min_remaining_seconds=1800,
        refresh_lead_seconds=1200,
    )


def test_tags_of_other_tools_are_ignored() -> None:
    tags = {"scopes": DRIVE, "Name": "token", "token-rotation:unknown": "x"}
    assert resolve(tags) == resolve({})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"{CALENDAR} {DRIVE}", (CALENDAR, DRIVE)),
        (f"{CALENDAR},{DRIVE}", (CALENDAR, DRIVE)),
        (f" {CALENDAR} ,\t{DRIVE},\n", (CALENDAR, DRIVE)),
        (f"{DRIVE} {CALENDAR} {DRIVE},{CALENDAR}", (DRIVE, CALENDAR)),
        ("openid email", ("openid", "email")),
    ],
    ids=["spaces", "commas", "mixed-separators", "duplicates-keep-first-order", "short-scopes"],
)
@pytest.mark.parametrize("where", ["environment", "tag"])
def test_scopes_split_on_spaces_and_commas_and_are_deduplicated(
    raw: str, expected: tuple[str, ...], where: str
) -> None:
    assert resolve_from(where, SCOPES, raw).scopes == expected


@pytest.mark.parametrize(
    "raw",
    [",", " , ,", "https://www.googleapis.com/auth/caf\u00e9", "scope\x00nul"],
    ids=["only-comma", "only-separators", "non-ascii", "control-character"],
)
@pytest.mark.parametrize("where", ["environment", "tag"])
def test_garbage_scopes_are_a_configuration_error(raw: str, where: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid setting") as raised:
        resolve_from(where, SCOPES, raw)
    assert_names_setting(raised.value, SCOPES)


@pytest.mark.parametrize("raw", ["", "   ", "\u2003"], ids=["empty", "blank", "em-space"])
def test_missing_scopes_are_a_configuration_error(raw: str) -> None:
    environment = {**ENVIRONMENT, "GOOGLE_SCOPES": raw}
    with pytest.raises(ConfigurationError, match="missing setting") as raised:
        resolve({}, environment)
    assert_names_setting(raised.value, SCOPES)


def test_missing_key_secret_id_is_a_configuration_error() -> None:
    environment = {"GOOGLE_SCOPES": CALENDAR}
    with pytest.raises(ConfigurationError, match="missing setting") as raised:
        resolve({}, environment)
    assert_names_setting(raised.value, KEY_SECRET_ID)


def test_key_secret_id_is_trimmed() -> None:
    assert resolve({KEY_SECRET_ID.tag: "  google/key-2 \n"}, WIDE).key_secret_id == "google/key-2"
    environment = {**ENVIRONMENT, "SERVICE_ACCOUNT_KEY_SECRET_ID": " google/key\t"}
    assert resolve({}, environment).key_secret_id == "google/key"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", 0),
        ("60", 60),
        (" 1800 ", 1800),
        ("00900", 900),
        (str(MAX_TOKEN_LIFETIME_SECONDS), MAX_TOKEN_LIFETIME_SECONDS),
    ],
)
@pytest.mark.parametrize("where", ["environment", "tag"])
@pytest.mark.parametrize("setting", MARGINS, ids=lambda setting: setting.variable)
def test_margins_accept_whole_seconds_in_range(
    raw: str, expected: int, where: str, setting: Setting
) -> None:
    # Under the WIDE ceiling (at least 0 s) a tag may ask for any valid margin.
    settings = resolve_from(where, setting, raw)
    chosen = (
        settings.min_remaining_seconds
        if setting is MIN_REMAINING_SECONDS
        else settings.refresh_lead_seconds
    )
    assert chosen == expected


@pytest.mark.parametrize("setting", MARGINS, ids=lambda setting: setting.variable)
def test_margins_come_from_the_environment_without_a_tag(setting: Setting) -> None:
    settings = resolve({}, {**ENVIRONMENT, setting.variable: "1200"})
    assert (settings.min_remaining_seconds, settings.refresh_lead_seconds) == (
        (1200, 900) if setting is MIN_REMAINING_SECONDS else (900, 1200)
    )


INVALID_SECONDS = [
    "ten",
    "15m",
    "1.5",
    "1e3",
    "-1",
    "+5",
    "0x10",
    str(MAX_TOKEN_LIFETIME_SECONDS + 1),
    "99999999999999999999",
]
INVALID_SECONDS_IDS = [
    "word",
    "unit-suffix",
    "fraction",
    "exponent",
    "negative",
    "plus-sign",
    "hex",
    "above-max-lifetime",
    "huge",
]


@pytest.mark.parametrize("raw", INVALID_SECONDS, ids=INVALID_SECONDS_IDS)
@pytest.mark.parametrize("where", ["environment", "tag"])
@pytest.mark.parametrize("setting", MARGINS, ids=lambda setting: setting.variable)
def test_invalid_margins_are_a_configuration_error(raw: str, where: str, setting: Setting) -> None:
    with pytest.raises(ConfigurationError, match="invalid setting") as raised:
        resolve_from(where, setting, raw)
    assert_names_setting(raised.value, setting)
    assert repr(raw) in str(raised.value)


@pytest.mark.parametrize(
    "raw", ["\u00b2", "1\u00b2"], ids=["superscript-two", "trailing-superscript"]
)
def test_non_ascii_digits_in_min_remaining_seconds_are_a_configuration_error(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid setting") as raised:
        resolve({MIN_REMAINING_SECONDS.tag: raw}, WIDE)
    assert_names_setting(raised.value, MIN_REMAINING_SECONDS)


def test_empty_tag_does_not_silently_replace_the_environment_default() -> None:
    environment = {**ENVIRONMENT, "MIN_REMAINING_SECONDS": "1800"}
    minimum = resolve({MIN_REMAINING_SECONDS.tag: ""}, environment).min_remaining_seconds
    assert minimum == 1800


@pytest.mark.parametrize("raw", ["workload-identity", "SERVICE-ACCOUNT-KEY", "impersonate"])
def test_unknown_credential_source_in_the_environment_is_a_configuration_error(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid setting") as raised:
        resolve({}, {**ENVIRONMENT, "CREDENTIAL_SOURCE": raw})
    assert_names_setting(raised.value, CREDENTIAL_SOURCE)
    assert repr(raw) in str(raised.value)
    assert "service-account-key" in str(raised.value)


def test_credential_source_from_the_environment_is_checked_even_when_a_tag_repeats_it() -> None:
    environment = {**ENVIRONMENT, "CREDENTIAL_SOURCE": "nope"}
    with pytest.raises(ConfigurationError, match="'nope'") as raised:
        resolve({CREDENTIAL_SOURCE.tag: "service-account-key"}, environment)
    assert_names_setting(raised.value, CREDENTIAL_SOURCE)


@pytest.mark.parametrize(
    "raw",
    [
        "rotator",
        "rotator@",
        "@demo-project.iam.gserviceaccount.com",
        "rotator@localhost",
        "a@b@c.com",
        "rotator @demo.com",
    ],
)
@pytest.mark.parametrize("where", ["environment", "tag"])
def test_bad_service_account_email_is_a_configuration_error(raw: str, where: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid setting") as raised:
        resolve_from(where, EXPECTED_SERVICE_ACCOUNT, raw)
    assert_names_setting(raised.value, EXPECTED_SERVICE_ACCOUNT)


def test_service_account_email_from_the_environment() -> None:
    environment = {**ENVIRONMENT, "EXPECTED_SERVICE_ACCOUNT": f" {ACCOUNT} "}
    assert resolve({}, environment).expected_service_account == ACCOUNT


# --- GoogleEndpoints.from_environment -----------------------------------------------------------


def test_endpoint_defaults_are_googles_real_urls() -> None:
    endpoints = GoogleEndpoints.from_environment({})

    assert endpoints == GoogleEndpoints(
        token_url="https://oauth2.googleapis.com/token",
        tokeninfo_url="https://oauth2.googleapis.com/tokeninfo",
        timeout_seconds=10.0,
    )


def test_blank_endpoint_variables_fall_back_to_the_defaults() -> None:
    endpoints = GoogleEndpoints.from_environment(
        {"GOOGLE_TOKEN_URL": " ", "GOOGLE_TOKENINFO_URL": ""}
    )
    assert endpoints.token_url == "https://oauth2.googleapis.com/token"
    assert endpoints.tokeninfo_url == "https://oauth2.googleapis.com/tokeninfo"


@pytest.mark.parametrize(
    "url",
    [
        "https://oauth2.example.test/token",
        "http://127.0.0.1:8080/token",
        "http://localhost:9000/token",
        "http://LOCALHOST/token",
    ],
)
def test_https_anywhere_and_http_only_on_the_local_host_are_accepted(url: str) -> None:
    endpoints = GoogleEndpoints.from_environment(
        {"GOOGLE_TOKEN_URL": url, "GOOGLE_TOKENINFO_URL": url}
    )
    assert endpoints.token_url == url
    assert endpoints.tokeninfo_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://oauth2.googleapis.com/token",
        "http://127.0.0.1.evil.example/token",
        "http://localhost.evil.example/token",
        "http://localhost@evil.example/token",
        "http://10.0.0.5/token",
        "http://[::1]/token",
        "ftp://127.0.0.1/token",
        "https://",
        "oauth2.googleapis.com/token",
        "file:///etc/passwd",
    ],
)
@pytest.mark.parametrize("variable", ["GOOGLE_TOKEN_URL", "GOOGLE_TOKENINFO_URL"])
def test_plain_http_elsewhere_and_other_schemes_are_refused(url: str, variable: str) -> None:
    with pytest.raises(ConfigurationError, match="must be an https:// URL") as raised:
        GoogleEndpoints.from_environment({variable: url})
    assert repr(variable) in str(raised.value)
    assert "127.0.0.1 or localhost" in str(raised.value)


def test_unparseable_endpoint_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="GOOGLE_TOKEN_URL"):
        GoogleEndpoints.from_environment(
            {"GOOGLE_TOKEN_URL": "https://[oauth2.googleapis.com/token"}
        )


@pytest.mark.parametrize(
    ("raw", "expected"), [("0.5", 0.5), ("60", 60.0), (" 5 ", 5.0), ("0.001", 0.001)]
)
def test_timeout_within_bounds_is_accepted(raw: str, expected: float) -> None:
    endpoints = GoogleEndpoints.from_environment({"GOOGLE_HTTP_TIMEOUT_SECONDS": raw})
    assert endpoints.timeout_seconds == expected


@pytest.mark.parametrize("raw", ["0", "-1", "60.5", "3600", "nan", "inf", "ten", "", "10s"])
def test_timeout_out_of_bounds_or_not_a_number_is_refused(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="'GOOGLE_HTTP_TIMEOUT_SECONDS'") as raised:
        GoogleEndpoints.from_environment({"GOOGLE_HTTP_TIMEOUT_SECONDS": raw})
    assert "above 0 and at most 60" in str(raised.value)
    assert repr(raw) in str(raised.value)


# --- impersonation -------------------------------------------------------------------------------

TARGET = "calendar-reader@demo-project.iam.gserviceaccount.com"
OTHER_TARGET = "drive-reader@demo-project.iam.gserviceaccount.com"
IMPERSONATING = {
    **ENVIRONMENT,
    "CREDENTIAL_SOURCE": "impersonation",
    "IMPERSONATED_SERVICE_ACCOUNT": TARGET,
    "TOKEN_LIFETIME_SECONDS": "43200",
}


def test_impersonation_takes_the_deployers_target_lifetime_and_delegates() -> None:
    environment = {**IMPERSONATING, "IMPERSONATION_DELEGATES": f"{ACCOUNT}, {OTHER_TARGET}"}
    settings = resolve({}, environment)

    assert settings.credential_source == "impersonation"
    assert settings.impersonated_service_account == TARGET
    assert settings.token_lifetime_seconds == 43200
    assert settings.delegates == (ACCOUNT, OTHER_TARGET)


def test_impersonation_without_a_target_is_a_configuration_error() -> None:
    environment = {k: v for k, v in IMPERSONATING.items() if k != "IMPERSONATED_SERVICE_ACCOUNT"}
    with pytest.raises(ConfigurationError, match="missing setting") as raised:
        resolve({}, environment)
    assert_names_setting(raised.value, IMPERSONATED_SERVICE_ACCOUNT)


def test_a_tag_may_choose_only_an_allowed_target() -> None:
    allowing = {**IMPERSONATING, "ALLOWED_IMPERSONATED_SERVICE_ACCOUNTS": OTHER_TARGET}
    tag = {IMPERSONATED_SERVICE_ACCOUNT.tag: OTHER_TARGET}

    assert resolve(tag, allowing).impersonated_service_account == OTHER_TARGET
    with pytest.raises(ConfigurationError, match="outside the deployer's ceiling"):
        resolve(tag, IMPERSONATING)


@pytest.mark.parametrize("asked", ["600", "3600", "43200"])
def test_a_tag_may_shorten_the_token_lifetime(asked: str) -> None:
    assert resolve({TOKEN_LIFETIME_SECONDS.tag: asked}, IMPERSONATING).token_lifetime_seconds == (
        int(asked)
    )


def test_a_tag_may_not_lengthen_the_token_lifetime() -> None:
    environment = {**IMPERSONATING, "TOKEN_LIFETIME_SECONDS": "3600"}
    with pytest.raises(ConfigurationError, match="at most 3600 s"):
        resolve({TOKEN_LIFETIME_SECONDS.tag: "3601"}, environment)


@pytest.mark.parametrize("raw", ["0", "43201", "12h"])
def test_a_lifetime_outside_googles_range_is_invalid(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid setting"):
        resolve({}, {**IMPERSONATING, "TOKEN_LIFETIME_SECONDS": raw})


def test_the_default_lifetime_is_googles_one_hour() -> None:
    environment = {k: v for k, v in IMPERSONATING.items() if k != "TOKEN_LIFETIME_SECONDS"}
    assert resolve({}, environment).token_lifetime_seconds == 3600
