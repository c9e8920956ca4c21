"""Time passes between attempts: a pending version that can no longer pass is abandoned or
superseded, and the next rotation promotes a fresh token Google accepts (moto over HTTP and the
Google emulator, with the rotation's clock and Google's moved together)."""

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient
from mypy_boto3_secretsmanager.type_defs import TagTypeDef

from localcloud.faults import pending_label_moved_after_describe
from localcloud.google_emulator import GoogleEmulator, ServiceAccountKey
from rotation_core.config import GoogleEndpoints
from rotation_core.errors import (
    ConfigurationError,
    GoogleUnavailableError,
    NotPendingVersionError,
    RotationAbandonedError,
    RotationInProgressError,
    SecretNotFoundError,
    TokenVerificationError,
    UnknownRotationTokenError,
    UnmanagedSecretError,
)
from rotation_core.google_client import GoogleClient
from rotation_core.rotation import Rotation
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import SecretsGateway
from rotation_core.steps import Step
from tests.support import (
    KEY_SECRET,
    TOKEN_SECRET,
    begin_rotation,
    current_value,
    run_all,
    stages,
    tokens_minted,
)

# Secrets Manager re-attempts a failed rotation about 50 minutes later.
REATTEMPT_DELAY = timedelta(minutes=50)
Later = Callable[[timedelta], Rotation]


@pytest.fixture
def later(
    secretsmanager: SecretsManagerClient, environment: dict[str, str], google: GoogleEmulator
) -> Later:
    """The rotation as it runs `delay` from now: its own clock and Google's both moved on.
    google-auth dates the tokens it mints by the real clock, so a test mints its fresh token
    with `now()` again, once the stale one was judged later."""

    def at(delay: timedelta) -> Rotation:
        google.clock_offset_seconds = delay.total_seconds()
        google_client = GoogleClient(GoogleEndpoints.from_environment(environment))
        moment = datetime.now(UTC) + delay
        return Rotation(
            SecretsGateway(secretsmanager), google_client, environment, clock=lambda: moment
        )

    return at


@pytest.fixture
def now(later: Later) -> Callable[[], Rotation]:
    return lambda: later(timedelta(0))


def rotation_in_progress(secretsmanager: SecretsManagerClient) -> bool:
    """What makes AWS refuse RotateSecret ("a previous rotation isn't complete")."""
    return any(
        "AWSPENDING" in labels and "AWSCURRENT" not in labels
        for labels in stages(secretsmanager, TOKEN_SECRET).values()
    )


def assert_google_accepts_current(
    secretsmanager: SecretsManagerClient, google: GoogleEmulator
) -> None:
    info = GoogleClient(GoogleEndpoints(google.token_url, google.tokeninfo_url, 2.0)).token_info(
        current_value(secretsmanager).access_token
    )
    assert info.expires_in_seconds > 900


def test_reattempt_after_tokeninfo_outage_abandons_the_stale_version_and_next_rotation_heals(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    later: Later,
    now: Callable[[], Rotation],
) -> None:
    # A healthy token in use: tokeninfo's silence is then a transient failure (no unverified
    # promotion, docs/unverified-promotion.md).
    run_all(rotation, RotationRequest(token_secret_arn, begin_rotation(token_secret_arn)))
    stuck = begin_rotation(token_secret_arn)
    rotation.create_secret(RotationRequest(token_secret_arn, stuck))
    google.fail_next("/tokeninfo", status=503)  # past the retry budget, as far as we know
    with pytest.raises(GoogleUnavailableError):
        rotation.test_secret(RotationRequest(token_secret_arn, stuck))

    reattempt = later(REATTEMPT_DELAY)
    with pytest.raises(RotationAbandonedError, match=r"has only \d+ s left") as raised:
        reattempt.create_secret(RotationRequest(token_secret_arn, stuck))

    assert f"pending version {stuck}" in str(raised.value)
    assert stages(secretsmanager, TOKEN_SECRET)[stuck] == []
    assert not rotation_in_progress(secretsmanager)
    fresh = begin_rotation(token_secret_arn)
    assert run_all(now(), RotationRequest(token_secret_arn, fresh))[-1] == "promoted"
    assert_google_accepts_current(secretsmanager, google)


def test_reattempt_of_an_abandoned_rotation_changes_nothing(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    later: Later,
) -> None:
    stuck = begin_rotation(token_secret_arn)
    rotation.create_secret(RotationRequest(token_secret_arn, stuck))
    with pytest.raises(RotationAbandonedError):
        later(timedelta(hours=2)).test_secret(RotationRequest(token_secret_arn, stuck))
    before = stages(secretsmanager, TOKEN_SECRET)

    for step in Step:
        with pytest.raises(UnknownRotationTokenError, match="abandoned or superseded"):
            later(timedelta(hours=3)).run(step, RotationRequest(token_secret_arn, stuck))
    assert stages(secretsmanager, TOKEN_SECRET) == before


def test_revoked_pending_token_is_abandoned_by_test_secret(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    token = begin_rotation(token_secret_arn)
    rotation.create_secret(RotationRequest(token_secret_arn, token))
    google.revoke_token(google.issued_tokens()[-1].access_token)

    with pytest.raises(RotationAbandonedError, match="tokeninfo says is not valid"):
        rotation.test_secret(RotationRequest(token_secret_arn, token))

    assert not rotation_in_progress(secretsmanager)
    fresh = begin_rotation(token_secret_arn)
    assert run_all(rotation, RotationRequest(token_secret_arn, fresh))[-1] == "promoted"


@pytest.mark.parametrize("step", [Step.SET, Step.TEST, Step.FINISH])
def test_a_malformed_pending_value_is_abandoned_by_every_later_step(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str, step: Step
) -> None:
    token = begin_rotation(token_secret_arn)
    secretsmanager.put_secret_value(
        SecretId=TOKEN_SECRET,
        ClientRequestToken=token,
        SecretString=json.dumps({"GOOGLE_ACCESS_TOKEN": "ya29.x", "expires_at": "soon"}),
        VersionStages=["AWSPENDING"],
    )
    before_current = stages(secretsmanager, TOKEN_SECRET)

    with pytest.raises(RotationAbandonedError, match="is malformed"):
        rotation.run(step, RotationRequest(token_secret_arn, token))

    assert stages(secretsmanager, TOKEN_SECRET)[token] == []
    assert {v: s for v, s in stages(secretsmanager, TOKEN_SECRET).items() if v != token} == {
        v: s for v, s in before_current.items() if v != token
    }


def test_finish_secret_never_promotes_an_empty_pending_version(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    token = begin_rotation(token_secret_arn)

    with pytest.raises(SecretNotFoundError, match="has no value"):
        rotation.finish_secret(RotationRequest(token_secret_arn, token))

    assert "AWSCURRENT" not in stages(secretsmanager, TOKEN_SECRET)[token]


def test_finish_secret_abandons_a_token_that_expired_since_it_was_tested(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    later: Later,
) -> None:
    token = begin_rotation(token_secret_arn)
    request = RotationRequest(token_secret_arn, token)
    for step in (Step.CREATE, Step.SET, Step.TEST):
        rotation.run(step, request)
    current_before = secretsmanager.describe_secret(SecretId=TOKEN_SECRET)["VersionIdsToStages"]

    with pytest.raises(RotationAbandonedError, match="holds a token that expired"):
        later(timedelta(hours=1, minutes=5)).finish_secret(request)

    assert "AWSCURRENT" not in stages(secretsmanager, TOKEN_SECRET)[token]
    previous_current = next(v for v, s in current_before.items() if "AWSCURRENT" in s)
    assert "AWSCURRENT" in stages(secretsmanager, TOKEN_SECRET)[previous_current]


def test_set_secret_refuses_an_empty_pending_version(
    rotation: Rotation, token_secret_arn: str
) -> None:
    token = begin_rotation(token_secret_arn)
    with pytest.raises(SecretNotFoundError, match="run createSecret for this rotation first"):
        rotation.set_secret(RotationRequest(token_secret_arn, token))


def test_test_secret_alone_on_an_empty_version_is_a_configuration_test(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    """RotateSecret(RotateImmediately=false): Secrets Manager runs only testSecret."""
    token = begin_rotation(token_secret_arn)

    outcome = rotation.test_secret(RotationRequest(token_secret_arn, token))

    assert outcome.action == "configuration-checked"
    assert google.requests == []
    secretsmanager.tag_resource(
        SecretId=TOKEN_SECRET,
        Tags=[{"Key": "token-rotation:scopes", "Value": "https://www.googleapis.com/auth/drive"}],
    )
    with pytest.raises(ConfigurationError, match="outside the deployer's ceiling"):
        rotation.test_secret(RotationRequest(token_secret_arn, token))


def test_manual_run_after_a_crash_supersedes_the_stale_pending_version(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    later: Later,
    now: Callable[[], Rotation],
) -> None:
    crashed = RotationRequest(token_secret_arn, str(uuid.uuid4()), manual=True)
    rotation.create_secret(crashed)  # the Lambda died right after PutSecretValue

    with pytest.raises(RotationInProgressError, match="still fresh and valid"):
        rotation.create_secret(RotationRequest(token_secret_arn, str(uuid.uuid4()), manual=True))

    retry = RotationRequest(token_secret_arn, str(uuid.uuid4()), manual=True)
    superseding = later(REATTEMPT_DELAY).create_secret(retry)
    outcomes = [superseding, *(now().run(step, retry) for step in list(Step)[1:])]

    assert outcomes[0].superseded_version_id == crashed.token
    assert outcomes[-1].action == "promoted"
    assert stages(secretsmanager, TOKEN_SECRET)[crashed.token] == []
    assert_google_accepts_current(secretsmanager, google)


def test_manual_run_supersedes_a_revoked_pending_token(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
) -> None:
    scheduled = begin_rotation(token_secret_arn)
    rotation.create_secret(RotationRequest(token_secret_arn, scheduled))
    google.revoke_token(google.issued_tokens()[-1].access_token)

    manual = RotationRequest(token_secret_arn, str(uuid.uuid4()), manual=True)
    assert run_all(rotation, manual)[-1] == "promoted"
    assert stages(secretsmanager, TOKEN_SECRET)[scheduled] == []


def test_manual_run_supersedes_an_empty_pending_version_of_a_failed_first_rotation(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    service_account: ServiceAccountKey,
) -> None:
    """First deploy: the key secret is still {} and the first rotation fails at createSecret."""
    key_file = secretsmanager.get_secret_value(SecretId=KEY_SECRET)["SecretString"]
    secretsmanager.put_secret_value(SecretId=KEY_SECRET, SecretString="{}")
    first = begin_rotation(token_secret_arn)
    with pytest.raises(Exception, match="as first deployed"):
        rotation.create_secret(RotationRequest(token_secret_arn, first))
    secretsmanager.put_secret_value(SecretId=KEY_SECRET, SecretString=key_file)

    manual = RotationRequest(token_secret_arn, str(uuid.uuid4()), manual=True)
    outcomes = [rotation.run(step, manual) for step in Step]

    assert outcomes[0].superseded_version_id == first
    assert outcomes[-1].action == "promoted"
    assert current_value(secretsmanager).metadata.service_account == service_account.client_email


def test_a_token_of_another_account_is_refused_before_it_is_stored(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    environment: dict[str, str],
    google: GoogleEmulator,
) -> None:
    environment["EXPECTED_SERVICE_ACCOUNT"] = "pinned@demo-project.iam.gserviceaccount.com"
    token = begin_rotation(token_secret_arn)

    with pytest.raises(TokenVerificationError, match="nothing was stored"):
        rotation.create_secret(RotationRequest(token_secret_arn, token))

    with pytest.raises(secretsmanager.exceptions.ResourceNotFoundException):
        secretsmanager.get_secret_value(
            SecretId=TOKEN_SECRET, VersionId=token, VersionStage="AWSPENDING"
        )


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        ("token-rotation:scopes", "https://www.googleapis.com/auth/cloud-platform"),
        ("token-rotation:key-secret-id", "arn:aws:secretsmanager:us-east-1:999999999999:secret:k"),
        ("token-rotation:min-remaining-seconds", "60"),
    ],
    ids=["wider-scopes", "foreign-key", "shorter-minimum"],
)
def test_a_tag_outside_the_deployers_ceiling_mints_nothing(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    tag: str,
    value: str,
) -> None:
    secretsmanager.tag_resource(SecretId=TOKEN_SECRET, Tags=[{"Key": tag, "Value": value}])
    token = begin_rotation(token_secret_arn)

    with pytest.raises(ConfigurationError, match=f"tag '{tag}' .* outside the deployer's ceiling"):
        rotation.create_secret(RotationRequest(token_secret_arn, token))
    assert tokens_minted(google) == 0


def test_a_pinned_account_cannot_be_replaced_by_a_tag(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    environment: dict[str, str],
    service_account: ServiceAccountKey,
    google: GoogleEmulator,
) -> None:
    environment["EXPECTED_SERVICE_ACCOUNT"] = service_account.client_email
    secretsmanager.tag_resource(
        SecretId=TOKEN_SECRET,
        Tags=[
            {"Key": "token-rotation:service-account", "Value": "other@x.iam.gserviceaccount.com"}
        ],
    )
    token = begin_rotation(token_secret_arn)

    with pytest.raises(ConfigurationError, match="the pinned service account"):
        rotation.create_secret(RotationRequest(token_secret_arn, token))
    assert tokens_minted(google) == 0


@pytest.mark.parametrize("target", ["key-secret", "untagged", "other-stack"])
def test_steps_refuse_a_secret_this_stack_does_not_manage_before_reading_it(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    token_secret_arn: str,
    google: GoogleEmulator,
    target: str,
) -> None:
    if target == "key-secret":
        secret_id = KEY_SECRET
    else:
        tags: list[TagTypeDef] = [{"Key": "token-rotation:managed-by", "Value": "another-stack"}]
        secret_id = secretsmanager.create_secret(
            Name=f"app/{target}",
            SecretString="precious",
            Tags=tags if target == "other-stack" else [],
        )["ARN"]
    before = secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"]

    for step in Step:
        request = RotationRequest(secret_id, str(uuid.uuid4()), manual=True)
        with pytest.raises(UnmanagedSecretError, match="nothing was read or written"):
            rotation.run(step, request)

    assert secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"] == before
    assert len(stages(secretsmanager, secret_id)) == 1
    assert tokens_minted(google) == 0


@pytest.mark.parametrize("step", list(Step), ids=[step.value for step in Step])
def test_a_step_never_promotes_a_version_superseded_after_its_describe(
    rotation: Rotation,
    secretsmanager: SecretsManagerClient,
    google: GoogleEmulator,
    token_secret_arn: str,
    step: Step,
) -> None:
    """Reads name VersionStage=AWSPENDING: a version that lost the label since the step's
    DescribeSecret (RotateSecret and a manual run at the same moment: one must lose) is not read
    as if it were still pending, and the loser reports the lost race, not an access error."""
    token = begin_rotation(token_secret_arn)
    request = RotationRequest(token_secret_arn, token)
    for earlier in list(Step)[: list(Step).index(step)]:
        rotation.run(earlier, request)
    minted = tokens_minted(google)
    current_before = secretsmanager.get_secret_value(SecretId=TOKEN_SECRET)["SecretString"]

    with (
        pending_label_moved_after_describe(token_secret_arn, token) as race,
        pytest.raises(NotPendingVersionError, match="lost its AWSPENDING label") as raised,
    ):
        rotation.run(step, request)

    assert race.fired
    assert f"version {token} of {token_secret_arn!r}" in str(raised.value)
    assert stages(secretsmanager, TOKEN_SECRET)[token] == []
    assert secretsmanager.get_secret_value(SecretId=TOKEN_SECRET)["SecretString"] == current_before
    assert tokens_minted(google) == minted


def test_a_manual_run_goes_on_when_the_stale_rotation_it_supersedes_loses_its_label_meanwhile(
    rotation: Rotation, secretsmanager: SecretsManagerClient, token_secret_arn: str
) -> None:
    """Between the manual run's DescribeSecret and its look at the blocking version, that
    version's own run (or another manual one) took its AWSPENDING off: nothing blocks any more."""
    stale = begin_rotation(token_secret_arn)
    manual = RotationRequest(token_secret_arn, str(uuid.uuid4()), manual=True)

    with pending_label_moved_after_describe(token_secret_arn, stale) as race:
        created = rotation.create_secret(manual)

    assert race.fired
    assert created.action == "created"
    assert stages(secretsmanager, TOKEN_SECRET)[stale] == []
    assert stages(secretsmanager, TOKEN_SECRET)[manual.token] == ["AWSPENDING"]
