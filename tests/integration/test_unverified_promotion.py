"""Promotion through a tokeninfo outage, on moto and the Google emulator over HTTP: while the token
in use is healthy tokeninfo's silence stays a transient failure; once it is within a third of the
lead, expired, missing or refused, the fresh mint is promoted unverified and said so; an explicit
refusal by tokeninfo still blocks. Time moves for the whole process (time_machine), so the mint,
Google and the steps agree on it."""

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from mypy_boto3_secretsmanager import SecretsManagerClient

from localcloud.deployment import client_environment
from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from localcloud.template import PROJECT_ROOT
from rotation_core.config import GOOGLE_TOKENINFO_URL
from rotation_core.errors import (
    GoogleConnectionError,
    GoogleResponseError,
    GoogleUnavailableError,
    RotationAbandonedError,
    RotationError,
)
from rotation_core.refresh import REFUSED_VERSION_TAG, UNVERIFIED_VERSION_TAG
from rotation_core.rotation import ACCEPTED_UNVERIFIED, PROMOTED_UNVERIFIED, Rotation
from rotation_core.rotation_request import RotationRequest
from rotation_core.steps import Step
from rotation_core.token_secret import TokenSecretValue
from tests.minting_sources import (
    federated_target,
    impersonating,
    impersonation_target,
    keyless,
)
from tests.support import (
    SCOPE,
    TOKEN_SECRET,
    begin_rotation,
    current_value,
    invoke_step,
    run_all,
    stages,
    stdout_so_far,
)

HOUR = 3600
LEAD = 900
Advance = Callable[[float], None]
TOKENINFO_DOWN: dict[str, Any] = {"status": 503, "body": "<html>Service Unavailable</html>"}


@pytest.fixture
def advance() -> Iterator[Advance]:
    """Moves this process's clock (the steps, google-auth's mint, the emulator's clock) on."""
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        yield lambda seconds: traveller.shift(timedelta(seconds=seconds))


@pytest.fixture
def tokeninfo_down(google: GoogleEmulator) -> Callable[[], None]:
    """tokeninfo unreachable for a day from now; the token endpoint keeps minting."""
    return lambda: google.fail_during("/tokeninfo", google.now() + 24 * HOUR, **TOKENINFO_DOWN)


def promote_first(rotation: Rotation, arn: str) -> str:
    """A verified token in use, minted now; its version."""
    token = begin_rotation(arn)
    assert run_all(rotation, RotationRequest(arn, token))[-1] == "promoted"
    return token


def current_version(secretsmanager: SecretsManagerClient) -> str:
    return next(v for v, s in stages(secretsmanager, TOKEN_SECRET).items() if "AWSCURRENT" in s)


def status(secretsmanager: SecretsManagerClient, key: str) -> str | None:
    tags = secretsmanager.describe_secret(SecretId=TOKEN_SECRET).get("Tags", [])
    return next((tag["Value"] for tag in tags if tag["Key"] == key), None)


def create_and_set(rotation: Rotation, request: RotationRequest) -> None:
    rotation.create_secret(request)
    rotation.set_secret(request)


def test_the_token_in_use_goes_from_healthy_to_a_third_of_the_lead_to_expired(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    advance: Advance,
    tokeninfo_down: Callable[[], None],
) -> None:
    first = promote_first(rotation, token_secret_arn)
    tokeninfo_down()

    # The refresh a lead before expiry: the token in use is healthy, tokeninfo's silence is a
    # transient failure as before, and the pending version waits for the retry.
    advance(HOUR - LEAD)
    stuck = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    create_and_set(rotation, stuck)
    with pytest.raises(GoogleUnavailableError, match="tokeninfo endpoint answered HTTP 503"):
        rotation.test_secret(stuck)
    assert status(secretsmanager, UNVERIFIED_VERSION_TAG) is None

    # Ten minutes on, 5 minutes (a third of the lead) before the expiry, the same rotation's
    # retry accepts the fresh mint unverified, and finishSecret promotes it.
    advance(LEAD - LEAD // 3)
    assert rotation.create_secret(stuck).action == "already-created"
    tested = rotation.test_secret(stuck)
    assert tested.action == ACCEPTED_UNVERIFIED
    assert status(secretsmanager, UNVERIFIED_VERSION_TAG) == stuck.token
    finished = rotation.finish_secret(stuck)

    assert finished.action == PROMOTED_UNVERIFIED
    assert current_version(secretsmanager) == stuck.token != first
    assert finished.follow_up is not None
    assert finished.follow_up.notice is not None
    assert finished.follow_up.notice.subject == (
        "Google token rotation promoted an unverified token (google/access-token)"
    )
    message = json.loads(finished.follow_up.notice.message)
    assert message["PromotedVersionId"] == stuck.token
    assert status(secretsmanager, UNVERIFIED_VERSION_TAG) is None

    # No trigger fires until the promoted token has expired: the next rotation promotes again.
    advance(HOUR + 60)
    late = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    create_and_set(rotation, late)
    assert rotation.test_secret(late).action == ACCEPTED_UNVERIFIED
    assert rotation.finish_secret(late).action == PROMOTED_UNVERIFIED
    assert current_value(secretsmanager).metadata.expires_at > datetime.now(UTC)


@pytest.mark.parametrize(
    ("failure", "silence"),
    [
        ({"status": 429}, GoogleUnavailableError),
        ({"reset_connection": True}, GoogleConnectionError),
    ],
    ids=["429", "reset"],
)
def test_a_healthy_token_in_use_waits_for_tokeninfo_whatever_its_silence(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    failure: dict[str, Any],
    silence: type[RotationError],
) -> None:
    first = promote_first(rotation, token_secret_arn)
    request = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    create_and_set(rotation, request)
    google.fail_next("/tokeninfo", **failure)

    with pytest.raises(silence):
        rotation.test_secret(request)

    assert current_version(secretsmanager) == first
    assert stages(secretsmanager, TOKEN_SECRET)[request.token] == ["AWSPENDING"]
    assert status(secretsmanager, UNVERIFIED_VERSION_TAG) is None


@pytest.mark.parametrize(
    ("answer", "refusal", "abandoned"),
    [
        (
            {"status": 400, "body": {"error": "invalid_token", "error_description": "Invalid"}},
            "tokeninfo says is not valid",
            True,
        ),
        (
            {"status": 200, "body": {"azp": "x", "scope": "email", "expires_in": "3000"}},
            f"lacks the scopes {SCOPE}",
            True,
        ),
        (
            {"status": 400, "body": {"error": "invalid_request"}},
            "tokeninfo endpoint answered HTTP 400",
            False,
        ),
    ],
    ids=["invalid_token", "wrong-scope", "unexpected-4xx"],
)
def test_an_explicit_refusal_blocks_even_when_the_token_in_use_has_expired(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    advance: Advance,
    answer: dict[str, Any],
    refusal: str,
    abandoned: bool,
) -> None:
    first = promote_first(rotation, token_secret_arn)
    advance(HOUR + 60)
    request = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    create_and_set(rotation, request)
    google.fail_next("/tokeninfo", **answer)

    with pytest.raises(RotationAbandonedError if abandoned else GoogleResponseError, match=refusal):
        rotation.test_secret(request)

    assert current_version(secretsmanager) == first
    assert status(secretsmanager, UNVERIFIED_VERSION_TAG) is None


def test_the_placeholder_in_use_takes_the_first_token_unverified(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    tokeninfo_down: Callable[[], None],
) -> None:
    tokeninfo_down()
    request = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))

    assert run_all(rotation, request) == [
        "created",
        "checked",
        ACCEPTED_UNVERIFIED,
        PROMOTED_UNVERIFIED,
    ]
    assert current_value(secretsmanager).access_token


def test_a_token_in_use_google_refused_is_replaced_unverified(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    tokeninfo_down: Callable[[], None],
) -> None:
    first = promote_first(rotation, token_secret_arn)
    request = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    create_and_set(rotation, request)
    tokeninfo_down()
    with pytest.raises(GoogleUnavailableError):
        rotation.test_secret(request)  # an hour left, and nobody said Google refused it
    secretsmanager.tag_resource(
        SecretId=TOKEN_SECRET, Tags=[{"Key": REFUSED_VERSION_TAG, "Value": first}]
    )

    assert rotation.test_secret(request).action == ACCEPTED_UNVERIFIED
    assert rotation.finish_secret(request).action == PROMOTED_UNVERIFIED


def test_a_mint_that_fails_a_check_of_its_own_is_abandoned_not_promoted(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    environment: dict[str, str],
    tokeninfo_down: Callable[[], None],
) -> None:
    tokeninfo_down()
    request = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    create_and_set(rotation, request)
    extra = "https://www.googleapis.com/auth/drive.readonly"
    environment["GOOGLE_SCOPES"] = f"{SCOPE} {extra}"  # the deployer widened the scopes since

    with pytest.raises(RotationAbandonedError, match=f"minted without the scopes {extra}"):
        rotation.test_secret(request)
    assert stages(secretsmanager, TOKEN_SECRET)[request.token] == []
    assert status(secretsmanager, UNVERIFIED_VERSION_TAG) is None


def test_a_version_tokeninfo_vouches_for_after_all_is_promoted_as_verified(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    request = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    create_and_set(rotation, request)
    google.fail_next("/tokeninfo", **TOKENINFO_DOWN)
    assert rotation.test_secret(request).action == ACCEPTED_UNVERIFIED

    # A retry of testSecret (the entry Lambda's, say) finds tokeninfo back.
    assert rotation.test_secret(request).action == "verified"
    assert status(secretsmanager, UNVERIFIED_VERSION_TAG) is None
    finished = rotation.finish_secret(request)
    assert finished.action == "promoted"
    assert finished.follow_up is not None
    assert finished.follow_up.notice is None


def test_finish_secret_counts_an_unverified_promotion_in_its_metric(
    lambda_environment: dict[str, str],
    token_secret_arn: str,
    google: GoogleEmulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = begin_rotation(token_secret_arn)
    event = {"SecretId": token_secret_arn, "ClientRequestToken": token}
    google.fail_during("/tokeninfo", google.now() + HOUR, **TOKENINFO_DOWN)
    outcomes = [invoke_step(step, {**event, "Step": step.value}) for step in Step]

    assert [outcome["Action"] for outcome in outcomes[2:]] == [
        ACCEPTED_UNVERIFIED,
        PROMOTED_UNVERIFIED,
    ]
    documents = [
        json.loads(line)
        for line in stdout_so_far(capsys).splitlines()
        if line.startswith("{") and "UnverifiedPromotions" in line
    ]
    [document] = [d for d in documents if "_aws" in d]
    assert document["UnverifiedPromotions"] == [1.0]
    assert document["Step"] == "finishSecret"
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert {"Name": "UnverifiedPromotions", "Unit": "Count"} in directive["Metrics"]


def test_the_notices_command_asks_google_about_the_promoted_token(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    moto_endpoint: str,
) -> None:
    """The command the notice gives operators runs as written (the venv's AWS CLI, jq, curl),
    pointed at moto and the emulator instead of AWS and Google."""
    request = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    create_and_set(rotation, request)
    google.fail_next("/tokeninfo", **TOKENINFO_DOWN)
    rotation.test_secret(request)
    finished = rotation.finish_secret(request)
    assert finished.follow_up is not None
    assert finished.follow_up.notice is not None
    steps = json.loads(finished.follow_up.notice.message)["NextSteps"]
    command = steps.split("(it stays out of the command line): ", 1)[1].split(" (an answer", 1)[0]
    assert command.startswith(f"aws secretsmanager get-secret-value --secret-id {TOKEN_SECRET} ")

    local = command.replace("aws ", f"{PROJECT_ROOT / '.venv' / 'bin' / 'aws'} ", 1).replace(
        GOOGLE_TOKENINFO_URL, google.tokeninfo_url
    )
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **client_environment(moto_endpoint),
    }
    answer = subprocess.run(
        ["bash", "-o", "pipefail", "-c", local],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert answer.returncode == 0, answer.stderr
    info = json.loads(answer.stdout)
    assert int(info["expires_in"]) > 3000
    assert SCOPE in info["scope"]


# --- Impersonation and keyless federation ------------------------------------------------------
# Their createSecret asks tokeninfo for the target's client id; while tokeninfo is silent the id
# stored with the token in use (the same account's) stands in, so their mints reach testSecret.

NewSource = Callable[[], tuple[Rotation, str]]


@pytest.fixture(params=["impersonation", "workload-identity-federation"])
def new_source(
    request: pytest.FixtureRequest,
    secretsmanager: SecretsManagerClient,
    environment: dict[str, str],
    google: GoogleEmulator,
    service_account: ServiceAccountKey,
    moto_endpoint: str,
) -> NewSource:
    """Each call: a new target account, and a rotation of the token secret that mints its
    tokens through the source."""

    def impersonation() -> tuple[Rotation, str]:
        target = impersonation_target(google, service_account)
        return impersonating(secretsmanager, environment, google, target), target

    def federation() -> tuple[Rotation, str]:
        target = federated_target(google, moto_endpoint)
        return keyless(secretsmanager, environment, google, target), target

    return impersonation if request.param == "impersonation" else federation


def brief_outage(google: GoogleEmulator, advance: Advance, during: Callable[[], None]) -> None:
    """tokeninfo is unreachable while `during` runs, and answers again afterwards."""
    google.fail_during("/tokeninfo", google.now() + 60, **TOKENINFO_DOWN)
    during()
    advance(120)


def test_an_impersonated_or_federated_mint_is_stored_and_promoted_through_a_tokeninfo_outage(
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    advance: Advance,
    tokeninfo_down: Callable[[], None],
    new_source: NewSource,
) -> None:
    rotation, target = new_source()
    first = promote_first(rotation, token_secret_arn)
    client_id = current_value(secretsmanager).metadata.service_account_client_id
    tokeninfo_down()

    # A lead before the expiry the mint is stored, and testSecret waits as before.
    advance(HOUR - LEAD)
    stuck = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    assert rotation.create_secret(stuck).action == "created"
    rotation.set_secret(stuck)
    with pytest.raises(GoogleUnavailableError, match="tokeninfo endpoint answered HTTP 503"):
        rotation.test_secret(stuck)
    assert current_version(secretsmanager) == first
    assert status(secretsmanager, UNVERIFIED_VERSION_TAG) is None

    # Within a third of the lead of the expiry, it is promoted unverified.
    advance(LEAD - LEAD // 3)
    assert rotation.test_secret(stuck).action == ACCEPTED_UNVERIFIED
    assert rotation.finish_secret(stuck).action == PROMOTED_UNVERIFIED
    promoted = current_value(secretsmanager)
    assert current_version(secretsmanager) == stuck.token
    assert promoted.metadata.service_account == target
    assert promoted.metadata.service_account_client_id == client_id
    info = google.token_info(promoted.access_token)
    assert info is not None
    assert info["azp"] == client_id

    # No trigger fires until the promoted token has expired: the whole rotation goes through.
    advance(HOUR + 60)
    late = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    assert run_all(rotation, late) == [
        "created",
        "checked",
        ACCEPTED_UNVERIFIED,
        PROMOTED_UNVERIFIED,
    ]
    assert google.token_info(current_value(secretsmanager).access_token) is not None


def test_tokeninfos_refusal_still_blocks_an_impersonated_or_federated_mint(
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    advance: Advance,
    new_source: NewSource,
) -> None:
    rotation, _ = new_source()
    first = promote_first(rotation, token_secret_arn)
    advance(HOUR + 60)
    request = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    brief_outage(google, advance, lambda: create_and_set(rotation, request))
    google.fail_next(
        "/tokeninfo",
        status=400,
        body={"error": "invalid_token", "error_description": "Invalid Value"},
    )

    with pytest.raises(RotationAbandonedError, match="tokeninfo says is not valid"):
        rotation.test_secret(request)
    assert current_version(secretsmanager) == first
    assert status(secretsmanager, UNVERIFIED_VERSION_TAG) is None


@pytest.mark.parametrize("new_source", ["impersonation"], indirect=True)
def test_a_stale_client_id_stored_during_an_outage_costs_one_version_then_is_learned_again(
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    advance: Advance,
    new_source: NewSource,
) -> None:
    """An account deleted and created again under its email gets a new client id: the token in
    use still holds the old one. (The lookup is the same for both sources: one is enough.)"""
    rotation, _ = new_source()
    promote_first(rotation, token_secret_arn)
    in_use = current_value(secretsmanager)
    real_id = in_use.metadata.service_account_client_id
    stale = replace(in_use.metadata, service_account_client_id="100000000000000000001")
    secretsmanager.put_secret_value(
        SecretId=TOKEN_SECRET,
        SecretString=TokenSecretValue(in_use.access_token, stale).to_secret_string(),
    )
    advance(HOUR + 60)
    request = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    brief_outage(google, advance, lambda: create_and_set(rotation, request))

    with pytest.raises(RotationAbandonedError, match=f"issued to client {real_id}, not to"):
        rotation.test_secret(request)  # tokeninfo names the account's real client

    retry = RotationRequest(token_secret_arn, begin_rotation(token_secret_arn))
    assert run_all(rotation, retry) == ["created", "checked", "verified", "promoted"]
    assert current_value(secretsmanager).metadata.service_account_client_id == real_id


@pytest.mark.parametrize("new_source", ["impersonation"], indirect=True)
def test_without_a_client_id_of_the_target_the_mint_waits_for_tokeninfo(
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    advance: Advance,
    tokeninfo_down: Callable[[], None],
    new_source: NewSource,
) -> None:
    """The token in use is another account's (the target setting changed): its client id is
    not the new target's, so nothing is stored until tokeninfo answers."""
    rotation, _ = new_source()
    promote_first(rotation, token_secret_arn)
    moved, _ = new_source()
    advance(HOUR + 60)
    tokeninfo_down()
    token = begin_rotation(token_secret_arn)

    with pytest.raises(GoogleUnavailableError, match="tokeninfo endpoint answered HTTP 503"):
        moved.create_secret(RotationRequest(token_secret_arn, token))
    assert stages(secretsmanager, TOKEN_SECRET)[token] == ["AWSPENDING"]
    with pytest.raises(RotationError, match="has no value"):
        moved.set_secret(RotationRequest(token_secret_arn, token))
