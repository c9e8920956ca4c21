"""What happens at Google, done to a running `up`'s emulator, so that an operator can rehearse
the runbook (docs/runbook.md) on the local cloud: a key deleted, a new key made, an outage.

`up`'s control server calls these for `python -m localcloud google ...`; each stands in for what
someone does in the Google Cloud console or with `gcloud` (no gcloud talks to the emulator)."""

import json
import math
from typing import TYPE_CHECKING, Final

from localcloud.deployment import CURRENT
from localcloud.google_emulator import ROUTES, GoogleEmulator

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

MAX_FAILURES: Final = 1000
MAX_ADVANCE_SECONDS: Final = 86400


class RehearsalError(ValueError):
    """The request cannot be done: the message says why and what to send instead."""


def stored_key(cloud: "LocalCloud") -> dict[str, str]:
    """The key file the stack's key secret holds now (AWSCURRENT)."""
    assert cloud.deployment is not None
    answer = cloud.client("secretsmanager").get_secret_value(
        SecretId=cloud.deployment.key_secret_arn, VersionStage=CURRENT
    )
    try:
        key = json.loads(answer["SecretString"])
    except ValueError:
        key = None
    if not isinstance(key, dict) or not {"private_key_id", "client_email"} <= key.keys():
        raise RehearsalError("the key secret holds no service-account key file: put one first")
    return {name: str(value) for name, value in key.items()}


def delete_stored_key(cloud: "LocalCloud") -> dict[str, object]:
    """Deletes, at Google, the key the key secret holds (gcloud iam service-accounts keys
    delete): the next mint with it gets invalid_grant."""
    key = stored_key(cloud)
    try:
        cloud.google.revoke_key(key["private_key_id"])
    except KeyError as error:
        raise RehearsalError(f"key {key['private_key_id']} is deleted already") from error
    return {"ServiceAccount": key["client_email"], "DeletedKeyId": key["private_key_id"]}


def create_key(cloud: "LocalCloud") -> dict[str, str]:
    """A new key of the key secret's service account, as its key file (gcloud iam
    service-accounts keys create); the secret itself is left as it is."""
    email = stored_key(cloud)["client_email"]
    key = cloud.google.create_service_account(email)
    return key.key_file(GoogleEmulator.GOOGLE_TOKEN_AUDIENCE)


def list_keys(cloud: "LocalCloud") -> dict[str, object]:
    """The user-managed keys of the key secret's service account as IAM's keys.list shows them
    (gcloud iam service-accounts keys list --managed-by=user), oldest first."""
    email = stored_key(cloud)["client_email"]
    keys = [key.resource() for key in cloud.google.user_managed_keys(email)]
    return {"ServiceAccount": email, "Keys": keys}


def set_key_expiry_policy(cloud: "LocalCloud", request: object) -> dict[str, object]:
    """The organisation policy constraints/iam.serviceAccountKeyExpiryHours: keys made from now
    on expire `Hours` after they are made; null lifts it."""
    hours = request.get("Hours") if isinstance(request, dict) else None
    if hours is not None and (
        isinstance(hours, bool)
        or not isinstance(hours, int | float)
        or not (hours > 0 and math.isfinite(hours))
    ):
        raise RehearsalError(
            f"Hours must be a positive number (Google allows 8 to 2160) or null, not {hours!r}"
        )
    cloud.google.set_key_expiry_policy(hours)
    return {"KeyExpiryHours": hours}


def fail_next(cloud: "LocalCloud", request: object) -> dict[str, object]:
    """The next `Count` requests to Google's `Route` answer `Status` (an outage, a throttle)."""
    fields = request if isinstance(request, dict) else {}
    route, status, count = fields.get("Route"), fields.get("Status", 503), fields.get("Count", 1)
    if route not in ROUTES:
        raise RehearsalError(f"Route must be one of {', '.join(ROUTES)}, not {route!r}")
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise RehearsalError(f"Status must be an HTTP error status (400-599), not {status!r}")
    if not isinstance(count, int) or not 1 <= count <= MAX_FAILURES:
        raise RehearsalError(f"Count must be 1 to {MAX_FAILURES}, not {count!r}")
    cloud.google.fail_next(route, status=status, count=count)
    return {"Route": route, "Status": status, "Count": count}


def end_failures(cloud: "LocalCloud") -> dict[str, object]:
    """Google's outage ends: the failures still queued are dropped."""
    return {"FailuresDropped": cloud.google.end_failures()}


def advance_clock(cloud: "LocalCloud", request: object) -> dict[str, object]:
    """`Seconds` pass on the cloud's clock at once, so that what is due then (a retry a notice
    promised, the sweep) fires without waiting for it in real time."""
    seconds = request.get("Seconds") if isinstance(request, dict) else None
    if not isinstance(seconds, int) or not 1 <= seconds <= MAX_ADVANCE_SECONDS:
        raise RehearsalError(f"Seconds must be 1 to {MAX_ADVANCE_SECONDS}, not {seconds!r}")
    cloud.clock.advance(seconds)
    return {"AdvancedSeconds": seconds, "Now": cloud.clock.now()}
