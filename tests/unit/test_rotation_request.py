"""The rotation request, parsed from the entry Lambda's event and from each step Lambda's payload:
malformed input is refused with a message that names the expected shape and never echoes a value."""

from collections.abc import Callable

import pytest

from rotation_core.errors import InvalidRequestError
from rotation_core.rotation_request import RotationRequest
from rotation_core.steps import Step

VERSION = "5f0d1c2b-3a4e-4f60-9b8a-7c6d5e4f3a21"
ROTATION_TOKEN = "9b0c8d7e-6f5a-4b3c-2d1e-0f9a8b7c6d5e-rt"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:google/token-AbCdEf"
SHAPE = 'a JSON object {"Step": "createSecret", "SecretId": "<name or ARN>"'
STEP_NAMES = ["createSecret", "setSecret", "testSecret", "finishSecret"]  # Secrets Manager's


def for_create(payload: object) -> RotationRequest:
    return RotationRequest.for_step(payload, Step.CREATE)


def as_event(payload: object) -> RotationRequest:
    """The same payload as Secrets Manager's event (which always names its step)."""
    if isinstance(payload, dict):
        payload = {"Step": "createSecret", **payload}
    return RotationRequest.from_rotation_event(payload)


def parse_for(step: Step | None, payload: object) -> RotationRequest:
    """The step Lambda of `step`, or the entry Lambda (which has no step of its own)."""
    if step is None:
        return RotationRequest.from_rotation_event(payload)
    return RotationRequest.for_step(payload, step)


Parser = Callable[[object], RotationRequest]
PARSERS = pytest.mark.parametrize("parse", [for_create, as_event], ids=["for_step", "event"])


# --- what is accepted ---------------------------------------------------------------------------


def test_minimal_step_payload_takes_the_step_of_the_function() -> None:
    request = RotationRequest.for_step(
        {"SecretId": "google/token", "ClientRequestToken": VERSION}, Step.TEST
    )
    assert request == RotationRequest("google/token", VERSION, Step.TEST, manual=False)


def test_full_step_payload_and_extra_keys() -> None:
    request = for_create(
        {
            "SecretId": SECRET_ARN,
            "ClientRequestToken": VERSION,
            "RotationToken": ROTATION_TOKEN,
            "Manual": True,
            "Step": "createSecret",  # the state machine passes more than the step needs
            "Execution": {"Name": "anything"},
        }
    )
    assert request == RotationRequest(SECRET_ARN, VERSION, Step.CREATE, ROTATION_TOKEN, True)


@pytest.mark.parametrize("name", STEP_NAMES)
def test_rotation_event_of_each_secrets_manager_step(name: str) -> None:
    event = {
        "Step": name,
        "SecretId": SECRET_ARN,
        "ClientRequestToken": VERSION,
        "RotationToken": ROTATION_TOKEN,
    }
    request = RotationRequest.from_rotation_event(event)
    assert request.step is not None
    assert request.step.value == name
    assert request == RotationRequest(SECRET_ARN, VERSION, request.step, ROTATION_TOKEN)


@pytest.mark.parametrize("step", list(Step))
def test_step_payload_naming_its_own_step_is_accepted(step: Step) -> None:
    payload = {"Step": step.value, "SecretId": "s", "ClientRequestToken": VERSION}
    assert RotationRequest.for_step(payload, step).step is step


@PARSERS
@pytest.mark.parametrize(
    "token", ["a" * 32, "b" * 64, VERSION, VERSION.replace("-", ""), "!~" * 16]
)
def test_client_request_token_length_bounds_are_inclusive(parse: Parser, token: str) -> None:
    assert parse({"SecretId": "s", "ClientRequestToken": token}).token == token


@PARSERS
@pytest.mark.parametrize(
    "rotation_token",
    ["a" * 36, "Z9-" * 12, "1" * 256, ROTATION_TOKEN],
    ids=["36", "mixed", "256", "uuid-like"],
)
def test_rotation_token_pattern_accepts_letters_digits_hyphens(
    parse: Parser, rotation_token: str
) -> None:
    payload = {"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": rotation_token}
    assert parse(payload).rotation_token == rotation_token


@PARSERS
def test_secret_id_of_secrets_managers_maximum_length_is_accepted(parse: Parser) -> None:
    secret_id = f"{SECRET_ARN[:-6]}{'a' * (2048 - len(SECRET_ARN) + 6)}"
    assert len(secret_id) == 2048
    assert parse({"SecretId": secret_id, "ClientRequestToken": VERSION}).secret_id == secret_id


# --- what is refused ----------------------------------------------------------------------------


@PARSERS
@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (None, "got nothing (null or absent)"),
        ([{"SecretId": "s", "ClientRequestToken": VERSION}], "got an array"),
        ('{"SecretId": "google/token"}', "got a string of 28 characters"),
        (42, "got a number"),
        (4.2, "got a number"),
        (True, "got a boolean"),
    ],
    ids=["null", "list", "json-string", "integer", "float", "boolean"],
)
def test_a_payload_that_is_not_an_object_names_the_expected_shape(
    parse: Parser, payload: object, kind: str
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        parse(payload)
    message = str(raised.value)
    assert message.startswith(f"the request must be {SHAPE}")
    assert message.endswith(kind)
    assert "google/token" not in message


@PARSERS
@pytest.mark.parametrize("length", [2049, 100_000])
def test_secret_id_longer_than_secrets_manager_allows_is_refused_unquoted(
    parse: Parser, length: int
) -> None:
    secret_id = ("LEAK-" * length)[:length]
    with pytest.raises(InvalidRequestError) as raised:
        parse({"SecretId": secret_id, "ClientRequestToken": VERSION})
    message = str(raised.value)
    assert f"'SecretId' is {length} characters long" in message
    assert "at most 2048" in message
    assert "LEAK" not in message
    assert len(message) < 200


@PARSERS
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"ClientRequestToken": VERSION}, "'SecretId' must be .*got nothing"),
        ({"SecretId": "", "ClientRequestToken": VERSION}, "'SecretId' must be"),
        ({"SecretId": " \t", "ClientRequestToken": VERSION}, "'SecretId' must be"),
        ({"SecretId": None, "ClientRequestToken": VERSION}, "'SecretId' must be"),
        ({"SecretId": ["google/token"], "ClientRequestToken": VERSION}, "got an array"),
        (
            {"SecretId": "s"},
            r"'ClientRequestToken' must be .*\(32 to 64 printable characters, no spaces\)",
        ),
        ({"SecretId": "s", "ClientRequestToken": "a" * 31}, "'ClientRequestToken' must be"),
        ({"SecretId": "s", "ClientRequestToken": "a" * 65}, "'ClientRequestToken' must be"),
        ({"SecretId": "s", "ClientRequestToken": f"{'a' * 20} {'a' * 20}"}, "'ClientRequest"),
        ({"SecretId": "s", "ClientRequestToken": f"{'a' * 40}\n"}, "'ClientRequestToken'"),
        ({"SecretId": "s", "ClientRequestToken": "\u00e9" * 40}, "'ClientRequestToken'"),
        ({"SecretId": "s", "ClientRequestToken": 12345678901234567890123456789012345}, "'Client"),
        ({"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": ""}, "'RotationToken"),
        (
            {"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": "a" * 35},
            r"'RotationToken' must be .*\(36 to 256 letters, digits and hyphens\)",
        ),
        ({"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": "a" * 257}, "'Rotat"),
        (
            {"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": "a_b" * 12},
            "'RotationToken' must be",
        ),
        (
            {"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": f"{'a' * 40}\n"},
            "'RotationToken' must be",
        ),
        ({"SecretId": "s", "ClientRequestToken": VERSION, "RotationToken": 7}, "'RotationToken'"),
        ({"SecretId": "s", "ClientRequestToken": VERSION, "Manual": "true"}, "'Manual' must be"),
        ({"SecretId": "s", "ClientRequestToken": VERSION, "Manual": 1}, "'Manual' must be"),
        ({"SecretId": "s", "ClientRequestToken": VERSION, "Manual": None}, "'Manual' must be"),
    ],
    ids=[
        "secret-id-missing",
        "secret-id-empty",
        "secret-id-blank",
        "secret-id-null",
        "secret-id-list",
        "token-missing",
        "token-31",
        "token-65",
        "token-with-space",
        "token-with-newline",
        "token-non-ascii",
        "token-number",
        "rotation-token-empty",
        "rotation-token-35",
        "rotation-token-257",
        "rotation-token-underscore",
        "rotation-token-newline",
        "rotation-token-number",
        "manual-string",
        "manual-int",
        "manual-null",
    ],
)
def test_invalid_payload_is_a_clear_invalid_request_error(
    parse: Parser, payload: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse(payload)


@pytest.mark.parametrize(
    ("given", "function"),
    [(given, function) for given in Step for function in Step if given is not function],
    ids=lambda step: step.value,
)
def test_step_payload_naming_another_step_is_refused(given: Step, function: Step) -> None:
    payload = {"Step": given.value, "SecretId": "s", "ClientRequestToken": VERSION}
    with pytest.raises(InvalidRequestError) as raised:
        RotationRequest.for_step(payload, function)
    message = str(raised.value)
    assert f"names step {given.value!r}" in message
    assert f"this is the {function.value} function" in message


def test_rotation_event_without_a_step_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        RotationRequest.from_rotation_event({"SecretId": "s", "ClientRequestToken": VERSION})
    assert str(raised.value).startswith(f"'Step' is missing: a rotation event is {SHAPE}")


@pytest.mark.parametrize("step", STEP_NAMES)
def test_rotation_event_marked_manual_is_refused(step: str) -> None:
    event = {"Step": step, "SecretId": "s", "ClientRequestToken": VERSION, "Manual": True}
    with pytest.raises(InvalidRequestError, match="'Manual' is not part of a Secrets Manager"):
        RotationRequest.from_rotation_event(event)


@PARSERS
@pytest.mark.parametrize(
    ("step", "shown"),
    [
        ("CreateSecret", "got 'CreateSecret'"),
        ("create_secret", "got 'create_secret'"),
        ("", "got a string of 0 characters"),
        ("x" * 41, "got a string of 41 characters"),
        ("ya29.a0AfB_x", "got a string of 12 characters"),
        ("createSecret\n", "got a string of 13 characters"),
        ("cr\u00e9ateSecret", "got a string of 12 characters"),
        (1, "got a number"),
        (["createSecret"], "got an array"),
        ({"Name": "createSecret"}, "got an object"),
        (False, "got a boolean"),
    ],
    ids=[
        "wrong-case",
        "snake-case",
        "empty",
        "too-long-to-show",
        "token-shaped",
        "control-character",
        "non-ascii",
        "number",
        "array",
        "object",
        "boolean",
    ],
)
def test_unknown_step_is_named_only_when_short_and_printable(
    parse: Parser, step: object, shown: str
) -> None:
    payload = {"SecretId": "s", "ClientRequestToken": VERSION, "Step": step}
    with pytest.raises(InvalidRequestError) as raised:
        parse(payload)
    message = str(raised.value)
    assert message.startswith(
        "'Step' must be one of createSecret, setSecret, testSecret, finishSecret (camelCase)"
    )
    assert message.endswith(shown)


# --- no value is ever echoed --------------------------------------------------------------------

SECRET_ID = "google/LEAKED-SECRET-ID"
CLIENT_TOKEN = "LEAKED-CLIENT-TOKEN-0123456789abcdef"
BAD_ROTATION_TOKEN = "LEAKED_ROTATION_TOKEN_0123456789abcdef"  # underscores: refused
GOOD_ROTATION_TOKEN = "LEAKED-ROTATION-TOKEN-0123456789abcdef"
MARK = "LEAKED"


@pytest.mark.parametrize(
    ("payload", "step"),
    [
        ({"SecretId": {"Name": SECRET_ID}, "ClientRequestToken": CLIENT_TOKEN}, Step.CREATE),
        ({"SecretId": SECRET_ID, "ClientRequestToken": f"{CLIENT_TOKEN} x"}, Step.CREATE),
        ({"SecretId": SECRET_ID, "ClientRequestToken": CLIENT_TOKEN * 3}, Step.CREATE),
        ({"SecretId": SECRET_ID, "ClientRequestToken": CLIENT_TOKEN[:31]}, Step.CREATE),
        (
            {
                "SecretId": SECRET_ID,
                "ClientRequestToken": CLIENT_TOKEN,
                "RotationToken": BAD_ROTATION_TOKEN,
            },
            Step.CREATE,
        ),
        (
            {
                "SecretId": SECRET_ID,
                "ClientRequestToken": CLIENT_TOKEN,
                "RotationToken": GOOD_ROTATION_TOKEN,
                "Manual": "yes",
            },
            Step.CREATE,
        ),
        (
            {
                "Step": "setSecret",
                "SecretId": SECRET_ID,
                "ClientRequestToken": CLIENT_TOKEN,
                "RotationToken": GOOD_ROTATION_TOKEN,
            },
            Step.CREATE,
        ),
        (
            {
                "Step": f"{MARK}-step-" * 4,
                "SecretId": SECRET_ID,
                "ClientRequestToken": CLIENT_TOKEN,
            },
            Step.CREATE,
        ),
        (
            {
                "Step": "createSecret",
                "SecretId": SECRET_ID,
                "ClientRequestToken": CLIENT_TOKEN,
                "Manual": True,
            },
            None,
        ),
        ({"SecretId": SECRET_ID, "ClientRequestToken": CLIENT_TOKEN}, None),
        (f'{{"SecretId": "{SECRET_ID}"}}', Step.CREATE),
    ],
    ids=[
        "secret-id-object",
        "token-with-space",
        "token-too-long",
        "token-too-short",
        "rotation-token-bad",
        "manual-bad",
        "step-mismatch",
        "step-unknown-long",
        "event-manual",
        "event-without-step",
        "payload-string",
    ],
)
def test_no_message_echoes_the_secret_id_or_a_token(payload: object, step: Step | None) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        parse_for(step, payload)
    assert MARK not in str(raised.value)
    assert MARK not in repr(raised.value)


def test_repr_never_shows_the_rotation_token() -> None:
    request = RotationRequest.from_rotation_event(
        {
            "Step": "testSecret",
            "SecretId": SECRET_ARN,
            "ClientRequestToken": VERSION,
            "RotationToken": GOOD_ROTATION_TOKEN,
        }
    )

    assert request.rotation_token == GOOD_ROTATION_TOKEN
    for text in (repr(request), str(request), f"{request}", repr([request]), repr({1: request})):
        assert MARK not in text
        assert SECRET_ARN in text
        assert VERSION in text
        assert "testSecret" in text
