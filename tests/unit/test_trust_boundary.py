"""What whoever may tag a secret can NOT do: widen the deployer's settings (the function
environment is a ceiling that tags may only narrow), or aim the rotation at a secret this stack
does not manage, such as a service-account key secret."""

import pytest

from rotation_core.config import (
    CREDENTIAL_SOURCE,
    EXPECTED_SERVICE_ACCOUNT,
    KEY_SECRET_ID,
    MANAGED_BY_TAG,
    MIN_REMAINING_SECONDS,
    REFRESH_LEAD_SECONDS,
    SCOPES,
    RotationSettings,
    Setting,
    allowed_key_secret_ids,
    managed_secret_check,
)
from rotation_core.errors import ConfigurationError, UnmanagedSecretError

CALENDAR = "https://www.googleapis.com/auth/calendar.readonly"
DRIVE = "https://www.googleapis.com/auth/drive.readonly"
GMAIL = "https://mail.google.com/"
ACCOUNT = "rotator@demo-project.iam.gserviceaccount.com"
INTRUDER = "owner@demo-project.iam.gserviceaccount.com"
PREFIX = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
ENVIRONMENT = {
    "GOOGLE_SCOPES": f"{CALENDAR} {DRIVE}",
    "SERVICE_ACCOUNT_KEY_SECRET_ID": "google/key",
}


def resolve(tags: dict[str, str], **variables: str) -> RotationSettings:
    return RotationSettings.resolve(tags, {**ENVIRONMENT, **variables})


def assert_outside_ceiling(
    error: ConfigurationError, setting: Setting, *mentions: str, variable: str | None = None
) -> None:
    """A widening tag is refused naming the tag, the ceiling it broke and where that is set."""
    message = str(error)
    assert repr(setting.tag) in message
    assert "outside the deployer's ceiling" in message
    assert repr(variable or setting.variable) in message
    for mention in mentions:
        assert mention in message


# --- scopes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "asked",
    [GMAIL, f"{CALENDAR} {GMAIL}", f"{CALENDAR},{DRIVE},{GMAIL}", f"{CALENDAR}x"],
    ids=["other-scope", "one-more", "superset", "look-alike"],
)
def test_scopes_tag_wider_than_the_deployers_is_refused(asked: str) -> None:
    extra = GMAIL if GMAIL in asked else f"{CALENDAR}x"
    with pytest.raises(ConfigurationError) as raised:
        resolve({SCOPES.tag: asked})
    assert_outside_ceiling(raised.value, SCOPES, f"asks for {extra}", f"{CALENDAR}, {DRIVE}")


def test_a_read_write_scope_is_refused_under_a_read_only_ceiling() -> None:
    """The read-write scope is a prefix, and a substring, of the read-only one the deployer
    allows: only an exact match of a whole scope may pass."""
    read_write = "https://www.googleapis.com/auth/calendar"
    with pytest.raises(ConfigurationError) as raised:
        resolve({SCOPES.tag: read_write}, GOOGLE_SCOPES=CALENDAR)
    assert_outside_ceiling(raised.value, SCOPES, f"asks for {read_write}", f"the scopes {CALENDAR}")


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        (DRIVE, (DRIVE,)),
        (CALENDAR, (CALENDAR,)),
        (f"{DRIVE},{CALENDAR}", (DRIVE, CALENDAR)),
        (f"{CALENDAR} {CALENDAR}", (CALENDAR,)),
    ],
    ids=["one", "the-other", "all-reordered", "duplicate"],
)
def test_scopes_tag_within_the_deployers_is_accepted(asked: str, expected: tuple[str, ...]) -> None:
    assert resolve({SCOPES.tag: asked}).scopes == expected


def test_scopes_tag_cannot_stand_in_for_missing_deployer_scopes() -> None:
    environment = {"SERVICE_ACCOUNT_KEY_SECRET_ID": "google/key"}
    with pytest.raises(ConfigurationError, match="missing setting") as raised:
        RotationSettings.resolve({SCOPES.tag: CALENDAR}, environment)
    assert repr("GOOGLE_SCOPES") in str(raised.value)


# --- key secret ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "asked",
    ["google/other-key", "google/key-2-x", "google/key-", "google/k", "GOOGLE/KEY"],
    ids=["other", "allowed-plus-suffix", "default-plus-dash", "prefix-of-default", "other-case"],
)
def test_key_secret_tag_outside_the_allowed_set_is_refused(asked: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        resolve({KEY_SECRET_ID.tag: asked}, ALLOWED_KEY_SECRET_IDS="google/key-2")
    assert_outside_ceiling(
        raised.value,
        KEY_SECRET_ID,
        f"names key secret {asked!r}",
        "google/key, google/key-2",
        "'ALLOWED_KEY_SECRET_IDS'",
    )


def test_key_secret_tag_is_refused_when_the_deployer_allows_only_the_default() -> None:
    with pytest.raises(ConfigurationError) as raised:
        resolve({KEY_SECRET_ID.tag: "google/other-key"})
    assert_outside_ceiling(raised.value, KEY_SECRET_ID, "(google/key;")


@pytest.mark.parametrize(
    ("allowed", "asked"),
    [
        ("", "google/key"),
        ("google/key-2", "google/key-2"),
        (f"google/key-2 {PREFIX}key-3-AbCdEf", f"{PREFIX}key-3-AbCdEf"),
        ("google/key-2,google/key-3", "google/key-3"),
        (" google/key-2 ,\n google/key-3 ", "google/key-3"),
    ],
    ids=["the-default", "listed", "listed-arn", "comma-list", "padded-list"],
)
def test_key_secret_tag_inside_the_allowed_set_is_accepted(allowed: str, asked: str) -> None:
    settings = resolve({KEY_SECRET_ID.tag: asked}, ALLOWED_KEY_SECRET_IDS=allowed)
    assert settings.key_secret_id == asked


def test_allowed_key_secrets_cannot_stand_in_for_a_missing_default() -> None:
    environment = {"GOOGLE_SCOPES": CALENDAR, "ALLOWED_KEY_SECRET_IDS": "google/key-2"}
    with pytest.raises(ConfigurationError, match="missing setting") as raised:
        RotationSettings.resolve({KEY_SECRET_ID.tag: "google/key-2"}, environment)
    assert repr("SERVICE_ACCOUNT_KEY_SECRET_ID") in str(raised.value)


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, set()),
        ({"SERVICE_ACCOUNT_KEY_SECRET_ID": " google/key "}, {"google/key"}),
        ({"ALLOWED_KEY_SECRET_IDS": "a b,c\nd\t, ,"}, {"a", "b", "c", "d"}),
        (
            {
                "SERVICE_ACCOUNT_KEY_SECRET_ID": "google/key",
                "ALLOWED_KEY_SECRET_IDS": "a,google/key",
            },
            {"google/key", "a"},
        ),
    ],
    ids=["none", "default-only", "separators", "default-and-listed"],
)
def test_allowed_key_secret_ids_are_the_default_and_the_listed_ones(
    environment: dict[str, str], expected: set[str]
) -> None:
    assert allowed_key_secret_ids(environment) == expected


# --- service account -----------------------------------------------------------------------------


def test_pinned_service_account_cannot_be_changed_by_a_tag() -> None:
    with pytest.raises(ConfigurationError) as raised:
        resolve({EXPECTED_SERVICE_ACCOUNT.tag: INTRUDER}, EXPECTED_SERVICE_ACCOUNT=ACCOUNT)
    assert_outside_ceiling(
        raised.value, EXPECTED_SERVICE_ACCOUNT, INTRUDER, f"the pinned service account {ACCOUNT}"
    )


def test_pinned_service_account_may_be_repeated_by_a_tag() -> None:
    settings = resolve(
        {EXPECTED_SERVICE_ACCOUNT.tag: f" {ACCOUNT}"}, EXPECTED_SERVICE_ACCOUNT=ACCOUNT
    )
    assert settings.expected_service_account == ACCOUNT


def test_unpinned_service_account_may_be_set_by_a_tag() -> None:
    settings = resolve({EXPECTED_SERVICE_ACCOUNT.tag: INTRUDER})
    assert settings.expected_service_account == INTRUDER


# --- margins of time: minimum remaining life, refresh lead ---------------------------------------

MARGINS = [MIN_REMAINING_SECONDS, REFRESH_LEAD_SECONDS]


def margin(settings: RotationSettings, setting: Setting) -> int:
    if setting is MIN_REMAINING_SECONDS:
        return settings.min_remaining_seconds
    return settings.refresh_lead_seconds


@pytest.mark.parametrize(
    ("deployed", "asked", "ceiling"),
    [(None, "899", 900), (None, "0", 900), ("1800", "1799", 1800), ("60", "59", 60)],
    ids=["below-default", "zero-below-default", "below-deployed", "below-small-deployed"],
)
@pytest.mark.parametrize("setting", MARGINS, ids=lambda setting: setting.variable)
def test_margin_tag_may_not_lower_the_deployers(
    deployed: str | None, asked: str, ceiling: int, setting: Setting
) -> None:
    variables = {} if deployed is None else {setting.variable: deployed}
    with pytest.raises(ConfigurationError) as raised:
        resolve({setting.tag: asked}, **variables)
    assert_outside_ceiling(
        raised.value, setting, f"asks for {int(asked)} s", f"at least {ceiling} s"
    )


@pytest.mark.parametrize(
    ("deployed", "asked", "expected"),
    [(None, "900", 900), (None, "901", 901), ("60", "60", 60), ("60", "3600", 3600)],
    ids=["default-repeated", "above-default", "deployed-repeated", "above-deployed"],
)
@pytest.mark.parametrize("setting", MARGINS, ids=lambda setting: setting.variable)
def test_margin_tag_may_raise_the_deployers(
    deployed: str | None, asked: str, expected: int, setting: Setting
) -> None:
    variables = {} if deployed is None else {setting.variable: deployed}
    settings = resolve({setting.tag: asked}, **variables)
    assert margin(settings, setting) == expected


# --- credential source ---------------------------------------------------------------------------


@pytest.mark.parametrize("asked", ["workload-identity", "SERVICE-ACCOUNT-KEY", "impersonation"])
@pytest.mark.parametrize("deployed", [None, "service-account-key"], ids=["default", "deployed"])
def test_credential_source_tag_other_than_the_deployers_is_refused(
    asked: str, deployed: str | None
) -> None:
    variables = {} if deployed is None else {"CREDENTIAL_SOURCE": deployed}
    with pytest.raises(ConfigurationError) as raised:
        resolve({CREDENTIAL_SOURCE.tag: asked}, **variables)
    assert_outside_ceiling(
        raised.value, CREDENTIAL_SOURCE, f"asks for {asked!r}", "'service-account-key'"
    )


@pytest.mark.parametrize("deployed", [None, "service-account-key"], ids=["default", "deployed"])
def test_credential_source_tag_repeating_the_deployers_is_accepted(deployed: str | None) -> None:
    variables = {} if deployed is None else {"CREDENTIAL_SOURCE": deployed}
    settings = resolve({CREDENTIAL_SOURCE.tag: " service-account-key "}, **variables)
    assert settings.credential_source == "service-account-key"


# --- managed_secret_check ------------------------------------------------------------------------

STACK = "token-rotation-prod"
MANAGED = {MANAGED_BY_TAG: STACK}
TOKEN_NAME = "google/access-token"
TOKEN_ARN = f"{PREFIX}{TOKEN_NAME}-XyZ123"
KEY_NAME = "google/service-account-key"
KEY_ARN = f"{PREFIX}{KEY_NAME}-AbCdEf"
OWNED = {"MANAGED_BY": STACK, "SERVICE_ACCOUNT_KEY_SECRET_ID": KEY_NAME}


def test_a_managed_token_secret_passes() -> None:
    managed_secret_check(TOKEN_ARN, TOKEN_NAME, MANAGED, OWNED)


@pytest.mark.parametrize(
    "written_as", [KEY_ARN, f"{PREFIX}{KEY_NAME}", KEY_NAME], ids=["arn", "arn-no-suffix", "name"]
)
@pytest.mark.parametrize("variable", ["SERVICE_ACCOUNT_KEY_SECRET_ID", "ALLOWED_KEY_SECRET_IDS"])
def test_a_key_secret_is_refused_however_the_deployer_wrote_its_id(
    written_as: str, variable: str
) -> None:
    environment = {
        **OWNED,
        "SERVICE_ACCOUNT_KEY_SECRET_ID": "google/primary-key",
        variable: written_as,
    }
    # Even tagged as managed: a key secret must never be rotated (overwritten with a token).
    with pytest.raises(UnmanagedSecretError, match="is a service-account key secret") as raised:
        managed_secret_check(KEY_ARN, KEY_NAME, MANAGED, environment)
    assert "nothing was read or written" in str(raised.value)


@pytest.mark.parametrize(
    "key_id",
    [
        f"{PREFIX}google/access",  # the token's ARN minus 13 characters, not minus "-xxxxxx"
        f"{PREFIX}google/access-token-XyZ12",  # one character short of the full ARN
        "google/access",
        TOKEN_ARN.removesuffix("-XyZ123") + "-XyZ1234",
    ],
    ids=["shorter-arn-prefix", "arn-one-short", "name-prefix", "arn-other-suffix"],
)
def test_a_token_secret_whose_ids_merely_resemble_a_key_secret_passes(key_id: str) -> None:
    environment = {**OWNED, "SERVICE_ACCOUNT_KEY_SECRET_ID": key_id}
    managed_secret_check(TOKEN_ARN, TOKEN_NAME, MANAGED, environment)


@pytest.mark.parametrize(
    "tags",
    [
        {},
        {MANAGED_BY_TAG: "token-rotation-dev"},
        {MANAGED_BY_TAG: ""},
        {MANAGED_BY_TAG: f" {STACK}"},
        {MANAGED_BY_TAG.upper(): STACK},
        {"managed-by": STACK},
    ],
    ids=["untagged", "other-stack", "empty", "padded", "key-case", "unprefixed-key"],
)
def test_a_secret_not_tagged_as_managed_by_this_stack_is_refused(tags: dict[str, str]) -> None:
    with pytest.raises(UnmanagedSecretError) as raised:
        managed_secret_check(TOKEN_ARN, TOKEN_NAME, tags, OWNED)
    message = str(raised.value)
    assert f"{MANAGED_BY_TAG}={STACK}" in message
    assert repr(TOKEN_NAME) in message
    assert "nothing was read or written" in message


@pytest.mark.parametrize("owner", [None, "", "  "], ids=["unset", "empty", "blank"])
@pytest.mark.parametrize("tags", [MANAGED, {MANAGED_BY_TAG: ""}, {}], ids=["tagged", "empty", "no"])
def test_missing_managed_by_is_a_configuration_error(
    owner: str | None, tags: dict[str, str]
) -> None:
    environment = {"SERVICE_ACCOUNT_KEY_SECRET_ID": KEY_NAME}
    if owner is not None:
        environment["MANAGED_BY"] = owner
    with pytest.raises(ConfigurationError) as raised:
        managed_secret_check(TOKEN_ARN, TOKEN_NAME, tags, environment)
    assert type(raised.value) is ConfigurationError
    assert "'MANAGED_BY'" in str(raised.value)
    assert repr(MANAGED_BY_TAG) in str(raised.value)
