"""The keys Google signs ID tokens with, as the emulator rotates and publishes them, and the
checks Cloud Run's front end makes on a Bearer ID token: kept apart from the emulator's HTTP."""

import base64
import datetime
import json
import re
import secrets
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt
from google.auth import jwt as google_jwt

GOOGLE_ISSUER: Final = "https://accounts.google.com"
# google-auth's verifiers take either spelling of Google's issuer.
GOOGLE_ISSUERS: Final = frozenset({GOOGLE_ISSUER, "accounts.google.com"})
ID_TOKEN_LIFETIME_SECONDS: Final = 3600
# Google's certificates are valid for about two weeks; relying parties do not check it.
_CERTIFICATE_DAYS: Final = 14
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")


class InvalidIdTokenError(Exception):
    """The token is not one Google signed and still valid for the audience (Cloud Run's 401)."""


@dataclass(frozen=True)
class _SigningKey:
    kid: str
    signer: crypt.RSASigner = field(repr=False)
    verifier: crypt.RSAVerifier = field(repr=False)
    certificate_pem: str
    jwk: Mapping[str, str]


class SigningKeys:
    """Google's RS256 ID-token keys: the newest signs; after a rotation the one before it stays
    published (tokens it signed still verify) until the next rotation or retire() drops it.
    The first key is made on first use, so emulators that never sign pay nothing. Thread-safe."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._published: list[_SigningKey] = []
        """Oldest first; the last one signs."""

    def rotate(self) -> str:
        """A new key signs from now on; the current one stays published, older ones are
        dropped. Returns the new key's kid."""
        key = _new_signing_key(self._now())
        with self._lock:
            self._published = [*self._published[-1:], key]
        return key.kid

    def retire(self, kid: str) -> None:
        """Stops publishing a key that no longer signs (tokens it signed stop verifying)."""
        with self._lock:
            kids = [key.kid for key in self._published]
            if kid not in kids:
                raise KeyError(f"no published signing key {kid!r}")
            if kid == kids[-1]:
                raise ValueError("the signing key cannot be retired: rotate() first")
            self._published = [key for key in self._published if key.kid != kid]

    @property
    def published_kids(self) -> tuple[str, ...]:
        """The kids of the published keys, oldest first (the last one signs)."""
        return tuple(key.kid for key in self._keys())

    def sign(self, claims: Mapping[str, object]) -> str:
        """The claims as a JWT signed by the current key, its kid in the header."""
        key = self._keys()[-1]
        token: bytes = google_jwt.encode(key.signer, dict(claims))
        return token.decode("ascii")

    def certificates(self) -> dict[str, str]:
        """https://www.googleapis.com/oauth2/v1/certs: an X.509 certificate (PEM) by kid."""
        return {key.kid: key.certificate_pem for key in self._keys()}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """https://www.googleapis.com/oauth2/v3/certs: the same keys as a JWK set."""
        return {"keys": [dict(key.jwk) for key in self._keys()]}

    def verified_claims(self, token: str) -> Mapping[str, object]:
        """The token's claims once its RS256 signature verifies against a published key (the
        header's kid picks it); times, issuer and audience are the caller's to check."""
        parts = token.split(".")
        if len(parts) != 3 or not all(
            _BASE64URL.fullmatch(part) and len(part) % 4 != 1 for part in parts
        ):
            raise InvalidIdTokenError("not a JWT")
        try:
            header = json.loads(_unbase64url(parts[0]))
            claims = json.loads(_unbase64url(parts[1]))
            signature = _unbase64url(parts[2])
        except ValueError:
            raise InvalidIdTokenError("not a JWT") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise InvalidIdTokenError("not a JWT")
        if header.get("alg") != "RS256":
            raise InvalidIdTokenError("not signed with RS256")
        kid = header.get("kid")
        key = next((key for key in self._keys() if key.kid == kid), None)
        if key is None:
            raise InvalidIdTokenError("signed by no published key")
        signed_section = f"{parts[0]}.{parts[1]}".encode("ascii")
        if not key.verifier.verify(signed_section, signature):
            raise InvalidIdTokenError("bad signature")
        return claims

    def _keys(self) -> list[_SigningKey]:
        with self._lock:
            if not self._published:
                self._published.append(_new_signing_key(self._now()))
            return list(self._published)


def id_token_claims(
    *,
    audience: str,
    unique_id: str,
    email: str | None,
    issued_at: float,
) -> dict[str, object]:
    """The claims of a Google ID token for a service account: `sub` and `azp` its unique id,
    `email` and `email_verified` only when `email` is given, one hour of life."""
    iat = int(issued_at)
    claims: dict[str, object] = {
        "aud": audience,
        "azp": unique_id,
        "exp": iat + ID_TOKEN_LIFETIME_SECONDS,
        "iat": iat,
        "iss": GOOGLE_ISSUER,
        "sub": unique_id,
    }
    if email is not None:
        claims |= {"email": email, "email_verified": True}
    return claims


def check_id_token(
    claims: Mapping[str, object],
    *,
    audiences: Collection[str],
    now: float,
    clock_skew_seconds: int,
) -> None:
    """Raises InvalidIdTokenError unless Google issued the token for one of `audiences` and it is
    live at `now` (emulator time). A trailing slash on the audience is forgiven (unverified:
    how Cloud Run is reported to compare)."""
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise InvalidIdTokenError("not issued by Google")
    iat, exp = _whole_seconds(claims.get("iat")), _whole_seconds(claims.get("exp"))
    if iat is None or exp is None:
        raise InvalidIdTokenError("iat and exp must be whole seconds")
    if now >= exp or iat > now + clock_skew_seconds:
        raise InvalidIdTokenError("expired or not yet valid")
    audience = claims.get("aud")
    accepted = {candidate.rstrip("/") for candidate in audiences}
    if not isinstance(audience, str) or audience.rstrip("/") not in accepted:
        raise InvalidIdTokenError("for another audience")


def _whole_seconds(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _new_signing_key(now: float) -> _SigningKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = secrets.token_hex(20)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    certificate_pem = _self_signed_certificate(private_key, now)
    numbers = private_key.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": kid,
        "n": _base64url_uint(numbers.n),
        "e": _base64url_uint(numbers.e),
    }
    return _SigningKey(
        kid=kid,
        signer=crypt.RSASigner.from_string(pem, key_id=kid),
        verifier=crypt.RSAVerifier.from_string(certificate_pem),
        certificate_pem=certificate_pem,
        jwk=jwk,
    )


def _self_signed_certificate(private_key: rsa.RSAPrivateKey, now: float) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.google.com")])
    start = datetime.datetime.fromtimestamp(now, tz=datetime.UTC) - datetime.timedelta(days=1)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=_CERTIFICATE_DAYS))
        .sign(private_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _base64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unbase64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
