#!/usr/bin/env node
// Lists the next events of a Google Calendar with the access token from AWS Secrets Manager.
//
//   node list-events.mjs                          # once
//   node list-events.mjs --every 60 --times 10    # a long-running reader: one round a minute
//
// Environment: TOKEN_SECRET_ID (default google/access-token), CALENDAR_ID (default primary),
// GOOGLE_API_ROOT_URL (default https://www.googleapis.com/), and the AWS SDK's own variables
// (AWS_REGION, AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, ...).

import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

import { calendar } from "@googleapis/calendar";

import { TokenSecretError, secretAccessToken } from "./token.mjs";

const USAGE = "usage: node list-events.mjs [--every SECONDS] [--times N]";

class UsageError extends Error {}

function options(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { every: { type: "string" }, times: { type: "string" } },
    }));
  } catch (error) {
    throw new UsageError(`${error.message}; ${USAGE}`);
  }
  const every = values.every === undefined ? 0 : Number(values.every);
  if (!(Number.isFinite(every) && every >= 0)) {
    throw new UsageError(`--every takes a number of seconds, not ${values.every}; ${USAGE}`);
  }
  const repeated = values.every !== undefined || values.times !== undefined;
  const times = values.times === undefined ? (repeated ? Infinity : 1) : Number(values.times);
  if (!(Number.isInteger(times) || times === Infinity) || times < 1) {
    throw new UsageError(`--times takes a whole number of rounds, not ${values.times}; ${USAGE}`);
  }
  return { every, times, repeated };
}

async function upcomingEvents(api, calendarId) {
  const answer = await api.events.list({
    calendarId,
    timeMin: new Date().toISOString(),
    singleEvents: true,
    orderBy: "startTime",
    maxResults: 10,
  });
  return answer.data.items ?? [];
}

/** Google's answer as one line that names the fix; undefined for other errors. */
function explainGoogleError(error, auth, calendarId) {
  const status = error?.response?.status;
  if (![401, 403, 404].includes(status)) {
    return undefined;
  }
  const google = ` (Google: ${error.message})`;
  const { secretId, service_account: account, scopes } = auth.tokenSecret;
  if (status === 401) {
    return (
      `Google refused the token of secret ${secretId} even after reading it again${google}: ` +
      "it was revoked, or the rotation stores tokens Google does not accept; see the notices " +
      "on the stack's failure topic"
    );
  }
  if (status === 403) {
    return (
      `Google denied calendar ${calendarId} to the token's account ${account ?? "(unknown)"}` +
      `${google}: its scopes (${(scopes ?? []).join(" ") || "unknown"}) need a Calendar scope ` +
      "such as https://www.googleapis.com/auth/calendar.readonly (the stack's GoogleScopes), " +
      "and the Calendar API must be enabled in the account's project"
    );
  }
  return (
    `calendar ${calendarId} not found${google}: check CALENDAR_ID, and share the calendar ` +
    `with the token's account ${account ?? "(unknown)"}`
  );
}

async function main(argv, env) {
  const { every, times, repeated } = options(argv);
  const secretId = env.TOKEN_SECRET_ID || "google/access-token";
  const calendarId = env.CALENDAR_ID || "primary";
  const rootUrl = env.GOOGLE_API_ROOT_URL || "https://www.googleapis.com/";
  const auth = secretAccessToken(secretId);
  const api = calendar({ version: "v3", auth, rootUrl });
  try {
    for (let round = 1; round <= times; round += 1) {
      if (round > 1) {
        await sleep(every * 1000);
      }
      const events = await upcomingEvents(api, calendarId);
      if (repeated) {
        console.log(`round ${round}: ${events.length} events`);
        continue;
      }
      console.log(`Upcoming events in ${calendarId}:`);
      if (events.length === 0) {
        console.log("No upcoming events.");
      }
      for (const event of events) {
        const start = event.start?.dateTime ?? event.start?.date ?? "(no start)";
        console.log(`${start}  ${event.summary ?? "(no title)"}`);
      }
    }
  } catch (error) {
    const explained = explainGoogleError(error, auth, calendarId);
    throw explained === undefined ? error : new TokenSecretError(explained, { cause: error });
  }
}

try {
  await main(process.argv.slice(2), process.env);
} catch (error) {
  // One line, never a stack trace and never the request (its headers hold the token).
  const message = error instanceof Error ? error.message : String(error);
  const known = error instanceof TokenSecretError || error instanceof UsageError;
  console.error(`list-events: ${known ? message : `${error?.name ?? "Error"}: ${message}`}`);
  process.exitCode = error instanceof UsageError ? 2 : 1;
}
