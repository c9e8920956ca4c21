"""Commands in another process acting on a running `python -m localcloud up`.

`up` describes itself twice: in a state file (default `.localcloud/up.json` at the project root,
or $LOCALCLOUD_STATE_FILE, or --state-file) that it removes on exit, and in the SSM parameter
`/localcloud/up` of its own moto server, so that an endpoint alone is enough to find the rest.
Functions run through Lambda's Invoke API on that moto server, which hands the call to the real
handler in a warm worker of `up`; the one thing no AWS API can do, making the empty AWSPENDING
version Secrets Manager creates before it calls createSecret, goes to `up`'s small control
server (`POST /begin-rotation`). Nothing here imports moto: these commands start quickly."""

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Self

import urllib3

from localcloud.deployment import Deployment, check_port_free, make_client

SSM_PARAMETER: Final = "/localcloud/up"
STATE_FILE_VARIABLE: Final = "LOCALCLOUD_STATE_FILE"
DEFAULT_STATE_FILE: Final = Path(__file__).resolve().parent.parent / ".localcloud" / "up.json"
# Lambda's longest timeout, and a little more for moto and the worker.
_INVOKE_READ_TIMEOUT_SECONDS: Final = 960
_PROBE_TIMEOUT: Final = urllib3.Timeout(connect=1.0, read=2.0)


class AttachError(Exception):
    """No running `up` could be used: the message says why and what to do."""


@dataclass(frozen=True)
class UpDescription:
    """What a running `up` serves and deployed: enough for another process to use it."""

    pid: int
    endpoint: str
    control_url: str
    region: str
    stack_name: str
    refs: dict[str, str]
    """TokenSecret, ServiceAccountKeySecret, RotationStateMachine, FailureTopic."""
    functions: dict[str, str]
    google_token_url: str
    google_tokeninfo_url: str
    notices_queue_url: str

    @classmethod
    def of(
        cls,
        *,
        pid: int,
        endpoint: str,
        control_url: str,
        region: str,
        deployment: Deployment,
        google_token_url: str,
        google_tokeninfo_url: str,
        notices_queue_url: str,
    ) -> Self:
        refs = {
            "TokenSecret": deployment.token_secret_arn,
            "ServiceAccountKeySecret": deployment.key_secret_arn,
            "RotationStateMachine": deployment.state_machine_arn,
            "FailureTopic": deployment.topic_arn,
        }
        return cls(
            pid=pid,
            endpoint=endpoint,
            control_url=control_url,
            region=region,
            stack_name=deployment.stack_name,
            refs=refs,
            functions=dict(deployment.functions),
            google_token_url=google_token_url,
            google_tokeninfo_url=google_tokeninfo_url,
            notices_queue_url=notices_queue_url,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Self:
        fields: Mapping[str, Any] = json.loads(text)
        return cls(**{name: fields[name] for name in cls.__dataclass_fields__})

    def deployment(self) -> Deployment:
        return Deployment(self.stack_name, dict(self.refs), {}, dict(self.functions))


def state_file(explicit: Path | None = None) -> Path:
    """--state-file, else $LOCALCLOUD_STATE_FILE, else `.localcloud/up.json` in the project."""
    if explicit is not None:
        return explicit
    from_environment = os.environ.get(STATE_FILE_VARIABLE)
    return Path(from_environment) if from_environment else DEFAULT_STATE_FILE


def write_state(path: Path, description: UpDescription) -> None:
    """Atomically; a new folder gets a .gitignore of its own, so that nobody commits it."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        (path.parent / ".gitignore").write_text("*\n")
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(description.to_json() + "\n")
    partial.replace(path)


def remove_state(path: Path, pid: int) -> None:
    """Removes the state file if it still describes this process's `up`."""
    try:
        if UpDescription.from_json(path.read_text()).pid == pid:
            path.unlink()
    except (OSError, ValueError, KeyError, TypeError):
        pass


def running_up(path: Path) -> UpDescription | None:
    """The `up` the state file describes if it still answers; None when there is no file or
    its `up` is gone (a stale file: killed with SIGKILL, or the machine restarted)."""
    try:
        description = UpDescription.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise AttachError(f"{path} is not a state file of `up` ({error}): remove it") from error
    try:
        answer = urllib3.PoolManager().request(
            "GET", description.control_url, timeout=_PROBE_TIMEOUT, retries=False
        )
    except urllib3.exceptions.HTTPError:
        return None
    if answer.status != 200 or json.loads(answer.data).get("pid") != description.pid:
        return None
    return description


def refuse_to_start(path: Path, port: int) -> str | None:
    """Why an `up` with this state file and port cannot start (another `up` owns the state
    file, or the port is taken), or None; quick, so that `up` refuses before importing moto."""
    try:
        other = running_up(path)
    except AttachError:
        other = None  # a broken state file is overwritten
    if other is not None:
        return (
            f"another `up` (pid {other.pid}) serves {other.endpoint} and owns {path}: stop it, "
            "or give this one --state-file elsewhere"
        )
    if port:
        try:
            check_port_free(port)
        except OSError as error:
            return f"cannot serve on 127.0.0.1:{port}: {error.strerror}"
    return None


class AttachedCloud:
    """A running `up` seen from another process: its AWS clients and its control server."""

    def __init__(self, description: UpDescription) -> None:
        self.description = description
        self._clients: dict[str, Any] = {}

    @classmethod
    def at_endpoint(cls, endpoint: str) -> Self:
        """The `up` serving moto at `endpoint`, found through its SSM parameter."""
        endpoint = endpoint.rstrip("/")
        ssm = make_client(endpoint, "ssm", {"connect_timeout": 2, "read_timeout": 10})
        try:
            value = ssm.get_parameter(Name=SSM_PARAMETER)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound as error:
            raise AttachError(
                f"{endpoint} answers but is no local cloud `up` (no {SSM_PARAMETER} parameter)"
            ) from error
        except Exception as error:
            raise AttachError(
                f"no local cloud `up` answers at {endpoint} ({type(error).__name__}): start "
                "`python -m localcloud up --port N` first, or leave --endpoint out"
            ) from error
        return cls(UpDescription.from_json(value))

    @property
    def deployment(self) -> Deployment:
        return self.description.deployment()

    def client(self, service: str, **config: Any) -> Any:
        if config:
            return make_client(self.description.endpoint, service, config)
        if service not in self._clients:
            self._clients[service] = make_client(self.description.endpoint, service, {})
        return self._clients[service]

    def begin_rotation(self, secret_id: str, token: str) -> dict[str, Any]:
        """Asks `up` for the empty AWSPENDING version `token` of the secret, as Secrets
        Manager makes it before createSecret; AttachError with `up`'s reason when refused."""
        answer = urllib3.PoolManager().request(
            "POST",
            f"{self.description.control_url}/begin-rotation",
            json={"SecretId": secret_id, "ClientRequestToken": token},
            timeout=urllib3.Timeout(connect=2.0, read=30.0),
            retries=False,
        )
        body: dict[str, Any] = json.loads(answer.data)
        if answer.status != 200:
            raise AttachError(f"--begin-rotation refused: {body.get('error', answer.status)}")
        return body

    def google(self, action: str, request: Mapping[str, object]) -> dict[str, Any]:
        """Asks `up` to do `action` at its Google emulator (localcloud.rehearsal); AttachError
        with `up`'s reason when refused."""
        answer = urllib3.PoolManager().request(
            "POST",
            f"{self.description.control_url}/google/{action}",
            json=dict(request),
            timeout=urllib3.Timeout(connect=2.0, read=30.0),
            retries=False,
        )
        body: dict[str, Any] = json.loads(answer.data)
        if answer.status != 200:
            raise AttachError(f"google {action} refused: {body.get('error', answer.status)}")
        return body

    def invoke(self, function_name: str, event: object) -> tuple[object, bool]:
        """Lambda's Invoke (RequestResponse) on `up`'s moto server: (the handler's result or
        its error object, whether the function failed)."""
        response = self.client("lambda", read_timeout=_INVOKE_READ_TIMEOUT_SECONDS).invoke(
            FunctionName=function_name, Payload=json.dumps(event).encode()
        )
        raw = response["Payload"].read()
        return (json.loads(raw) if raw else None), "FunctionError" in response
