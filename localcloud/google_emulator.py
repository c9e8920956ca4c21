"""Google's OAuth2 token endpoints on 127.0.0.1, so rotation is testable offline and breakable."""

import contextlib
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self, cast, override
from urllib.parse import parse_qs, quote, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as google_auth_exceptions
from google.auth import jwt as google_jwt

from localcloud.clock import SimulatedClock

JWT_BEARER_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
EMAIL_SCOPES: Final = frozenset({"https://www.googleapis.com/auth/userinfo.email", "email"})
ROUTES: Final = ("/token", "/tokeninfo")

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
            "project_id": _project_of(self.client_email),
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
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float


@dataclass
class _KeyEntry:
    key: ServiceAccountKey
    public_key_pem: str
    """The key's public half in PEM, as google-auth's jwt.decode takes certificates."""
    disabled_until: float = -math.inf
    """Emulator time from which the key is enabled again (math.inf: until enable_key)."""

    def enabled(self, now: float) -> bool:
        return now >= self.disabled_until


@dataclass
class _Storm:
    """Every request to a route fails as `failure` says until `until` (emulator time)."""

    failure: InjectedFailure
    until: float


@dataclass
class _TokenRecord:
    token: IssuedToken
    client_id: str
    revoked: bool = False


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


class GoogleEmulator:
    """Google's OAuth2 /token (JWT bearer grant, the assertion verified with google-auth's
    `jwt.decode` and the emulator's clock) and /tokeninfo (the token in the query, a posted form
    or an `Authorization: Bearer` header), served over real HTTP.

    The emulator's clock is `clock` (the local cloud's simulated clock, shared with its Lambda
    workers; a clock of its own when none is given) plus `clock_offset_seconds`, which tests set to
    put Google alone ahead or behind. Token lifetimes, expiry, tokeninfo's exp/expires_in, the
    assertion's iat/exp checks, key disabling and failure storms all follow it."""

    GOOGLE_TOKEN_AUDIENCE: Final = "https://oauth2.googleapis.com/token"

    def __init__(
        self,
        token_lifetime_seconds: int = 3600,
        clock_skew_seconds: int = 300,
        *,
        clock: SimulatedClock | None = None,
    ) -> None:
        self.token_lifetime_seconds = token_lifetime_seconds
        self.clock_skew_seconds = clock_skew_seconds
        self.clock = clock if clock is not None else SimulatedClock()
        self.clock_offset_seconds: float = 0.0
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._client_ids: dict[str, str] = {}
        self._keys: dict[str, _KeyEntry] = {}
        self._tokens: dict[str, _TokenRecord] = {}
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

    def now(self) -> float:
        """The emulator's clock: the shared clock plus `clock_offset_seconds`."""
        return self.clock.now() + self.clock_offset_seconds

    # --- service accounts and tokens ---------------------------------------------------------

    def create_service_account(
        self, email: str = "rotator@demo-project.iam.gserviceaccount.com"
    ) -> ServiceAccountKey:
        """A new RSA 2048 key for `email`, registered and enabled; an existing account keeps
        its client_id, as a second key on a real service account would."""
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        with self._lock:
            # Claimed under the lock so concurrent creations agree on the account's client_id.
            client_id = self._client_ids.setdefault(email, _new_client_id())
        key = ServiceAccountKey(
            client_email=email,
            client_id=client_id,
            private_key_id=secrets.token_hex(20),
            private_key_pem=pem,
        )
        # Reloading the PEM would re-validate the key for nothing; that costs tens of ms.
        self._register(key, private_key.public_key())
        return key

    def register_key(self, key: ServiceAccountKey) -> None:
        loaded = serialization.load_pem_private_key(key.private_key_pem.encode(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise TypeError("Google service-account keys are RSA keys")
        self._register(key, loaded.public_key())

    def _register(self, key: ServiceAccountKey, public_key: rsa.RSAPublicKey) -> None:
        with self._lock:
            known_id = self._client_ids.setdefault(key.client_email, key.client_id)
            if known_id != key.client_id:
                raise ValueError(
                    f"{key.client_email} already has client_id {known_id}, not {key.client_id}"
                )
            self._keys[key.private_key_id] = _KeyEntry(key, _public_pem(public_key))

    def disable_key(self, private_key_id: str, *, until_epoch: float | None = None) -> None:
        """Disables the key, as IAM does: Google refuses its JWT grants with invalid_grant
        "Invalid JWT Signature." (as for a deleted key). With `until_epoch`, only until that
        emulator time, after which it works again; without, until enable_key."""
        with self._lock:
            self._key_entry(private_key_id).disabled_until = (
                math.inf if until_epoch is None else until_epoch
            )

    def enable_key(self, private_key_id: str) -> None:
        with self._lock:
            self._key_entry(private_key_id).disabled_until = -math.inf

    def revoke_key(self, private_key_id: str) -> None:
        """Deletes the key, as IAM does; its account (and client_id) stays."""
        with self._lock:
            self._key_entry(private_key_id)
            del self._keys[private_key_id]

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

    def reset(self) -> None:
        """Forgets queued failures, storms and the request log; keys and issued tokens stay."""
        with self._lock:
            for queue in self._failures.values():
                queue.clear()
            for storms in self._storms.values():
                storms.clear()
            self.requests.clear()

    # --- used by the request handler -------------------------------------------------------

    def _key_entry(self, private_key_id: str) -> _KeyEntry:
        entry = self._keys.get(private_key_id)
        if entry is None:
            raise KeyError(f"no registered key {private_key_id!r}")
        return entry

    def _take_failure(self, path: str) -> InjectedFailure | None:
        now = self.now()
        with self._lock:
            storms = self._storms.get(path)
            if storms:
                storms[:] = [storm for storm in storms if now < storm.until]
                if storms:
                    return storms[0].failure
            queue = self._failures.get(path)
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
    ) -> _Reply:
        try:
            if path == "/token":
                if method != "POST":
                    raise _OAuthError(405, "invalid_request", "The token endpoint takes POST.")
                return _json_reply(200, self._grant(content_type, form))
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
        scopes = _scopes(claims)
        lifetime = int(self.token_lifetime_seconds)
        issued_at = self.now()
        token = IssuedToken(
            access_token="ya29." + secrets.token_urlsafe(96),
            client_email=issuer,
            scopes=scopes,
            issued_at=issued_at,
            expires_at=issued_at + lifetime,
        )
        with self._lock:
            self._tokens[token.access_token] = _TokenRecord(token, client_id)
        return {"access_token": token.access_token, "expires_in": lifetime, "token_type": "Bearer"}

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
        now = self.now()
        with self._lock:
            client_id = self._client_ids.get(issuer) if isinstance(issuer, str) else None
            certs = {
                key_id: entry.public_key_pem
                for key_id, entry in self._keys.items()
                if entry.enabled(now) and entry.key.client_email == issuer
            }
        if not isinstance(issuer, str) or client_id is None:
            raise _invalid_grant("Invalid grant: account not found")
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
        info = {
            "azp": record.client_id,
            "aud": record.client_id,
            "scope": " ".join(token.scopes),
            "exp": str(int(token.expires_at)),
            "expires_in": str(int(token.expires_at - now)),
        }
        if EMAIL_SCOPES.intersection(token.scopes):
            info["email"] = token.client_email
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
            reply = emulator._answer(method, url.path, content_type, query, form, bearer)
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


def _json_reply(status: int, payload: dict[str, Any]) -> _Reply:
    # Google pretty-prints its OAuth JSON; matching it keeps byte counts realistic.
    return _Reply(status, json.dumps(payload, indent=2).encode())


def _request_error(description: str) -> dict[str, str]:
    return {"error": "invalid_request", "error_description": description}


def _failure_reply(failure: InjectedFailure) -> _Reply:
    body = failure.body
    if body is None:
        error = "internal_failure" if failure.status >= 500 else "injected_failure"
        body = {"error": error, "error_description": f"Injected failure (HTTP {failure.status})."}
    if isinstance(body, str):
        return _Reply(failure.status, body.encode(), _HTML)
    return _json_reply(failure.status, body)


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


def _project_of(client_email: str) -> str:
    domain = client_email.rpartition("@")[2]
    return domain.removesuffix(".iam.gserviceaccount.com").split(".")[0]


def _public_pem(public_key: rsa.RSAPublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
