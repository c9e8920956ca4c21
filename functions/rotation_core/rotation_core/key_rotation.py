"""The service-account key secret renews itself through the same four steps as a token secret:
a new key at Google becomes AWSPENDING, is proven by a mint, is promoted, and the key it replaced
stays as a standby until the next rotation deletes it (docs/key-rotation.md)."""

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, NoReturn

from rotation_core.config import key_rotation_days
from rotation_core.errors import (
    GoogleGrantRejectedError,
    InvalidServiceAccountKeyError,
    NewKeyNotYetAcceptedError,
    RotationAbandonedError,
    RotationError,
    RotationInProgressError,
)
from rotation_core.follow_up import Clock, FollowUps
from rotation_core.google_client import GoogleClient
from rotation_core.iam_keys import (
    KEY_ADMIN_SCOPE,
    KEY_LIMIT,
    NO_EXPIRY,
    GoogleKey,
    ServiceAccountKeys,
)
from rotation_core.redaction import shown_key_id
from rotation_core.rotation_request import RotationRequest
from rotation_core.secrets import CURRENT, PENDING, PREVIOUS, SecretDescription, SecretsGateway
from rotation_core.service_account_key import (
    KeyMetadata,
    ServiceAccountKey,
    parse_service_account_key,
)
from rotation_core.step_outcome import StepOutcome, already_current, no_pending_value
from rotation_core.steps import Step
from rotation_core.token_secret import format_timestamp, parse_timestamp
from rotation_core.unverified import TOKENINFO_UNREACHABLE

logger = logging.getLogger(__name__)

KEY_VALID_BEFORE_TAG: Final = "token-rotation:key-valid-before"
"""When Google stops accepting the key in AWSCURRENT (absent: no key-expiry policy)."""
KEY_ROTATED_AT_TAG: Final = "token-rotation:key-rotated-at"
"""When the key rotation last promoted a key, and which version: "<time> <version id>". A key put
by hand since (another version in AWSCURRENT) makes both this and KEY_VALID_BEFORE_TAG stale."""
KEY_CREATE_STARTED_TAG: Final = "token-rotation:key-create-started"
"""Write-ahead record of the last keys.create: "<version id> <time>" before the call, and
"<version id> <time> <key id>" once the key file is stored. The next createSecret deletes that
key if no version holds it (a key testSecret gave up, or a pending key a manual run superseded;
testSecret's role may not read the key that could delete it). Without the key id the create may
have crashed between Google's answer and PutSecretValue: then the one key made within
CRASHED_CREATE_WINDOW after the time that no version holds is that call's."""
KEY_REFUSED_TAG: Final = "token-rotation:key-refused"
"""A key in AWSCURRENT that Google refused (deleted, disabled or expired behind the rotation's
back): "<key id> <standby version id> <its version id>". finishSecret then gives AWSPREVIOUS back
to the standby that kept everything minting, unless a key put by hand displaced the refused one
meanwhile, deletes the refused key and says so in a notice."""
ACCEPTED_ON_MINT: Final = "accepted-on-mint"
"""testSecret's action when Google minted with the new key and tokeninfo could not answer."""
KEY_ACCEPTANCE_BOUND: Final = timedelta(seconds=180)
"""How long a new key may take before Google accepts it; past that the rotation is abandoned."""
CLOCK_SKEW: Final = timedelta(seconds=30)
"""How far Google's validAfterTime may run behind the function's clock."""
CRASHED_CREATE_WINDOW: Final = timedelta(seconds=60)
"""keys.create answers within the Google HTTP timeout (at most 60 s): a key made later than that
after a recorded call is someone else's, never deleted."""
MAX_EXPIRY_MARGIN: Final = timedelta(days=7)
UNREAD_EXPIRY_RENEWAL: Final = timedelta(hours=6)
"""Google's key-expiry policy allows no key less than 8 hours: a key put by hand is renewed
within 6, whatever its expiry, which the stack learns only from the keys it makes."""


def expiry_margin(rotated_at: datetime, valid_before: datetime) -> timedelta:
    """How long before its expiry a key is replaced: a week, or a quarter of the key's life when
    a key-expiry policy makes keys shorter-lived than four weeks (an 8-hour key: after 6 h)."""
    return min(MAX_EXPIRY_MARGIN, max(valid_before - rotated_at, timedelta(0)) / 4)


def key_due_at(rotated_at: datetime, valid_before: datetime | None, days: int) -> datetime:
    """When the key in AWSCURRENT must next be replaced: every `days`, and earlier when its own
    expiry comes within the margin."""
    due = rotated_at + timedelta(days=days)
    if valid_before is None or valid_before >= NO_EXPIRY:
        return due
    return min(due, valid_before - expiry_margin(rotated_at, valid_before))


@dataclass(frozen=True)
class KeyStatus:
    """What the key secret's tags say of its key: for the sweep's metric and its trigger."""

    rotated_at: datetime | None
    valid_before: datetime | None
    refused_key: str | None
    policy_life: timedelta | None = None
    """A key put by hand since the last rotation: the life Google gave the key that rotation
    made (the organisation's key-expiry policy), which the hand-put key is taken not to outlive."""

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], current_version: str | None) -> "KeyStatus":
        """`current_version`: the key secret's AWSCURRENT version. When the rotation did not
        put it there, the key was put by hand and its expiry is unread: no rotated_at, no
        valid_before (the tags describe an older key)."""

        def moment(value: str | None, tag: str) -> datetime | None:
            try:
                return None if value is None else parse_timestamp(value, tag)
            except RotationError:
                return None

        refused = tags.get(KEY_REFUSED_TAG)
        rotated = tags.get(KEY_ROTATED_AT_TAG, "").split(" ")
        rotated_at = moment(rotated[0] or None, KEY_ROTATED_AT_TAG)
        valid_before = moment(tags.get(KEY_VALID_BEFORE_TAG), KEY_VALID_BEFORE_TAG)
        if len(rotated) == 2 and rotated[1] != current_version:
            life = None
            if rotated_at is not None and valid_before is not None and valid_before < NO_EXPIRY:
                life = valid_before - rotated_at
            return cls(None, None, refused, life)
        return cls(rotated_at, valid_before, refused)

    def due_at(self, days: int, created: datetime) -> datetime:
        """`created`: the AWSCURRENT version's creation, for a key put by hand, whose expiry
        the stack has not read yet: renewed within UNREAD_EXPIRY_RENEWAL, before any key-expiry
        policy can end it, and sooner when the last key the stack made lived shorter (renewed as
        that key would have been); the renewal records the new key's expiry."""
        if self.rotated_at is None:
            wait = min(timedelta(days=days), UNREAD_EXPIRY_RENEWAL)
            if self.policy_life is not None:
                wait = min(wait, self.policy_life - min(MAX_EXPIRY_MARGIN, self.policy_life / 4))
            return created + wait
        return key_due_at(self.rotated_at, self.valid_before, days)


class KeyRotation:
    """The four steps for the stack's own key secret; the key's account manages its own keys
    (roles/iam.serviceAccountKeyAdmin on itself)."""

    def __init__(
        self,
        secrets: SecretsGateway,
        google: GoogleClient,
        environment: Mapping[str, str],
        clock: Clock,
        follow_ups: FollowUps,
    ) -> None:
        self._secrets = secrets
        self._google = google
        self._environment = environment
        self._clock = clock
        self._follow_ups = follow_ups

    def run(self, step: Step, request: RotationRequest, secret: SecretDescription) -> StepOutcome:
        handlers = {
            Step.CREATE: self._create,
            Step.SET: self._set,
            Step.TEST: self._test,
            Step.FINISH: self._finish,
        }
        return handlers[step](request, secret)

    def _create(self, request: RotationRequest, secret: SecretDescription) -> StepOutcome:
        """A new key at Google stored as AWSPENDING, after the standby key is deleted: at most
        two keys of this stack exist at Google, and never more than one created per rotation."""
        if request.manual and request.token not in secret.version_stages:
            self._take_over_pending(secret, request.token)
        elif already_current(secret, request, Step.CREATE):
            return StepOutcome(Step.CREATE, secret.arn, request.token, "already-current")
        else:
            stored = self._secrets.read_pending(secret.arn, request.token)
            if stored is not None:
                pending = parse_service_account_key(stored, secret.name)
                return StepOutcome(
                    Step.CREATE, secret.arn, request.token, "already-created", _metadata(pending)
                )
        current = parse_service_account_key(self._secrets.read_current(secret.arn), secret.name)
        keys, refused = self._keys_api(secret, current)
        existing = self._retire(secret, keys, current, standby_in_use=refused)
        if len(existing) >= KEY_LIMIT:
            raise keys.limit_reached(existing)
        now = self._clock()
        self._secrets.tag(
            secret.arn, {KEY_CREATE_STARTED_TAG: f"{request.token} {format_timestamp(now)}"}
        )
        created = keys.create()
        new_key = parse_service_account_key(created.key_file, secret.name)
        written = self._secrets.put_pending(
            secret.arn, request.token, created.key_file, request.rotation_token
        )
        if not written:
            # Another attempt of this rotation stored its key first: ours is nobody's.
            keys.delete(created.key.key_id)
            stored = self._secrets.read_pending(secret.arn, request.token)
            if stored is None:
                raise no_pending_value(Step.CREATE, secret, request.token)
            winner = parse_service_account_key(stored, secret.name)
            return StepOutcome(
                Step.CREATE, secret.arn, request.token, "already-created", _metadata(winner)
            )
        self._secrets.tag(
            secret.arn,
            {
                KEY_CREATE_STARTED_TAG: (
                    f"{request.token} {format_timestamp(now)} {created.key.key_id}"
                )
            },
        )
        logger.info(
            "stored a new service-account key as AWSPENDING",
            extra={"version_id": request.token, "key_id": created.key.key_id},
        )
        return StepOutcome(
            Step.CREATE,
            secret.arn,
            request.token,
            "created",
            _metadata(new_key, created.key.valid_before),
        )

    def _set(self, request: RotationRequest, secret: SecretDescription) -> StepOutcome:
        """Nothing to set at Google: keys.create already made the key; it must parse."""
        if already_current(secret, request, Step.SET):
            return StepOutcome(Step.SET, secret.arn, request.token, "already-current")
        pending = self._pending_key(Step.SET, secret, request.token)
        return StepOutcome(Step.SET, secret.arn, request.token, "checked", _metadata(pending))

    def _test(self, request: RotationRequest, secret: SecretDescription) -> StepOutcome:
        """Mint with the new key and ask tokeninfo whose token it is. A new key may take a
        short while before Google accepts it: refused within KEY_ACCEPTANCE_BOUND is transient
        (the state machine retries), past it the rotation is abandoned and the key deleted.
        tokeninfo unreachable: the mint alone vouches for the key (ACCEPTED_ON_MINT)."""
        if already_current(secret, request, Step.TEST):
            return StepOutcome(Step.TEST, secret.arn, request.token, "already-current")
        if not request.manual and self._secrets.read_pending(secret.arn, request.token) is None:
            # RotateSecret(RotateImmediately=false), as CloudFormation's schedule runs it at
            # deploy: testSecret alone on an empty pending version, before any key was put.
            logger.info("no pending key: the rotation's configuration was checked")
            return StepOutcome(Step.TEST, secret.arn, request.token, "configuration-checked")
        pending = self._pending_key(Step.TEST, secret, request.token)
        credentials = pending.credentials((KEY_ADMIN_SCOPE,), self._google.endpoints.token_url)
        try:
            self._google.refresh(credentials)
        except GoogleGrantRejectedError as refusal:
            created = self._secrets.version_created(secret.arn, request.token)
            age = None if created is None else self._clock() - created
            if age is not None and age < KEY_ACCEPTANCE_BOUND:
                raise NewKeyNotYetAcceptedError(
                    "testSecret: Google does not accept the new key "
                    f"{shown_key_id(pending.private_key_id)} of {pending.client_email} yet "
                    f"({int(age.total_seconds())} s after it was created; new keys can take a "
                    f"short while): {refusal}"
                ) from None
            self._abandon(
                Step.TEST,
                secret,
                request.token,
                f"holds a key Google still refused {int(KEY_ACCEPTANCE_BOUND.total_seconds())} s "
                f"after creating it ({refusal})",
            )
        try:
            info = self._google.token_info(str(credentials.token))
        except TOKENINFO_UNREACHABLE as unreachable:
            # Google's token endpoint took an assertion signed with the new key for its account:
            # that is what a key must prove. tokeninfo's email and azp add a check, not a
            # condition, so its silence never holds up a key that may be near its expiry.
            logger.warning(
                "tokeninfo could not answer: the new key is accepted on Google's mint alone",
                extra={"key_id": pending.private_key_id, "tokeninfo_error": str(unreachable)},
            )
            return StepOutcome(
                Step.TEST, secret.arn, request.token, ACCEPTED_ON_MINT, _metadata(pending)
            )
        if info.email not in (None, pending.client_email) or info.authorized_party != (
            pending.client_id
        ):
            self._abandon(
                Step.TEST,
                secret,
                request.token,
                f"holds a key whose token tokeninfo attributes to another account than "
                f"{pending.client_email}",
            )
        return StepOutcome(Step.TEST, secret.arn, request.token, "verified", _metadata(pending))

    def _finish(self, request: RotationRequest, secret: SecretDescription) -> StepOutcome:
        """Promote the tested key; the one it replaces becomes AWSPREVIOUS, the standby."""
        days = key_rotation_days(self._environment)
        if already_current(secret, request, Step.FINISH):
            if PENDING in secret.version_stages.get(request.token, ()):
                # An attempt promoted the key and stopped before its bookkeeping: finish it.
                pending = self._pending_key(Step.FINISH, secret, request.token)
                return self._complete(secret, request, "already-current", pending, None, days)
            # finishSecret's role reads AWSPENDING only: the tags say when the key is due.
            status = KeyStatus.from_tags(secret.tags, secret.version_with(CURRENT))
            due = status.due_at(days, self._clock())
            follow_up = self._follow_ups.after_key_rotation(secret, None, due, KEY_REFUSED_TAG)
            return StepOutcome(
                Step.FINISH, secret.arn, request.token, "already-current", follow_up=follow_up
            )
        pending = self._pending_key(Step.FINISH, secret, request.token)
        previous = secret.version_with(CURRENT)
        self._secrets.promote(secret.arn, request.token, previous)
        logger.info(
            "promoted the new service-account key to AWSCURRENT",
            extra={"key_id": pending.private_key_id, "previous": previous},
        )
        return self._complete(secret, request, "promoted", pending, previous, days)

    def _complete(
        self,
        secret: SecretDescription,
        request: RotationRequest,
        action: str,
        key: ServiceAccountKey,
        previous: str | None,
        days: int,
    ) -> StepOutcome:
        """After the promotion: the standby back in place if the key in use had been refused,
        and AWSPENDING taken off the new key, so that a key later put by hand (the runbook's
        fix) can never leave this finished rotation looking unfinished."""
        keys = self._new_keys_api(key)
        refused = secret.tags.get(KEY_REFUSED_TAG, "").split(" ")
        if len(refused) == 3:
            refused_key, standby, refused_version = refused
            holder = previous or secret.version_with(PREVIOUS)
            # A key put by hand since createSecret holds AWSPREVIOUS now: a newer spare, kept.
            relabel = holder if holder == refused_version else None
            self._drop_refused(secret, keys, refused_key, standby, relabel)
        self._secrets.remove_pending(secret.arn, request.token)
        return self._finished(secret, request, action, key, keys, previous, days)

    def _finished(
        self,
        secret: SecretDescription,
        request: RotationRequest,
        action: str,
        key: ServiceAccountKey,
        keys: ServiceAccountKeys | None,
        previous: str | None,
        days: int,
    ) -> StepOutcome:
        now = self._clock()
        valid_before = None if keys is None else _valid_before(keys, key)
        tags = {KEY_ROTATED_AT_TAG: f"{format_timestamp(now)} {request.token}"}
        if valid_before is not None:
            tags[KEY_VALID_BEFORE_TAG] = format_timestamp(valid_before)
        stale = [] if valid_before is not None else [KEY_VALID_BEFORE_TAG]
        try:
            self._secrets.tag(secret.arn, tags)
            if stale and KEY_VALID_BEFORE_TAG in secret.tags:
                self._secrets.untag(secret.arn, stale)
        except RotationError as error:
            logger.warning("the key's status could not be recorded", extra={"error": str(error)})
        due = key_due_at(now, valid_before, days)
        follow_up = self._follow_ups.after_key_rotation(
            secret, key.private_key_id, due, KEY_REFUSED_TAG
        )
        return StepOutcome(
            Step.FINISH,
            secret.arn,
            request.token,
            action,
            _metadata(key, valid_before),
            previous_version_id=previous,
            follow_up=follow_up,
        )

    def _new_keys_api(self, key: ServiceAccountKey) -> ServiceAccountKeys | None:
        """IAM's keys API with a token of the key just promoted; None (logged) when that fails:
        finishSecret's work at Google is bookkeeping, never a reason to fail the rotation."""
        try:
            return self._authorised(key)
        except RotationError as error:
            logger.warning("IAM's keys API could not be reached", extra={"error": str(error)})
            return None

    def _drop_refused(
        self,
        secret: SecretDescription,
        keys: ServiceAccountKeys | None,
        refused: str,
        standby: str,
        holder: str | None,
    ) -> None:
        """The key Google refused went to AWSPREVIOUS (`holder`; None: a key put by hand went
        there instead) with the promotion; the standby that kept everything minting gets the
        label back (the next rotation deletes it, as any standby), and the refused key, useless
        whether deleted, disabled or expired, is deleted at Google so that no key of the stack
        is left without a label."""
        try:
            if holder is not None and holder != standby:
                self._secrets.label_previous(secret.arn, standby, holder)
            if keys is not None:
                keys.delete(refused)
        except RotationError as error:
            logger.warning(
                "the refused key could not be cleared away",
                extra={"key_id": refused, "error": str(error)},
            )

    def _keys_api(
        self, secret: SecretDescription, current: ServiceAccountKey
    ) -> tuple[ServiceAccountKeys, bool]:
        """IAM's keys API with a token of the key in AWSCURRENT; when Google refuses that key
        (deleted, disabled or expired behind our back), with the standby in AWSPREVIOUS, and the
        refusal is recorded for finishSecret's notice. True in the second case."""
        try:
            return self._authorised(current), False
        except GoogleGrantRejectedError as refusal:
            standby_file = self._secrets.read_previous_string(secret.arn)
            if standby_file is None:
                raise
            try:
                standby = parse_service_account_key(standby_file, secret.name)
                keys = self._authorised(standby)
            except (GoogleGrantRejectedError, InvalidServiceAccountKeyError):
                raise refusal from None
            logger.warning(
                "Google refused the key in AWSCURRENT; the standby key in AWSPREVIOUS replaces it",
                extra={"key_id": current.private_key_id, "standby_key_id": standby.private_key_id},
            )
            standby_version = secret.version_with(PREVIOUS)
            refused_version = secret.version_with(CURRENT)
            self._secrets.tag(
                secret.arn,
                {KEY_REFUSED_TAG: f"{current.private_key_id} {standby_version} {refused_version}"},
            )
            return keys, True

    def _authorised(self, key: ServiceAccountKey) -> ServiceAccountKeys:
        credentials = key.credentials((KEY_ADMIN_SCOPE,), self._google.endpoints.token_url)
        self._google.refresh(credentials)
        return ServiceAccountKeys(self._google, key.client_email, str(credentials.token))

    def _retire(
        self,
        secret: SecretDescription,
        keys: ServiceAccountKeys,
        current: ServiceAccountKey,
        standby_in_use: bool,
    ) -> list[GoogleKey]:
        """Delete the standby (AWSPREVIOUS's key) and the key of the last keys.create if no
        version holds it (a crash before it was stored, a key testSecret gave up, a pending key
        a manual run superseded); never the key in AWSCURRENT, and not the standby while it is
        the key that works. The account's keys that remain, from one keys.list."""
        listed = keys.listed()
        standby_file = self._secrets.read_previous_string(secret.arn)
        standby_id = None if standby_file is None else _key_id_of(standby_file)
        held = {current.private_key_id, *([standby_id] if standby_id else [])}
        doomed: dict[str, str] = {}
        if not standby_in_use and standby_id is not None and standby_id != current.private_key_id:
            doomed[standby_id] = "the standby key of the previous rotation"
        last_created = _last_created(secret.tags, listed, held)
        if last_created is not None:
            doomed[last_created] = "made by the last createSecret and held by no version"
        for key_id, why in doomed.items():
            deleted = keys.delete(key_id)
            logger.info(
                "deleted a service-account key at Google" if deleted else "key already gone",
                extra={"key_id": key_id, "why": why},
            )
        return [key for key in listed if key.key_id not in doomed]

    def _pending_key(self, step: Step, secret: SecretDescription, token: str) -> ServiceAccountKey:
        stored = self._secrets.read_pending(secret.arn, token)
        if stored is None:
            raise no_pending_value(step, secret, token)
        return parse_service_account_key(stored, secret.name)

    def _take_over_pending(self, secret: SecretDescription, token: str) -> None:
        """A manual run supersedes another rotation's pending key, unless that key is younger
        than the acceptance bound and may still pass."""
        for version, stages in secret.version_stages.items():
            if version == token or PENDING not in stages or CURRENT in stages:
                continue
            created = self._secrets.version_created(secret.arn, version)
            if created is not None and self._clock() - created < KEY_ACCEPTANCE_BOUND:
                raise RotationInProgressError(
                    f"another rotation of {secret.name!r} is testing its new key (pending "
                    f"version {version}): wait for it to finish (or fail) and start again"
                )
            # Its key, if it made one, is the last keys.create's: _retire deletes it.
            self._secrets.remove_pending(secret.arn, version)

    def _abandon(self, step: Step, secret: SecretDescription, token: str, reason: str) -> NoReturn:
        """The new key can never pass: AWSPENDING is removed, so the next rotation starts fresh,
        and its createSecret deletes the key at Google (see KEY_CREATE_STARTED_TAG)."""
        self._secrets.remove_pending(secret.arn, token)
        raise RotationAbandonedError(
            f"{step.value}: abandoned the rotation of key secret {secret.name!r}: its pending "
            f"version {token} {reason}. AWSPENDING was removed, so the next rotation starts "
            "fresh and deletes the unused key at Google; AWSCURRENT was not touched"
        )


def _last_created(tags: Mapping[str, str], listed: list[GoogleKey], held: set[str]) -> str | None:
    """The key the last keys.create made, when no version holds it (KEY_CREATE_STARTED_TAG)."""
    record = tags.get(KEY_CREATE_STARTED_TAG, "").split(" ")
    if len(record) == 3:
        key_id = record[2]
        return None if key_id in held else key_id
    if len(record) != 2:
        return None
    try:
        since = parse_timestamp(record[1], KEY_CREATE_STARTED_TAG)
    except RotationError:
        return None
    unheld = [
        key.key_id
        for key in listed
        if key.key_id not in held
        and since - CLOCK_SKEW <= key.valid_after <= since + CRASHED_CREATE_WINDOW
    ]
    if len(unheld) > 1:
        logger.warning(
            "several unheld keys were made right after a keys.create that crashed: none deleted",
            extra={"key_ids": unheld},
        )
    return unheld[0] if len(unheld) == 1 else None


def _valid_before(keys: ServiceAccountKeys, key: ServiceAccountKey) -> datetime | None:
    """The key's expiry as IAM reports it (a key-expiry policy sets it at creation)."""
    try:
        listed = {entry.key_id: entry for entry in keys.listed()}
    except RotationError as error:
        logger.warning("the key's expiry could not be read", extra={"error": str(error)})
        return None
    entry = listed.get(key.private_key_id)
    return entry.valid_before if entry is not None and entry.expires else None


def _key_id_of(key_file: str) -> str | None:
    """The private_key_id of a stored key file, without parsing the key itself."""
    try:
        document = json.loads(key_file)
    except ValueError:
        return None
    key_id = document.get("private_key_id") if isinstance(document, dict) else None
    return key_id if isinstance(key_id, str) and key_id else None


def _metadata(key: ServiceAccountKey, valid_before: datetime | None = None) -> KeyMetadata:
    expiry = valid_before if valid_before is not None and valid_before < NO_EXPIRY else None
    return KeyMetadata(key.private_key_id, key.client_email, expiry)
