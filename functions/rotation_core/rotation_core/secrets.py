"""The Secrets Manager calls the rotation makes, with AWS failures mapped to rotation errors."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from rotation_core.aws_errors import error_code
from rotation_core.errors import (
    AwsAccessError,
    AwsUnavailableError,
    NotPendingVersionError,
    SecretNotFoundError,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import FilterTypeDef, TagTypeDef

CURRENT: Final = "AWSCURRENT"
PENDING: Final = "AWSPENDING"
PREVIOUS: Final = "AWSPREVIOUS"
LIST_PAGE_SIZE: Final = 100
"""ListSecrets and ListSecretVersionIds return at most 100 entries a page."""
_REATTEMPTED_MESSAGE: Final = "previous rotation isn't complete"
_THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)
_STAGE_NOT_ON_VERSION: Final = "not associated to the provided VersionId"
"""What GetSecretValue(VersionId, VersionStage) answers, as InvalidRequestException, once the
label left that version (moto's text; docs/aws-behaviours.md)."""
_LABEL_MOVED_CODES: Final = frozenset(
    {"InvalidRequestException", "InvalidParameterException", "ResourceNotFoundException"}
)
"""The codes a call naming a version and a label may get once the label moved: moto answers
InvalidParameterException to UpdateSecretVersionStage; AWS's own codes there are unverified."""


@dataclass(frozen=True)
class SecretDescription:
    """The non-secret facts about a secret that every rotation step starts from."""

    arn: str
    name: str
    rotation_enabled: bool
    version_stages: dict[str, tuple[str, ...]]
    tags: dict[str, str]

    def version_with(self, stage: str) -> str | None:
        return next((v for v, stages in self.version_stages.items() if stage in stages), None)

    def unfinished_rotation(self) -> str | None:
        """The version AWSPENDING is on when that is not the AWSCURRENT one: a rotation that has
        not finished, which makes Secrets Manager refuse a new one."""
        return next(
            (
                version
                for version, stages in self.version_stages.items()
                if PENDING in stages and CURRENT not in stages
            ),
            None,
        )


class RotateOutcome(StrEnum):
    """How Secrets Manager took a RotateSecret call."""

    STARTED = "started"
    REATTEMPTED = "re-attempted"
    """Refused with "A previous rotation isn't complete. That rotation will be reattempted.":
    Secrets Manager runs the unfinished rotation again instead."""


class SecretsGateway:
    """Thin, typed access to Secrets Manager; reads always name a VersionStage."""

    def __init__(self, client: "SecretsManagerClient") -> None:
        self._client = client

    def describe(self, secret_id: str) -> SecretDescription:
        with _aws_errors_mapped(f"secret {secret_id!r}"):
            answer = self._client.describe_secret(SecretId=secret_id)
        return _description(answer, answer.get("VersionIdsToStages", {}))

    def list_tagged(self, key: str, value: str) -> Iterator[SecretDescription]:
        """Every secret ListSecrets finds with the tag key `key` and a tag value `value`. Its
        filters are loose (each matches a prefix, and of any tag): callers check each secret's
        own tags."""
        filters: list[FilterTypeDef] = [
            {"Key": "tag-key", "Values": [key]},
            {"Key": "tag-value", "Values": [value]},
        ]
        pages = self._client.get_paginator("list_secrets").paginate(
            Filters=filters, PaginationConfig={"PageSize": LIST_PAGE_SIZE}
        )
        with _aws_errors_mapped("the list of secrets"):
            for page in pages:
                for entry in page.get("SecretList", []):
                    yield _description(entry, entry.get("SecretVersionsToStages", {}))

    def version_created(self, secret_id: str, version_id: str) -> datetime | None:
        """When a version was created, or None when the secret no longer has it."""
        after: dict[str, Any] = {}
        while True:
            with _aws_errors_mapped(f"secret {secret_id!r}"):
                page = self._client.list_secret_version_ids(
                    SecretId=secret_id, MaxResults=LIST_PAGE_SIZE, **after
                )
            for version in page.get("Versions", []):
                if version.get("VersionId") == version_id:
                    return version.get("CreatedDate")
            if not page.get("NextToken"):
                return None
            after = {"NextToken": page["NextToken"]}

    def rotate(self, secret_id: str) -> RotateOutcome:
        """RotateSecret with the secret's configured rotation function and schedule."""
        try:
            self._client.rotate_secret(SecretId=secret_id)
        except ClientError as error:
            code = error_code(error)
            message = str(error.response.get("Error", {}).get("Message", ""))
            if code == "InvalidRequestException" and _REATTEMPTED_MESSAGE in message.lower():
                return RotateOutcome.REATTEMPTED
            raise _client_failure(error, f"secret {secret_id!r}") from None
        except BotoCoreError as error:
            raise _transport_failure(error) from None
        return RotateOutcome.STARTED

    def read_current(self, secret_id: str) -> str:
        """The AWSCURRENT string of a secret that must have one (the service-account key)."""
        value = self.read_current_string(secret_id)
        if value is None:
            raise SecretNotFoundError(
                f"secret {secret_id!r} holds binary data; store the value as a secret string"
            )
        return value

    def read_current_string(self, secret_id: str) -> str | None:
        """The AWSCURRENT string, or None when the current version holds binary data."""
        with _aws_errors_mapped(f"secret {secret_id!r}"):
            answer = self._client.get_secret_value(SecretId=secret_id, VersionStage=CURRENT)
        return answer.get("SecretString")

    def read_previous_string(self, secret_id: str) -> str | None:
        """The AWSPREVIOUS string, or None when no version holds that label."""
        try:
            answer = self._client.get_secret_value(SecretId=secret_id, VersionStage=PREVIOUS)
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return None
            raise _client_failure(error, f"secret {secret_id!r}") from None
        except BotoCoreError as error:
            raise _transport_failure(error) from None
        return answer.get("SecretString")

    def read_pending(self, secret_id: str, version_id: str) -> str | None:
        """The pending version's value, or None while Secrets Manager's placeholder is empty.
        NotPendingVersionError when the version lost AWSPENDING after the caller's
        DescribeSecret: another rotation superseded this one, or it was abandoned."""
        try:
            answer = self._client.get_secret_value(
                SecretId=secret_id, VersionId=version_id, VersionStage=PENDING
            )
        except ClientError as error:
            code = error_code(error)
            if code == "InvalidRequestException" and _STAGE_NOT_ON_VERSION in _message(error):
                raise _label_moved(secret_id, version_id) from None
            if code == "ResourceNotFoundException":
                # The answer to an empty placeholder, and perhaps to a version the label left
                # (AWS drops a version without labels): only the labels tell them apart.
                if self._still_pending(secret_id, version_id):
                    return None
                raise _label_moved(secret_id, version_id) from None
            raise _client_failure(error, f"pending version {version_id} of {secret_id!r}") from None
        except BotoCoreError as error:
            raise _transport_failure(error) from None
        return answer.get("SecretString")

    def put_pending(
        self, secret_id: str, version_id: str, secret_string: str, rotation_token: str | None
    ) -> bool:
        """Store the pending value; False when another writer stored a different one first."""
        extra = {"RotationToken": rotation_token} if rotation_token else {}
        try:
            self._client.put_secret_value(
                SecretId=secret_id,
                ClientRequestToken=version_id,
                SecretString=secret_string,
                VersionStages=[PENDING],
                **extra,
            )
        except ClientError as error:
            if error_code(error) == "ResourceExistsException":
                return False
            raise _client_failure(error, f"secret {secret_id!r}") from None
        except BotoCoreError as error:
            raise _transport_failure(error) from None
        return True

    def remove_pending(self, secret_id: str, version_id: str) -> None:
        """Take AWSPENDING off a version that can never pass, so that the secret is free to
        rotate again; the version's value stays, unlabelled, as Secrets Manager keeps it. Done
        also when the label already left the version (another run took it off first)."""
        try:
            self._client.update_secret_version_stage(
                SecretId=secret_id, VersionStage=PENDING, RemoveFromVersionId=version_id
            )
        except ClientError as error:
            if error_code(error) in _LABEL_MOVED_CODES and not self._still_pending(
                secret_id, version_id
            ):
                return
            raise _client_failure(error, f"secret {secret_id!r}") from None
        except BotoCoreError as error:
            raise _transport_failure(error) from None

    def tag(self, secret_id: str, tags: dict[str, str]) -> None:
        with _aws_errors_mapped(f"secret {secret_id!r}"):
            pairs: list[TagTypeDef] = [{"Key": k, "Value": v} for k, v in tags.items()]
            self._client.tag_resource(SecretId=secret_id, Tags=pairs)

    def untag(self, secret_id: str, keys: list[str]) -> None:
        with _aws_errors_mapped(f"secret {secret_id!r}"):
            self._client.untag_resource(SecretId=secret_id, TagKeys=keys)

    def promote(self, secret_id: str, version_id: str, current_version_id: str | None) -> None:
        """Move AWSCURRENT to `version_id`; Secrets Manager labels the old one AWSPREVIOUS.
        NotPendingVersionError when Secrets Manager refuses because the version lost
        AWSPENDING after the caller's DescribeSecret (a rotation that superseded this one
        moved AWSCURRENT too)."""
        extra = {"RemoveFromVersionId": current_version_id} if current_version_id else {}
        try:
            self._client.update_secret_version_stage(
                SecretId=secret_id, VersionStage=CURRENT, MoveToVersionId=version_id, **extra
            )
        except ClientError as error:
            if error_code(error) in _LABEL_MOVED_CODES and not self._still_pending(
                secret_id, version_id
            ):
                raise _label_moved(secret_id, version_id) from None
            raise _client_failure(error, f"secret {secret_id!r}") from None
        except BotoCoreError as error:
            raise _transport_failure(error) from None

    def label_previous(self, secret_id: str, version_id: str, from_version_id: str) -> None:
        """Move AWSPREVIOUS from `from_version_id` to `version_id`."""
        with _aws_errors_mapped(f"secret {secret_id!r}"):
            self._client.update_secret_version_stage(
                SecretId=secret_id,
                VersionStage=PREVIOUS,
                MoveToVersionId=version_id,
                RemoveFromVersionId=from_version_id,
            )

    def _still_pending(self, secret_id: str, version_id: str) -> bool:
        """Whether AWSPENDING is on the version now: a DescribeSecret after a refused call."""
        return PENDING in self.describe(secret_id).version_stages.get(version_id, ())


def _description(answer: Mapping[str, Any], stages: Mapping[str, Any]) -> SecretDescription:
    """DescribeSecret's answer or a ListSecrets entry: the same facts under one key's two names."""
    return SecretDescription(
        arn=answer["ARN"],
        name=answer["Name"],
        rotation_enabled=bool(answer.get("RotationEnabled", False)),
        version_stages={version: tuple(labels) for version, labels in stages.items()},
        tags={tag["Key"]: tag["Value"] for tag in answer.get("Tags", [])},
    )


@contextmanager
def _aws_errors_mapped(subject: str) -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        raise _client_failure(error, subject) from None
    except BotoCoreError as error:
        raise _transport_failure(error) from None


def _label_moved(secret_id: str, version_id: str) -> NotPendingVersionError:
    return NotPendingVersionError(
        f"version {version_id} of {secret_id!r} lost its AWSPENDING label after this step's "
        "DescribeSecret: another rotation (RotateSecret or a manual run at the same moment) "
        "superseded this one, or it was abandoned; nothing to do for it"
    )


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def _client_failure(error: ClientError, subject: str) -> Exception:
    code = error_code(error)
    message = _message(error)
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
    if code in _THROTTLING_CODES or status >= 500:
        return AwsUnavailableError(f"Secrets Manager is busy or failing ({code}); try again later")
    if code == "ResourceNotFoundException":
        return SecretNotFoundError(
            f"{subject} was not found: check the secret name or ARN and the version ({message})"
        )
    return AwsAccessError(f"Secrets Manager refused the call on {subject}: {code}: {message}")


def _transport_failure(error: BotoCoreError) -> Exception:
    if isinstance(error, ConnectionError | HTTPClientError):
        return AwsUnavailableError(
            f"Secrets Manager could not be reached ({type(error).__name__}); try again later"
        )
    return AwsAccessError(f"the Secrets Manager call failed: {type(error).__name__}")
