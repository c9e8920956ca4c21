"""The Secrets Manager calls the rotation makes, with AWS failures mapped to rotation errors."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from rotation_core.aws_errors import error_code
from rotation_core.errors import AwsAccessError, AwsUnavailableError, SecretNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import TagTypeDef

CURRENT: Final = "AWSCURRENT"
PENDING: Final = "AWSPENDING"
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


class SecretsGateway:
    """Thin, typed access to Secrets Manager; reads always name a VersionStage."""

    def __init__(self, client: "SecretsManagerClient") -> None:
        self._client = client

    def describe(self, secret_id: str) -> SecretDescription:
        with _aws_errors_mapped(f"secret {secret_id!r}"):
            answer = self._client.describe_secret(SecretId=secret_id)
        return SecretDescription(
            arn=answer["ARN"],
            name=answer["Name"],
            rotation_enabled=bool(answer.get("RotationEnabled", False)),
            version_stages={
                version: tuple(stages)
                for version, stages in answer.get("VersionIdsToStages", {}).items()
            },
            tags={tag["Key"]: tag["Value"] for tag in answer.get("Tags", [])},
        )

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

    def read_pending(self, secret_id: str, version_id: str) -> str | None:
        """The pending version's value, or None while Secrets Manager's placeholder is empty."""
        try:
            answer = self._client.get_secret_value(
                SecretId=secret_id, VersionId=version_id, VersionStage=PENDING
            )
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return None
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
        rotate again; the version's value stays, unlabelled, as Secrets Manager keeps it."""
        with _aws_errors_mapped(f"secret {secret_id!r}"):
            self._client.update_secret_version_stage(
                SecretId=secret_id, VersionStage=PENDING, RemoveFromVersionId=version_id
            )

    def tag(self, secret_id: str, tags: dict[str, str]) -> None:
        with _aws_errors_mapped(f"secret {secret_id!r}"):
            pairs: list[TagTypeDef] = [{"Key": k, "Value": v} for k, v in tags.items()]
            self._client.tag_resource(SecretId=secret_id, Tags=pairs)

    def untag(self, secret_id: str, keys: list[str]) -> None:
        with _aws_errors_mapped(f"secret {secret_id!r}"):
            self._client.untag_resource(SecretId=secret_id, TagKeys=keys)

    def promote(self, secret_id: str, version_id: str, current_version_id: str | None) -> None:
        """Move AWSCURRENT to `version_id`; Secrets Manager labels the old one AWSPREVIOUS."""
        extra = {"RemoveFromVersionId": current_version_id} if current_version_id else {}
        with _aws_errors_mapped(f"secret {secret_id!r}"):
            self._client.update_secret_version_stage(
                SecretId=secret_id, VersionStage=CURRENT, MoveToVersionId=version_id, **extra
            )


@contextmanager
def _aws_errors_mapped(subject: str) -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        raise _client_failure(error, subject) from None
    except BotoCoreError as error:
        raise _transport_failure(error) from None


def _client_failure(error: ClientError, subject: str) -> Exception:
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", ""))
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
