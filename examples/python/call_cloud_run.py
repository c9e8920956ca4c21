"""Call a Cloud Run service with the Google ID token kept fresh in an AWS Secrets Manager secret.

Environment: CLOUD_RUN_URL (required: the URL to call), TOKEN_SECRET_ID (default google/id-token,
an ID-token secret), and the usual AWS variables. Prints the HTTP status and the service's
answer; on a refusal, one line naming the fix.
"""

import os
import sys

from google.auth.transport.requests import AuthorizedSession

from google_token_secret import SecretIdTokenCredentials, TokenSecretError


def refusal(status: int, credentials: SecretIdTokenCredentials, url: str) -> str:
    """Cloud Run's 401 or 403 as one line naming the fix."""
    if status == 401:
        return (
            f"{url} refused the ID token of secret {credentials.secret_id} (HTTP 401): it is "
            f"for the audience {credentials.audience}, and the service accepts its own URL (or "
            "a custom audience set on it): use the ID-token secret minted for this service"
        )
    account = credentials.service_account_email or "<account>"
    return (
        f"{url} denied {account} (HTTP 403): grant it roles/run.invoker on the service "
        "(gcloud run services add-iam-policy-binding <service> --region <region> "
        f"--member serviceAccount:{account} --role roles/run.invoker)"
    )


def main() -> int:
    url = os.environ.get("CLOUD_RUN_URL")
    if not url:
        print(
            "call-cloud-run: CLOUD_RUN_URL is not set: give the URL of the service to call",
            file=sys.stderr,
        )
        return 1
    try:
        credentials = SecretIdTokenCredentials(os.environ.get("TOKEN_SECRET_ID", "google/id-token"))
        # One new read after a 401 finds a token the rotation stored meanwhile; a second
        # would find the same version again.
        session = AuthorizedSession(credentials, max_refresh_attempts=1)
        answer = session.get(url, timeout=30)
        if answer.status_code in (401, 403):
            print(
                f"call-cloud-run: {refusal(answer.status_code, credentials, url)}", file=sys.stderr
            )
            return 1
    except TokenSecretError as error:
        print(f"call-cloud-run: {error}", file=sys.stderr)
        return 1
    print(f"HTTP {answer.status_code}")
    print(answer.text)
    return 0 if answer.ok else 1


if __name__ == "__main__":
    sys.exit(main())
