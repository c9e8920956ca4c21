"""Text from outside (Google's error bodies, failure causes) made safe to log, raise and notify."""

import re
from typing import Final

REDACTED: Final = "<redacted>"
_SECRET_SHAPES: Final = re.compile(
    "|".join(
        (
            r"-----BEGIN[^-]*-----.*?(?:-----END[^-]*-----|$)",  # a PEM block, even a cut one
            r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?",  # a JWT or JWT assertion
            r"ya29\.[A-Za-z0-9._-]+",  # a Google access token
            r"1//[A-Za-z0-9_-]+",  # a Google refresh token
            # Any other long run of token alphabet without the separators ids and ARNs have.
            r"[A-Za-z0-9+/_=.]{32,}",
        )
    ),
    re.DOTALL,
)
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")


def redact_secrets(text: str) -> str:
    """Every token-, key- or assertion-shaped part of `text` replaced by a marker."""
    return _SECRET_SHAPES.sub(REDACTED, text)


def bounded(text: str, limit: int) -> str:
    """One line of at most `limit` characters: control characters become spaces."""
    line = _CONTROL.sub(" ", text).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def safe_external_text(text: object, limit: int = 200) -> str:
    """Text another party wrote (Google's error_description, say): redacted, one line, bounded."""
    return bounded(redact_secrets(str(text)), limit)
