"""ID-token secrets under the deployer's ceiling: a secret's tags pick the kind and one audience
among the stack's IdTokenAudiences, never another; the stack's own secret stays an access-token
secret."""

import pytest

from rotation_core.config import (
    ID_TOKEN_AUDIENCE,
    TOKEN_KIND,
    GoogleEndpoints,
    RotationSettings,
    id_token_audiences,
)
from rotation_core.errors import ConfigurationError
from tests.unit.test_trust_boundary import assert_outside_ceiling

RUN = "https://reports-abc123-ew.a.run.app"
IAP = "123456789-abcdef.apps.googleusercontent.com"
OTHER = "https://payments-zz9-ew.a.run.app"
ENVIRONMENT = {
    "GOOGLE_SCOPES": "https://www.googleapis.com/auth/calendar.readonly",
    "SERVICE_ACCOUNT_KEY_SECRET_ID": "google/key",
    "DELEGATED_SUBJECT": "alice@example.com",
}


def resolve(tags: dict[str, str], audiences: str = f"{RUN},{IAP}") -> RotationSettings:
    return RotationSettings.resolve(tags, {**ENVIRONMENT, "ID_TOKEN_AUDIENCES": audiences})


def id_token_tags(audience: str | None = None) -> dict[str, str]:
    tags = {TOKEN_KIND.tag: "id-token"}
    return tags if audience is None else {**tags, ID_TOKEN_AUDIENCE.tag: audience}


def test_without_a_kind_tag_a_secret_holds_access_tokens() -> None:
    settings = resolve({})
    assert (settings.token_kind, settings.id_token_audience) == ("access-token", None)


@pytest.mark.parametrize("audience", [RUN, IAP])
def test_an_id_token_secret_may_name_any_audience_of_the_ceiling(audience: str) -> None:
    settings = resolve(id_token_tags(audience))
    assert (settings.token_kind, settings.id_token_audience) == ("id-token", audience)


def test_an_id_token_secret_gets_no_delegated_subject() -> None:
    """An ID token names the account itself: the stack's delegation is for access tokens."""
    assert resolve(id_token_tags(RUN)).delegated_subject is None
    assert resolve({}).delegated_subject == "alice@example.com"


@pytest.mark.parametrize(
    "asked", [OTHER, f"{RUN}/", RUN.upper(), f"{RUN},{IAP}"], ids=["other", "slash", "case", "two"]
)
def test_an_audience_outside_the_ceiling_is_refused_naming_tag_and_ceiling(asked: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        resolve(id_token_tags(asked))
    assert_outside_ceiling(refused.value, ID_TOKEN_AUDIENCE, asked, RUN, IAP)


def test_an_empty_ceiling_mints_no_id_tokens() -> None:
    with pytest.raises(ConfigurationError) as refused:
        resolve(id_token_tags(RUN), audiences="")
    assert_outside_ceiling(refused.value, ID_TOKEN_AUDIENCE, "this stack mints no ID tokens")


def test_the_only_audience_of_the_ceiling_needs_no_tag() -> None:
    assert resolve(id_token_tags(), audiences=RUN).id_token_audience == RUN


def test_a_missing_audience_among_several_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="'token-rotation:audience' is missing") as error:
        resolve(id_token_tags())
    assert RUN in str(error.value)
    assert "IdTokenAudiences" in str(error.value)


def test_an_audience_tag_on_an_access_token_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="token-rotation:token-kind=id-token"):
        resolve({ID_TOKEN_AUDIENCE.tag: RUN})


def test_an_unknown_kind_is_refused_naming_the_tag_and_the_kinds() -> None:
    with pytest.raises(ConfigurationError, match=r"'token-rotation:token-kind'.*access-token, id"):
        resolve({TOKEN_KIND.tag: "refresh-token"})


def test_the_ceiling_is_split_on_commas_and_spaces_without_duplicates() -> None:
    assert id_token_audiences({"ID_TOKEN_AUDIENCES": f" {RUN}, {IAP} ,{RUN}"}) == (RUN, IAP)


def test_generate_id_token_lives_beside_the_configured_generate_access_token() -> None:
    base = "http://127.0.0.1:8080/v1/projects/-/serviceAccounts/{}"
    endpoints = GoogleEndpoints.from_environment(
        {"GOOGLE_IAM_CREDENTIALS_URL": f"{base}:generateAccessToken"}
    )
    assert endpoints.id_token_url == f"{base}:generateIdToken"


def test_the_certs_url_defaults_to_googles_and_follows_the_environment() -> None:
    assert GoogleEndpoints.from_environment({}).certs_url == (
        "https://www.googleapis.com/oauth2/v1/certs"
    )
    local = "http://127.0.0.1:8080/oauth2/v1/certs"
    assert GoogleEndpoints.from_environment({"GOOGLE_CERTS_URL": local}).certs_url == local
    with pytest.raises(ConfigurationError, match="'GOOGLE_CERTS_URL' must be an https"):
        GoogleEndpoints.from_environment({"GOOGLE_CERTS_URL": "http://certs.example.com/"})
