"""The one notice a failed rotation execution sends, composed from bounded, safe text only.

Pure logic: the DescribeFailure Lambda parses what the state machine hands it (the failed request,
which may be anything, the failed step's label, the failure and the execution ARN), reads the
secret's staging labels, and this module turns both into an SNS Subject and Message that say only
what was checked. Nothing here reads a secret value; nothing a caller wrote reaches the notice
unbounded, and the Subject is what SNS accepts (ASCII, at most 100 characters, one line).
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from rotation_core.errors import (
    NotPendingVersionError,
    RotationAbandonedError,
    RotationInProgressError,
    UnknownRotationTokenError,
)
from rotation_core.redaction import (
    bounded,
    describe_kind,
    redact_secrets,
    safe_external_text,
    shown_if_short,
    shown_key_id,
)
from rotation_core.refresh import FailureStreak, NoticeKind
from rotation_core.rotation_request import MAX_SECRET_ID_LENGTH
from rotation_core.runbook import NoticeEntry, failure_entry, runbook_link
from rotation_core.secrets import CURRENT, PENDING, SecretDescription
from rotation_core.steps import STEP_NAMES, Step
from rotation_core.token_secret import format_timestamp

SUBJECT_LIMIT: Final = 100
"""SNS Publish: a Subject is ASCII text without line breaks, at most 100 characters."""
SECRET_SHOWN_LIMIT: Final = 256
ERROR_LIMIT: Final = 256
"""Step Functions' own limit on an error name."""
CAUSE_LIMIT: Final = 1000
INPUT_VALIDATION: Final = "input validation"
UNKNOWN_STEP: Final = "unknown step"
NEXT_ROTATION_NOT_SCHEDULED: Final = "scheduleNextRotation"
"""The state machine's label for a rotation that succeeded but whose next refresh's schedule
could not be written: reported, but not a failed rotation."""
STEP_LABELS: Final = (*STEP_NAMES, INPUT_VALIDATION, UNKNOWN_STEP, NEXT_ROTATION_NOT_SCHEDULED)
"""The closed set of step labels a notice may name; anything else becomes UNKNOWN_STEP."""
ABANDONED: Final = RotationAbandonedError.__name__
LABEL_TAKEN_ERRORS: Final = frozenset(
    {
        UnknownRotationTokenError.__name__,
        NotPendingVersionError.__name__,
        RotationInProgressError.__name__,
    }
)
"""createSecret's errors that say another rotation held AWSPENDING: only these prove that a
manual run had begun before the label moved, since its version exists only once it is stored."""

_SUBJECT_PREFIX: Final = "Google token rotation failed"
_REMINDER_PREFIX: Final = "Google token rotation still failing"
_RECOVERED_PREFIX: Final = "Google token rotation recovered"
_KEY_REPLACED_PREFIX: Final = "Google service-account key replaced"
_UNVERIFIED_PREFIX: Final = "Google token rotation promoted an unverified token"
_REFUSED_PREFIX: Final = "Google refused the token in use, replacing it"
_UNSCHEDULED_PREFIX: Final = "Google token rotated, next refresh not scheduled"
_SCHEDULE_GROUP_MISSING: Final = "Scheduler.ResourceNotFoundException"
_NAME_PLACEHOLDER: Final = "<the secret's name or ARN>"
# Secret names allow letters, digits and /_+=.@- ; an ARN adds colons. Nothing a shell expands.
_SECRET_ID_CHARS: Final = re.compile(r"[A-Za-z0-9/_+=.@:-]+")
_SECRET_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:(?P<name>.+)"
)
_ERROR_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,255}")
_VERSION_ID: Final = re.compile(r"[\x21-\x7e]{32,64}")
_EXECUTION_ARN: Final = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):states:(?P<region>[a-z0-9-]+):\d{12}:execution:[\x21-\x7e]+"
)
_EXECUTION_ARN_LIMIT: Final = 2048
_CONSOLE_DOMAINS: Final = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}


@dataclass(frozen=True)
class FailureReport:
    """What the state machine reported about one failed execution, every field bounded."""

    step: str
    """One of STEP_LABELS."""
    error: str
    cause: str
    secret_id: str | None
    """The request's SecretId when it is one Secrets Manager could answer for (a non-blank
    string of at most 2048 characters): the id DescribeSecret is called with."""
    secret_shown: str
    """How the notice names the secret the request gave (bounded, redacted, or described)."""
    version_id: str | None
    """This rotation's version (the request's ClientRequestToken) when well formed."""
    given_step: str | None
    """What the request's Step was, for an unknown step (shown only when short and printable)."""
    execution_arn: str
    console_url: str | None

    @classmethod
    def from_payload(cls, payload: object) -> "FailureReport":
        """The DescribeFailure task's input: {"Request", "FailedStep", "Failure": {"Error",
        "Cause"}, "ExecutionArn"}. Any part may be missing or malformed; none makes this fail."""
        fields = payload if isinstance(payload, dict) else {}
        request = fields.get("Request")
        request = request if isinstance(request, dict) else {}
        failure = fields.get("Failure")
        failure = failure if isinstance(failure, dict) else {}
        step = fields.get("FailedStep")
        raw_secret_id = request.get("SecretId")
        secret_id = (
            raw_secret_id
            if isinstance(raw_secret_id, str)
            and raw_secret_id.strip()
            and len(raw_secret_id) <= MAX_SECRET_ID_LENGTH
            else None
        )
        token = request.get("ClientRequestToken")
        execution_arn, console_url = _execution(fields.get("ExecutionArn"))
        return cls(
            step=step if isinstance(step, str) and step in STEP_LABELS else UNKNOWN_STEP,
            error=_error_name(failure.get("Error")),
            cause=_cause(failure.get("Cause")),
            secret_id=secret_id,
            secret_shown=_secret_shown(raw_secret_id),
            version_id=token if isinstance(token, str) and _VERSION_ID.fullmatch(token) else None,
            given_step=shown_if_short(request.get("Step")) if step == UNKNOWN_STEP else None,
            execution_arn=execution_arn,
            console_url=console_url,
        )


@dataclass(frozen=True)
class StagesUnreadable:
    """DescribeSecret failed: the notice says the labels could not be checked, and why."""

    error: str
    detail: str = ""


StageReading = SecretDescription | StagesUnreadable | None
"""What DescribeSecret showed, why it could not, or None when there was no secret to ask about."""


@dataclass(frozen=True)
class StreakNote:
    """Where this failure stands in the secret's streak, and when the rotation is tried again."""

    kind: NoticeKind | None
    """None when the streak rules held the notice back but it could not be recorded."""
    streak: FailureStreak
    next_attempt: datetime
    recorded: bool


@dataclass(frozen=True)
class Notice:
    subject: str
    message: str
    """JSON text, indented for an e-mail client."""

    def as_payload(self) -> dict[str, str]:
        return {"Subject": self.subject, "Message": self.message}


def compose_notice(
    report: FailureReport, reading: StageReading, streak: StreakNote | None = None
) -> Notice:
    """The notice of one failed execution: only what the report says and the reading showed."""
    described = reading if isinstance(reading, SecretDescription) else None
    secret = bounded(described.arn, SECRET_SHOWN_LIMIT) if described else report.secret_shown
    message: dict[str, object] = {
        "Summary": _summary(report, secret),
        "SecretId": secret,
        "Step": report.step,
        "Error": report.error,
        "Cause": report.cause,
    }
    if report.given_step is not None:
        message["GivenStep"] = report.given_step
    if report.error == ABANDONED:
        message["Rotation"] = (
            "Abandoned: the step found that this rotation's pending version can never pass "
            "and removed its AWSPENDING label, so the next rotation starts fresh."
        )
    message["Stages"] = _stages(report, reading)
    message["ExecutionArn"] = report.execution_arn
    if report.console_url is not None:
        message["ConsoleUrl"] = report.console_url
    if streak is not None:
        message["Streak"] = _streak(streak)
        message["NextAttempt"] = (
            f"RotateSecret runs again at {format_timestamp(streak.next_attempt)} (EventBridge "
            "Scheduler; the wait doubles from 1 minute up to 15, and never passes half of the "
            "current token's remaining life)."
        )
    message["NextSteps"] = _next_steps(report, described)
    message["Runbook"] = runbook_link(failure_entry(report.step, report.error))
    name = described.name if described else _name_of(report.secret_id)
    reminding = streak is not None and streak.kind is not NoticeKind.FIRST
    return Notice(
        subject=subject_line(report.step, name, _REMINDER_PREFIX if reminding else _SUBJECT_PREFIX),
        message=json.dumps(message, indent=2, ensure_ascii=False),
    )


def superseding_version(report: FailureReport, secret: SecretDescription) -> str | None:
    """The version that superseded this failed rotation, when a rotation that began after it has
    since succeeded; None when this is a failure to report.

    AWSPENDING is one label that only ever moves onto the version of the rotation that began
    last (RotateSecret makes it, createSecret's PutSecretValue stores it), and finishSecret leaves
    it on the version it promotes until the next rotation begins. So AWSCURRENT and AWSPENDING on
    one version other than this rotation's mean: that rotation took the label after this one
    held it, and it succeeded (its finishSecret scheduled the next refresh). This rotation's
    version, carrying neither label, can never be promoted: nothing is left to retry or fix.
    Anything else (the winner still in progress, no label anywhere) stays a failure."""
    token = report.version_id
    if token is None or report.step not in STEP_NAMES:
        return None
    if report.step == Step.CREATE and report.error not in LABEL_TAKEN_ERRORS:
        # A manual run's createSecret may have failed before it stored its version.
        return None
    own = secret.version_stages.get(token, ())
    current = secret.version_with(CURRENT)
    if CURRENT in own or PENDING in own or current is None or current == token:
        return None
    return current if PENDING in secret.version_stages[current] else None


def compose_recovered(
    secret: SecretDescription,
    streak: FailureStreak,
    now: datetime,
    expires_at: datetime,
    next_refresh: datetime,
) -> Notice:
    """The one notice that ends a streak: the rotation works again."""
    arn = bounded(secret.arn, SECRET_SHOWN_LIMIT)
    lasted = int((now - streak.since).total_seconds()) // 60
    message = {
        "Summary": (
            f"The rotation of secret {arn} succeeded again, after {_attempts(streak)} "
            f"over {lasted} minutes."
        ),
        "SecretId": arn,
        "FailingSince": format_timestamp(streak.since),
        "FailedAttempts": streak.failed_attempts,
        "RecoveredAt": format_timestamp(now),
        "CurrentTokenExpiresAt": format_timestamp(expires_at),
        "NextRefreshAt": format_timestamp(next_refresh),
        "NextSteps": "Nothing to do: the refresh chain runs on its own again.",
        "Runbook": runbook_link(NoticeEntry.RECOVERED),
    }
    return Notice(
        subject=subject_line(None, secret.name, _RECOVERED_PREFIX),
        message=json.dumps(message, indent=2, ensure_ascii=False),
    )


def compose_key_replaced(
    secret: SecretDescription,
    refused_key: str,
    new_key: str,
    now: datetime,
    next_rotation: datetime,
) -> Notice:
    """The key in use stopped working at Google behind the rotation's back and the standby key
    replaced it: nothing is broken now, but someone deleted or disabled a key, or it expired."""
    arn = bounded(secret.arn, SECRET_SHOWN_LIMIT)
    message = {
        "Summary": (
            f"Google refused the service-account key in secret {arn} (key "
            f"{shown_key_id(refused_key)}: deleted, disabled or expired outside this stack); the "
            f"standby key created its replacement, key {shown_key_id(new_key)}, now AWSCURRENT."
        ),
        "SecretId": arn,
        "RefusedKey": shown_key_id(refused_key),
        "NewKey": shown_key_id(new_key),
        "ReplacedAt": format_timestamp(now),
        "NextKeyRotationAt": format_timestamp(next_rotation),
        "NextSteps": (
            "Token secrets keep minting with the new key. Find out who removed the key (Cloud "
            "Audit Logs, method google.iam.admin.v1.DeleteServiceAccountKey or "
            "DisableServiceAccountKey) or whether a key-expiry policy shortened it; keys this "
            "stack made are deleted by the stack itself."
        ),
        "Runbook": runbook_link(NoticeEntry.KEY_REPLACED),
    }
    return Notice(
        subject=subject_line(None, secret.name, _KEY_REPLACED_PREFIX),
        message=json.dumps(message, indent=2, ensure_ascii=False),
    )


_ID_TOKEN_UNVERIFIED: Final[dict[str, object]] = {
    "Checked": (
        "Without Google's certificates: Google issued the ID token over TLS to this rotation's own "
        "credentials; the stored value is a well-formed token secret holding a signed JWT; its "
        "lifetime is Google's hour and at least the minimum remaining life (RefreshLeadSeconds) of "
        "it remains; it was minted for the secret's audience and service account."
    ),
    "NotChecked": (
        "Google's signature on the token, its issuer, its aud and email claims (what the "
        "receiving service checks)."
    ),
    "NextSteps": (
        "Check that applications calling the audience with the token get no 401 or 403 from it. "
        "The TestSecret function's log has the warning 'accepted unverified' with the "
        "certificates endpoint's error and why the token in use was at risk; see "
        "https://status.cloud.google.com for an outage. The next rotation, at NextRefreshAt, "
        "verifies its token as usual."
    ),
}
"""What an ID token promoted unverified was and was not checked for."""


def _access_token_unverified(command_id: str) -> dict[str, object]:
    """What an access token promoted unverified was and was not checked for, and how to ask
    tokeninfo about it."""
    return {
        "Checked": (
            "Without tokeninfo: Google's token endpoint issued the token over TLS to this "
            "rotation's own credentials; the stored value is a well-formed token secret holding "
            "an OAuth 2 bearer token; its lifetime is one the credential source can mint and at "
            "least the minimum remaining life (RefreshLeadSeconds) of it remains; it was minted "
            "for the configured scopes and service account."
        ),
        "NotChecked": (
            "Google's own verdict (tokeninfo): that the token is valid, carries the scopes and "
            "belongs to the expected account."
        ),
        "NextSteps": (
            "Check that applications reading the secret get no 401 or 403 from Google. The "
            "TestSecret function's log has the warning 'accepted unverified' with the tokeninfo "
            "error and why the token in use was at risk; see https://status.cloud.google.com for "
            "an outage. To ask Google about the token now (it stays out of the command line): "
            f"aws secretsmanager get-secret-value --secret-id {command_id} --query SecretString "
            "--output text | jq -j .GOOGLE_ACCESS_TOKEN | curl -s --data-urlencode "
            "access_token@- https://oauth2.googleapis.com/tokeninfo (an answer with expires_in: "
            'Google accepts it; {"error": "invalid_token"}: start a manual rotation with input '
            '{"SecretId": "<the secret\'s name or ARN>"} once tokeninfo answers). The next '
            "rotation, at NextRefreshAt, verifies its token as usual."
        ),
    }


def compose_unverified(
    secret: SecretDescription,
    version_id: str,
    streak: FailureStreak | None,
    now: datetime,
    expires_at: datetime,
    next_refresh: datetime,
    *,
    id_token: bool = False,
) -> Notice:
    """The one notice of a token promoted without tokeninfo's verdict (an ID token: without
    Google's certificates): what was and was not checked, and what to look at; it also ends the
    failure streak, if any, in place of "recovered"."""
    arn = bounded(secret.arn, SECRET_SHOWN_LIMIT)
    verifier, verification = (
        ("certificates endpoint", "verifying its signature")
        if id_token
        else ("tokeninfo", "tokeninfo's verification")
    )
    summary = (
        f"Google's {verifier} could not be reached when testSecret checked the new token of "
        f"secret {arn}, and the token then in use was expired, missing, refused by Google or "
        "within a third of the refresh lead of its expiry. The rotation therefore promoted the "
        f"new token to AWSCURRENT without {verification}: applications now read it."
    )
    message: dict[str, object] = {"Summary": summary, "SecretId": arn}
    if streak is not None:
        lasted = int((now - streak.since).total_seconds()) // 60
        message["Summary"] = f"{summary} This ends {_attempts(streak)} over {lasted} minutes."
        message["FailingSince"] = format_timestamp(streak.since)
        message["FailedAttempts"] = streak.failed_attempts
    command_id = _command_id(secret.name)
    message |= {
        "PromotedVersionId": _version(version_id),
        "PromotedAt": format_timestamp(now),
        "CurrentTokenExpiresAt": format_timestamp(expires_at),
        "NextRefreshAt": format_timestamp(next_refresh),
    }
    message |= _ID_TOKEN_UNVERIFIED if id_token else _access_token_unverified(command_id)
    message["Runbook"] = runbook_link(NoticeEntry.PROMOTED_UNVERIFIED)
    return Notice(
        subject=subject_line(None, secret.name, _UNVERIFIED_PREFIX),
        message=json.dumps(message, indent=2, ensure_ascii=False),
    )


def compose_unscheduled(report: FailureReport, reading: StageReading) -> Notice:
    """The notice of a rotation that succeeded but could not write its next refresh's schedule:
    what still holds, and how to let the schedules be written again."""
    described = reading if isinstance(reading, SecretDescription) else None
    secret = bounded(described.arn, SECRET_SHOWN_LIMIT) if described else report.secret_shown
    message: dict[str, object] = {
        "Summary": (
            f"The rotation of secret {secret} succeeded, but the schedule of its next refresh "
            f"could not be written: {report.error}."
        ),
        "SecretId": secret,
        "Error": report.error,
        "Cause": report.cause,
        "Stages": _stages(report, reading),
        "ExecutionArn": report.execution_arn,
    }
    if report.console_url is not None:
        message["ConsoleUrl"] = report.console_url
    message["Meanwhile"] = (
        "Applications read the new token. The stack's freshness sweep (every 5 minutes) starts a "
        "rotation before the token expires, and each rotation tries to write the schedule again. "
        "While schedules cannot be written, this notice comes at most once an hour per secret."
    )
    if report.error == _SCHEDULE_GROUP_MISSING:
        fix = (
            "The refresh schedule group is missing (deleted?). Recreate it by deploying the stack "
            "again (sam deploy), or with: aws scheduler create-schedule-group --name <the stack's "
            "RefreshScheduleGroupName output>."
        )
    else:
        fix = (
            "Fix the cause (a denied call means the state machine's role lost "
            "scheduler:CreateSchedule, scheduler:UpdateSchedule or iam:PassRole on the scheduler "
            "role: deploy the stack again to restore its policies)."
        )
    message["NextSteps"] = (
        f"{fix} The next rotation writes the schedule; nothing needs rolling back."
    )
    message["Runbook"] = runbook_link(NoticeEntry.NEXT_REFRESH_NOT_SCHEDULED)
    name = described.name if described else _name_of(report.secret_id)
    return Notice(
        subject=subject_line(None, name, _UNSCHEDULED_PREFIX),
        message=json.dumps(message, indent=2, ensure_ascii=False),
    )


def compose_refused(
    secret_arn: str,
    secret_name: str,
    version_id: str,
    expires_at: datetime,
    now: datetime,
    *,
    id_token: bool = False,
) -> Notice:
    """The one notice of a token in use that Google refused before it expired (an ID token:
    that Google's certificates no longer verify): the freshness sweep replaces it at once."""
    arn = bounded(secret_arn, SECRET_SHOWN_LIMIT)
    refused = (
        "Google's certificates no longer verify the ID token in use"
        if id_token
        else "Google's tokeninfo refused the token in use"
    )
    message = {
        "Summary": (
            f"{refused} of secret {arn} although it had not expired; the freshness sweep "
            "started a rotation at once to replace it."
        ),
        "SecretId": arn,
        "RefusedVersionId": _version(version_id),
        "TokenExpiresAt": format_timestamp(expires_at),
        "NoticedAt": format_timestamp(now),
        "Rotation": (
            "RotateSecret was called (or, if a rotation was stuck, re-attempted). If that "
            "rotation fails too, its own failure notice says why."
        ),
        "NextSteps": (
            "Find out why Google refused the token: revoked (on purpose, or after a leak), the "
            "service account disabled or deleted, or its key deleted"
            + (" (or signed by a key Google no longer publishes)" if id_token else "")
            + ". If the account and key are fine, nothing is left to do: this notice comes "
            "once per refused token."
        ),
        "Runbook": runbook_link(NoticeEntry.TOKEN_REFUSED),
    }
    return Notice(
        subject=subject_line(None, secret_name, _REFUSED_PREFIX),
        message=json.dumps(message, indent=2, ensure_ascii=False),
    )


def subject_line(step: str | None, secret_name: str | None, prefix: str = _SUBJECT_PREFIX) -> str:
    """ASCII, one line, at most SUBJECT_LIMIT characters: the step, then as much of the secret's
    name as fits (left out when it is not a plain secret name)."""
    if step is None:
        head = prefix
    elif step in STEP_NAMES:
        head = f"{prefix} at {step}"
    else:
        head = f"{prefix}: {step}"
    head = _ascii_line(head)[:SUBJECT_LIMIT]
    name = secret_name if secret_name is not None and _plain_name(secret_name) else None
    if not name:
        return head
    room = SUBJECT_LIMIT - len(head) - len(" ()")
    if room < len("x..."):
        return head
    if len(name) > room:
        name = name[: room - 3] + "..."
    return f"{head} ({name})"


def _streak(note: StreakNote) -> str:
    streak = note.streak
    if note.kind is NoticeKind.FIRST:
        said = (
            "The first failure since the last successful rotation. While the secret keeps "
            "failing, a reminder comes at most once an hour; one notice says when it recovers."
        )
    else:
        said = (
            f"Still failing: {_attempts(streak)} since "
            f"{format_timestamp(streak.since)}. The next reminder comes in an hour at the earliest."
        )
    if not note.recorded:
        said += (
            " The streak could not be recorded on the secret's status tags (TagResource failed), "
            "so notices may come for every failed attempt until it can."
        )
    return said


def _attempts(streak: FailureStreak) -> str:
    count = streak.failed_attempts
    return f"{count} failed attempt{'' if count == 1 else 's'}"


def _summary(report: FailureReport, secret: str) -> str:
    if report.step == INPUT_VALIDATION:
        return f"A rotation execution was refused before it started: {report.error}."
    if report.step == UNKNOWN_STEP:
        return (
            f"A rotation execution for secret {secret} was refused before it started: "
            f"{report.error}."
        )
    return f"The rotation of secret {secret} failed at step {report.step}: {report.error}."


def _stages(report: FailureReport, reading: StageReading) -> str:
    """Only what was checked: DescribeSecret's labels, or why they were not read."""
    if reading is None:
        return (
            "Not checked: the request names no secret Secrets Manager could look up "
            f"(its SecretId is {report.secret_shown})."
        )
    if isinstance(reading, StagesUnreadable):
        detail = f": {reading.detail}" if reading.detail else ""
        return (
            f"Could not be checked (DescribeSecret failed with {reading.error}{detail}). See "
            "which version carries AWSCURRENT with: aws secretsmanager describe-secret "
            f"--secret-id {_command_id(report.secret_id)}"
        )
    token = report.version_id
    current = reading.version_with(CURRENT)
    pending = reading.version_with(PENDING)
    said = ["Checked with DescribeSecret when this notice was composed:"]
    if current is None:
        said.append("no version carries AWSCURRENT.")
    elif token is None:
        said.append(f"AWSCURRENT is on version {_version(current)}.")
    elif current == token:
        said.append(
            f"AWSCURRENT is on version {_version(current)}, this rotation's version: "
            "the new token is in use."
        )
    elif PENDING in reading.version_stages.get(token, ()):
        said.append(
            f"AWSCURRENT is on version {_version(current)}, not on this rotation's version "
            f"{token}: applications still read the token they had."
        )
    else:
        # This rotation lost its label: whether another one promoted since is not known here.
        said.append(
            f"AWSCURRENT is on version {_version(current)}; this rotation's version {token} "
            "carries neither AWSCURRENT nor AWSPENDING."
        )
    if pending is None:
        said.append("No version carries AWSPENDING.")
    elif token is not None and pending == token:
        said.append(f"AWSPENDING is on version {_version(pending)}, this rotation's version.")
    elif token is not None:
        said.append(f"AWSPENDING is on version {_version(pending)}, another rotation's version.")
    else:
        said.append(f"AWSPENDING is on version {_version(pending)}.")
    return " ".join(said)


def _next_steps(report: FailureReport, described: SecretDescription | None) -> str:
    if report.step in {INPUT_VALIDATION, UNKNOWN_STEP}:
        return (
            "Nothing was started. Start a manual rotation with input "
            '{"SecretId": "<the secret\'s name or ARN>"}; Secrets Manager\'s own events name '
            f"one of the steps {', '.join(STEP_NAMES)}."
        )
    if report.error == ABANDONED:
        return (
            "Nothing to undo: the next scheduled rotation, or a manual execution, starts with a "
            "fresh token. If this recurs, fix its cause first."
        )
    token = report.version_id
    if described is not None and token is not None and described.version_with(CURRENT) == token:
        return (
            "The new token is already in use; nothing needs rolling back. Secrets Manager's "
            f"retry of {report.step} finds the rotation done. If this recurs, fix its cause."
        )
    return (
        "Fix the cause, then let Secrets Manager retry the rotation, or start a manual execution "
        'of this state machine with input {"SecretId": "<the secret\'s name or ARN>"}.'
    )


def _cause(cause: object) -> str:
    """A Lambda failure's cause is the error JSON: its errorMessage is what says why."""
    if cause is None or cause == "":
        return "(no cause given)"
    text = cause if isinstance(cause, str) else json.dumps(cause, default=str)
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("errorMessage"), str):
            text = parsed["errorMessage"] or text
    return safe_external_text(text, CAUSE_LIMIT)


def _error_name(error: object) -> str:
    """Error names are identifiers (GoogleGrantRejectedError, Lambda.ServiceException): kept as
    they are; anything else is treated as text another party wrote."""
    if not isinstance(error, str) or not error:
        return "(no error name)"
    if _ERROR_NAME.fullmatch(error) and all(
        redact_secrets(part) == part for part in error.split(".")
    ):
        return error
    return safe_external_text(error, ERROR_LIMIT)


def _secret_shown(secret_id: object) -> str:
    if secret_id is None:
        return "(none given)"
    if (
        isinstance(secret_id, str)
        and len(secret_id) <= MAX_SECRET_ID_LENGTH
        and _SECRET_ID_CHARS.fullmatch(secret_id)
    ):
        return safe_external_text(secret_id, SECRET_SHOWN_LIMIT)
    return describe_kind(secret_id)


def _name_of(secret_id: str | None) -> str | None:
    """A secret's name from the name or ARN the request gave."""
    if secret_id is None:
        return None
    arn = _SECRET_ARN.fullmatch(secret_id)
    return arn.group("name") if arn else secret_id


def _plain_name(name: str) -> bool:
    """A secret name fit for a Subject: the name alphabet only, nothing token-shaped."""
    return bool(_SECRET_ID_CHARS.fullmatch(name)) and redact_secrets(name) == name


def _command_id(secret_id: str | None) -> str:
    """The secret id for a command a person may paste into a shell: only a plain, short one."""
    if secret_id is not None and len(secret_id) <= SECRET_SHOWN_LIMIT and _plain_name(secret_id):
        return secret_id
    return _NAME_PLACEHOLDER


def _version(version_id: str) -> str:
    return bounded(version_id, 64)


def _execution(value: object) -> tuple[str, str | None]:
    """The execution ARN (bounded) and its console link, in the ARN's own partition and region."""
    if not isinstance(value, str) or len(value) > _EXECUTION_ARN_LIMIT:
        return "(unknown)", None
    arn = _EXECUTION_ARN.fullmatch(value)
    if arn is None:
        return safe_external_text(value, 300), None
    region = arn.group("region")
    domain = _CONSOLE_DOMAINS.get(arn.group("partition"), _CONSOLE_DOMAINS["aws"])
    return value, (
        f"https://{region}.{domain}/states/home?region={region}#/v2/executions/details/{value}"
    )


def _ascii_line(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)
