"""HTTP to Google with bounded timeouts, and Google's failures mapped to the rotation's errors."""

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import urllib3
from google.auth import credentials as google_credentials
from google.auth import exceptions as google_exceptions
from google.auth import transport
from google.auth.transport.urllib3 import Request as Urllib3Request

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


def _impersonation_failure(
    error: google_exceptions.RefreshError, status: int | None, target: str
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
            f"Google refused to mint a token for {target}: HTTP 403 ({described}). Grant the "
            "key's service account roles/iam.serviceAccountTokenCreator on "
            f"{target} (gcloud iam service-accounts add-iam-policy-binding {target} "
            "--member=serviceAccount:<the key's account> "
            "--role=roles/iam.serviceAccountTokenCreator)"
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
