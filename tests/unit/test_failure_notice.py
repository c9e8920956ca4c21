"""The failure notice: a Subject SNS accepts, a Message of bounded, safe text, and stage wording
that says exactly what DescribeSecret showed (rotation_core.failure_notice)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rotation_core.failure_notice import (
    CAUSE_LIMIT,
    INPUT_VALIDATION,
    SECRET_SHOWN_LIMIT,
    SUBJECT_LIMIT,
    UNKNOWN_STEP,
    FailureReport,
    Notice,
    StageReading,
    StagesUnreadable,
    compose_notice,
    compose_refused,
    subject_line,
    superseding_version,
)
from rotation_core.secrets import SecretDescription

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:google/access-token-AbCdEf"
EXECUTION = (
    "arn:aws:states:eu-west-1:123456789012:execution:rotation:"
    "finishSecret-5f0d1c2b-3a4e-4f60-9b8a-7c6d5e4f3a21-1"
)
THIS = "5f0d1c2b-3a4e-4f60-9b8a-7c6d5e4f3a21"
OLD = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
OTHER = "99999999-8888-4777-8666-555555555555"
ROTATION_TOKEN = "9b0c8d7e-6f5a-4b3c-2d1e-0f9a8b7c6d5e-rotation-token"
ACCESS_TOKEN = "ya29.a0AfB_byC1x2y3z4" + "Q" * 120
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJzYUBwLmlhbS5nc2VydmljZWFjY291bnQuY29tIn0.c2lnbmF0dXJl"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"


def payload(**overrides: Any) -> dict[str, Any]:
    """What the DescribeFailure task sends after finishSecret failed in a scheduled rotation."""
    return {
        "Request": {
            "Step": "finishSecret",
            "SecretId": ARN,
            "ClientRequestToken": THIS,
            "RotationToken": ROTATION_TOKEN,
        },
        "FailedStep": "finishSecret",
        "Failure": {
            "Error": "Runtime.ExitError",
            "Cause": json.dumps(
                {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": "the function's process exited before it answered",
                    "stackTrace": [],
                }
            ),
        },
        "ExecutionArn": EXECUTION,
        **overrides,
    }


def described(stages: dict[str, tuple[str, ...]]) -> SecretDescription:
    return SecretDescription(
        arn=ARN,
        name="google/access-token",
        rotation_enabled=True,
        version_stages=stages,
        tags={},
    )


def notice_of(raw: object, reading: StageReading = None) -> tuple[Notice, dict[str, Any]]:
    notice = compose_notice(FailureReport.from_payload(raw), reading)
    message: dict[str, Any] = json.loads(notice.message)
    return notice, message


def assert_valid_subject(subject: str) -> None:
    assert 0 < len(subject) <= SUBJECT_LIMIT
    assert subject.isascii()
    assert subject.isprintable()
    assert "\n" not in subject
    assert "\r" not in subject


# Subject: what SNS accepts, whatever the caller sent.


@pytest.mark.parametrize(
    "raw",
    [
        payload(FailedStep="x" * 200),
        payload(
            Request={"Step": "x" * 200, "SecretId": ARN, "ClientRequestToken": THIS},
            FailedStep=UNKNOWN_STEP,
        ),
        payload(Request={"SecretId": "s" * 5000, "ClientRequestToken": THIS}),
        payload(Request={"SecretId": "team/" + "n" * 1990, "ClientRequestToken": THIS}),
        payload(Request={"SecretId": "jeton/accès\nlinebreak", "ClientRequestToken": THIS}),
        payload(Request={"SecretId": "prod/" + "a-" * 60, "ClientRequestToken": THIS}),
        payload(FailedStep="créateSecret\r\n"),
        {"not": "the expected shape"},
        None,
        [],
        "a string",
    ],
    ids=[
        "step-label-200",
        "request-step-200",
        "secret-id-5000",
        "secret-name-1995",
        "non-ascii-newline-secret",
        "long-hyphenated-name",
        "non-ascii-step-label",
        "unexpected-object",
        "null",
        "array",
        "string",
    ],
)
def test_the_subject_is_one_ascii_line_of_at_most_100_characters(raw: object) -> None:
    notice, message = notice_of(raw)

    assert_valid_subject(notice.subject)
    assert notice.subject.startswith("Google token rotation failed")
    assert message["Step"] in {
        "createSecret",
        "setSecret",
        "testSecret",
        "finishSecret",
        INPUT_VALIDATION,
        UNKNOWN_STEP,
    }
    # Every field of the message is bounded, whatever size the input had.
    assert len(notice.message) < 6000


def test_a_200_character_step_becomes_the_unknown_step_label_and_is_only_described() -> None:
    notice, message = notice_of(
        payload(
            Request={"Step": "x" * 200, "SecretId": ARN, "ClientRequestToken": THIS},
            FailedStep=UNKNOWN_STEP,
        )
    )

    # Not described (no reading): the name as the request's ARN gives it.
    assert notice.subject == (
        "Google token rotation failed: unknown step (google/access-token-AbCdEf)"
    )
    assert message["Step"] == UNKNOWN_STEP
    assert message["GivenStep"] == "a string of 200 characters"
    assert "xxxxxxxx" not in notice.message


def test_a_short_misspelt_step_is_shown_so_the_sender_can_fix_it() -> None:
    _, message = notice_of(
        payload(
            Request={"Step": "CreateSecret", "SecretId": ARN, "ClientRequestToken": THIS},
            FailedStep=UNKNOWN_STEP,
        )
    )

    assert message["GivenStep"] == "'CreateSecret'"


def test_the_subject_names_the_step_and_as_much_of_the_secret_name_as_fits() -> None:
    assert subject_line("createSecret", "google/access-token") == (
        "Google token rotation failed at createSecret (google/access-token)"
    )
    long_name = "team/" + "n-" * 150
    subject = subject_line("testSecret", long_name)
    assert len(subject) == SUBJECT_LIMIT
    assert subject.startswith("Google token rotation failed at testSecret (team/n-n-")
    assert subject.endswith("...)")
    # Not a plain secret name: left out rather than mangled.
    assert subject_line("setSecret", "accès\n") == "Google token rotation failed at setSecret"
    assert subject_line("setSecret", ACCESS_TOKEN) == "Google token rotation failed at setSecret"
    assert subject_line(INPUT_VALIDATION, None) == (
        "Google token rotation failed: input validation"
    )


def test_a_5000_character_secret_id_is_described_not_copied_nor_looked_up() -> None:
    report = FailureReport.from_payload(
        payload(Request={"SecretId": "s" * 5000, "ClientRequestToken": THIS})
    )
    notice, message = notice_of(
        payload(Request={"SecretId": "s" * 5000, "ClientRequestToken": THIS})
    )

    assert report.secret_id is None, "DescribeSecret is not asked about an impossible id"
    assert message["SecretId"] == "a string of 5000 characters"
    assert "sssssssss" not in notice.message
    assert message["Stages"].startswith("Not checked")


def test_a_valid_but_long_secret_id_is_cut_to_256_characters() -> None:
    secret_id = "team/" + "n-" * 1000
    report = FailureReport.from_payload(
        payload(Request={"SecretId": secret_id, "ClientRequestToken": THIS})
    )

    assert report.secret_id == secret_id  # at most 2048: Secrets Manager is asked
    assert len(report.secret_shown) <= SECRET_SHOWN_LIMIT
    assert report.secret_shown.startswith("team/n-n-")


# Stages: only what was checked.


def test_current_on_this_version_says_the_new_token_is_in_use() -> None:
    reading = described({THIS: ("AWSCURRENT", "AWSPENDING"), OLD: ("AWSPREVIOUS",)})

    notice, message = notice_of(payload(), reading)

    assert message["Stages"] == (
        "Checked with DescribeSecret when this notice was composed: AWSCURRENT is on version "
        f"{THIS}, this rotation's version: the new token is in use. AWSPENDING is on version "
        f"{THIS}, this rotation's version."
    )
    assert "still" not in message["Stages"]
    assert "already in use" in message["NextSteps"]
    assert "previous token" not in notice.message


def test_current_on_another_version_says_applications_keep_their_token() -> None:
    reading = described({OLD: ("AWSCURRENT",), THIS: ("AWSPENDING",)})

    _, message = notice_of(payload(), reading)

    assert message["Stages"] == (
        "Checked with DescribeSecret when this notice was composed: AWSCURRENT is on version "
        f"{OLD}, not on this rotation's version {THIS}: applications still read the token "
        f"they had. AWSPENDING is on version {THIS}, this rotation's version."
    )
    assert message["NextSteps"].startswith("Fix the cause")


def test_pending_on_another_rotation_and_no_pending_are_told_apart() -> None:
    _, elsewhere = notice_of(payload(), described({OLD: ("AWSCURRENT",), OTHER: ("AWSPENDING",)}))
    _, nowhere = notice_of(payload(), described({OLD: ("AWSCURRENT",)}))

    assert elsewhere["Stages"].endswith(
        f"AWSPENDING is on version {OTHER}, another rotation's version."
    )
    assert nowhere["Stages"].endswith("No version carries AWSPENDING.")


def test_a_version_that_lost_its_label_is_not_said_to_leave_applications_their_token() -> None:
    _, message = notice_of(payload(), described({OTHER: ("AWSCURRENT",), OLD: ("AWSPREVIOUS",)}))

    assert message["Stages"] == (
        "Checked with DescribeSecret when this notice was composed: AWSCURRENT is on version "
        f"{OTHER}; this rotation's version {THIS} carries neither AWSCURRENT nor AWSPENDING. "
        "No version carries AWSPENDING."
    )


# Superseded: another rotation took AWSPENDING after this one and promoted its version.


def failed(step: str, error: str) -> FailureReport:
    return FailureReport.from_payload(
        payload(
            Request={"Step": step, "SecretId": ARN, "ClientRequestToken": THIS},
            FailedStep=step,
            Failure={"Error": error, "Cause": "x"},
        )
    )


WINNER_PROMOTED = {OTHER: ("AWSCURRENT", "AWSPENDING"), OLD: ("AWSPREVIOUS",)}


@pytest.mark.parametrize(
    ("step", "error"),
    [
        ("createSecret", "UnknownRotationTokenError"),
        ("createSecret", "NotPendingVersionError"),
        ("createSecret", "RotationInProgressError"),
        ("setSecret", "UnknownRotationTokenError"),
        ("testSecret", "GoogleUnavailableError"),
        ("finishSecret", "AwsAccessError"),
    ],
)
def test_a_rotation_whose_label_a_promoted_version_took_is_superseded_by_it(
    step: str, error: str
) -> None:
    assert superseding_version(failed(step, error), described(WINNER_PROMOTED)) == OTHER
    # The same once Secrets Manager pruned this rotation's unlabelled version from the list.
    left = described({**WINNER_PROMOTED, THIS: ()})
    assert superseding_version(failed(step, error), left) == OTHER
    # ... or when it still carries an older label (it was promoted, then superseded).
    previous = described({OTHER: ("AWSCURRENT", "AWSPENDING"), THIS: ("AWSPREVIOUS",)})
    assert superseding_version(failed(step, error), previous) == OTHER


@pytest.mark.parametrize(
    "stages",
    [
        {OLD: ("AWSCURRENT",), OTHER: ("AWSPENDING",)},
        {OLD: ("AWSCURRENT",)},
        {OLD: ("AWSCURRENT",), THIS: ("AWSPENDING",)},
        {THIS: ("AWSCURRENT", "AWSPENDING"), OLD: ("AWSPREVIOUS",)},
        {THIS: ("AWSCURRENT",), OTHER: ("AWSPENDING",)},
        {OTHER: ("AWSPENDING",)},
    ],
    ids=[
        "winner-still-in-progress",
        "abandoned-no-label-anywhere",
        "this-still-pending",
        "this-promoted",
        "this-promoted-another-pending",
        "no-current",
    ],
)
def test_anything_but_a_promoted_winner_stays_a_failure(stages: dict[str, tuple[str, ...]]) -> None:
    for step, error in [("setSecret", "UnknownRotationTokenError"), ("createSecret", "X")]:
        assert superseding_version(failed(step, error), described(stages)) is None


@pytest.mark.parametrize(
    "error", ["GoogleGrantRejectedError", "GoogleUnavailableError", "Runtime.ExitError"]
)
def test_a_create_secret_failing_for_its_own_reason_is_never_superseded(error: str) -> None:
    """A manual run's version exists only once createSecret stores it: one that failed before
    (Google down, say) never held AWSPENDING, so a promoted version beside it may be older."""
    assert superseding_version(failed("createSecret", error), described(WINNER_PROMOTED)) is None


def test_without_a_version_or_a_step_nothing_is_superseded() -> None:
    no_token = FailureReport.from_payload(
        payload(Request={"Step": "setSecret", "SecretId": ARN}, FailedStep="setSecret")
    )
    refused = failed(UNKNOWN_STEP, "UnknownRotationStep")

    assert superseding_version(no_token, described(WINNER_PROMOTED)) is None
    assert superseding_version(refused, described(WINNER_PROMOTED)) is None


def test_unreadable_stages_say_so_and_give_the_command_to_check() -> None:
    reading = StagesUnreadable("AwsUnavailableError", "Secrets Manager is busy")

    _, message = notice_of(payload(), reading)

    assert message["Stages"] == (
        "Could not be checked (DescribeSecret failed with AwsUnavailableError: Secrets Manager "
        "is busy). See which version carries AWSCURRENT with: aws secretsmanager "
        f"describe-secret --secret-id {ARN}"
    )
    assert "AWSCURRENT is on" not in json.dumps(message)
    assert "in use" not in json.dumps(message)


def test_the_command_never_carries_text_a_shell_would_expand() -> None:
    hostile = "name$(touch /tmp/x)`id`;rm"
    _, message = notice_of(
        payload(Request={"SecretId": hostile, "ClientRequestToken": THIS}),
        StagesUnreadable("AwsAccessError"),
    )

    assert message["Stages"].endswith("--secret-id <the secret's name or ARN>")
    assert "$(" not in json.dumps(message)
    assert message["SecretId"] == f"a string of {len(hostile)} characters"


def test_an_abandoned_rotation_says_so_and_that_the_next_one_starts_fresh() -> None:
    reading = described({OLD: ("AWSCURRENT",), THIS: ()})
    raw = payload(
        FailedStep="testSecret",
        Failure={
            "Error": "RotationAbandonedError",
            "Cause": json.dumps(
                {
                    "errorType": "RotationAbandonedError",
                    "errorMessage": f"the pending token of version {THIS} expired",
                }
            ),
        },
    )

    notice, message = notice_of(raw, reading)

    assert message["Rotation"].startswith("Abandoned:")
    assert "next rotation starts fresh" in message["Rotation"]
    assert message["Stages"].endswith("No version carries AWSPENDING.")
    assert f"AWSCURRENT is on version {OLD}; this rotation's version" in message["Stages"]
    assert "starts with a fresh token" in message["NextSteps"]
    assert message["Cause"] == f"the pending token of version {THIS} expired"
    assert notice.subject == "Google token rotation failed at testSecret (google/access-token)"


def test_no_secret_id_means_nothing_was_checked() -> None:
    raw = {
        "Request": {"Step": "createSecret"},
        "FailedStep": INPUT_VALIDATION,
        "Failure": {"Error": "InvalidExecutionInput", "Cause": "needs a SecretId"},
        "ExecutionArn": EXECUTION,
    }

    notice, message = notice_of(raw)

    assert FailureReport.from_payload(raw).secret_id is None
    assert message["SecretId"] == "(none given)"
    assert message["Stages"].startswith("Not checked:")
    assert message["NextSteps"].startswith("Nothing was started.")
    assert notice.subject == "Google token rotation failed: input validation"


# The cause and the rest: bounded, redacted, never the RotationToken.


@pytest.mark.parametrize(
    "secret",
    [ACCESS_TOKEN, JWT, PEM, "1//0gAbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "A" * 64],
    ids=["access-token", "jwt", "pem", "refresh-token", "long-run"],
)
@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "lambda-error-json"])
def test_no_token_shaped_text_survives_in_the_cause(secret: str, wrapped: bool) -> None:
    text = f"Google said: {secret} was refused\n(see the logs)"
    cause = json.dumps({"errorType": "X", "errorMessage": text}) if wrapped else text

    notice, message = notice_of(payload(Failure={"Error": "GoogleResponseError", "Cause": cause}))

    for line in secret.splitlines():
        if "-----" not in line:
            assert line not in notice.message
    assert "<redacted>" in message["Cause"]
    assert message["Cause"].startswith("Google said:")
    assert "\n" not in message["Cause"]


def test_a_huge_cause_is_cut_to_1000_characters() -> None:
    cause = "the step failed: " + "because. " * 4000

    _, message = notice_of(payload(Failure={"Error": "GoogleResponseError", "Cause": cause}))

    assert len(message["Cause"]) <= CAUSE_LIMIT
    assert message["Cause"].endswith("…")


def test_the_notice_never_holds_the_rotation_token() -> None:
    for reading in (None, StagesUnreadable("AwsAccessError"), described({THIS: ("AWSCURRENT",)})):
        notice, _ = notice_of(payload(), reading)
        assert ROTATION_TOKEN not in notice.message
        assert ROTATION_TOKEN not in notice.subject


def test_error_names_are_kept_and_anything_else_is_treated_as_text() -> None:
    lambda_timeout = "Lambda.ClientExecutionTimeoutException"
    _, named = notice_of(payload(Failure={"Error": lambda_timeout, "Cause": "slow"}))
    _, odd = notice_of(payload(Failure={"Error": JWT, "Cause": "odd"}))
    _, missing = notice_of(payload(Failure={}))

    assert named["Error"] == lambda_timeout
    assert JWT not in odd["Error"]
    assert missing["Error"] == "(no error name)"
    assert missing["Cause"] == "(no cause given)"


def test_the_message_names_the_execution_and_links_the_console_in_its_region() -> None:
    _, message = notice_of(payload(), described({THIS: ("AWSCURRENT",)}))

    assert message["ExecutionArn"] == EXECUTION
    assert message["ConsoleUrl"] == (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1"
        f"#/v2/executions/details/{EXECUTION}"
    )
    assert message["SecretId"] == ARN
    assert message["Step"] == "finishSecret"
    assert message["Error"] == "Runtime.ExitError"
    assert message["Cause"] == "the function's process exited before it answered"
    assert message["Summary"] == (
        f"The rotation of secret {ARN} failed at step finishSecret: Runtime.ExitError."
    )


def test_the_console_link_follows_the_partition_and_a_bad_arn_gets_none() -> None:
    china = EXECUTION.replace("arn:aws:", "arn:aws-cn:").replace("eu-west-1", "cn-north-1")
    _, in_china = notice_of(payload(ExecutionArn=china))
    _, unknown = notice_of(payload(ExecutionArn="not an arn\n" * 50))

    assert in_china["ConsoleUrl"].startswith("https://cn-north-1.console.amazonaws.cn/states/")
    assert "ConsoleUrl" not in unknown
    assert len(unknown["ExecutionArn"]) <= 300
    assert "\n" not in unknown["ExecutionArn"]


def test_the_payload_is_what_the_state_machine_reads() -> None:
    notice, _ = notice_of(payload())

    assert notice.as_payload() == {"Subject": notice.subject, "Message": notice.message}


def test_a_refused_token_notice_names_the_version_and_says_it_is_being_replaced() -> None:
    long_name = "team/" + "-".join(["calendar"] * 40)
    arn = f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{long_name}-AbCdEf"
    expires = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)

    notice = compose_refused(arn, long_name, "v" * 36, expires, expires - timedelta(minutes=40))

    assert notice.subject.startswith("Google refused the token in use, replacing it (team/cal")
    assert notice.subject.endswith("...)")
    assert len(notice.subject) <= SUBJECT_LIMIT
    assert notice.subject.isascii()
    message = json.loads(notice.message)
    assert message["RefusedVersionId"] == "v" * 36
    assert message["TokenExpiresAt"] == "2026-03-01T13:00:00Z"
    assert message["NoticedAt"] == "2026-03-01T12:20:00Z"
    assert len(message["SecretId"]) <= 256
    assert "started a rotation at once" in message["Summary"]
