"""Where access tokens come from: one seam, so impersonation and federation can join the key."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from rotation_core.config import SERVICE_ACCOUNT_KEY_SOURCE, RotationSettings
from rotation_core.errors import ConfigurationError, GoogleResponseError
from rotation_core.google_client import GoogleClient
from rotation_core.secrets import SecretsGateway
from rotation_core.service_account_key import parse_service_account_key
from rotation_core.token_secret import TokenMetadata, TokenSecretValue


class CredentialSource(Protocol):
    """Mints one access token for the given scopes."""

    def mint(self, scopes: tuple[str, ...]) -> TokenSecretValue: ...


@dataclass(frozen=True)
class ServiceAccountKeySource:
    """A service-account key, read from its own secret only at the moment a token is minted."""

    key_secret_id: str
    secrets: SecretsGateway
    google: GoogleClient

    def mint(self, scopes: tuple[str, ...]) -> TokenSecretValue:
        key = parse_service_account_key(
            self.secrets.read_current(self.key_secret_id), self.key_secret_id
        )
        credentials = key.credentials(scopes, self.google.endpoints.token_url)
        issued_at = datetime.now(UTC).replace(microsecond=0)
        self.google.refresh(credentials)
        if not credentials.token or credentials.expiry is None:
            raise GoogleResponseError(
                "Google's token endpoint answered without an access_token or expires_in"
            )
        return TokenSecretValue(
            access_token=credentials.token,
            metadata=TokenMetadata(
                token_type="Bearer",
                expires_at=credentials.expiry.replace(tzinfo=UTC, microsecond=0),
                issued_at=issued_at,
                scopes=scopes,
                service_account=key.client_email,
                service_account_client_id=key.client_id,
            ),
        )


def credential_source_for(
    settings: RotationSettings, secrets: SecretsGateway, google: GoogleClient
) -> CredentialSource:
    if settings.credential_source == SERVICE_ACCOUNT_KEY_SOURCE:
        return ServiceAccountKeySource(settings.key_secret_id, secrets, google)
    raise ConfigurationError(f"credential source {settings.credential_source!r} is not supported")
