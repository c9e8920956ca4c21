// The Google access token kept fresh in AWS Secrets Manager, as an OAuth2Client of
// google-auth-library that any Google API client accepts as `auth`; and the Google ID token of
// an ID-token secret, as an IdTokenClient that calls Cloud Run, Cloud Functions or IAP.
//
// How the pinned google-auth-library (10.5.0) uses what this sets up
// (node_modules/google-auth-library/build/src/auth/):
// - Before each request, while the token expires more than `eagerRefreshThresholdMillis` from
//   now, the cached token is sent; otherwise `refreshHandler` is called and its answer cached
//   (oauth2client.js getRequestMetadataAsync and isTokenExpiring). So the secret is read once
//   per token, `refreshMarginMs` before its `expires_at`. (While the newest token in the secret
//   is itself that close to expiring, the rotation is late, and each request reads it again.)
// - When Google answers 401 or 403, the request is sent once more after calling
//   `refreshHandler` again, but only where the credentials have no expiry_date or
//   `forceRefreshOnFailure` is set (oauth2client.js requestAsync). It is set here: a token Google
//   refuses before its expires_at (revoked, or clocks apart) is replaced by AWSCURRENT at once.
// - `eagerRefreshThresholdMillis` is taken only when truthy (authclient.js constructor): 0 would
//   silently mean the default of 5 minutes, so a margin must be positive.
// - IdTokenClient (idtokenclient.js) asks its `idTokenProvider` for a token when it holds none
//   or the one held is within `eagerRefreshThresholdMillis` of the JWT's `exp` (which the
//   secret's `expires_at` repeats), so the ID-token secret is read once per token too. It does
//   not retry after a 401 or 403: Cloud Run checks an ID token against Google's published keys
//   alone, so a token refused before its `exp` is for another audience or caller, and the same
//   token would be refused again.
//
// The token itself is never logged, printed or put into an error message.

import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { IdTokenClient, OAuth2Client } from "google-auth-library";

export const DEFAULT_REFRESH_MARGIN_MS = 5 * 60 * 1000;

/** The two kinds of token secret, in the words their errors use. */
const ACCESS_TOKEN = {
  field: "GOOGLE_ACCESS_TOKEN",
  name: "access token",
  reader: "secretAccessToken",
  keptIn: "one without the tag token-rotation:token-kind=id-token: for Google APIs",
};
const ID_TOKEN = {
  field: "GOOGLE_ID_TOKEN",
  name: "ID token",
  reader: "secretIdToken",
  keptIn:
    "one tagged token-rotation:token-kind=id-token and token-rotation:audience=<the " +
    "service's URL>: for Cloud Run, Cloud Functions or IAP",
};

/** An error whose message says what is wrong and how to fix it; print the message alone. */
export class TokenSecretError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "TokenSecretError";
  }
}

/**
 * An OAuth2Client that sends the token of `secretId`'s AWSCURRENT version and reads the secret
 * again `refreshMarginMs` before the token expires, and once more when Google answers 401/403.
 * `auth.tokenSecret` describes the last token read (never the token itself).
 */
export function secretAccessToken(
  secretId,
  { client = new SecretsManagerClient({}), refreshMarginMs = DEFAULT_REFRESH_MARGIN_MS } = {},
) {
  if (!secretId) {
    throw new TokenSecretError("no secret id given: pass the token secret's name or ARN");
  }
  if (!(Number.isFinite(refreshMarginMs) && refreshMarginMs > 0)) {
    throw new RangeError(`refreshMarginMs must be a positive number, not ${refreshMarginMs}`);
  }
  const auth = new OAuth2Client({
    eagerRefreshThresholdMillis: refreshMarginMs,
    forceRefreshOnFailure: true,
  });
  auth.tokenSecret = { secretId };
  // The library does not share one refresh between concurrent requests: share it here.
  let reading = null;
  auth.refreshHandler = () => {
    reading ??= readToken(client, secretId)
      .then(({ token, metadata }) => {
        auth.tokenSecret = { secretId, ...metadata };
        return token;
      })
      .finally(() => {
        reading = null;
      });
    return reading;
  };
  return auth;
}

/**
 * An IdTokenClient that sends the ID token of an ID-token secret's AWSCURRENT version as
 * `Authorization: Bearer` (what Cloud Run, Cloud Functions and IAP check), reading the secret
 * again `refreshMarginMs` before the token expires. Given `audience` (the service's URL), a
 * secret minted for another audience is refused before any request. `auth.tokenSecret`
 * describes the last token read (never the token itself).
 */
export function secretIdToken(
  secretId,
  {
    audience,
    client = new SecretsManagerClient({}),
    refreshMarginMs = DEFAULT_REFRESH_MARGIN_MS,
  } = {},
) {
  if (!secretId) {
    throw new TokenSecretError("no secret id given: pass the ID-token secret's name or ARN");
  }
  if (audience !== undefined && !(typeof audience === "string" && audience)) {
    throw new TokenSecretError("audience must be the URL the ID token is for, or left out");
  }
  if (!(Number.isFinite(refreshMarginMs) && refreshMarginMs > 0)) {
    throw new RangeError(`refreshMarginMs must be a positive number, not ${refreshMarginMs}`);
  }
  let reading = null;
  const auth = new IdTokenClient({
    targetAudience: audience,
    eagerRefreshThresholdMillis: refreshMarginMs,
    idTokenProvider: {
      // Called when no token is held or it is within the margin of its `exp`; concurrent
      // requests share one read, as secretAccessToken's do.
      fetchIdToken: () => {
        reading ??= readIdToken(client, secretId, audience)
          .then(({ idToken, metadata }) => {
            auth.tokenSecret = { secretId, ...metadata };
            return idToken;
          })
          .finally(() => {
            reading = null;
          });
        return reading;
      },
    },
  });
  auth.tokenSecret = { secretId };
  return auth;
}

/**
 * Reads AWSCURRENT of `secretId` once: `{ token: { access_token, expiry_date }, metadata }`,
 * where metadata holds expires_at, service_account and scopes. Throws TokenSecretError when the
 * secret holds no usable access token.
 */
export async function readToken(client, secretId) {
  const value = await readCurrent(client, secretId, ACCESS_TOKEN);
  return {
    token: { access_token: value.GOOGLE_ACCESS_TOKEN, expiry_date: Date.parse(value.expires_at) },
    metadata: {
      expires_at: value.expires_at,
      service_account: value.service_account,
      scopes: value.scopes,
    },
  };
}

/**
 * Reads AWSCURRENT of an ID-token secret once: `{ idToken, metadata }`, where metadata holds
 * expires_at, audience and service_account. Given `audience`, a secret minted for another one
 * is refused. Throws TokenSecretError when the secret holds no usable ID token.
 */
export async function readIdToken(client, secretId, audience) {
  const value = await readCurrent(client, secretId, ID_TOKEN);
  if (typeof value.audience !== "string" || !value.audience) {
    throw new TokenSecretError(
      `secret ${secretId} holds an ID token without its audience: it was not written by the ` +
        `rotation; run 'aws secretsmanager rotate-secret --secret-id ${secretId}'`,
    );
  }
  if (audience !== undefined && value.audience !== audience) {
    throw new TokenSecretError(
      `secret ${secretId} holds ID tokens for ${value.audience}, not ${audience}: use the ` +
        `secret minted for ${audience}, or pass { audience: "${value.audience}" } if that is ` +
        "the service you call",
    );
  }
  return {
    idToken: value.GOOGLE_ID_TOKEN,
    metadata: {
      expires_at: value.expires_at,
      audience: value.audience,
      service_account: value.service_account,
    },
  };
}

/** The parsed AWSCURRENT value of `secretId`, checked to hold a live token of `kind`. */
async function readCurrent(client, secretId, kind) {
  const other = kind === ACCESS_TOKEN ? ID_TOKEN : ACCESS_TOKEN;
  let answer;
  try {
    answer = await client.send(
      new GetSecretValueCommand({ SecretId: secretId, VersionStage: "AWSCURRENT" }),
    );
  } catch (error) {
    throw await explainAwsError(error, client, secretId);
  }
  let value;
  try {
    value = JSON.parse(answer.SecretString ?? "");
  } catch {
    value = undefined;
  }
  if (
    value === null ||
    typeof value !== "object" ||
    !(kind.field in value || other.field in value)
  ) {
    throw new TokenSecretError(
      `secret ${secretId} is not a token secret (no JSON with ${kind.field}): ` +
        "use the stack's TokenSecretArn output, not the key secret",
    );
  }
  if (!value[kind.field] && value[other.field]) {
    throw new TokenSecretError(
      `secret ${secretId} holds an ${other.name} (${other.field}), not an ${kind.name}: read ` +
        `it with ${other.reader}, or use a token secret that holds an ${kind.name} ` +
        `(${kind.keptIn})`,
    );
  }
  if (!value[kind.field]) {
    // At deploy the stack writes an empty token, of either kind's field.
    const empty = kind.field in value ? kind.field : other.field;
    throw new TokenSecretError(
      `secret ${secretId} still holds the placeholder (${empty} is empty): no ` +
        "rotation has succeeded yet. Store the service-account key in the key secret (or set " +
        `up the credential source), then run 'aws secretsmanager rotate-secret --secret-id ` +
        `${secretId}'; if it fails, its notice on the stack's failure topic says why`,
    );
  }
  const expiryDate = Date.parse(value.expires_at);
  if (Number.isNaN(expiryDate)) {
    throw new TokenSecretError(
      `secret ${secretId} has no valid expires_at (${JSON.stringify(value.expires_at ?? null)}): ` +
        "it was not written by the rotation; run 'aws secretsmanager rotate-secret " +
        `--secret-id ${secretId}'`,
    );
  }
  if (expiryDate <= Date.now()) {
    throw new TokenSecretError(
      `the newest token in secret ${secretId} expired at ${value.expires_at}: the rotation is ` +
        "failing. See the notices on the stack's failure topic, 'aws stepfunctions " +
        "list-executions --state-machine-arn <RotationStateMachineArn> --status-filter FAILED', " +
        "and the token-rotation-status:failing-since tag in 'aws secretsmanager " +
        `describe-secret --secret-id ${secretId}'`,
    );
  }
  return value;
}

async function explainAwsError(error, client, secretId) {
  const aws = error?.message ? ` (AWS: ${error.message})` : "";
  // The SDK resolves its region only when it sends, and says so in this one message.
  if (error?.message === "Region is missing") {
    return new TokenSecretError(
      `no AWS region to read secret ${secretId} in: set AWS_REGION (or region in the AWS ` +
        "profile), or create the SecretsManagerClient with { region }",
      { cause: error },
    );
  }
  switch (error?.name) {
    case "CredentialsProviderError":
      return new TokenSecretError(
        `no usable AWS credentials to read secret ${secretId}: run the application with an IAM ` +
          "role (Lambda or ECS task role, EC2 instance profile), or set AWS_PROFILE to a " +
          `profile in ~/.aws/config, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY${aws}`,
        { cause: error },
      );
    case "AccessDeniedException":
      return new TokenSecretError(
        `not allowed to read secret ${secretId}: the application's role needs ` +
          "secretsmanager:GetSecretValue on the secret's ARN (the stack's TokenSecretArn " +
          "output), and kms:Decrypt on its key if the secret uses a customer-managed KMS key" +
          aws,
        { cause: error },
      );
    case "DecryptionFailure":
      return new TokenSecretError(
        `cannot decrypt secret ${secretId}: the application's role needs kms:Decrypt on the ` +
          `secret's customer-managed KMS key${aws}`,
        { cause: error },
      );
    case "ResourceNotFoundException": {
      const region = await client.config.region().catch(() => "an unknown region");
      return new TokenSecretError(
        `secret ${secretId} not found in ${region}: check the secret's name or ARN (the ` +
          "stack's TokenSecretArn output) and AWS_REGION",
        { cause: error },
      );
    }
    default:
      return error;
  }
}
