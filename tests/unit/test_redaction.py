"""Text from outside (Google's error bodies) made safe for logs, errors and notices: tokens, keys
and assertions removed, one line, bounded; and key-file errors that never quote the file."""

import json

import pytest

from rotation_core.errors import InvalidServiceAccountKeyError
from rotation_core.redaction import (
    bounded,
    describe_kind,
    redact_secrets,
    safe_external_text,
    shown_if_short,
)
from rotation_core.service_account_key import parse_service_account_key

ACCESS_TOKEN = "ya29.a0AfB_byC3xQ9zLmN4pR7sT2vW8yK1hJ6gF5dS0aZ-Xc.Vb_Nm0123456789"
REFRESH_TOKEN = "1//0gLmN4pR7sT2vW8yK1hJ6gF5dS0aZXcVbNm-qwerty_uiop"
JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImFiYzEyMyIsInR5cCI6IkpXVCJ9"
    ".eyJpc3MiOiJyb3RhdG9yQGRlbW8tcHJvamVjdC5pYW0uZ3NlcnZpY2VhY2NvdW50LmNvbSJ9"
    ".c2lnbmF0dXJlLW9mLXRoZS1hc3NlcnRpb24t-MTIz_NDU2Nzg5MA"
)
PEM_BODY = [
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu",
    "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ",
]
PEM = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(PEM_BODY) + "\n-----END PRIVATE KEY-----\n"
SECRET_PIECES = [ACCESS_TOKEN, REFRESH_TOKEN, JWT, *JWT.split("."), PEM, *PEM_BODY]
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:google/access-token-AbCdEf"
VERSION = "5f0d1c2b-3a4e-4f60-9b8a-7c6d5e4f3a21"
ACCOUNT = "rotator@demo-project.iam.gserviceaccount.com"


def leaked_pieces(text: str) -> list[str]:
    """Any secret piece, or any 12-character stretch of one, still in `text`."""
    return [
        piece[start : start + 12]
        for piece in SECRET_PIECES
        for start in range(0, max(len(piece) - 11, 1), 6)
        if piece[start : start + 12] in text
    ]


def test_a_google_error_description_quoting_secrets_is_made_safe() -> None:
    body = json.loads(
        json.dumps(
            {
                "error": "invalid_grant",
                "error_description": (
                    f"Invalid JWT Signature.\nassertion: {JWT}\r\n"
                    f"previous access_token: {ACCESS_TOKEN}, refresh token {REFRESH_TOKEN}\n"
                    f"key:\n{PEM}\tEnd of report."
                ),
            }
        )
    )

    safe = safe_external_text(body["error_description"], 300)

    assert leaked_pieces(safe) == []
    assert "\n" not in safe
    assert "\r" not in safe
    assert "\t" not in safe
    assert safe.isprintable()
    assert len(safe) <= 300
    assert safe.startswith("Invalid JWT Signature. assertion: <redacted> previous access_token")
    assert "refresh token <redacted> key: <redacted>" in safe
    assert safe.endswith("End of report.")


@pytest.mark.parametrize(
    "secret",
    [
        ACCESS_TOKEN,
        REFRESH_TOKEN,
        JWT,
        JWT.rsplit(".", 1)[0] + ".",  # an unsigned assertion
        PEM,
        PEM.replace("\n", "\\n"),  # as quoted inside JSON
        "\n".join(PEM_BODY),  # the key body without its BEGIN line
        "0123456789abcdef" * 2,  # an opaque 32-character key
        "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8=",  # opaque base64
    ],
    ids=[
        "access-token",
        "refresh-token",
        "jwt",
        "unsigned-jwt",
        "pem",
        "pem-json-escaped",
        "pem-body-only",
        "opaque-hex",
        "base64",
    ],
)
def test_each_secret_shape_is_redacted_in_its_entirety(secret: str) -> None:
    safe = safe_external_text(f"before {secret} after", 1000)

    assert safe.startswith("before <redacted>")
    assert safe.endswith("after")
    assert all(part not in safe for part in secret.split() if len(part) >= 8)
    assert leaked_pieces(safe) == []


@pytest.mark.parametrize(
    "glued",
    [
        f"tokeninfo?access_token={ACCESS_TOKEN}",
        f"refresh_token={REFRESH_TOKEN}",
        f"assertion={JWT}",
    ],
    ids=["access-token", "refresh-token", "jwt"],
)
def test_a_token_glued_to_its_parameter_name_is_redacted_whole(glued: str) -> None:
    """The generic long-run rule must not start at 'name=', stop at the token's first '-' and
    leave the rest of the token in the text."""
    safe = safe_external_text(f"sent {glued} to Google", 1000)
    assert glued[-8:] not in safe
    assert leaked_pieces(safe) == []
    assert safe.endswith("<redacted> to Google")


def test_a_pem_block_cut_short_is_redacted_to_the_end() -> None:
    """A body truncated by Google (or by a bound) has no END line: all of its rest goes."""
    cut = PEM[: PEM.index("-----END")]

    safe = safe_external_text(f"bad key {cut}", 1000)

    assert safe == "bad key <redacted>"


@pytest.mark.parametrize(
    "text",
    [
        "Invalid grant: account not found",
        f"secret {SECRET_ARN} version {VERSION}",
        f"{ACCOUNT} lacks permission to sign a JWT for project demo-project-123456",
        "Token has been expired or revoked.",
        "quota exceeded for quota metric 'Requests' and limit 'Requests per minute'",
    ],
    ids=["words", "arn-and-version-id", "e-mail-and-permission", "sentence", "quotes"],
)
def test_ordinary_text_ids_and_arns_survive(text: str) -> None:
    assert redact_secrets(text) == text
    assert safe_external_text(text, 1000) == text


@pytest.mark.parametrize("limit", [1, 2, 10, 64, 200])
def test_output_never_exceeds_the_limit(limit: int) -> None:
    text = f"{'word ' * 400}{ACCESS_TOKEN}\n{PEM}"

    safe = safe_external_text(text, limit)

    assert len(safe) <= limit
    assert safe.endswith("…")
    assert leaked_pieces(safe) == []


def test_default_limit_is_two_hundred_characters() -> None:
    safe = safe_external_text("word " * 100)
    assert len(safe) == 200
    assert safe.endswith("word…")


def test_secrets_are_redacted_before_the_text_is_cut() -> None:
    """Cutting first could leave a token's head shorter than any shape the redaction knows."""
    opaque = "Q" * 30 + "0123456789abcdefghijABCDEFGHIJ"
    text = f"{'word ' * 34}{opaque} tail"  # a 190 limit falls 19 characters into the token

    safe = safe_external_text(text, 190)

    assert safe == f"{'word ' * 34}<redacted> tail"


def test_safe_external_text_accepts_any_value() -> None:
    assert safe_external_text({"error": ACCESS_TOKEN}) == "{'error': '<redacted>'}"
    assert safe_external_text(None) == "None"


def test_bounded_makes_one_line_and_keeps_short_text_whole() -> None:
    assert bounded("  a\nb\r\n\tc\x00d\x7fe  ", 100) == "a b c d e"
    assert bounded("x" * 50, 50) == "x" * 50
    assert bounded("x" * 51, 50) == "x" * 49 + "…"
    assert bounded("word " * 20, 11) == "word word…"


# --- values someone sent: described, shown only when short, printable and token-free ---------


@pytest.mark.parametrize(
    ("value", "described"),
    [
        (None, "nothing (null or absent)"),
        ("", "a string of 0 characters"),
        (ACCESS_TOKEN, f"a string of {len(ACCESS_TOKEN)} characters"),
        ({"token": ACCESS_TOKEN}, "an object"),
        ([ACCESS_TOKEN], "an array"),
        (True, "a boolean"),
        (12345, "a number"),
        (1.5, "a number"),
    ],
    ids=["null", "empty", "string", "object", "array", "boolean", "integer", "float"],
)
def test_describe_kind_never_includes_the_value(value: object, described: str) -> None:
    assert describe_kind(value) == described


def test_shown_if_short_quotes_a_short_printable_word() -> None:
    assert shown_if_short("CreateSecret") == "'CreateSecret'"
    assert shown_if_short("word-" * 8) == repr("word-" * 8)  # 40 characters
    assert shown_if_short("x" * 9, limit=8) == "a string of 9 characters"


@pytest.mark.parametrize(
    "value",
    ["", "x" * 41, "caf\u00e9", "step\nname", "ya29.a0AfB_x", "1//0gAbCdEf", ACCESS_TOKEN, 7],
    ids=[
        "empty",
        "too-long",
        "non-ascii",
        "control",
        "access-token",
        "refresh-token",
        "long",
        "int",
    ],
)
def test_shown_if_short_only_describes_anything_else(value: object) -> None:
    shown = shown_if_short(value)
    assert shown == describe_kind(value)
    if isinstance(value, str) and value:
        assert value not in shown


# --- key files: an error never quotes what the file holds ---------------------------------------


def key_file(**fields: object) -> str:
    document: dict[str, object] = {
        "type": "service_account",
        "client_email": ACCOUNT,
        "client_id": "112233445566778899000",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": PEM,
    }
    return json.dumps(document | fields)


@pytest.mark.parametrize(
    "kind", ["authorized_user", "external_account", REFRESH_TOKEN, "Service_Account"]
)
def test_key_file_of_another_type_is_refused_without_quoting_the_type(kind: str) -> None:
    with pytest.raises(InvalidServiceAccountKeyError) as raised:
        parse_service_account_key(key_file(type=kind), "google/key")

    message = str(raised.value)
    assert kind not in message
    assert "is not a service-account key" in message
    assert "'google/key'" in message
    assert leaked_pieces(message) == []


@pytest.mark.parametrize(
    "readable",
    [
        "https://www.googleapis.com/auth/cloud-platform",
        "iam.serviceAccounts.getAccessToken",
        "prod/team-alpha/very-long-service-name/google-access-token",
    ],
    ids=["scope-url", "iam-permission", "long-secret-name"],
)
def test_what_an_operator_needs_to_read_survives(readable: str) -> None:
    text = f"invalid_scope: {readable} was refused"
    assert safe_external_text(text, 1000) == text
