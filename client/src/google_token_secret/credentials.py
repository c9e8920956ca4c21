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
from typing import Any, Final

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
    read_again_at: float
    """Epoch seconds from which the next use reads the secret again."""

    @property
    def expiry(self) -> datetime:
        # google-auth compares `expiry` with a naive UTC clock; an aware value makes it raise.
        return datetime.fromtimestamp(self.expires_at, UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class _FailedRead:
    error: TokenSecretError
    until: float


class SecretCredentials(credentials.Credentials):
    """Credentials for any Google client library, read from a token secret's AWSCURRENT version.

    The secret is read on first use and again only when the token comes within
    `refresh_margin_seconds` of its `expires_at` (the rotation will have stored a newer one by
    then), or when `refresh` is called, as transports do on a 401. In between, `token` costs
    no I/O. One instance may be shared by any number of threads: concurrent callers that find
    the token due wait for a single read.
    """

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
        self._client = client if client is not None else _client_for(secret_id, region_name)
        self._margin = float(refresh_margin_seconds)

    @property
    def secret_id(self) -> str:
        return self._secret_id

    @property
    def token(self) -> str:
        """The access token of the secret's AWSCURRENT version, read again when due."""
        held = self._held
        if held is not None and time.time() < held.read_again_at:
            return held.token
        return self._read(forced=False).token

    @token.setter
    def token(self, value: None) -> None:
        # google-auth's constructor clears the token; anything else would bypass the secret.
        if value is not None:
            raise AttributeError("SecretCredentials.token comes from the secret; it cannot be set")

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
            raise AttributeError("SecretCredentials.expiry comes from the secret; it cannot be set")

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

    @property
    def scopes(self) -> tuple[str, ...]:
        return self._read_if_due().scopes

    def refresh(self, request: Any) -> None:  # noqa: ARG002 - google-auth's signature
        """Read the secret again now, as google-auth transports ask after a 401."""
        self._read(forced=True)

    def before_request(self, request: Any, method: str, url: str, headers: Any) -> None:  # noqa: ARG002
        # Not google-auth's threshold: this reads the secret only when this margin says so.
        self.apply(headers)  # type: ignore[no-untyped-call]

    def get_cred_info(self) -> dict[str, str]:
        info = {
            "credential_source": f"AWS Secrets Manager secret {self._secret_id}",
            "credential_type": "access token read from AWS Secrets Manager",
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
                "%d s): if Google keeps refusing it, the token was revoked; rotate the secret",
                self._secret_id,
                fresh.version_id,
                fresh.expires_at - now,
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
        secret = self._secret_id
        try:
            document = json.loads(answer["SecretString"])
        except (KeyError, ValueError):
            raise InvalidTokenSecretError(
                f"The secret {secret} holds no JSON string: is it the token secret (the stack's "
                "TokenSecretArn output), not the service-account key secret?"
            ) from None
        if not isinstance(document, dict) or ACCESS_TOKEN_FIELD not in document:
            raise InvalidTokenSecretError(
                f"The secret {secret} has no {ACCESS_TOKEN_FIELD} field: is it the token secret "
                "(the stack's TokenSecretArn output)?"
            )
        token = document[ACCESS_TOKEN_FIELD]
        if token == "":
            raise PlaceholderTokenError(
                f"The token secret {secret} still holds the placeholder written when the stack "
                "was deployed: no rotation has succeeded yet. Store the service-account key (or "
                "finish the keyless set-up), then rotate once with `aws secretsmanager "
                f"rotate-secret --secret-id {secret}`; the stack's failure topic says why a "
                "rotation failed"
            )
        if not isinstance(token, str):
            raise InvalidTokenSecretError(
                f"Field {ACCESS_TOKEN_FIELD} of {secret} must be a string"
            )
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
        return _HeldToken(
            token=token,
            expires_at=expires_at,
            version_id=str(answer.get("VersionId", "")),
            service_account=service_account if isinstance(service_account, str) else None,
            scopes=tuple(s for s in scopes if isinstance(s, str))
            if isinstance(scopes, list)
            else (),
            read_again_at=read_again_at,
        )


def _client_for(secret_id: str, region_name: str | None) -> Any:
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
            "SecretCredentials(..., region_name=...), or give the secret's ARN (the stack's "
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
