#!/usr/bin/env node
// Calls a Cloud Run service (or a Cloud Function, or an IAP-protected application) with the
// Google ID token kept fresh in an AWS Secrets Manager ID-token secret.
//
//   CLOUD_RUN_URL=https://invoices-4k2j3h5g6a-ew.a.run.app/invoices node call-cloud-run.mjs
//
// Environment: CLOUD_RUN_URL (required), TOKEN_SECRET_ID (default google/id-token), and the AWS
// SDK's own variables (AWS_REGION, AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
// AWS_ENDPOINT_URL, ...). Prints the HTTP status and the service's answer.

import { TokenSecretError, secretIdToken } from "./token.mjs";

/** The service's refusal as one line that names the fix; undefined for other errors. */
function explainRefusal(error, auth, url) {
  const status = error?.response?.status;
  if (![401, 403].includes(status)) {
    return undefined;
  }
  const { secretId, audience, service_account: account } = auth.tokenSecret;
  if (status === 401) {
    return (
      `${url} refused the ID token of secret ${secretId} (HTTP 401): it is for the audience ` +
      `${audience}, and the service accepts its own URL (or a custom audience set on it): ` +
      "use the ID-token secret minted for this service"
    );
  }
  return (
    `${url} denied ${account ?? "the token's account"} (HTTP 403): grant it ` +
    "roles/run.invoker on the service (gcloud run services add-iam-policy-binding <service> " +
    "--region <region> " +
    `--member serviceAccount:${account ?? "<account>"} --role roles/run.invoker)`
  );
}

async function main(env) {
  const url = env.CLOUD_RUN_URL;
  if (!url) {
    throw new TokenSecretError("CLOUD_RUN_URL is not set: give the URL of the service to call");
  }
  const secretId = env.TOKEN_SECRET_ID || "google/id-token";
  const auth = secretIdToken(secretId);
  try {
    const answer = await auth.request({ url, responseType: "text" });
    console.log(`HTTP ${answer.status}`);
    console.log(answer.data);
  } catch (error) {
    const explained = explainRefusal(error, auth, url);
    throw explained === undefined ? error : new TokenSecretError(explained, { cause: error });
  }
}

try {
  await main(process.env);
} catch (error) {
  // One line, never a stack trace and never the request (its headers hold the token).
  const message = error instanceof Error ? error.message : String(error);
  const known = error instanceof TokenSecretError;
  console.error(`call-cloud-run: ${known ? message : `${error?.name ?? "Error"}: ${message}`}`);
  process.exitCode = 1;
}
