"""Text from outside (Google's error bodies, failure causes) made safe to log, raise and notify."""

import re
from typing import Final

REDACTED: Final = "<redacted>"
_KNOWN_SECRET_SHAPES: Final = re.compile(
    "|".join(
        (
            r"-----BEGIN[^-]*-----.*?(?:-----END[^-]*-----|$)",  # a PEM block, even a cut one
            r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?",  # a JWT or JWT assertion
            r"ya29\.[A-Za-z0-9._-]+",  # a Google access token
            r"1//[A-Za-z0-9_-]+",  # a Google refresh token
        )
    ),
    re.DOTALL,
)
# Any other long opaque run (hex, base64, a PEM body line); applied after the known shapes, so
# that it cannot swallow a known token's start and leave its rest. Dots, hyphens and colons end a
# run: scope URLs, IAM permission names, ARNs and version ids stay readable.
_LONG_RUN: Final = re.compile(r"[A-Za-z0-9+/_=]{32,}")
SHOWN_KEY_ID_LENGTH: Final = 12
"""Key ids in messages are shortened: a 40-hex id would be redacted as secret-shaped, and the
first characters are enough to match one in `gcloud iam service-accounts keys list`."""
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def redact_secrets(text: str) -> str:
    """Every token-, key- or assertion-shaped part of `text` replaced by a marker."""
    return _LONG_RUN.sub(REDACTED, _KNOWN_SECRET_SHAPES.sub(REDACTED, text))


def bounded(text: str, limit: int) -> str:
    """One line of at most `limit` characters: control characters become spaces."""
    line = _CONTROL.sub(" ", text).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def safe_external_text(text: object, limit: int = 200) -> str:
    """Text another party wrote (Google's error_description, say): redacted, one line, bounded."""
    return bounded(redact_secrets(str(text)), limit)


_JSON_KINDS: Final = {dict: "an object", list: "an array", bool: "a boolean", int: "a number"}


def describe_kind(value: object) -> str:
    """What a value someone sent is, without the value itself (it may be huge or sensitive)."""
    if value is None:
        return "nothing (null or absent)"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return _JSON_KINDS.get(type(value), "a number")


def shown_if_short(value: object, limit: int = 40) -> str:
    """A short, printable, token-free string is shown quoted; anything else only described."""
    if (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and value.isascii()
        and value.isprintable()
        and redact_secrets(value) == value
    ):
        return repr(value)
    return describe_kind(value)


def shown_key_id(key_id: str) -> str:
    """A service-account key id as messages show it (not a secret, but shaped like one)."""
    return key_id[:SHOWN_KEY_ID_LENGTH] + ("…" if len(key_id) > SHOWN_KEY_ID_LENGTH else "")
