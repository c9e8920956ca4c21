"""Where tokens come from (access tokens and ID tokens): one seam for the key, impersonation and
keyless federation, every mint through google-auth."""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from google.auth import aws, impersonated_credentials
from google.auth import credentials as google_credentials

from rotation_core.config import (
    IMPERSONATION_SOURCE,
    SERVICE_ACCOUNT_KEY_SOURCE,
    WORKLOAD_IDENTITY_SOURCE,
    RotationSettings,
)
from rotation_core.errors import (
    ConfigurationError,
    GoogleGrantRejectedError,
    GoogleResponseError,
    InvalidServiceAccountKeyError,
    RotationError,
)
from rotation_core.google_client import (
    FEDERATED_ROLE_MEMBER,
    KEY_ACCOUNT_MEMBER,
    GoogleClient,
    IamIdTokenCredentials,
)
from rotation_core.secrets import SecretsGateway
from rotation_core.service_account_key import ServiceAccountKey, parse_service_account_key
from rotation_core.token_secret import (
    IdTokenMetadata,
    IdTokenSecretValue,
    TokenMetadata,
    TokenSecretValue,
)
from rotation_core.unverified import TOKENINFO_UNREACHABLE

logger = logging.getLogger(__name__)


class CredentialSource(Protocol):
    """Mints one access token for the given scopes, or one ID token for the given audience."""

    def mint(self, scopes: tuple[str, ...]) -> TokenSecretValue: ...

    def mint_id_token(self, audience: str) -> IdTokenSecretValue: ...


@dataclass(frozen=True)
class ServiceAccountKeySource:
    """A service-account key, read from its own secret only at the moment a token is minted."""

    key_secret_id: str
    secrets: SecretsGateway
    google: GoogleClient
    subject: str | None = None
    """Domain-wide delegation: the Workspace user the token acts for (the JWT grant's sub)."""

    def mint(self, scopes: tuple[str, ...]) -> TokenSecretValue:
        def with_key(key: ServiceAccountKey) -> TokenSecretValue:
            credentials = key.credentials(scopes, self.google.endpoints.token_url)
            if self.subject is not None:
                credentials = credentials.with_subject(self.subject)
            issued_at = datetime.now(UTC).replace(microsecond=0)
            self.google.refresh(credentials)
            if not credentials.token or credentials.expiry is None:
                raise GoogleResponseError(
                    "Google's token endpoint answered without an access_token or expires_in"
                )
            return _token_value(
                credentials.token,
                credentials.expiry,
                issued_at,
                scopes,
                key.client_email,
                key.client_id,
                self.subject,
            )

        return with_standby(self.secrets, self.key_secret_id, with_key)

    def mint_id_token(self, audience: str) -> IdTokenSecretValue:
        def with_key(key: ServiceAccountKey) -> IdTokenSecretValue:
            credentials = key.id_token_credentials(audience, self.google.endpoints.token_url)
            issued_at = datetime.now(UTC).replace(microsecond=0)
            self.google.refresh(credentials)
            if not credentials.token or credentials.expiry is None:
                raise GoogleResponseError("Google's token endpoint answered without an id_token")
            return _id_token_value(
                credentials.token, credentials.expiry, issued_at, audience, key.client_email
            )

        return with_standby(self.secrets, self.key_secret_id, with_key)


IAM_SCOPE: Final = "https://www.googleapis.com/auth/iam"
"""All the source token needs: generateAccessToken."""


@dataclass(frozen=True)
class ImpersonationSource:
    """The key's account asks IAM Credentials for another account's token, up to 12 hours."""

    key_secret_id: str
    target: str
    lifetime_seconds: int
    delegates: tuple[str, ...]
    secrets: SecretsGateway
    google: GoogleClient
    known_client_ids: Mapping[str, str]
    """Accounts' OAuth client ids this rotation stored before (see `_client_id`)."""

    def mint(self, scopes: tuple[str, ...]) -> TokenSecretValue:
        def with_key(key: ServiceAccountKey) -> TokenSecretValue:
            endpoints = self.google.endpoints
            impersonating = impersonated_credentials.Credentials(
                source_credentials=key.credentials((IAM_SCOPE,), endpoints.token_url),
                target_principal=self.target,
                target_scopes=list(scopes),
                delegates=list(self.delegates) or None,
                lifetime=self.lifetime_seconds,
                iam_endpoint_override=endpoints.iam_credentials_url.format(self.target),
            )
            return _impersonated_token(
                self.google, impersonating, self.target, scopes, self.known_client_ids
            )

        return with_standby(self.secrets, self.key_secret_id, with_key)

    def mint_id_token(self, audience: str) -> IdTokenSecretValue:
        """generateIdToken with the key's own token (the OpenID token-creator role on the
        target), as google-auth's impersonated IDTokenCredentials does."""

        def with_key(key: ServiceAccountKey) -> IdTokenSecretValue:
            endpoints = self.google.endpoints
            target = impersonated_credentials.Credentials(
                source_credentials=key.credentials((IAM_SCOPE,), endpoints.token_url),
                target_principal=self.target,
                target_scopes=[IAM_SCOPE],
                delegates=list(self.delegates) or None,
            )
            credentials = IamIdTokenCredentials(
                target, audience, endpoints.id_token_url.format(self.target)
            )
            return _minted_id_token(
                self.google, credentials, self.target, audience, KEY_ACCOUNT_MEMBER
            )

        return with_standby(self.secrets, self.key_secret_id, with_key)


AWS_CALLER_IDENTITY_URL: Final = (
    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
)
"""What Google's STS is shown: a GetCallerIdentity request google-auth signs with the Lambda
role's credentials (AWS_ACCESS_KEY_ID and co. in the environment), never sent to AWS by us."""


@dataclass(frozen=True)
class WorkloadIdentitySource:
    """Keyless: the Lambda's AWS role is exchanged at Google's STS for a federated token, which
    impersonates the target account (google-auth's aws.Credentials; no key anywhere in AWS)."""

    audience: str
    target: str
    lifetime_seconds: int
    google: GoogleClient
    known_client_ids: Mapping[str, str]
    """Accounts' OAuth client ids this rotation stored before (see `_client_id`)."""

    def mint(self, scopes: tuple[str, ...]) -> TokenSecretValue:
        endpoints = self.google.endpoints
        federated = aws.Credentials.from_info(
            {
                **self._external_account(),
                "service_account_impersonation_url": endpoints.iam_credentials_url.format(
                    self.target
                ),
                "service_account_impersonation": {"token_lifetime_seconds": self.lifetime_seconds},
            },
            scopes=list(scopes),
        )
        return _impersonated_token(
            self.google, federated, self.target, scopes, self.known_client_ids
        )

    def mint_id_token(self, audience: str) -> IdTokenSecretValue:
        """The federated token itself calls generateIdToken (google-auth's
        fetch_id_token_credentials does not take external_account credentials): the pool's
        principal needs the OpenID token-creator role on the target."""
        federated = aws.Credentials.from_info(self._external_account(), scopes=[IAM_SCOPE])
        target = impersonated_credentials.Credentials(
            source_credentials=federated, target_principal=self.target, target_scopes=[IAM_SCOPE]
        )
        credentials = IamIdTokenCredentials(
            target, audience, self.google.endpoints.id_token_url.format(self.target)
        )
        return _minted_id_token(
            self.google, credentials, self.target, audience, FEDERATED_ROLE_MEMBER
        )

    def _external_account(self) -> dict[str, object]:
        """The external_account configuration gcloud would write for this pool and role."""
        return {
            "type": "external_account",
            "audience": self.audience,
            "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
            "token_url": self.google.endpoints.sts_url,
            "credential_source": {
                "environment_id": "aws1",
                "regional_cred_verification_url": AWS_CALLER_IDENTITY_URL,
            },
        }


def with_standby[T](
    secrets: SecretsGateway, key_secret_id: str, mint: Callable[[ServiceAccountKey], T]
) -> T:
    """Mint with the key in AWSCURRENT; when Google refuses it (deleted, disabled or expired
    behind the rotation's back) and the key secret still holds the standby key in AWSPREVIOUS,
    mint with that instead and start the key's own rotation, which replaces the refused key and
    says so (docs/key-rotation.md). Without a standby, or when it is refused too, the first
    refusal stands."""
    key = parse_service_account_key(secrets.read_current(key_secret_id), key_secret_id)
    try:
        return mint(key)
    except GoogleGrantRejectedError as refusal:
        standby_file = secrets.read_previous_string(key_secret_id)
        if standby_file is None:
            raise
        try:
            standby = parse_service_account_key(standby_file, key_secret_id)
        except InvalidServiceAccountKeyError:
            raise refusal from None
        if standby.private_key_id == key.private_key_id:
            raise
        try:
            minted = mint(standby)
        except GoogleGrantRejectedError:
            raise refusal from None
    logger.warning(
        "Google refused the key in AWSCURRENT; the standby key in AWSPREVIOUS minted the token "
        "and the key secret's rotation is started",
        extra={"key_id": key.private_key_id, "standby_key_id": standby.private_key_id},
    )
    try:
        secrets.rotate(key_secret_id)
    except RotationError as error:
        logger.warning(
            "the key secret's rotation could not be started", extra={"error": str(error)}
        )
    return minted


def _impersonated_token(
    google: GoogleClient,
    credentials: google_credentials.Credentials,
    target: str,
    scopes: tuple[str, ...],
    known_client_ids: Mapping[str, str],
) -> TokenSecretValue:
    """Mints through IAM Credentials (after the source's own token: a key's grant, or STS); the
    account is the target by construction (generateAccessToken's URL names it)."""
    issued_at = datetime.now(UTC).replace(microsecond=0)
    google.impersonate(credentials, target)
    if not credentials.token or credentials.expiry is None:
        raise GoogleResponseError(
            "Google's IAM Credentials endpoint answered without an accessToken or expireTime"
        )
    client_id = _client_id(google, credentials.token, target, known_client_ids)
    return _token_value(credentials.token, credentials.expiry, issued_at, scopes, target, client_id)


def _minted_id_token(
    google: GoogleClient,
    credentials: IamIdTokenCredentials,
    target: str,
    audience: str,
    member: str,
) -> IdTokenSecretValue:
    """generateIdToken's answer; the account is the target by construction (the URL names
    it), and testSecret checks the token's email claim against it."""
    issued_at = datetime.now(UTC).replace(microsecond=0)
    google.mint_id_token(credentials, target, member)
    if not credentials.token or credentials.expiry is None:
        raise GoogleResponseError("Google's IAM Credentials endpoint answered without a token")
    return _id_token_value(credentials.token, credentials.expiry, issued_at, audience, target)


def _id_token_value(
    id_token: str, expiry: datetime, issued_at: datetime, audience: str, account: str
) -> IdTokenSecretValue:
    """A minted ID token and what may be said about it (google-auth's expiry is naive UTC)."""
    return IdTokenSecretValue(
        id_token=id_token,
        metadata=IdTokenMetadata(
            expires_at=expiry.replace(tzinfo=UTC, microsecond=0),
            issued_at=issued_at,
            audience=audience,
            service_account=account,
        ),
    )


def _client_id(
    google: GoogleClient, access_token: str, target: str, known_client_ids: Mapping[str, str]
) -> str:
    """The target's OAuth client id, which testSecret compares with tokeninfo's azp;
    generateAccessToken does not return it, so tokeninfo is asked about the fresh token.

    While tokeninfo is silent, the id stored with the token in use stands in when that token is
    the same account's (an account's client id is fixed when the account is created): the mint
    is stored, and testSecret's rules for a tokeninfo outage apply to it as to a key's token
    (docs/unverified-promotion.md). tokeninfo stays the first source, not the stored id: an
    account deleted and created again under its email has a new id, which the next mint learns
    (a stale id stored during an outage costs at most one version, abandoned by testSecret once
    tokeninfo answers). Leaving the id unknown at the mint is no option: a stored version
    never changes, so testSecret could not fill it in."""
    try:
        return google.token_info(access_token).authorized_party
    except TOKENINFO_UNREACHABLE as silence:
        known = known_client_ids.get(target)
        if known is None:
            raise
        logger.warning(
            "tokeninfo could not answer: the minted token is stored with the client id of the "
            "token in use, the same account's",
            extra={"service_account": target, "tokeninfo_error": str(silence)},
        )
        return known


def _token_value(
    access_token: str,
    expiry: datetime,
    issued_at: datetime,
    scopes: tuple[str, ...],
    account: str,
    client_id: str,
    subject: str | None = None,
) -> TokenSecretValue:
    """A minted token and what may be said about it (google-auth's expiry is naive UTC)."""
    return TokenSecretValue(
        access_token=access_token,
        metadata=TokenMetadata(
            token_type="Bearer",
            expires_at=expiry.replace(tzinfo=UTC, microsecond=0),
            issued_at=issued_at,
            scopes=scopes,
            service_account=account,
            service_account_client_id=client_id,
            subject=subject,
        ),
    )


def credential_source_for(
    settings: RotationSettings,
    secrets: SecretsGateway,
    google: GoogleClient,
    in_use: TokenMetadata | None,
) -> CredentialSource:
    """The configured source; `in_use` is the token applications read now, if it is one this
    rotation stored (its account's client id may stand in for tokeninfo's)."""
    known = {} if in_use is None else {in_use.service_account: in_use.service_account_client_id}
    source, key, target = (
        settings.credential_source,
        settings.key_secret_id,
        settings.impersonated_service_account,
    )
    if source == SERVICE_ACCOUNT_KEY_SOURCE and key:
        return ServiceAccountKeySource(key, secrets, google, settings.delegated_subject)
    if source == IMPERSONATION_SOURCE and key and target:
        lifetime, delegates = settings.token_lifetime_seconds, settings.delegates
        return ImpersonationSource(key, target, lifetime, delegates, secrets, google, known)
    audience = settings.workload_identity_audience
    if source == WORKLOAD_IDENTITY_SOURCE and audience and target:
        lifetime = settings.token_lifetime_seconds
        return WorkloadIdentitySource(audience, target, lifetime, google, known)
    raise ConfigurationError(f"credential source {settings.credential_source!r} is not supported")
