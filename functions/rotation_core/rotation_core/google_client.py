"""HTTP to Google with bounded timeouts, and Google's failures mapped to the rotation's errors."""

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import urllib3
from google.auth import credentials as google_credentials
from google.auth import exceptions as google_exceptions
from google.auth import impersonated_credentials, jwt, transport
from google.auth.transport.urllib3 import Request as Urllib3Request
from google.oauth2 import id_token as google_id_token

from rotation_core.config import GoogleEndpoints
from rotation_core.errors import (
    GoogleConnectionError,
    GoogleGrantRejectedError,
    GoogleResponseError,
    GoogleTimeoutError,
    GoogleUnavailableError,
    TokenVerificationError,
)
from rotation_core.redaction import safe_external_text

_MAX_ERROR_CODE_LENGTH = 64
_TRANSIENT_STATUSES = frozenset({408, 429})
_TRANSIENT_OAUTH_ERRORS = frozenset({"internal_failure", "server_error", "temporarily_unavailable"})
ID_TOKEN_CLOCK_SKEW_SECONDS: Final = 30
"""Leeway for iat and exp between this function's clock and Google's, as relying parties allow;
exp is held to the minimum remaining life besides."""
TOKEN_CREATOR_FIX: Final = (
    "roles/iam.serviceAccountTokenCreator on {target} ("
    "gcloud iam service-accounts add-iam-policy-binding {target} --member={member} "
    "--role=roles/iam.serviceAccountTokenCreator)"
)
OPENID_TOKEN_CREATOR_FIX: Final = (
    "roles/iam.serviceAccountOpenIdTokenCreator on {target} ("
    "gcloud iam service-accounts add-iam-policy-binding {target} --member={member} "
    "--role=roles/iam.serviceAccountOpenIdTokenCreator)"
)
KEY_ACCOUNT_MEMBER: Final = "serviceAccount:<the key's account>"
FEDERATED_ROLE_MEMBER: Final = (
    "principalSet://iam.googleapis.com/projects/NUMBER/locations/global/"
    "workloadIdentityPools/POOL/attribute.aws_role/arn:aws:sts::ACCOUNT:assumed-role/ROLE_NAME"
)
"""The function's AWS role as the pool provider maps it (docs/id-tokens.md shows the mapping)."""


def is_transient_status(status: int) -> bool:
    return status in _TRANSIENT_STATUSES or status >= 500


class _StatusRecordingRequest(transport.Request):
    """google-auth hides the HTTP status of a refused token request; we need it to tell a 502
    (transient) from a 400 invalid_grant (permanent)."""

    def __init__(self, http: urllib3.PoolManager) -> None:
        self._request = Urllib3Request(http)
        self.last_status: int | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> transport.Response:
        response: transport.Response = self._request(*args, **kwargs)
        self.last_status = response.status
        return response


@dataclass(frozen=True)
class TokenInfo:
    """Google's tokeninfo answer for a valid token: who it belongs to, what it may do, how long."""

    authorized_party: str
    scopes: frozenset[str]
    expires_in_seconds: int
    email: str | None


@dataclass(frozen=True)
class IdTokenClaims:
    """What a verified ID token says: its signature, aud and times already checked."""

    issuer: str
    audience: str
    email: str | None
    expires_at: datetime


class IamIdTokenCredentials(impersonated_credentials.IDTokenCredentials):
    """google-auth's generateIdToken credentials, refreshed at a configurable endpoint through
    the transport they are given. The library's own refresh (google-auth 2.63) posts to Google's
    fixed URL through `requests` (not in the Lambda runtime) with its own timeout, where
    generateAccessToken takes an iam_endpoint_override; everything else is the library's."""

    def __init__(
        self,
        target_credentials: impersonated_credentials.Credentials,
        target_audience: str,
        endpoint: str,
    ) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            target_credentials, target_audience=target_audience, include_email=True
        )
        self._endpoint = endpoint

    def refresh(self, request: transport.Request) -> None:
        target = self._target_credentials
        headers = {"Content-Type": "application/json"}
        # The source's own token first (a key's grant, or Google's STS), as the library does.
        target._source_credentials.before_request(request, "POST", self._endpoint, headers)
        body = {
            "audience": self._target_audience,
            "delegates": target._delegates or [],
            "includeEmail": self._include_email,
        }
        response = request(
            url=self._endpoint,
            method="POST",
            headers=headers,
            body=json.dumps(body).encode(),
        )
        text = response.data.decode("utf-8", "replace")
        if response.status != 200:
            raise google_exceptions.RefreshError("generateIdToken refused", text)
        token = json.loads(text)["token"]
        self.token = token
        self.expiry = datetime.fromtimestamp(jwt.decode(token, verify=False)["exp"], UTC).replace(
            tzinfo=None
        )


class GoogleClient:
    """One connection pool per Lambda environment, reused across invocations."""

    def __init__(self, endpoints: GoogleEndpoints, max_connections: int = 1) -> None:
        """`max_connections`: how many calls at once may keep their connection for the next."""
        self.endpoints = endpoints
        # retries=False: google-auth retries the token endpoint itself and the state machine
        # retries the step; a third layer would only multiply waiting.
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(
                connect=min(5.0, endpoints.timeout_seconds), read=endpoints.timeout_seconds
            ),
            retries=False,
            maxsize=max_connections,
        )

    def refresh(self, credentials: google_credentials.Credentials) -> None:
        """Ask Google for a fresh access token for `credentials`, mapping every failure."""
        request = _StatusRecordingRequest(self._http)
        with _transport_errors_mapped("token endpoint"):
            try:
                credentials.refresh(request)
            except google_exceptions.RefreshError as error:
                raise _refresh_failure(error, request.last_status) from None
            except (TypeError, ValueError):
                raise GoogleResponseError(
                    f"Google's token endpoint answered HTTP {request.last_status} with a body "
                    "that is not a token response"
                ) from None

    def impersonate(self, credentials: google_credentials.Credentials, target: str) -> None:
        """generateAccessToken for `target` (google-auth refreshes the source token first):
        Google's refusals are named by what fixes them."""
        request = _StatusRecordingRequest(self._http)
        with _transport_errors_mapped("IAM Credentials endpoint"):
            try:
                credentials.refresh(request)
            except google_exceptions.RefreshError as error:
                raise _impersonation_failure(error, request.last_status, target) from None
            except google_exceptions.OAuthError as error:
                raise _federation_failure(error, request.last_status) from None
            except (TypeError, ValueError):
                raise GoogleResponseError(
                    f"Google's IAM Credentials endpoint answered HTTP {request.last_status} with "
                    "a body that is not a generateAccessToken response"
                ) from None

    def mint_id_token(
        self, credentials: google_credentials.Credentials, target: str, member: str
    ) -> None:
        """generateIdToken for `target` (after the source's own token): Google's refusals are
        named by what fixes them; `member` is who needs the role, as gcloud writes it."""
        request = _StatusRecordingRequest(self._http)
        with _transport_errors_mapped("IAM Credentials endpoint"):
            try:
                credentials.refresh(request)
            except google_exceptions.RefreshError as error:
                raise _impersonation_failure(
                    error, request.last_status, target, OPENID_TOKEN_CREATOR_FIX, member
                ) from None
            except google_exceptions.OAuthError as error:
                raise _federation_failure(error, request.last_status) from None
            except (KeyError, TypeError, ValueError):
                raise GoogleResponseError(
                    f"Google's IAM Credentials endpoint answered HTTP {request.last_status} with "
                    "a body that is not a generateIdToken response"
                ) from None

    def verify_id_token(self, token: str, audience: str) -> IdTokenClaims:
        """Verify an ID token as a relying party does: Google's certificates fetched now (so a
        rotated key's kid is found), signature, aud and times. No message echoes the token."""
        request = _StatusRecordingRequest(self._http)
        with _transport_errors_mapped("certificates endpoint"):
            try:
                claims = google_id_token.verify_token(
                    token,
                    request,
                    audience=audience,
                    certs_url=self.endpoints.certs_url,
                    clock_skew_in_seconds=ID_TOKEN_CLOCK_SKEW_SECONDS,
                )
            except google_exceptions.TransportError:
                if request.last_status is None:
                    raise  # no answer at all: _transport_errors_mapped names it
                raise _certs_failure(request.last_status) from None
            except json.JSONDecodeError:
                raise GoogleResponseError(
                    "Google's certificates endpoint answered with a body that is not JSON: check "
                    "GOOGLE_CERTS_URL"
                ) from None
            except ValueError as error:
                raise TokenVerificationError(
                    f"holds an ID token that Google's certificates do not verify "
                    f"({_id_token_refusal(str(error), audience)})"
                ) from None
        return _id_token_claims(claims)

    def api_request(
        self, method: str, url: str, access_token: str, endpoint: str, body: object = None
    ) -> tuple[int, dict[str, object]]:
        """One call to a Google JSON API with the caller's token; the status and the JSON body
        (empty when it is not JSON). Transport failures are mapped, statuses left to the caller."""
        with _transport_errors_mapped(endpoint):
            response = self._http.request(
                method,
                url,
                body=None if body is None else json.dumps(body).encode(),
                headers={
                    "Authorization": f"Bearer {access_token}",
                    "Content-Type": "application/json",
                },
            )
        return response.status, _json_object(response.data)

    def token_info(self, access_token: str) -> TokenInfo:
        """Look the token up at tokeninfo; POST keeps the token out of URLs and access logs."""
        with _transport_errors_mapped("tokeninfo endpoint"):
            response = self._http.request(
                "POST",
                self.endpoints.tokeninfo_url,
                fields={"access_token": access_token},
                encode_multipart=False,
            )
        body = _json_object(response.data)
        if response.status == 200:
            return _token_info(body)
        if is_transient_status(response.status):
            raise GoogleUnavailableError(
                f"Google's tokeninfo endpoint answered HTTP {response.status}; try again later"
            )
        if body.get("error") == "invalid_token":
            raise TokenVerificationError(
                "holds a token that Google's tokeninfo says is not valid (unknown, revoked or "
                "expired)"
            )
        raise GoogleResponseError(
            f"Google's tokeninfo endpoint answered HTTP {response.status} "
            f"({_describe_oauth_error(body)})"
        )


@contextmanager
def _transport_errors_mapped(endpoint: str) -> Iterator[None]:
    try:
        yield
    except google_exceptions.TransportError as error:
        raise _transport_failure(endpoint, error.__cause__ or error) from None
    except urllib3.exceptions.HTTPError as error:
        raise _transport_failure(endpoint, error) from None


def _transport_failure(endpoint: str, cause: BaseException) -> Exception:
    if isinstance(cause, urllib3.exceptions.TimeoutError | TimeoutError):
        return GoogleTimeoutError(f"Google's {endpoint} did not answer in time ({cause})")
    return GoogleConnectionError(
        f"the connection to Google's {endpoint} failed ({type(cause).__name__})"
    )


def _error_body(error: google_exceptions.RefreshError) -> Mapping[str, object]:
    """The token endpoint's error as google-auth keeps it (a dict), or IAM's (JSON text)."""
    details = error.args[1] if len(error.args) > 1 else None
    if isinstance(details, str):
        details = _json_object(details.encode())
    return details if isinstance(details, Mapping) else {}


def _certs_failure(status: int) -> Exception:
    if is_transient_status(status):
        return GoogleUnavailableError(
            f"Google's certificates endpoint answered HTTP {status}; try again later"
        )
    return GoogleResponseError(
        f"Google's certificates endpoint answered HTTP {status}: check GOOGLE_CERTS_URL"
    )


def _id_token_refusal(reason: str, audience: str) -> str:
    """google-auth's reason, told in fixed words: some of its messages quote the token."""
    lowered = reason.lower()
    if "audience" in lowered:
        return f"its aud is not {audience}"
    if "expired" in lowered:
        return "it expired"
    if "too early" in lowered or "used too early" in lowered:
        return "it is not valid yet (iat in the future)"
    if "key id" in lowered or "certificate for key" in lowered:
        return "it names a signing key Google does not publish"
    if "signature" in lowered:
        return "its signature does not match"
    return "it is not a well-formed JWT"


def _id_token_claims(claims: Mapping[str, Any]) -> IdTokenClaims:
    try:
        return IdTokenClaims(
            issuer=str(claims["iss"]),
            audience=str(claims["aud"]),
            email=str(claims["email"]) if "email" in claims else None,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (KeyError, TypeError, ValueError):
        raise TokenVerificationError("holds an ID token without iss, aud or exp") from None


def _impersonation_failure(
    error: google_exceptions.RefreshError,
    status: int | None,
    target: str,
    fix: str = TOKEN_CREATOR_FIX,
    member: str = KEY_ACCOUNT_MEMBER,
) -> Exception:
    body = _error_body(error)
    if "error" not in body or not isinstance(body["error"], Mapping):
        # The source token's own grant failed (the key): the token endpoint's failure.
        return _refresh_failure(error, status)
    described = _describe_oauth_error(body)
    if status is not None and is_transient_status(status):
        return GoogleUnavailableError(
            f"Google's IAM Credentials endpoint answered HTTP {status} ({described})"
        )
    google_status = body["error"].get("status")
    if google_status == "PERMISSION_DENIED":
        return GoogleGrantRejectedError(
            f"Google refused to mint a token for {target}: HTTP 403 ({described}). Grant "
            f"{fix.format(target=target, member=member)}"
        )
    if google_status == "INVALID_ARGUMENT" and "lifetime" in described.lower():
        return GoogleGrantRejectedError(
            f"Google refused the token lifetime for {target}: {described}. Tokens over 3600 s "
            "need the organization policy "
            "constraints/iam.allowServiceAccountCredentialLifetimeExtension to list "
            f"{target}; add it there, or set TokenLifetimeSeconds to 3600 or less"
        )
    return GoogleGrantRejectedError(
        f"Google refused to mint a token for {target}: HTTP {status} ({described})"
    )


def _federation_failure(error: google_exceptions.OAuthError, status: int | None) -> Exception:
    """Google's STS refused the exchange of the Lambda role's identity for a federated token."""
    body = _json_object(str(error.args[1]).encode()) if len(error.args) > 1 else {}
    described = _describe_oauth_error(body)
    if (status is not None and is_transient_status(status)) or body.get(
        "error"
    ) in _TRANSIENT_OAUTH_ERRORS:
        return GoogleUnavailableError(f"Google's STS answered HTTP {status} ({described})")
    return GoogleGrantRejectedError(
        f"Google's STS refused this function's AWS identity: HTTP {status} ({described}). Check "
        "that WorkloadIdentityAudience names the pool provider, that the provider trusts this "
        "AWS account, and that the function's role is granted "
        "roles/iam.workloadIdentityUser or the token-creator role on the target account"
    )


def _refresh_failure(error: google_exceptions.RefreshError, status: int | None) -> Exception:
    body = _error_body(error)
    described = _describe_oauth_error(body)
    if (status is not None and is_transient_status(status)) or body.get(
        "error"
    ) in _TRANSIENT_OAUTH_ERRORS:
        return GoogleUnavailableError(
            f"Google's token endpoint answered HTTP {status} ({described}) even after retries"
        )
    if status == 200:
        return GoogleResponseError(
            "Google's token endpoint answered 200 without an access_token or expires_in"
        )
    if body.get("error") == "unauthorized_client":
        return GoogleGrantRejectedError(
            f"Google refused the delegated token: HTTP {status} ({described}). In the Google "
            "Workspace Admin console (Security > API controls > Domain-wide delegation), allow "
            "the key's service account client id for these scopes, or remove DelegatedSubject"
        )
    return GoogleGrantRejectedError(
        f"Google refused to issue a token: HTTP {status} ({described}). Check that the "
        "service-account key is current and enabled and that the scopes are valid"
    )


def describe_google_error(body: Mapping[str, object]) -> str:
    """A Google API's error body, bounded and redacted, for messages that reach notices."""
    return _describe_oauth_error(body)


def _describe_oauth_error(body: Mapping[str, object]) -> str:
    """Google's error code and a bounded, redacted description: its text may quote what it
    was sent, and the result reaches logs, execution history and notices."""
    error = body.get("error")
    if isinstance(error, Mapping):  # Google's JSON API style: {"error": {"status", "message"}}
        status = safe_external_text(error.get("status", "error"), _MAX_ERROR_CODE_LENGTH)
        return f"{status}: {safe_external_text(error.get('message', ''))}".strip()
    code = safe_external_text(error, _MAX_ERROR_CODE_LENGTH) if error else ""
    description = body.get("error_description")
    if code and description:
        return f"{code}: {safe_external_text(description)}"
    return code or "no error description"


def _json_object(data: bytes) -> dict[str, object]:
    try:
        parsed = json.loads(data)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _token_info(body: dict[str, object]) -> TokenInfo:
    try:
        expires_in = int(str(body["expires_in"]))
        return TokenInfo(
            authorized_party=str(body["azp"]),
            scopes=frozenset(str(body["scope"]).split()),
            expires_in_seconds=expires_in,
            email=str(body["email"]) if "email" in body else None,
        )
    except (KeyError, ValueError):
        raise GoogleResponseError(
            "Google's tokeninfo answer lacks azp, scope or expires_in"
        ) from None
