"""A google-auth `Credentials` whose token is the AWSCURRENT version of a rotated token secret."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)
from google.auth import credentials

from google_token_secret.errors import (
    AWSConfigurationError,
    ExpiredTokenError,
    InvalidTokenSecretError,
    PlaceholderTokenError,
    TokenSecretAccessDeniedError,
    TokenSecretError,
    TokenSecretNotFoundError,
    TokenSecretUnavailableError,
)

CURRENT_STAGE: Final = "AWSCURRENT"
ACCESS_TOKEN_FIELD: Final = "GOOGLE_ACCESS_TOKEN"
ID_TOKEN_FIELD: Final = "GOOGLE_ID_TOKEN"

LATE_ROTATION_RECHECK_SECONDS: Final = 30.0
"""Inside the margin with no fresher version yet: how long to keep the held token before asking
again. The token still works, so a late rotation costs two reads a minute, not one per request."""

FAILED_READ_RECHECK_SECONDS: Final = 5.0
"""After a read that left no usable token: how long every caller gets the same error without a
new request, so a busy process cannot flood Secrets Manager while a rotation is failing."""

_TRANSIENT_CODES: Final = frozenset(
    {"ThrottlingException", "InternalServiceError", "InternalFailure", "ServiceUnavailable"}
)

_CREDENTIAL_ERRORS: Final = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    SSOError,
    TokenRetrievalError,
)
"""botocore found no AWS credentials, or could not load or refresh the ones configured."""

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class _HeldToken:
    """One version's token and what decides when to read the secret again."""

    token: str = field(repr=False)
    expires_at: float
    """Epoch seconds."""
    version_id: str
    service_account: str | None
    scopes: tuple[str, ...]
    audience: str | None
    read_again_at: float
    """Epoch seconds from which the next use reads the secret again."""

    @property
    def expiry(self) -> datetime:
        # google-auth compares `expiry` with a naive UTC clock; an aware value makes it raise.
        return datetime.fromtimestamp(self.expires_at, UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class _TokenKind:
    """What a token secret holds, and who reads it: the words its errors use."""

    field: str
    name: str
    reader: str
    """The class that reads this kind."""
    kept_in: str
    """Which of the stack's secrets hold this kind."""
    if_refused: str
    """What a refusal of a token the secret still holds means."""


_ACCESS_TOKEN: Final = _TokenKind(
    field=ACCESS_TOKEN_FIELD,
    name="access token",
    reader="SecretCredentials",
    kept_in="one without the tag token-rotation:token-kind=id-token: for Google APIs",
    if_refused="if Google keeps refusing it, the token was revoked; rotate the secret",
)
_ID_TOKEN: Final = _TokenKind(
    field=ID_TOKEN_FIELD,
    name="ID token",
    reader="SecretIdTokenCredentials",
    kept_in=(
        "one tagged token-rotation:token-kind=id-token and token-rotation:audience=<the "
        "service's URL>: for Cloud Run, Cloud Functions or IAP"
    ),
    if_refused=(
        "if the service keeps refusing it, the service expects another audience, or the "
        "token's account may not invoke it"
    ),
)


def _other_kind(kind: _TokenKind) -> _TokenKind:
    return _ID_TOKEN if kind is _ACCESS_TOKEN else _ACCESS_TOKEN


@dataclass(frozen=True)
class _FailedRead:
    error: TokenSecretError
    until: float


class _TokenSecretCredentials(credentials.Credentials):
    """The reading of a token secret that both kinds share: when to read, one read at a time,
    what a failed read leaves, and the errors. A subclass says which kind of token it reads."""

    _KIND: ClassVar[_TokenKind]

    def __init__(
        self,
        secret_id: str,
        *,
        client: Any = None,
        region_name: str | None = None,
        refresh_margin_seconds: float = 300,
    ) -> None:
        if not isinstance(secret_id, str) or not secret_id:
            raise ValueError("secret_id must be the token secret's name or ARN")
        if not 0 <= refresh_margin_seconds < 3600:
            raise ValueError(
                "refresh_margin_seconds must be from 0 to 3599: a margin of a token's whole life "
                "would read the secret on every request"
            )
        self._held: _HeldToken | None = None
        self._failed: _FailedRead | None = None
        self._reads = 0
        self._read_lock = threading.Lock()
        super().__init__()  # type: ignore[no-untyped-call]
        self._secret_id = secret_id
        self._client = (
            client
            if client is not None
            else _client_for(secret_id, region_name, type(self).__name__)
        )
        self._margin = float(refresh_margin_seconds)

    @property
    def secret_id(self) -> str:
        return self._secret_id

    @property
    def token(self) -> str:
        """The token of the secret's AWSCURRENT version, read again when due."""
        held = self._held
        if held is not None and time.time() < held.read_again_at:
            return held.token
        return self._read(forced=False).token

    @token.setter
    def token(self, value: None) -> None:
        # google-auth's constructor clears the token; anything else would bypass the secret.
        if value is not None:
            raise AttributeError(
                f"{type(self).__name__}.token comes from the secret; it cannot be set"
            )

    @property
    def expiry(self) -> datetime:
        """When the token expires, as google-auth expects it: a naive datetime in UTC."""
        held = self._held
        if held is not None and time.time() < held.read_again_at:
            return held.expiry
        return self._read(forced=False).expiry

    @expiry.setter
    def expiry(self, value: None) -> None:
        if value is not None:
            raise AttributeError(
                f"{type(self).__name__}.expiry comes from the secret; it cannot be set"
            )

    @property
    def version_id(self) -> str:
        """The secret version the token comes from: it changes with every rotation."""
        held = self._held
        if held is not None and time.time() < held.read_again_at:
            return held.version_id
        return self._read(forced=False).version_id

    @property
    def service_account_email(self) -> str | None:
        return self._read_if_due().service_account

    def refresh(self, request: Any) -> None:  # noqa: ARG002 - google-auth's signature
        """Read the secret again now, as google-auth transports ask after a 401."""
        self._read(forced=True)

    def before_request(self, request: Any, method: str, url: str, headers: Any) -> None:  # noqa: ARG002
        # Not google-auth's threshold: this reads the secret only when this margin says so.
        self.apply(headers)  # type: ignore[no-untyped-call]

    def get_cred_info(self) -> dict[str, str]:
        info = {
            "credential_source": f"AWS Secrets Manager secret {self._secret_id}",
            "credential_type": f"{self._KIND.name} read from AWS Secrets Manager",
        }
        held = self._held
        if held is not None and held.service_account:
            info["principal"] = held.service_account
        return info

    def _read_if_due(self) -> _HeldToken:
        held = self._held
        if held is not None and time.time() < held.read_again_at:
            return held
        return self._read(forced=False)

    def _read(self, *, forced: bool) -> _HeldToken:
        reads_before_waiting = self._reads
        with self._read_lock:
            held, now = self._held, time.time()
            if held is not None and self._reads != reads_before_waiting:
                return held  # another thread read the secret while this one waited
            if not forced:
                if held is not None and now < held.read_again_at:
                    return held
                failed = self._failed
                if failed is not None and now < failed.until:
                    raise failed.error
            try:
                fresh = self._fetch(held, now)
            except TokenSecretError as error:
                self._failed = _FailedRead(error, now + FAILED_READ_RECHECK_SECONDS)
                raise
            self._held, self._failed = fresh, None
            self._reads += 1
            return fresh

    def _fetch(self, held: _HeldToken | None, now: float) -> _HeldToken:
        try:
            answer = self._client.get_secret_value(
                SecretId=self._secret_id, VersionStage=CURRENT_STAGE
            )
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in _TRANSIENT_CODES or status >= 500:
                return self._keep_or_raise(held, now, _unreachable(self._secret_id, str(error)))
            raise self._refusal(code, error) from None
        except _CREDENTIAL_ERRORS as error:
            return self._keep_or_raise(held, now, _no_credentials(self._secret_id, error))
        except BotoCoreError as error:
            return self._keep_or_raise(held, now, _unreachable(self._secret_id, str(error)))
        fresh = self._parse(answer, now)
        if held is None or fresh.version_id != held.version_id:
            _LOGGER.debug(
                "Read token secret %s version %s, expiring at %s",
                self._secret_id,
                fresh.version_id,
                fresh.expiry.isoformat(),
            )
        elif fresh.expires_at - now <= self._margin:
            _LOGGER.warning(
                "Token secret %s still holds version %s, which expires in %d s: its rotation "
                "is late or failing; using it until a newer one is stored",
                self._secret_id,
                fresh.version_id,
                fresh.expires_at - now,
            )
        else:
            _LOGGER.warning(
                "Asked to refresh, but token secret %s still holds version %s (expiring in "
                "%d s): %s",
                self._secret_id,
                fresh.version_id,
                fresh.expires_at - now,
                self._KIND.if_refused,
            )
        return fresh

    def _keep_or_raise(
        self, held: _HeldToken | None, now: float, problem: TokenSecretError
    ) -> _HeldToken:
        """A read that failed before Secrets Manager could answer: keep serving a token that
        still lives (the read is tried again within 30 s), else raise `problem`."""
        if held is not None and now < held.expires_at:
            _LOGGER.warning(
                "%s; using the token held, which expires in %d s",
                problem,
                held.expires_at - now,
            )
            recheck = min(LATE_ROTATION_RECHECK_SECONDS, held.expires_at - now)
            return replace(held, read_again_at=now + recheck)
        raise problem from None  # its message holds what botocore said

    def _refusal(self, code: str, error: ClientError) -> TokenSecretError:
        secret, aws_says = self._secret_id, error.response.get("Error", {}).get("Message", "")
        if code == "AccessDeniedException":
            return TokenSecretAccessDeniedError(
                f"This application's AWS role may not read the token secret {secret}. Allow it "
                "secretsmanager:GetSecretValue on the secret's ARN (the stack's TokenSecretArn "
                "output), and kms:Decrypt on the secret's KMS key if it uses a customer-managed "
                f"key. AWS says: {aws_says}"
            )
        if code == "DecryptionFailure":
            return TokenSecretAccessDeniedError(
                f"Secrets Manager could not decrypt the token secret {secret} for this "
                "application: allow its AWS role kms:Decrypt on the secret's KMS key (with the "
                f"condition kms:ViaService secretsmanager.<region>.amazonaws.com). AWS says: "
                f"{aws_says}"
            )
        if code == "ResourceNotFoundException":
            region = getattr(getattr(self._client, "meta", None), "region_name", None)
            return TokenSecretNotFoundError(
                f"No token secret {secret} in region {region}, or it has no AWSCURRENT version: "
                "check the name (the stack's TokenSecretArn output) and AWS_REGION"
            )
        return TokenSecretError(f"Reading the token secret {secret} failed: {code}: {aws_says}")

    def _parse(self, answer: Mapping[str, Any], now: float) -> _HeldToken:
        secret, kind = self._secret_id, self._KIND
        other = _other_kind(kind)
        try:
            document = json.loads(answer["SecretString"])
        except (KeyError, ValueError):
            raise InvalidTokenSecretError(
                f"The secret {secret} holds no JSON string: is it the token secret (the stack's "
                "TokenSecretArn output), not the service-account key secret?"
            ) from None
        if not isinstance(document, dict):
            document = {}
        token = document.get(kind.field)
        if not token and document.get(other.field):
            raise InvalidTokenSecretError(
                f"The secret {secret} holds an {other.name} ({other.field}), not an "
                f"{kind.name}: read it with {other.reader}, or point {kind.reader} at a token "
                f"secret that holds an {kind.name} ({kind.kept_in})"
            )
        if kind.field not in document and other.field not in document:
            raise InvalidTokenSecretError(
                f"The secret {secret} has no {kind.field} field: is it the token secret "
                "(the stack's TokenSecretArn output)?"
            )
        if token == "" or (token is None and document.get(other.field) == ""):
            # At deploy the stack writes an empty token, of either kind's field.
            raise PlaceholderTokenError(
                f"The token secret {secret} still holds the placeholder written when the stack "
                "was deployed: no rotation has succeeded yet. Store the service-account key (or "
                "finish the keyless set-up), then rotate once with `aws secretsmanager "
                f"rotate-secret --secret-id {secret}`; the stack's failure topic says why a "
                "rotation failed"
            )
        if not isinstance(token, str):
            raise InvalidTokenSecretError(f"Field {kind.field} of {secret} must be a string")
        expires_at = _epoch_seconds(document.get("expires_at"), secret)
        if expires_at <= now:
            raise ExpiredTokenError(
                f"The newest token in {secret} expired at {document['expires_at']} "
                f"({round((now - expires_at) / 60)} min ago) and the secret holds no fresher "
                "one: its rotation is failing. Look at the failure notices on the stack's "
                "FailureTopic, the failed executions (`aws stepfunctions list-executions "
                "--state-machine-arn <RotationStateMachineArn> --status-filter FAILED`) and the "
                "secret's token-rotation-status:* tags (`aws secretsmanager describe-secret "
                f"--secret-id {secret}`)"
            )
        read_again_at = expires_at - self._margin
        if read_again_at <= now:
            read_again_at = now + min(LATE_ROTATION_RECHECK_SECONDS, expires_at - now)
        scopes = document.get("scopes")
        service_account = document.get("service_account")
        audience = document.get("audience")
        held = _HeldToken(
            token=token,
            expires_at=expires_at,
            version_id=str(answer.get("VersionId", "")),
            service_account=service_account if isinstance(service_account, str) else None,
            scopes=tuple(s for s in scopes if isinstance(s, str))
            if isinstance(scopes, list)
            else (),
            audience=audience if isinstance(audience, str) else None,
            read_again_at=read_again_at,
        )
        self._check(held)
        return held

    def _check(self, held: _HeldToken) -> None:
        """Refuse, with an InvalidTokenSecretError, a token this reader was not made for."""


class SecretCredentials(_TokenSecretCredentials):
    """Credentials for any Google client library, read from a token secret's AWSCURRENT version.

    The secret is read on first use and again only when the token comes within
    `refresh_margin_seconds` of its `expires_at` (the rotation will have stored a newer one by
    then), or when `refresh` is called, as transports do on a 401. In between, `token` costs
    no I/O. One instance may be shared by any number of threads: concurrent callers that find
    the token due wait for a single read.
    """

    _KIND = _ACCESS_TOKEN

    @property
    def scopes(self) -> tuple[str, ...]:
        return self._read_if_due().scopes


class SecretIdTokenCredentials(_TokenSecretCredentials):
    """A Google-signed ID token for one audience (a Cloud Run or Cloud Functions URL, an IAP
    client ID), read from an ID-token secret's AWSCURRENT version exactly as SecretCredentials
    reads an access token: `AuthorizedSession(SecretIdTokenCredentials(...))` sends it as
    `Authorization: Bearer`, which is what Cloud Run, Cloud Functions and IAP check.

    Given `audience`, the secret's audience must be that one: a secret minted for another
    service is refused with an error naming both, instead of the service's 401.
    """

    _KIND = _ID_TOKEN

    def __init__(
        self,
        secret_id: str,
        *,
        audience: str | None = None,
        client: Any = None,
        region_name: str | None = None,
        refresh_margin_seconds: float = 300,
    ) -> None:
        if audience is not None and (not isinstance(audience, str) or not audience):
            raise ValueError(
                "audience must be the URL (or IAP client ID) the token is for, or None"
            )
        self._expected_audience = audience
        super().__init__(
            secret_id,
            client=client,
            region_name=region_name,
            refresh_margin_seconds=refresh_margin_seconds,
        )

    @property
    def audience(self) -> str:
        """The audience the secret's ID token is for: the service that accepts it."""
        audience = self._read_if_due().audience
        assert audience is not None  # _check refuses a token without one
        return audience

    def _check(self, held: _HeldToken) -> None:
        if held.audience is None:
            raise InvalidTokenSecretError(
                f"The ID-token secret {self._secret_id} has no audience field: it was not "
                "written by the rotation; rotate it with `aws secretsmanager rotate-secret "
                f"--secret-id {self._secret_id}`"
            )
        expected = self._expected_audience
        if expected is not None and held.audience != expected:
            raise InvalidTokenSecretError(
                f"The ID-token secret {self._secret_id} holds tokens for the audience "
                f"{held.audience}, not {expected}: point SecretIdTokenCredentials at the "
                f"secret minted for {expected}, or pass audience={held.audience!r} if that "
                "is the service you call"
            )


def _client_for(secret_id: str, region_name: str | None, reader: str) -> Any:
    """A Secrets Manager client in `region_name`, else in the region the secret's ARN names,
    else in boto3's (AWS_DEFAULT_REGION, the profile's region), else in AWS_REGION: the variable
    the other AWS SDKs and the Node.js example read, which boto3 alone ignores."""
    region = region_name or _arn_region(secret_id)
    try:
        try:
            return boto3.client("secretsmanager", region_name=region)
        except NoRegionError:
            if not os.environ.get("AWS_REGION"):
                raise
            return boto3.client("secretsmanager", region_name=os.environ["AWS_REGION"])
    except NoRegionError:
        raise AWSConfigurationError(
            f"No AWS region to read the token secret {secret_id} in: set AWS_REGION or "
            "AWS_DEFAULT_REGION (or region in the AWS profile), pass "
            f"{reader}(..., region_name=...), or give the secret's ARN (the stack's "
            "TokenSecretArn output), which names its region"
        ) from None
    except _CREDENTIAL_ERRORS as error:
        raise _no_credentials(secret_id, error) from None
    except ProfileNotFound as error:
        raise AWSConfigurationError(
            f"The AWS profile {error.kwargs.get('profile')!r} (from AWS_PROFILE) is not in the "
            "AWS config or credentials file: set AWS_PROFILE to a profile that exists there (see "
            "`aws configure list-profiles`), or unset it to use the role or the credentials "
            "this process is given"
        ) from None


def _arn_region(secret_id: str) -> str | None:
    """The region of `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>`."""
    parts = secret_id.split(":", 6)
    if len(parts) == 7 and parts[0] == "arn" and parts[2] == "secretsmanager" and parts[3]:
        return parts[3]
    return None


def _no_credentials(secret_id: str, error: BotoCoreError) -> AWSConfigurationError:
    return AWSConfigurationError(
        f"No usable AWS credentials to read the token secret {secret_id} with ({error}): run "
        "the application with an IAM role (Lambda or ECS task role, EC2 instance profile), or "
        "set AWS_PROFILE to a profile in ~/.aws/config, or set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY"
    )


def _unreachable(secret_id: str, problem: str) -> TokenSecretUnavailableError:
    return TokenSecretUnavailableError(
        f"Could not read the token secret {secret_id} from Secrets Manager ({problem}); "
        "check the network path to Secrets Manager and retry",
        retryable=True,
    )


def _epoch_seconds(text: object, secret: str) -> float:
    problem = (
        f"Field expires_at of the token secret {secret} must be an RFC 3339 timestamp in UTC "
        "(e.g. 2026-01-31T12:00:00Z)"
    )
    if not isinstance(text, str):
        raise InvalidTokenSecretError(problem)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTokenSecretError(problem) from None
    if moment.tzinfo is None:
        raise InvalidTokenSecretError(problem)
    return moment.timestamp()
