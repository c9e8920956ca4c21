"""Google's OAuth2 token endpoints on 127.0.0.1, so rotation is testable offline and breakable."""

import base64
import contextlib
import datetime
import html
import json
import math
import re
import secrets
import socket
import socketserver
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self, cast, override
from urllib.parse import parse_qs, quote, unquote, urlsplit

import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as google_auth_exceptions
from google.auth import jwt as google_jwt

from localcloud.clock import SimulatedClock
from localcloud.google_id_tokens import (
    InvalidIdTokenError,
    SigningKeys,
    check_id_token,
    id_token_claims,
)
from localcloud.google_keys import (
    GOOGLE_CREDENTIALS_FILE,
    USER_MANAGED,
    InvalidKeyRequestError,
    KeyCall,
    KeyLimitError,
    ManagedKey,
    ServiceAccountKeys,
    check_create_request,
    is_keys_path,
    key_call,
    key_name,
    project_of,
    requested_key_types,
)

JWT_BEARER_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
EMAIL_SCOPES: Final = frozenset({"https://www.googleapis.com/auth/userinfo.email", "email"})
TOKEN_EXCHANGE_GRANT: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
AWS4_REQUEST_TOKEN_TYPE: Final = "urn:ietf:params:aws:token-type:aws4_request"
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"
# generateAccessToken takes a caller token carrying one of these (google-auth asks for iam).
IAM_SCOPES: Final = frozenset(
    {"https://www.googleapis.com/auth/iam", "https://www.googleapis.com/auth/cloud-platform"}
)
TOKEN_CREATOR_ROLE: Final = "roles/iam.serviceAccountTokenCreator"
OPEN_ID_TOKEN_CREATOR_ROLE: Final = "roles/iam.serviceAccountOpenIdTokenCreator"
RUN_INVOKER_ROLE: Final = "roles/run.invoker"
# Any one of these lets a token list a calendar's events.
CALENDAR_SCOPES: Final = frozenset(
    {
        "https://www.googleapis.com/auth/calendar",
        "https://www.googleapis.com/auth/calendar.readonly",
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/calendar.events.readonly",
    }
)
# Failure-injection keys: "/generateAccessToken" stands for every
# /v1/projects/-/serviceAccounts/{email}:generateAccessToken path (and "/generateIdToken" for
# :generateIdToken), "/sts" for STS's /v1/token, "/calendar" for every Calendar API path
# (/calendar/v3/...), "/certs" for both of Google's certificate endpoints (/oauth2/v1/certs and
# /oauth2/v3/certs), "/run" for every Cloud Run service (/run/{service}/...), "/keys" for every
# path of the IAM service-account keys API (/v1/projects/-/serviceAccounts/{email}/keys...).
ROUTES: Final = (
    "/token",
    "/tokeninfo",
    "/generateAccessToken",
    "/sts",
    "/calendar",
    "/generateIdToken",
    "/certs",
    "/run",
    "/keys",
)
MAX_IMPERSONATED_LIFETIME: Final = 43200
DEFAULT_IMPERSONATED_LIFETIME: Final = 3600

_FORM: Final = "application/x-www-form-urlencoded"
_JSON: Final = "application/json; charset=utf-8"
# Google's front end answers its own failures with HTML pages, not OAuth JSON.
_HTML: Final = "text/html; charset=UTF-8"
_MAX_BODY_BYTES: Final = 1 << 20
# Google refuses assertions meant to live longer than an hour, whatever the key.
_MAX_ASSERTION_LIFETIME: Final = 3600
_BAD_SIGNATURE: Final = "Invalid JWT Signature."
_NOT_SHORT_LIVED: Final = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_IAM_CREDENTIALS_PATH: Final = re.compile(
    r"/v1/projects/(?P<project>[^/]+)/serviceAccounts/(?P<account>[^/:]+)"
    r":(?P<method>generateAccessToken|generateIdToken)"
)
_CERTS_PATHS: Final = ("/oauth2/v1/certs", "/oauth2/v3/certs")
_CLOUD_RUN_PREFIX: Final = "/run/"
_CLOUD_RUN_PATH: Final = re.compile(r"/run/(?P<service>[^/]+)(?P<path>/.*)?")
# Cloud Run's service names: lowercase letters, digits and hyphens, starting with a letter.
_CLOUD_RUN_SERVICE: Final = re.compile(r"[a-z](?:[a-z0-9-]{0,47}[a-z0-9])?")
_STS_PATH: Final = "/v1/token"
_LIFETIME: Final = re.compile(r"(?P<seconds>[0-9]+)(?:\.[0-9]{1,9})?s")
_DELEGATE: Final = re.compile(r"projects/-/serviceAccounts/(?P<account>[^/]+)")
_PROVIDER_AUDIENCE: Final = re.compile(
    r"//iam\.googleapis\.com/projects/(?P<project>[0-9]+)/locations/global/"
    r"workloadIdentityPools/(?P<pool>[a-z0-9-]+)/providers/(?P<provider>[a-z0-9-]+)"
)
# The regional (or global) STS host google-auth signs for: sts.amazonaws.com, sts.REGION....
_AWS_STS_HOST: Final = re.compile(r"sts(?:\.[a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?")
# Google's STS answers "audience" errors with these texts (verified: quoted verbatim in
# google-github-actions/auth issues #161 and #211 from Google's real answers).
_AUDIENCE_MALFORMED: Final = (
    'Invalid value for "audience". This value should be the full resource name of the Identity '
    "Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token for the "
    "list of possible formats."
)
_AUDIENCE_UNKNOWN: Final = (
    'The target service indicated by the "audience" parameters is invalid. This might either be '
    "because the pool or provider is disabled or deleted or because it doesn't exist."
)
# Google's answer to a JWT grant with a `sub` the account may not delegate for (verified: the
# text google-auth users report for domain-wide delegation that is not set up).
_DWD_REFUSED: Final = (
    "Client is unauthorized to retrieve access tokens using this method, or client not "
    "authorized for any of the scopes requested."
)
# Google's standard 401 text for a missing, expired or unknown Bearer token (verified: the
# message every Google API answers with).
_UNAUTHENTICATED: Final = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_GET_ACCESS_TOKEN_PERMISSION: Final = "iam.serviceAccounts.getAccessToken"
_GET_OPEN_ID_TOKEN_PERMISSION: Final = "iam.serviceAccounts.getOpenIdToken"
_CALENDAR_PREFIX: Final = "/calendar/v3/"
# Routes whose answers, errors included, are not OAuth's JSON.
_OWN_SHAPE_ROUTES: Final = frozenset(
    {"/generateAccessToken", "/generateIdToken", "/calendar", "/run", "/certs", "/keys"}
)
_EXACT_ROUTES: Final = {
    "/token": "/token",
    "/tokeninfo": "/tokeninfo",
    _STS_PATH: "/sts",
    **dict.fromkeys(_CERTS_PATHS, "/certs"),
}
_EVENTS_PATH: Final = re.compile(r"/calendar/v3/calendars/(?P<calendar>[^/]+)/events")
_DEFAULT_MAX_RESULTS: Final = 250
_MAX_MAX_RESULTS: Final = 2500
# Google's event ids are base32hex (lowercase a-v and digits).
_EVENT_ID_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuv"
_PAGE_TOKEN: Final = re.compile(r"offset:(?P<offset>[0-9]+)")


@dataclass(frozen=True)
class ServiceAccountKey:
    """A generated key pair registered with the emulator, as Google would hand it out."""

    client_email: str
    client_id: str
    private_key_id: str
    private_key_pem: str = field(repr=False)

    def key_file(self, token_uri: str) -> dict[str, str]:
        """The JSON key file a user downloads from Google Cloud, pointed at `token_uri`."""
        return {
            "type": "service_account",
            "project_id": project_of(self.client_email),
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
            + quote(self.client_email, safe=""),
        }


@dataclass
class InjectedFailure:
    """One queued misbehaviour of a route; it applies to the next `remaining` requests."""

    route: str
    status: int = 503
    body: dict[str, object] | str | None = None
    hang_seconds: float | None = None
    reset_connection: bool = False
    remaining: int = 1


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the emulator saw it: `status` is None when no response was sent (hang or
    reset), `time` is the emulator clock at arrival, `form` is empty unless the body was a form,
    `bearer` is the token of an `Authorization: Bearer` header."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    status: int | None
    time: float
    bearer: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    """An access token the emulator handed out; times are epoch seconds on the emulator clock."""

    access_token: str
    client_email: str
    """The service account the token acts as; empty for a federated (STS) token."""
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float
    subject: str | None = None
    """The user a domain-wide-delegation token acts for (the JWT grant's `sub`)."""
    principal: str | None = None
    """The workload identity principal of a federated token: principal://.../subject/<AWS ARN>."""


@dataclass(frozen=True)
class KeyApiCall:
    """A request the IAM keys API answered (or an injected failure took): `action` is one of
    create, list, get, delete, disable, enable; `status` is None when no response was sent."""

    action: str
    account: str
    key_id: str | None
    status: int | None
    time: float


@dataclass
class _Storm:
    """Every request to a route fails as `failure` says until `until` (emulator time)."""

    failure: InjectedFailure
    until: float


@dataclass
class _TokenRecord:
    token: IssuedToken
    client_id: str
    identities: frozenset[str]
    """Every IAM member name the token's bearer counts as, for token-creator checks."""
    revoked: bool = False


@dataclass(frozen=True)
class _Provider:
    project_number: str
    pool: str
    aws_account_id: str


@dataclass(frozen=True)
class _Event:
    id: str
    summary: str
    start: datetime.datetime
    end: datetime.datetime
    """Both in UTC, to the second (Google keeps no fractions)."""
    created: float
    """Emulator time it was added; also its last update, as nothing changes it."""


@dataclass
class _Calendar:
    id: str
    summary: str
    time_zone: str
    readers: frozenset[str]
    created: float
    events: list[_Event] = field(default_factory=list)
    """In the order they were added: the stable order Google promises without orderBy."""

    def readable_by(self, principal: str) -> bool:
        # The owner of a calendar (the user whose primary calendar it is) always reads it.
        return bool(principal) and (principal in self.readers or principal == self.id)


@dataclass
class _CloudRunService:
    invokers: set[str]
    """Members holding roles/run.invoker on the service: e-mail addresses."""
    custom_audiences: tuple[str, ...]
    """Audiences accepted besides the service's own URL."""


@dataclass(frozen=True)
class _EventQuery:
    """events.list's query parameters, checked."""

    time_min: datetime.datetime | None
    time_max: datetime.datetime | None
    max_results: int
    offset: int
    order_by: str | None


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = _JSON
    headers: tuple[tuple[str, str], ...] = ()


class _OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description


def _invalid_grant(description: str) -> _OAuthError:
    return _OAuthError(400, "invalid_grant", description)


class _ApiError(Exception):
    """An error of a Google Cloud API (IAM Credentials): {"error": {code, message, status}}."""

    def __init__(
        self,
        code: int,
        status: str,
        message: str,
        details: tuple[dict[str, object], ...] = (),
    ) -> None:
        super().__init__(f"{code} {status}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.details = details

    def payload(self) -> dict[str, object]:
        error: dict[str, object] = {
            "code": self.code,
            "message": self.message,
            "status": self.status,
        }
        if self.details:
            error["details"] = list(self.details)
        return {"error": error}


def _permission_denied(permission: str) -> _ApiError:
    # Google's text and ErrorInfo for a missing IAM permission (message verified against
    # Google's real answers; the details list is Google's documented ErrorInfo shape).
    return _ApiError(
        403,
        "PERMISSION_DENIED",
        f"Permission '{permission}' denied on resource (or it may not exist).",
        (
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "IAM_PERMISSION_DENIED",
                "domain": "iam.googleapis.com",
                "metadata": {"permission": permission},
            },
        ),
    )


def _invalid_argument(message: str) -> _ApiError:
    return _ApiError(400, "INVALID_ARGUMENT", message)


class _CalendarError(Exception):
    """An error of the Calendar API: Google's JSON shape there keeps the legacy `errors` list
    (the one google-api-python-client and googleapis read reasons from) and has no `status`
    for some errors."""

    def __init__(
        self,
        code: int,
        message: str,
        error: dict[str, str],
        *,
        status: str | None = None,
        details: tuple[dict[str, object], ...] = (),
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.headers = headers
        body: dict[str, object] = {"code": code, "message": message, "errors": [error]}
        if status is not None:
            body["status"] = status
        if details:
            body["details"] = list(details)
        self.payload: dict[str, object] = {"error": body}


def _calendar_unauthenticated() -> _CalendarError:
    return _CalendarError(
        401,
        _UNAUTHENTICATED,
        {
            "message": "Invalid Credentials",
            "domain": "global",
            "reason": "authError",
            "location": "Authorization",
            "locationType": "header",
        },
        status="UNAUTHENTICATED",
        headers=(
            (
                "WWW-Authenticate",
                'Bearer realm="https://accounts.google.com/", error="invalid_token"',
            ),
        ),
    )


def _calendar_scope_insufficient() -> _CalendarError:
    return _CalendarError(
        403,
        "Request had insufficient authentication scopes.",
        {
            "message": "Insufficient Permission",
            "domain": "global",
            "reason": "insufficientPermissions",
        },
        status="PERMISSION_DENIED",
        details=(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {
                    "service": "calendar-json.googleapis.com",
                    "method": "calendar.v3.Events.List",
                },
            },
        ),
    )


def _calendar_not_found() -> _CalendarError:
    # Google answers 404, not 403, for a calendar the caller may not see.
    return _CalendarError(
        404, "Not Found", {"domain": "global", "reason": "notFound", "message": "Not Found"}
    )


def _calendar_bad_request() -> _CalendarError:
    return _CalendarError(
        400, "Bad Request", {"domain": "global", "reason": "badRequest", "message": "Bad Request"}
    )


def _ordering_unavailable() -> _CalendarError:
    # Google's answer to orderBy=startTime without singleEvents=true (verified: quoted from its
    # real answer in googleworkspace/java-samples issue #52).
    message = "The requested ordering is not available for the particular query."
    return _CalendarError(
        400,
        message,
        {
            "domain": "global",
            "reason": "invalid",
            "message": message,
            "location": "orderBy",
            "locationType": "parameter",
        },
    )


class GoogleEmulator:
    """Google's OAuth2 /token (JWT bearer grant, the assertion verified with google-auth's
    `jwt.decode` and the emulator's clock) and /tokeninfo (the token in the query, a posted form
    or an `Authorization: Bearer` header), served over real HTTP.

    The emulator's clock is `clock` (the local cloud's simulated clock, shared with its Lambda
    workers; a clock of its own when none is given) plus `clock_offset_seconds`, which tests set to
    put Google alone ahead or behind. Token lifetimes, expiry, tokeninfo's exp/expires_in, the
    assertion's iat/exp checks, key disabling and failure storms all follow it.

    It also serves the IAM Credentials API's generateAccessToken (impersonation, up to 12 hours
    for accounts in the lifetime-extension org policy) and Google STS's token exchange for AWS
    workload identity federation, which verifies the subject token by forwarding the signed
    GetCallerIdentity request to `aws_endpoint_url` (the local cloud's AWS).

    And a minimal Calendar API for applications to use the tokens on: events.list over the
    calendars and events a test adds, readable by the principals it names.

    It signs Google ID tokens (RS256, kid in the header) with keys it rotates and publishes at
    Google's certificate endpoints (`certs_url`, `jwks_url`); it hands them out from /token (the
    JWT-bearer grant with `target_audience`) and from IAM Credentials' generateIdToken; and it
    serves Cloud Run services (`deploy_cloud_run`) that check a Bearer ID token as Cloud Run's
    front end does.

    And the IAM service-account keys API (create, list, get, delete, disable, enable) with
    Google's 10-key limit, the organisation's key-expiry policy (`set_key_expiry_policy`) and
    new keys accepted only `key_propagation_seconds` after their creation (localcloud.google_keys
    keeps the keys)."""

    GOOGLE_TOKEN_AUDIENCE: Final = "https://oauth2.googleapis.com/token"

    def __init__(
        self,
        token_lifetime_seconds: int = 3600,
        clock_skew_seconds: int = 300,
        *,
        clock: SimulatedClock | None = None,
        aws_endpoint_url: str | None = None,
        key_propagation_seconds: float = 5.0,
    ) -> None:
        self.token_lifetime_seconds = token_lifetime_seconds
        self.key_propagation_seconds = key_propagation_seconds
        """How long after keys.create the token endpoint starts accepting the new key (emulator
        time); keys made by create_service_account or register_key are accepted at once."""
        self.aws_endpoint_url = aws_endpoint_url
        """Where STS forwards signed GetCallerIdentity requests (AWS itself, for Google)."""
        self.clock_skew_seconds = clock_skew_seconds
        self.clock = clock if clock is not None else SimulatedClock()
        self.clock_offset_seconds: float = 0.0
        self.certs_max_age_seconds = 21600
        """The certificate endpoints' Cache-Control max-age (Google's is several hours)."""
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._client_ids: dict[str, str] = {}
        self._account_keys = ServiceAccountKeys(self.now)
        self._key_admins: dict[str, set[str]] = {}
        self._tokens: dict[str, _TokenRecord] = {}
        self._token_creators: dict[str, set[str]] = {}
        self._open_id_token_creators: dict[str, set[str]] = {}
        self._signing_keys = SigningKeys(self.now)
        self._cloud_run: dict[str, _CloudRunService] = {}
        self._lifetime_extension: set[str] = set()
        self._delegation: dict[str, frozenset[str] | None] = {}
        self._providers: dict[str, _Provider] = {}
        self._calendars: dict[str, _Calendar] = {}
        # Forwarding to AWS: no retries, so a failing AWS is seen as it fails.
        self._aws_http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=20), retries=False
        )
        self._failures: dict[str, deque[InjectedFailure]] = {route: deque() for route in ROUTES}
        self._storms: dict[str, list[_Storm]] = {route: [] for route in ROUTES}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the Google emulator is already running")
        self._stopping.clear()
        server = _Server(self)
        thread = threading.Thread(
            target=server.serve_forever,
            # A short poll keeps stop() quick: shutdown() waits for the loop to notice.
            kwargs={"poll_interval": 0.05},
            name=f"google-emulator-{server.server_port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        # Wakes handlers sleeping in an injected hang so none outlives the emulator.
        self._stopping.set()
        server.shutdown()
        server.server_close()
        # Keep-alive connections would otherwise go on being served after stop().
        server.drop_connections()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Google emulator is not running: call start() first")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"

    @property
    def tokeninfo_url(self) -> str:
        return self.base_url + "/tokeninfo"

    @property
    def sts_url(self) -> str:
        """Google STS's token exchange (https://sts.googleapis.com/v1/token)."""
        return self.base_url + _STS_PATH

    def generate_access_token_url(self, email: str) -> str:
        """The IAM Credentials generateAccessToken URL for `email`, in the shape google-auth
        builds it (the one to pass as `iam_endpoint_override` or
        `service_account_impersonation_url`)."""
        return f"{self.base_url}/v1/projects/-/serviceAccounts/{email}:generateAccessToken"

    def keys_url(self, email: str, project: str = "-") -> str:
        """The IAM keys API's collection of the account's keys (keys.create and keys.list);
        a key is `keys_url(email) + "/" + key_id`, disable and enable add ":disable" and
        ":enable" to that."""
        return f"{self.base_url}/v1/projects/{project}/serviceAccounts/{email}/keys"

    def generate_id_token_url(self, email: str) -> str:
        """The IAM Credentials generateIdToken URL for `email`. google-auth's
        impersonated_credentials.IDTokenCredentials takes no endpoint override: point its
        module constant google.auth.iam._IAM_IDTOKEN_ENDPOINT at
        `generate_id_token_url("{}")`."""
        return f"{self.base_url}/v1/projects/-/serviceAccounts/{email}:generateIdToken"

    @property
    def certs_url(self) -> str:
        """Google's ID-token certificates, PEM by kid (https://www.googleapis.com/oauth2/v1/certs):
        the `certs_url` of google-auth's id_token.verify_token."""
        return self.base_url + _CERTS_PATHS[0]

    @property
    def jwks_url(self) -> str:
        """The same keys as a JWK set (https://www.googleapis.com/oauth2/v3/certs)."""
        return self.base_url + _CERTS_PATHS[1]

    def cloud_run_url(self, service: str) -> str:
        """The service's URL, which is also the audience its ID tokens must carry."""
        return f"{self.base_url}{_CLOUD_RUN_PREFIX}{service}"

    @property
    def api_root_url(self) -> str:
        """The Google APIs root an application is pointed at (googleapis' `rootUrl`; for
        google-api-python-client, `api_root_url + "calendar/v3/"` is the `api_endpoint`)."""
        return f"{self.base_url}/"

    def now(self) -> float:
        """The emulator's clock: the shared clock plus `clock_offset_seconds`."""
        return self.clock.now() + self.clock_offset_seconds

    # --- service accounts and tokens ---------------------------------------------------------

    def create_service_account(
        self, email: str = "rotator@demo-project.iam.gserviceaccount.com"
    ) -> ServiceAccountKey:
        """A new RSA 2048 key for `email`, registered and enabled at once (test set-up: neither
        the propagation delay nor the 10-key limit applies, the key-expiry policy does); an
        existing account keeps its client_id, as a second key on a real service account
        would."""
        with self._lock:
            # Claimed under the lock so concurrent creations agree on the account's client_id.
            client_id = self._client_ids.setdefault(email, _new_client_id())
        key, public_key = _new_key(email, client_id)
        self._register(key, public_key)
        return key

    def create_keyless_service_account(self, email: str) -> str:
        """Creates the account without any key (a target to impersonate); returns its client_id
        (an existing account keeps its own)."""
        with self._lock:
            return self._client_ids.setdefault(email, _new_client_id())

    def grant_token_creator(self, target_email: str, member: str) -> None:
        """Grants roles/iam.serviceAccountTokenCreator on `target_email` to `member`: a service
        account's or user's email, or a federated identity (its principal://... name, a
        principalSet://.../attribute.aws_role/<role ARN>, or just the AWS ARN)."""
        with self._lock:
            self._token_creators.setdefault(target_email, set()).add(member)

    def revoke_token_creator(self, target_email: str, member: str) -> None:
        with self._lock:
            self._token_creators.get(target_email, set()).discard(member)

    def grant_open_id_token_creator(self, target_email: str, member: str) -> None:
        """Grants roles/iam.serviceAccountOpenIdTokenCreator on `target_email` to `member`
        (named as for grant_token_creator): generateIdToken only, no access tokens."""
        with self._lock:
            self._open_id_token_creators.setdefault(target_email, set()).add(member)

    def revoke_open_id_token_creator(self, target_email: str, member: str) -> None:
        with self._lock:
            self._open_id_token_creators.get(target_email, set()).discard(member)

    # --- IAM service-account keys API ----------------------------------------------------------

    def grant_key_admin(self, target_email: str, member: str) -> None:
        """Grants roles/iam.serviceAccountKeyAdmin on `target_email` to `member` (named as for
        grant_token_creator; IAM's "serviceAccount:" or "user:" prefix may be given): every
        iam.serviceAccountKeys permission on that account's keys."""
        with self._lock:
            self._key_admins.setdefault(target_email, set()).add(_member_name(member))

    def revoke_key_admin(self, target_email: str, member: str) -> None:
        with self._lock:
            self._key_admins.get(target_email, set()).discard(_member_name(member))

    def set_key_expiry_policy(self, hours: float | None) -> None:
        """constraints/iam.serviceAccountKeyExpiryHours: keys made from now on (through the API
        or create_service_account) expire `hours` after they are made, and the token endpoint
        refuses them from then on as it refuses a deleted key. None lifts the policy; keys
        already made keep their expiry. Any positive hours are taken (Google: 8 to 2,160)."""
        self._account_keys.set_expiry_policy(hours)

    @property
    def key_expiry_hours(self) -> float | None:
        """The key-expiry policy in force (None: keys never expire)."""
        return self._account_keys.expiry_hours

    def user_managed_keys(self, email: str) -> list[ManagedKey]:
        """The account's keys as keys.list shows them now, oldest first (deleted ones gone)."""
        return self._account_keys.of_account(email)

    def key_api_calls(self) -> list[KeyApiCall]:
        """The requests to the IAM keys API so far, oldest first (from `requests`)."""
        with self._lock:
            recorded = list(self.requests)
        calls = []
        for request in recorded:
            call = key_call(request.method, request.path)
            if call is not None:
                calls.append(
                    KeyApiCall(call.action, call.account, call.key_id, request.status, request.time)
                )
        return calls

    # --- ID tokens: Google's signing keys ----------------------------------------------------

    def rotate_signing_key(self) -> str:
        """Google's key rotation: a new key signs ID tokens from now on, the previous one stays
        published (its tokens still verify), older ones are dropped. Returns the new kid."""
        return self._signing_keys.rotate()

    def retire_signing_key(self, kid: str) -> None:
        """Stops publishing a key that no longer signs: the tokens it signed stop verifying."""
        self._signing_keys.retire(kid)

    @property
    def signing_key_ids(self) -> tuple[str, ...]:
        """The kids published at the certificate endpoints, oldest first; the last one signs."""
        return self._signing_keys.published_kids

    def sign_id_token(self, claims: Mapping[str, object]) -> str:
        """Any claims signed as Google signs ID tokens (current key, kid in the header): for
        tests that need a token Google would never issue (expired, another issuer...)."""
        return self._signing_keys.sign(claims)

    # --- Cloud Run -------------------------------------------------------------------------

    def deploy_cloud_run(
        self,
        service: str,
        invokers: Iterable[str] = (),
        *,
        custom_audiences: Iterable[str] = (),
    ) -> str:
        """A Cloud Run service that requires authentication, with roles/run.invoker granted to
        `invokers` (e-mail addresses) and accepting ID tokens for its URL or any of
        `custom_audiences`. Returns its URL. Redeploying replaces the service."""
        if not _CLOUD_RUN_SERVICE.fullmatch(service):
            raise ValueError(
                f"{service!r} is not a Cloud Run service name: use up to 49 lowercase letters, "
                "digits and hyphens, starting with a letter"
            )
        if isinstance(invokers, str) or isinstance(custom_audiences, str):
            raise TypeError("invokers and custom_audiences are collections, not one string")
        deployed = _CloudRunService(set(invokers), tuple(custom_audiences))
        with self._lock:
            self._cloud_run[service] = deployed
        return self.cloud_run_url(service)

    def grant_run_invoker(self, service: str, member: str) -> None:
        """Grants roles/run.invoker on the deployed service to `member` (an e-mail address)."""
        with self._lock:
            self._cloud_run_service(service).invokers.add(member)

    def revoke_run_invoker(self, service: str, member: str) -> None:
        with self._lock:
            self._cloud_run_service(service).invokers.discard(member)

    def allow_lifetime_extension(self, email: str) -> None:
        """Lists `email` in constraints/iam.allowServiceAccountCredentialLifetimeExtension, so
        generateAccessToken grants it lifetimes up to 12 hours."""
        with self._lock:
            self._lifetime_extension.add(email)

    def allow_domain_wide_delegation(
        self, email: str, scopes: tuple[str, ...] | None = None
    ) -> None:
        """Lets the account's JWT grants carry `sub` (Workspace admin's domain-wide delegation
        of its client id): for `scopes` only, or any scope when None."""
        with self._lock:
            self._delegation[email] = None if scopes is None else frozenset(scopes)

    def register_workload_identity_provider(self, audience: str, aws_account_id: str) -> None:
        """An AWS provider of a workload identity pool: `audience` is its full resource name,
        //iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/R;
        only callers of AWS account `aws_account_id` may exchange tokens with it."""
        match = _PROVIDER_AUDIENCE.fullmatch(audience)
        if match is None:
            raise ValueError(f"not a workload identity pool provider's full name: {audience!r}")
        if not re.fullmatch(r"[0-9]{12}", aws_account_id):
            raise ValueError(f"an AWS account id has 12 digits, not {aws_account_id!r}")
        provider = _Provider(match["project"], match["pool"], aws_account_id)
        with self._lock:
            self._providers[audience] = provider

    def register_key(self, key: ServiceAccountKey) -> None:
        loaded = serialization.load_pem_private_key(key.private_key_pem.encode(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise TypeError("Google service-account keys are RSA keys")
        self._register(key, loaded.public_key())

    def _register(
        self,
        key: ServiceAccountKey,
        public_key: rsa.RSAPublicKey,
        *,
        through_api: bool = False,
    ) -> ManagedKey:
        """Registers the key; one made `through_api` counts against the 10-key limit and is
        accepted only after the propagation delay."""
        with self._lock:
            known_id = self._client_ids.setdefault(key.client_email, key.client_id)
        if known_id != key.client_id:
            raise ValueError(
                f"{key.client_email} already has client_id {known_id}, not {key.client_id}"
            )
        return self._account_keys.add(
            key.private_key_id,
            key.client_email,
            _public_pem(public_key),
            propagation_seconds=self.key_propagation_seconds if through_api else None,
            enforce_limit=through_api,
        )

    def disable_key(self, private_key_id: str, *, until_epoch: float | None = None) -> None:
        """Disables the key, as IAM does: Google refuses its JWT grants with invalid_grant
        "Invalid JWT Signature." (as for a deleted key). With `until_epoch`, only until that
        emulator time, after which it works again; without, until enable_key."""
        until = math.inf if until_epoch is None else until_epoch
        self._account_keys.disable(private_key_id, until=until)

    def enable_key(self, private_key_id: str) -> None:
        self._account_keys.enable(private_key_id)

    def revoke_key(self, private_key_id: str) -> None:
        """Deletes the key, as IAM does; its account (and client_id) stays, and so do the
        access tokens it minted, until they expire."""
        self._account_keys.delete(private_key_id)

    def revoke_token(self, access_token: str) -> None:
        with self._lock:
            record = self._tokens.get(access_token)
            if record is None:
                raise KeyError("the emulator never issued that access token")
            record.revoked = True

    def token_info(self, access_token: str) -> dict[str, str] | None:
        """What /tokeninfo answers for the token now, asked in-process (neither recorded nor
        subject to injected failures): its fields, or None where Google answers invalid_token."""
        try:
            return self._token_info(access_token)
        except _OAuthError:
            return None

    def issued_tokens(self) -> list[IssuedToken]:
        with self._lock:
            return [record.token for record in self._tokens.values()]

    # --- Calendar API ----------------------------------------------------------------------

    def add_calendar(
        self,
        calendar_id: str,
        *,
        readers: Iterable[str],
        summary: str | None = None,
        time_zone: str = "UTC",
    ) -> None:
        """A calendar that `readers` may list the events of: e-mail addresses of service accounts
        or of Workspace users that domain-wide-delegation tokens act for. Its owner, the user
        whose e-mail is `calendar_id` (a primary calendar), reads it too."""
        if isinstance(readers, str):
            raise TypeError("readers is a collection of e-mail addresses, not one string")
        calendar = _Calendar(
            id=calendar_id,
            summary=calendar_id if summary is None else summary,
            time_zone=time_zone,
            readers=frozenset(readers),
            created=self.now(),
        )
        with self._lock:
            if calendar_id in self._calendars:
                raise ValueError(f"the emulator already has calendar {calendar_id!r}")
            self._calendars[calendar_id] = calendar

    def add_event(
        self,
        calendar_id: str,
        summary: str,
        start: datetime.datetime,
        end: datetime.datetime,
    ) -> str:
        """Adds a timed event to the calendar, created now on the emulator clock; returns its id.
        `start` and `end` must be aware; they are kept in UTC, to the second."""
        if start.utcoffset() is None or end.utcoffset() is None:
            raise ValueError("start and end must be aware datetimes")
        start_utc = start.astimezone(datetime.UTC).replace(microsecond=0)
        end_utc = end.astimezone(datetime.UTC).replace(microsecond=0)
        if end_utc < start_utc:
            raise ValueError("an event cannot end before it starts")
        event_id = "".join(secrets.choice(_EVENT_ID_ALPHABET) for _ in range(26))
        event = _Event(event_id, summary, start_utc, end_utc, self.now())
        with self._lock:
            calendar = self._calendars.get(calendar_id)
            if calendar is None:
                raise KeyError(f"no calendar {calendar_id!r}: call add_calendar first")
            calendar.events.append(event)
        return event_id

    # --- failure injection -----------------------------------------------------------------

    def fail_next(
        self,
        route: str,
        *,
        status: int = 503,
        body: dict[str, object] | str | None = None,
        hang_seconds: float | None = None,
        reset_connection: bool = False,
        count: int = 1,
    ) -> None:
        """The next `count` requests to `route` fail: with `status` and `body`; or, given
        `hang_seconds`, by answering nothing for that long and then closing the connection; or,
        with `reset_connection`, by a TCP reset instead of any answer."""
        if count < 1:
            raise ValueError("count must be at least 1")
        failure = _failure(route, status, body, hang_seconds, reset_connection, count)
        with self._lock:
            self._failures[route].append(failure)

    def fail_during(
        self,
        route: str,
        until_epoch: float,
        *,
        status: int = 503,
        body: dict[str, object] | str | None = None,
        hang_seconds: float | None = None,
        reset_connection: bool = False,
    ) -> None:
        """A storm: every request to `route` fails, as fail_next describes, until the emulator's
        clock reaches `until_epoch`. Requests during a storm leave fail_next's queue alone."""
        failure = _failure(route, status, body, hang_seconds, reset_connection, 1)
        with self._lock:
            self._storms[route].append(_Storm(failure, until_epoch))

    def end_failures(self) -> int:
        """Drops the queued failures and storms of every route (Google's outage ends); returns
        how many queued requests would still have failed."""
        with self._lock:
            left = sum(failure.remaining for queue in self._failures.values() for failure in queue)
            for queue in self._failures.values():
                queue.clear()
            for storms in self._storms.values():
                storms.clear()
        return left

    def reset(self) -> None:
        """Forgets queued failures, storms, the request log, the access a test granted (roles,
        policies, the key-expiry policy too, delegation, pool providers), calendars and Cloud
        Run services; keys (signing keys too) and issued tokens stay."""
        self._account_keys.set_expiry_policy(None)
        with self._lock:
            for queue in self._failures.values():
                queue.clear()
            for storms in self._storms.values():
                storms.clear()
            self.requests.clear()
            self._token_creators.clear()
            self._open_id_token_creators.clear()
            self._key_admins.clear()
            self._cloud_run.clear()
            self._lifetime_extension.clear()
            self._delegation.clear()
            self._providers.clear()
            self._calendars.clear()

    # --- used by the request handler -------------------------------------------------------

    def _cloud_run_service(self, service: str) -> _CloudRunService:
        deployed = self._cloud_run.get(service)
        if deployed is None:
            raise KeyError(f"no Cloud Run service {service!r}: call deploy_cloud_run first")
        return deployed

    def _take_failure(self, path: str) -> InjectedFailure | None:
        route = _route_of(path)
        if route is None:
            return None
        now = self.now()
        with self._lock:
            storms = self._storms.get(route)
            if storms:
                storms[:] = [storm for storm in storms if now < storm.until]
                if storms:
                    return storms[0].failure
            queue = self._failures.get(route)
            if not queue:
                return None
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.popleft()
            return failure

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _answer(
        self,
        method: str,
        path: str,
        content_type: str,
        query: dict[str, str],
        form: dict[str, str],
        bearer: str | None = None,
        body: bytes = b"",
        raw_query: str = "",
    ) -> _Reply:
        try:
            route = _route_of(path)
            if route in _OWN_SHAPE_ROUTES:
                return self._answer_cloud_api(
                    route, method, path, content_type, query, bearer, body, raw_query
                )
            if path in ("/token", _STS_PATH):
                if method != "POST":
                    raise _OAuthError(405, "invalid_request", "The token endpoint takes POST.")
                grant = self._exchange if path == _STS_PATH else self._grant
                return _json_reply(200, grant(content_type, form))
            if path == "/tokeninfo":
                # Every form Google takes: access_token in the query (GET or POST) or in a posted
                # form, or an `Authorization: Bearer` header with an empty body (GET or POST;
                # Google's Node library posts that since 2025).
                params = {**query, **form} if method == "POST" else query
                access_token = params.get("access_token") or bearer
                return _json_reply(200, self._token_info(access_token))
            raise _OAuthError(404, "not_found", f"The emulator has no {path}.")
        except _OAuthError as error:
            reply = _json_reply(
                error.status, {"error": error.error, "error_description": error.description}
            )
            if error.status == 405:
                return _Reply(reply.status, reply.body, reply.content_type, (("Allow", "POST"),))
            return reply
        except Exception as error:
            # An emulator bug must reach the test as a response, since stderr stays silent.
            return _json_reply(500, {"error": "emulator_error", "error_description": repr(error)})

    def _answer_cloud_api(
        self,
        route: str,
        method: str,
        path: str,
        content_type: str,
        query: dict[str, str],
        bearer: str | None,
        body: bytes,
        raw_query: str,
    ) -> _Reply:
        """The Cloud APIs, Cloud Run and the certificates, which answer in their own shapes
        rather than OAuth's."""
        if route == "/keys":
            return self._answer_keys(method, path, raw_query, content_type, body, bearer)
        if route == "/run":
            return self._answer_cloud_run(path, bearer)
        if route == "/certs":
            return self._answer_certs(method, path)
        if route == "/calendar":
            # Google takes the token from the header or, as an alternative, the query.
            return self._answer_calendar(method, path, query, bearer or query.get("access_token"))
        return self._answer_generate(method, path, content_type, body, bearer)

    def _answer_certs(self, method: str, path: str) -> _Reply:
        if method != "GET":
            reply = _json_reply(405, _request_error("The certificate endpoints take GET."))
            return _Reply(reply.status, reply.body, reply.content_type, (("Allow", "GET"),))
        keys = self._signing_keys
        payload = keys.certificates() if path == _CERTS_PATHS[0] else keys.jwks()
        reply = _json_reply(200, payload)
        # Relying parties cache the keys for max-age, so a rotation reaches them late.
        cache = f"public, max-age={self.certs_max_age_seconds}, must-revalidate, no-transform"
        return _Reply(reply.status, reply.body, reply.content_type, (("Cache-Control", cache),))

    def _grant(self, content_type: str, form: dict[str, str]) -> dict[str, object]:
        if content_type != _FORM:
            raise _OAuthError(400, "invalid_request", f"The request body must be {_FORM}.")
        grant_type = form.get("grant_type", "")
        if grant_type != JWT_BEARER_GRANT:
            raise _OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = form.get("assertion")
        if not assertion:
            raise _OAuthError(400, "invalid_request", "Missing required parameter: assertion")
        issuer, client_id, claims = self._verified_assertion(assertion)
        target_audience = claims.get("target_audience")
        if isinstance(target_audience, str) and target_audience:
            # Google answers an ID token for that audience instead of an access token.
            id_token = self._signing_keys.sign(
                id_token_claims(
                    audience=target_audience,
                    unique_id=client_id,
                    email=issuer,
                    issued_at=self.now(),
                )
            )
            return {"id_token": id_token}
        scopes = _scopes(claims)
        subject = self._delegated_subject(issuer, claims, scopes)
        lifetime = int(self.token_lifetime_seconds)
        token = self._issue(
            client_email=issuer,
            client_id=client_id,
            scopes=scopes,
            lifetime=lifetime,
            identities=frozenset({subject or issuer}),
            subject=subject,
        )
        return {"access_token": token.access_token, "expires_in": lifetime, "token_type": "Bearer"}

    def _issue(
        self,
        *,
        client_email: str,
        client_id: str,
        scopes: tuple[str, ...],
        lifetime: int,
        identities: frozenset[str],
        subject: str | None = None,
        principal: str | None = None,
    ) -> IssuedToken:
        issued_at = self.now()
        token = IssuedToken(
            access_token="ya29." + secrets.token_urlsafe(96),
            client_email=client_email,
            scopes=scopes,
            issued_at=issued_at,
            expires_at=issued_at + lifetime,
            subject=subject,
            principal=principal,
        )
        with self._lock:
            self._tokens[token.access_token] = _TokenRecord(token, client_id, identities)
        return token

    def _delegated_subject(
        self, issuer: str, claims: Mapping[str, object], scopes: tuple[str, ...]
    ) -> str | None:
        """The `sub` of a domain-wide-delegation grant, once the account may delegate for it;
        None without `sub`. Google answers 401 unauthorized_client when the client id is not
        delegated in the Workspace admin console, or not for every scope asked."""
        subject = claims.get("sub")
        if subject is None:
            return None
        with self._lock:
            allowed = issuer in self._delegation
            delegated_scopes = self._delegation.get(issuer)
        if not isinstance(subject, str) or not subject or not allowed:
            raise _OAuthError(401, "unauthorized_client", _DWD_REFUSED)
        if delegated_scopes is not None and not delegated_scopes.issuperset(scopes):
            raise _OAuthError(401, "unauthorized_client", _DWD_REFUSED)
        return subject

    # --- IAM Credentials: generateAccessToken ------------------------------------------------

    def _answer_generate(
        self, method: str, path: str, content_type: str, body: bytes, bearer: str | None
    ) -> _Reply:
        try:
            if method != "POST":
                raise _ApiError(404, "NOT_FOUND", f"The emulator has no {method} {path}.")
            match = _IAM_CREDENTIALS_PATH.fullmatch(path)
            if match is None or match["project"] != "-":
                # Google insists on the "-" wildcard for the project.
                raise _invalid_argument(
                    "The resource name must be projects/-/serviceAccounts/{ACCOUNT_EMAIL}."
                )
            generate = (
                self._generate_access_token
                if match["method"] == "generateAccessToken"
                else self._generate_id_token
            )
            return _json_reply(200, generate(unquote(match["account"]), content_type, body, bearer))
        except _ApiError as error:
            return _json_reply(error.code, error.payload())

    def _iam_credentials_request(
        self, content_type: str, body: bytes, bearer: str | None
    ) -> tuple[_TokenRecord, dict[str, object]]:
        """The caller's token record and the JSON request of an IAM Credentials call."""
        caller = self._iam_caller(bearer)
        return caller, _json_request(content_type, body)

    def _iam_caller(self, bearer: str | None) -> _TokenRecord:
        """The record of a Bearer token that may call the IAM APIs."""
        caller = self._bearer_record(bearer)
        if not IAM_SCOPES.intersection(caller.token.scopes):
            # Google's text for a token without cloud-platform or iam (verified as Google's
            # standard ACCESS_TOKEN_SCOPE_INSUFFICIENT message).
            raise _ApiError(
                403, "PERMISSION_DENIED", "Request had insufficient authentication scopes."
            )
        return caller

    def _authorized_target(
        self,
        caller: _TokenRecord,
        delegates: tuple[str, ...],
        target: str,
        *,
        id_token: bool,
    ) -> str:
        """The target's client_id once the chain may act for it: the caller holds the permission
        on the first delegate (or the target), each delegate the token-creator role on the
        next. For ID tokens the caller's permission, getOpenIdToken, comes with either the
        OpenID token creator role or the token creator role."""
        permission = _GET_OPEN_ID_TOKEN_PERMISSION if id_token else _GET_ACCESS_TOKEN_PERMISSION
        with self._lock:
            members: frozenset[str] = caller.identities
            for link, next_account in enumerate((*delegates, target)):
                holders = set(self._token_creators.get(next_account, ()))
                if id_token and link == 0:
                    holders |= self._open_id_token_creators.get(next_account, set())
                if not members.intersection(holders):
                    raise _permission_denied(permission)
                members = frozenset({next_account})
            client_id = self._client_ids.get(target)
        if client_id is None:
            # Unverified text: Google's answer for an account that does not exist (it is
            # reached only when the caller holds the role, e.g. granted on the project).
            raise _ApiError(404, "NOT_FOUND", f"Not found; Gaia id not found for email {target}")
        return client_id

    def _generate_id_token(
        self, target: str, content_type: str, body: bytes, bearer: str | None
    ) -> dict[str, object]:
        caller, request = self._iam_credentials_request(content_type, body, bearer)
        audience = request.get("audience")
        if not isinstance(audience, str) or not audience:
            # Unverified text: Google answers 400 INVALID_ARGUMENT for a missing audience.
            raise _invalid_argument("Invalid value for field 'audience': it is required.")
        include_email = request.get("includeEmail", False)
        if not isinstance(include_email, bool):
            raise _invalid_argument("Invalid value at 'include_email' (TYPE_BOOL).")
        delegates = _requested_delegates(request.get("delegates"))
        client_id = self._authorized_target(caller, delegates, target, id_token=True)
        claims = id_token_claims(
            audience=audience,
            unique_id=client_id,
            email=target if include_email else None,
            issued_at=self.now(),
        )
        return {"token": self._signing_keys.sign(claims)}

    def _generate_access_token(
        self, target: str, content_type: str, body: bytes, bearer: str | None
    ) -> dict[str, object]:
        caller, request = self._iam_credentials_request(content_type, body, bearer)
        scopes = _requested_scopes(request.get("scope"))
        lifetime = _requested_lifetime(request.get("lifetime"))
        delegates = _requested_delegates(request.get("delegates"))
        client_id = self._authorized_target(caller, delegates, target, id_token=False)
        with self._lock:
            extended = target in self._lifetime_extension
        if lifetime > DEFAULT_IMPERSONATED_LIFETIME and not extended:
            # Unverified text: Google's exact wording was not found; it answers 400
            # INVALID_ARGUMENT and names the 1-hour cap and the org policy constraint.
            raise _invalid_argument(
                f"The lifetime requested ({lifetime}s) exceeds the maximum of 3600s allowed for "
                f"{target}: lifetimes up to {MAX_IMPERSONATED_LIFETIME}s need the service "
                "account listed in the organization policy constraint "
                "constraints/iam.allowServiceAccountCredentialLifetimeExtension."
            )
        token = self._issue(
            client_email=target,
            client_id=client_id,
            scopes=scopes,
            lifetime=lifetime,
            identities=frozenset({target}),
        )
        expire_time = datetime.datetime.fromtimestamp(int(token.expires_at), tz=datetime.UTC)
        # Whole seconds only: google-auth parses expireTime with "%Y-%m-%dT%H:%M:%SZ".
        return {
            "accessToken": token.access_token,
            "expireTime": expire_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    # --- IAM: service-account keys ------------------------------------------------------------

    def _answer_keys(
        self,
        method: str,
        path: str,
        raw_query: str,
        content_type: str,
        body: bytes,
        bearer: str | None,
    ) -> _Reply:
        try:
            call = key_call(method, path)
            if call is None:
                raise _ApiError(404, "NOT_FOUND", f"The emulator has no {method} {path}.")
            caller = self._iam_caller(bearer)
            account = self._key_admin_target(caller, call)
            if call.action == "create":
                return _json_reply(200, self._create_key(account, content_type, body))
            if call.action == "list":
                key_types = requested_key_types(raw_query)
                keys = self._account_keys.of_account(account) if USER_MANAGED in key_types else []
                # Google leaves out an empty list.
                return _json_reply(200, {"keys": [key.resource() for key in keys]} if keys else {})
            return _json_reply(200, self._answer_key(call.action, account, cast(str, call.key_id)))
        except KeyLimitError:
            # Google's whole answer to an 11th key (verified: reported by Vault and Packer users).
            return _json_reply(
                400, _ApiError(400, "FAILED_PRECONDITION", "Precondition check failed.").payload()
            )
        except InvalidKeyRequestError as error:
            return _json_reply(400, _invalid_argument(str(error)).payload())
        except _ApiError as error:
            return _json_reply(error.code, error.payload())

    def _answer_key(self, action: str, account: str, key_id: str) -> dict[str, object]:
        """keys.get, delete, disable and enable: the same code as the test helpers'."""
        keys = self._account_keys
        try:
            if action == "get":
                return keys.get(key_id, account).resource()
            {"delete": keys.delete, "disable": keys.disable, "enable": keys.enable}[action](
                key_id, account
            )
        except KeyError:
            # Unverified text: Google answers 404 NOT_FOUND for a key the account does not have.
            raise _ApiError(
                404, "NOT_FOUND", f"Service account key {key_name(account, key_id)} does not exist."
            ) from None
        return {}

    def _key_admin_target(self, caller: _TokenRecord, call: KeyCall) -> str:
        """The e-mail of the account whose keys the call reaches, once the caller holds
        roles/iam.serviceAccountKeyAdmin on it (the path names it by e-mail or unique id)."""
        with self._lock:
            account = call.account
            if account.isdecimal():
                by_id = {client_id: email for email, client_id in self._client_ids.items()}
                account = by_id.get(account, account)
            if not caller.identities.intersection(self._key_admins.get(account, ())):
                raise _permission_denied(call.permission)
            exists = account in self._client_ids
        if not exists or call.project not in ("-", project_of(account)):
            # Unverified text: Google's answer for an account that does not exist (reached only
            # when the caller holds the role, e.g. granted on the project).
            raise _ApiError(
                404,
                "NOT_FOUND",
                f"Service account projects/{call.project}/serviceAccounts/"
                f"{call.account} does not exist.",
            )
        return account

    def _create_key(self, account: str, content_type: str, body: bytes) -> dict[str, object]:
        request = _json_request(content_type, body) if body.strip() else {}
        check_create_request(request)
        with self._lock:
            client_id = self._client_ids[account]
        key, public_key = _new_key(account, client_id)
        managed = self._register(key, public_key, through_api=True)
        # Google's key file is indented JSON; the API hands it out base64-encoded.
        key_file = json.dumps(key.key_file(self.token_url), indent=2) + "\n"
        return {
            **managed.resource(),
            "privateKeyType": GOOGLE_CREDENTIALS_FILE,
            "privateKeyData": base64.b64encode(key_file.encode()).decode("ascii"),
        }

    def _bearer_record(self, bearer: str | None) -> _TokenRecord:
        now = self.now()
        with self._lock:
            record = self._tokens.get(bearer) if bearer else None
            if record is None or record.revoked or now >= record.token.expires_at:
                raise _ApiError(401, "UNAUTHENTICATED", _UNAUTHENTICATED)
            return record

    # --- Cloud Run: the front end's check of the Bearer ID token -----------------------------

    def _answer_cloud_run(self, path: str, bearer: str | None) -> _Reply:
        match = _CLOUD_RUN_PATH.fullmatch(path)
        service = match["service"] if match else ""
        inner_path = (match["path"] if match else None) or "/"
        with self._lock:
            deployed = self._cloud_run.get(service)
            invokers = frozenset(deployed.invokers) if deployed else frozenset()
            audiences = (
                (self.cloud_run_url(service), *deployed.custom_audiences) if deployed else ()
            )
        if deployed is None:
            return _front_end_page(404, inner_path)
        if bearer is None:
            # No credentials at all: Cloud Run answers 403, not 401.
            return _front_end_page(403, inner_path)
        try:
            claims = self._signing_keys.verified_claims(bearer)
            check_id_token(
                claims,
                audiences=audiences,
                now=self.now(),
                clock_skew_seconds=self.clock_skew_seconds,
            )
        except InvalidIdTokenError:
            # Access tokens land here too: they are not JWTs.
            return _front_end_page(401, inner_path)
        email = claims.get("email")
        # Unverified: a token without the email claim (generateIdToken without includeEmail)
        # is refused here; the product asks for the email, so the stricter reading is safe.
        if claims.get("email_verified") is not True or email not in invokers:
            return _front_end_page(403, inner_path)
        return _json_reply(200, {"message": "hello", "email": email})

    # --- Calendar API: events.list ----------------------------------------------------------

    def _answer_calendar(
        self, method: str, path: str, query: dict[str, str], access_token: str | None
    ) -> _Reply:
        try:
            match = _EVENTS_PATH.fullmatch(path)
            if match is None:
                raise _calendar_not_found()
            if method != "GET":
                # Unverified shape: Google would insert an event; the emulator only lists them.
                message = "The emulator's Calendar API only lists events (GET)."
                raise _CalendarError(
                    405,
                    message,
                    {"domain": "global", "reason": "httpMethodNotAllowed", "message": message},
                    headers=(("Allow", "GET"),),
                )
            answer = self._list_events(unquote(match["calendar"]), query, access_token)
            return _json_reply(200, answer)
        except _CalendarError as error:
            reply = _json_reply(error.code, error.payload)
            return _Reply(reply.status, reply.body, reply.content_type, error.headers)

    def _list_events(
        self, calendar_id: str, query: dict[str, str], access_token: str | None
    ) -> dict[str, object]:
        principal = self._calendar_principal(access_token)
        request = _event_query(query)
        if calendar_id == "primary":
            calendar_id = principal
        with self._lock:
            calendar = self._calendars.get(calendar_id)
            if calendar is None or not calendar.readable_by(principal):
                raise _calendar_not_found()
            events = list(calendar.events)
        updated = max([calendar.created, *(event.created for event in events)])
        matching = [
            event
            for event in events
            if (request.time_min is None or event.end > request.time_min)
            and (request.time_max is None or event.start < request.time_max)
        ]
        if request.order_by == "startTime":
            matching.sort(key=lambda event: event.start)
        elif request.order_by == "updated":
            matching.sort(key=lambda event: event.created)
        end = request.offset + request.max_results
        answer: dict[str, object] = {
            "kind": "calendar#events",
            "etag": _etag(updated),
            "summary": calendar.summary,
            "description": "",
            "updated": _rfc3339_millis(updated),
            "timeZone": calendar.time_zone,
            "accessRole": "reader",
            "defaultReminders": [],
        }
        if end < len(matching):
            answer["nextPageToken"] = _page_token(end)
        answer["items"] = [
            _event_resource(calendar.id, event) for event in matching[request.offset : end]
        ]
        return answer

    def _calendar_principal(self, access_token: str | None) -> str:
        """Who the token reads calendars as: the user a domain-wide-delegation token acts for,
        else its service account; "" for a federated token, which therefore reads none."""
        try:
            record = self._bearer_record(access_token)
        except _ApiError:
            raise _calendar_unauthenticated() from None
        if not CALENDAR_SCOPES.intersection(record.token.scopes):
            raise _calendar_scope_insufficient()
        return record.token.subject or record.token.client_email

    # --- Google STS: token exchange for AWS workload identity federation ---------------------

    def _exchange(self, content_type: str, form: dict[str, str]) -> dict[str, object]:
        if content_type != _FORM:
            raise _OAuthError(400, "invalid_request", f"The request body must be {_FORM}.")
        grant_type = form.get("grant_type", "")
        if grant_type != TOKEN_EXCHANGE_GRANT:
            raise _OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        if form.get("requested_token_type") != ACCESS_TOKEN_TYPE:
            raise _OAuthError(400, "invalid_request", 'Invalid value for "requested_token_type".')
        if form.get("subject_token_type") != AWS4_REQUEST_TOKEN_TYPE:
            # The emulator knows AWS providers only; Google refuses a type the provider lacks.
            raise _OAuthError(400, "invalid_request", 'Invalid value for "subject_token_type".')
        audience = form.get("audience", "")
        if _PROVIDER_AUDIENCE.fullmatch(audience) is None:
            raise _OAuthError(400, "invalid_request", _AUDIENCE_MALFORMED)
        with self._lock:
            provider = self._providers.get(audience)
        if provider is None:
            raise _OAuthError(400, "invalid_target", _AUDIENCE_UNKNOWN)
        scopes = tuple(form.get("scope", "").split())
        if not scopes:
            raise _OAuthError(400, "invalid_scope", "Empty or missing scope not allowed.")
        arn, account = self._aws_caller(form.get("subject_token", ""), audience)
        if account != provider.aws_account_id:
            # Unverified text: Google refuses callers of another AWS account with invalid_grant.
            raise _invalid_grant(
                f"The AWS account {account} of the subject token does not match the AWS account "
                "configured for the workload identity pool provider."
            )
        pool = (
            f"//iam.googleapis.com/projects/{provider.project_number}/locations/global/"
            f"workloadIdentityPools/{provider.pool}"
        )
        principal = f"principal:{pool}/subject/{arn}"
        identities = {principal, arn}
        role = _aws_role(arn)
        if role is not None:
            # Google's default AWS attribute mapping: attribute.aws_role is the assumed role.
            identities.add(f"principalSet:{pool}/attribute.aws_role/{role}")
        lifetime = int(self.token_lifetime_seconds)
        token = self._issue(
            client_email="",
            client_id="",
            scopes=scopes,
            lifetime=lifetime,
            identities=frozenset(identities),
            principal=principal,
        )
        return {
            "access_token": token.access_token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": lifetime,
        }

    def _aws_caller(self, subject_token: str, audience: str) -> tuple[str, str]:
        """The (ARN, account) AWS answers the subject token's signed GetCallerIdentity with.

        As Google does, the emulator checks the request is a POST of sts GetCallerIdentity and
        forwards it, signature and all, to AWS, which verifies it; its URL is rewritten to
        `aws_endpoint_url` since AWS here is the local cloud's."""
        signed = _signed_request(subject_token)
        url = urlsplit(signed.url)
        query = _first_values(url.query)
        if (
            signed.method != "POST"
            or url.scheme != "https"
            or not _AWS_STS_HOST.fullmatch(url.hostname or "")
            or query.get("Action") != "GetCallerIdentity"
            or query.get("Version") != "2011-06-15"
        ):
            raise _invalid_grant(
                "The subject token must be a signed AWS STS GetCallerIdentity POST."
            )
        target = signed.headers.get("x-goog-cloud-target-resource")
        if target is not None and target.removeprefix("https:") != audience:
            # The header is signed with the request: it binds the token to one provider.
            raise _invalid_grant("x-goog-cloud-target-resource does not match the audience.")
        if self.aws_endpoint_url is None:
            raise RuntimeError("the Google emulator has no aws_endpoint_url to forward STS to")
        forward_url = self.aws_endpoint_url.rstrip("/") + (url.path or "/") + "?" + url.query
        try:
            response = self._aws_http.request(
                "POST", forward_url, headers=signed.headers, body=signed.data
            )
        except urllib3.exceptions.HTTPError as error:
            raise _OAuthError(503, "temporarily_unavailable", f"AWS unreachable: {error}") from None
        answer = response.data.decode("utf-8", "replace")
        if response.status != 200:
            code = _xml_text(answer, "Code") or f"HTTP {response.status}"
            message = _xml_text(answer, "Message") or ""
            raise _invalid_grant(f"AWS refused the subject token: {code}: {message}".rstrip(": "))
        arn, account = _xml_text(answer, "Arn"), _xml_text(answer, "Account")
        if arn is None or account is None:
            raise _invalid_grant("AWS answered GetCallerIdentity without an Arn and Account.")
        return arn, account

    def _verified_assertion(self, assertion: str) -> tuple[str, str, Mapping[str, object]]:
        """The JWT-bearer assertion checked as Google checks it: (issuer, its client_id, claims).

        google-auth's `jwt.decode` verifies the RS256 signature against the issuer's enabled
        keys (public keys by key id: the header's kid picks one, no kid tries each), the
        audience, and iat/exp on the real clock with the clock skew allowed plus the emulator's
        clock offset, so that it never refuses what the emulator's clock accepts. The emulator
        then checks the audience and times itself, on its own clock, with Google's rules (whole
        seconds, at most an hour, a skew of `clock_skew_seconds`); that also names what
        jwt.decode refused once the signature is known to be good."""
        header, claims = _unverified_jwt(assertion)
        kid = header.get("kid")
        if header.get("alg") != "RS256" or not (kid is None or (isinstance(kid, str) and kid)):
            raise _invalid_grant(_BAD_SIGNATURE)
        issuer = claims.get("iss")
        with self._lock:
            client_id = self._client_ids.get(issuer) if isinstance(issuer, str) else None
        if not isinstance(issuer, str) or client_id is None:
            raise _invalid_grant("Invalid grant: account not found")
        # Disabled, deleted, expired and not-yet-propagated keys all fail as a bad signature.
        certs = self._account_keys.verification_keys(issuer)
        if "iat" not in claims or "exp" not in claims:
            # jwt.decode reports a missing time claim as it reports a bad signature.
            raise _invalid_grant(_NOT_SHORT_LIVED)
        allowance = self.clock_skew_seconds + math.ceil(abs(self.now() - time.time())) + 1
        try:
            google_jwt.decode(
                assertion,
                certs=certs,
                audience=self.GOOGLE_TOKEN_AUDIENCE,
                clock_skew_in_seconds=allowance,
            )
        except google_auth_exceptions.MalformedError:
            # No enabled key of the issuer under the kid, or none that verifies the signature.
            raise _invalid_grant(_BAD_SIGNATURE) from None
        except (google_auth_exceptions.InvalidValue, TypeError) as error:
            # The signature verified; the audience or the times did not (TypeError: times that
            # are not numbers). The emulator's own checks name which, as Google does.
            self._check_audience_and_times(claims)
            raise RuntimeError(f"jwt.decode refused what the emulator accepts: {error}") from None
        self._check_audience_and_times(claims)
        return issuer, client_id, claims

    def _check_audience_and_times(self, claims: Mapping[str, object]) -> None:
        if claims.get("aud") != self.GOOGLE_TOKEN_AUDIENCE:
            raise _invalid_grant(
                "Invalid JWT: Failed audience check. "
                f"The right audience is {self.GOOGLE_TOKEN_AUDIENCE}"
            )
        iat, exp = claims.get("iat"), claims.get("exp")
        if (
            not isinstance(iat, int)
            or not isinstance(exp, int)
            or isinstance(iat, bool)
            or isinstance(exp, bool)
        ):
            raise _invalid_grant(_NOT_SHORT_LIVED)
        now, skew = self.now(), self.clock_skew_seconds
        in_timeframe = iat <= now + skew and exp > now - skew
        if not (0 < exp - iat <= _MAX_ASSERTION_LIFETIME and in_timeframe):
            raise _invalid_grant(_NOT_SHORT_LIVED)

    def _token_info(self, access_token: str | None) -> dict[str, str]:
        now = self.now()
        with self._lock:
            record = self._tokens.get(access_token) if access_token else None
            usable = record is not None and not record.revoked and now < record.token.expires_at
        if record is None or not usable:
            raise _OAuthError(400, "invalid_token", "Invalid Value")
        token = record.token
        info: dict[str, str] = {}
        if record.client_id:
            # A federated token has no OAuth client; what Google's tokeninfo shows for one is
            # unverified, so the emulator shows neither azp nor aud nor email for it.
            info |= {"azp": record.client_id, "aud": record.client_id}
        info |= {
            "scope": " ".join(token.scopes),
            "exp": str(int(token.expires_at)),
            "expires_in": str(int(token.expires_at - now)),
        }
        email = token.subject or token.client_email
        if EMAIL_SCOPES.intersection(token.scopes) and email:
            # A domain-wide-delegation token shows the user it acts for, with the service
            # account's client id as azp/aud (unverified: how Google is reported to answer).
            info["email"] = email
            info["email_verified"] = "true"
        info["access_type"] = "online"
        return info


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops bursts of connections into slow SYN retries.
    request_queue_size = 128

    def __init__(self, emulator: GoogleEmulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    @override
    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    @override
    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up are part of the job; stderr must stay quiet.
        pass

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as urllib3's pools expect of Google.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; Nagle would hold the body for a delayed ACK.
    disable_nagle_algorithm = True

    @property
    def _server(self) -> _Server:
        return cast(_Server, self.server)

    @override
    def setup(self) -> None:
        super().setup()
        self._server.track(self.connection)

    @override
    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._server.untrack(self.connection)

    @override
    def version_string(self) -> str:
        return "ESF"

    @override
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        emulator = self._server.emulator
        arrived = emulator.now()
        url = urlsplit(self.path)
        query = _first_values(url.query)
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        bearer = _bearer_token(self.headers.get("Authorization", ""))
        body, problem = self._read_body()
        form = _first_values(body.decode("utf-8", "replace")) if content_type == _FORM else {}
        failure = None if problem else emulator._take_failure(url.path)
        reply: _Reply | None
        if problem is not None:
            reply = problem
        elif failure is None:
            reply = emulator._answer(
                method, url.path, content_type, query, form, bearer, body, url.query
            )
        elif failure.hang_seconds is None and not failure.reset_connection:
            reply = _failure_reply(failure)
        else:
            reply = None
        # Logged before answering, so a client that has its answer also finds it in the log.
        emulator._record(
            RecordedRequest(
                method,
                url.path,
                query,
                form,
                None if reply is None else reply.status,
                arrived,
                bearer,
            )
        )
        if reply is not None:
            self._send(reply)
        elif failure is not None:
            self._misbehave(failure, emulator._stopping)

    def _read_body(self) -> tuple[bytes, _Reply | None]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return b"", _json_reply(411, _request_error("Send a Content-Length."))
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY_BYTES:
            # The unread body would be taken for the next request on this connection.
            self.close_connection = True
            return b"", _json_reply(400, _request_error("Bad Content-Length."))
        return self.rfile.read(length), None

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if not any(name == "Cache-Control" for name, _ in reply.headers):
            self.send_header("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
            self.send_header("Pragma", "no-cache")
        for name, value in reply.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)

    def _misbehave(self, failure: InjectedFailure, stopping: threading.Event) -> None:
        if failure.hang_seconds:
            stopping.wait(failure.hang_seconds)
        if failure.reset_connection:
            # Linger 0 makes close() send RST instead of FIN: a reset, not a polite hang-up.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        # The socket only really closes once the buffered reader lets go of it too.
        self.rfile.close()
        self.connection.close()


def _failure(
    route: str,
    status: int,
    body: dict[str, object] | str | None,
    hang_seconds: float | None,
    reset_connection: bool,
    count: int,
) -> InjectedFailure:
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, not {route!r}")
    if hang_seconds is not None and hang_seconds < 0:
        raise ValueError("hang_seconds cannot be negative")
    return InjectedFailure(route, status, body, hang_seconds, reset_connection, count)


# Google's front end answers in these pages (401 and 403 verified: quoted from Cloud Run's
# real answers in google/adk-python issue #3814 and datacommonsorg/docsite #463; the 404 and
# the 401's WWW-Authenticate, reported for Cloud Functions, are unverified for Cloud Run).
_FRONT_END_TITLES: Final = {401: "Unauthorized", 403: "Forbidden", 404: "Page not found"}
_FRONT_END_TEXTS: Final = {
    401: "Your client does not have permission to the requested URL <code>{path}</code>.",
    403: "Your client does not have permission to get URL <code>{path}</code> from this server.",
    404: "The requested URL <code>{path}</code> was not found on this server.",
}
_INVALID_ID_TOKEN: Final = (
    'Bearer error="invalid_token" error_description="The access token could not be verified"'
)


def _front_end_page(status: int, path: str) -> _Reply:
    title = _FRONT_END_TITLES[status]
    text = _FRONT_END_TEXTS[status].format(path=html.escape(path))
    page = (
        "<html><head>\n"
        '<meta http-equiv="content-type" content="text/html;charset=utf-8">\n'
        f"<title>{status} {title}</title>\n"
        "</head>\n"
        "<body text=#000000 bgcolor=#ffffff>\n"
        f"<h1>Error: {title}</h1>\n"
        f"<h2>{text}</h2>\n"
        "<h2></h2>\n"
        "</body></html>\n"
    )
    headers = (("WWW-Authenticate", _INVALID_ID_TOKEN),) if status == 401 else ()
    return _Reply(status, page.encode(), _HTML, headers)


def _json_reply(status: int, payload: dict[str, Any]) -> _Reply:
    # Google pretty-prints its OAuth JSON; matching it keeps byte counts realistic.
    return _Reply(status, json.dumps(payload, indent=2).encode())


def _request_error(description: str) -> dict[str, str]:
    return {"error": "invalid_request", "error_description": description}


def _failure_reply(failure: InjectedFailure) -> _Reply:
    body = failure.body
    if body is None and failure.route == "/run":
        # Unverified page: what Google's front end serves when the service fails.
        body = (
            f"<html><head><title>{failure.status} Injected failure</title></head>"
            f"<body><h1>Error: Injected failure (HTTP {failure.status})</h1></body></html>\n"
        )
    if body is None and failure.route in (
        "/generateAccessToken",
        "/generateIdToken",
        "/calendar",
        "/keys",
    ):
        # Cloud APIs answer in their own error shape, not OAuth's.
        status = "UNAVAILABLE" if failure.status == 503 else "INTERNAL"
        if failure.status < 500:
            status = "FAILED_PRECONDITION"
        message = f"Injected failure (HTTP {failure.status})."
        api_error: dict[str, object] = {
            "code": failure.status,
            "message": message,
            "status": status,
        }
        if failure.route == "/calendar":
            # The Calendar API's shape adds the legacy `errors` list clients take reasons from.
            reason = "backendError" if failure.status >= 500 else "failedPrecondition"
            api_error["errors"] = [{"domain": "global", "reason": reason, "message": message}]
        body = {"error": api_error}
    if body is None:
        error = "internal_failure" if failure.status >= 500 else "injected_failure"
        body = {"error": error, "error_description": f"Injected failure (HTTP {failure.status})."}
    if isinstance(body, str):
        return _Reply(failure.status, body.encode(), _HTML)
    return _json_reply(failure.status, body)


def _route_of(path: str) -> str | None:
    """The failure-injection key of a request path (one of ROUTES), or None."""
    if path in _EXACT_ROUTES:
        return _EXACT_ROUTES[path]
    if is_keys_path(path):
        return "/keys"
    if path.startswith("/v1/projects/"):
        method = path.rpartition(":")[2]
        return f"/{method}" if method in ("generateAccessToken", "generateIdToken") else None
    for prefix, route in ((_CALENDAR_PREFIX, "/calendar"), (_CLOUD_RUN_PREFIX, "/run")):
        if path.startswith(prefix):
            return route
    return None


def _event_query(query: Mapping[str, str]) -> _EventQuery:
    single_events = _boolean(query.get("singleEvents", "false"))
    order_by = query.get("orderBy")
    if order_by not in (None, "startTime", "updated"):
        raise _calendar_bad_request()
    if order_by == "startTime" and not single_events:
        # Ordering by start needs recurring events expanded into their instances.
        raise _ordering_unavailable()
    return _EventQuery(
        time_min=_timestamp(query.get("timeMin")),
        time_max=_timestamp(query.get("timeMax")),
        max_results=_max_results(query.get("maxResults")),
        offset=_page_offset(query.get("pageToken")),
        order_by=order_by,
    )


def _boolean(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise _calendar_bad_request()
    return value.lower() == "true"


def _timestamp(value: str | None) -> datetime.datetime | None:
    """An RFC 3339 timestamp; Google insists on the offset (or Z)."""
    if value is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise _calendar_bad_request() from None
    if "T" not in value or moment.utcoffset() is None:
        raise _calendar_bad_request()
    return moment


def _max_results(value: str | None) -> int:
    if value is None:
        return _DEFAULT_MAX_RESULTS
    if not value.isdecimal() or int(value) < 1:
        raise _calendar_bad_request()
    # Google caps larger pages silently.
    return min(int(value), _MAX_MAX_RESULTS)


def _page_token(offset: int) -> str:
    # Opaque to clients, as Google's are; the emulator needs nothing but where the page starts.
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _page_offset(token: str | None) -> int:
    if token is None:
        return 0
    try:
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:
        raise _calendar_bad_request() from None
    match = _PAGE_TOKEN.fullmatch(decoded)
    if match is None:
        raise _calendar_bad_request()
    return int(match["offset"])


def _event_resource(calendar_id: str, event: _Event) -> dict[str, object]:
    stamp = _rfc3339_millis(event.created)
    # Google's eid: the event id and its calendar's id, base64url without padding.
    eid = base64.urlsafe_b64encode(f"{event.id} {calendar_id}".encode()).decode().rstrip("=")
    return {
        "kind": "calendar#event",
        "etag": _etag(event.created),
        "id": event.id,
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
        "created": stamp,
        "updated": stamp,
        "summary": event.summary,
        "creator": {"email": calendar_id},
        "organizer": {"email": calendar_id, "self": True},
        "start": {"dateTime": _rfc3339_seconds(event.start), "timeZone": "UTC"},
        "end": {"dateTime": _rfc3339_seconds(event.end), "timeZone": "UTC"},
        "iCalUID": f"{event.id}@google.com",
        "sequence": 0,
        "eventType": "default",
    }


def _etag(updated: float) -> str:
    # Google's etags are quoted strings; the update time in microseconds changes with the content.
    return f'"{int(updated * 1_000_000)}"'


def _rfc3339_millis(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rfc3339_seconds(moment: datetime.datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _requested_scopes(scope: object) -> tuple[str, ...]:
    if not isinstance(scope, list) or not scope:
        raise _invalid_argument("Scope required.")
    if not all(isinstance(item, str) and item for item in scope):
        raise _invalid_argument("Invalid value at 'scope'.")
    return tuple(cast(list[str], scope))


def _requested_lifetime(lifetime: object) -> int:
    """Whole seconds of a protobuf Duration ("3600s"); fractions are dropped."""
    if lifetime is None:
        return DEFAULT_IMPERSONATED_LIFETIME
    match = _LIFETIME.fullmatch(lifetime) if isinstance(lifetime, str) else None
    if match is None:
        raise _invalid_argument(
            "Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration)."
        )
    seconds = int(match["seconds"])
    if not 0 < seconds <= MAX_IMPERSONATED_LIFETIME:
        raise _invalid_argument(
            f"The lifetime must be between 1s and {MAX_IMPERSONATED_LIFETIME}s, not {seconds}s."
        )
    return seconds


def _requested_delegates(delegates: object) -> tuple[str, ...]:
    if delegates is None:
        return ()
    if not isinstance(delegates, list):
        raise _invalid_argument("Invalid value at 'delegates'.")
    accounts = []
    for delegate in delegates:
        match = _DELEGATE.fullmatch(delegate) if isinstance(delegate, str) else None
        if match is None:
            raise _invalid_argument(
                "Delegates must have the format projects/-/serviceAccounts/{ACCOUNT_EMAIL}."
            )
        accounts.append(unquote(match["account"]))
    return tuple(accounts)


@dataclass(frozen=True)
class _SignedRequest:
    url: str
    method: str
    headers: dict[str, str]
    data: bytes | None


def _signed_request(subject_token: str) -> _SignedRequest:
    """The AWS request serialized in an aws4_request subject token: URL-quoted JSON of
    {url, method, headers: [{key, value}], data?}, as google-auth's aws.Credentials writes it."""
    try:
        decoded = json.loads(unquote(subject_token))
    except ValueError:
        raise _invalid_grant("The subject token is not a serialized AWS request.") from None
    if not isinstance(decoded, dict):
        raise _invalid_grant("The subject token is not a serialized AWS request.")
    url, method, headers = decoded.get("url"), decoded.get("method"), decoded.get("headers")
    if not isinstance(url, str) or not isinstance(method, str) or not isinstance(headers, list):
        raise _invalid_grant("The subject token needs url, method and headers.")
    pairs: dict[str, str] = {}
    for header in headers:
        key = header.get("key") if isinstance(header, dict) else None
        value = header.get("value") if isinstance(header, dict) else None
        if not isinstance(key, str) or not isinstance(value, str):
            raise _invalid_grant("The subject token's headers must be {key, value} pairs.")
        pairs[key.lower()] = value
    if "authorization" not in pairs:
        raise _invalid_grant("The subject token's request is not signed.")
    data = decoded.get("data")
    return _SignedRequest(
        url, method, pairs, data.encode() if isinstance(data, str) and data else None
    )


def _xml_text(document: str, element: str) -> str | None:
    # A regex, not an XML parser: the answer comes from the local cloud's AWS and holds
    # a handful of flat elements.
    match = re.search(rf"<{element}>([^<]*)</{element}>", document)
    return match.group(1).strip() if match else None


def _aws_role(arn: str) -> str | None:
    """arn:aws:sts::A:assumed-role/R for an assumed-role session ARN, else None."""
    match = re.fullmatch(r"(arn:aws[a-z-]*:sts::[0-9]{12}:assumed-role/[^/]+)/.+", arn)
    return match.group(1) if match else None


def _first_values(encoded: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(encoded, keep_blank_values=True).items()}


def _bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case)."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _unverified_jwt(assertion: str) -> tuple[Mapping[str, object], Mapping[str, object]]:
    """The assertion's header and claims, not yet verified; Google refuses anything but three
    unpadded base64url segments holding JSON objects (google-auth's decoder pads and skips
    characters outside the alphabet, so the form is checked here)."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise _invalid_grant("Invalid JWT: a JWT has three dot-separated parts.")
    if not all(_BASE64URL.fullmatch(part) and len(part) % 4 != 1 for part in parts):
        raise _invalid_grant("Invalid JWT: segments must be unpadded base64url.")
    try:
        header = google_jwt.decode_header(assertion)
        claims = google_jwt.decode(assertion, verify=False)
    except ValueError:
        raise _invalid_grant("Invalid JWT: header and claims must be JSON objects.") from None
    return header, claims


def _scopes(claims: Mapping[str, object]) -> tuple[str, ...]:
    scope = claims.get("scope")
    scopes = tuple(scope.split()) if isinstance(scope, str) else ()
    if not scopes:
        raise _OAuthError(400, "invalid_scope", "Empty or missing scope not allowed.")
    return scopes


def _new_client_id() -> str:
    # Google's service-account client ids are 21-digit numbers starting with 1.
    return "1" + "".join(secrets.choice("0123456789") for _ in range(20))


def _json_request(content_type: str, body: bytes) -> dict[str, object]:
    """The JSON object a Cloud API request carries."""
    if content_type != "application/json":
        raise _invalid_argument("The request body must be application/json.")
    try:
        request = json.loads(body)
    except ValueError:
        raise _invalid_argument("Invalid JSON payload received.") from None
    if not isinstance(request, dict):
        raise _invalid_argument("Invalid JSON payload received.")
    return request


def _new_key(email: str, client_id: str) -> tuple[ServiceAccountKey, rsa.RSAPublicKey]:
    """A new RSA 2048 key of the account, and its public half (reloading the PEM would
    re-validate the key for nothing; that costs tens of ms)."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    key = ServiceAccountKey(
        client_email=email,
        client_id=client_id,
        private_key_id=secrets.token_hex(20),
        private_key_pem=pem,
    )
    return key, private_key.public_key()


def _member_name(member: str) -> str:
    """An IAM member as the emulator's bindings hold it: e-mail addresses without IAM's
    "serviceAccount:" or "user:" prefix."""
    kind, colon, name = member.partition(":")
    return name if colon and kind in ("serviceAccount", "user") else member


def _public_pem(public_key: rsa.RSAPublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
