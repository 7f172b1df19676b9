// The Lambda functions' configuration: their environment (lib/runtimes/variables.ts), read and
// checked once per cold start, with the secret variables from the stage's secret on AWS.

import { redact } from "../outcome.ts";
import {
  LAMBDA_ENVIRONMENT,
  parseSettings,
  type SettingsResult,
  settingsFromEnvironment,
} from "../settings.ts";
import { log } from "./log.ts";
import { declaredNumber, SECRET_VARIABLES, type VariableName } from "./variables.ts";

/** A declared variable's value: only declared names compile. */
export function read(env: Environment, name: VariableName): string | undefined {
  return env[name];
}

export type Environment = Record<string, string | undefined>;

export interface LambdaConfig {
  settings: SettingsResult;
  /**
   * The Webhooks destination's shared secrets: SEGMENT_SHARED_SECRET, then during a rotation
   * SEGMENT_SHARED_SECRET_PREVIOUS; none when unset.
   */
  sharedSecrets: string[];
  /**
   * Tokens Segment sends with every webhook request (header or URL): SEGMENT_WEBHOOK_TOKEN, then
   * during a rotation SEGMENT_WEBHOOK_TOKEN_PREVIOUS; none when unset.
   */
  webhookTokens: string[];
  allowUnsignedWebhooks: boolean;
  /** Let a batch in on its first event's signature alone, as Segment signs batches. */
  allowFirstEventSignature: boolean;
  /** Queued delivery: the SQS FIFO queue the doors put events on; empty for direct delivery. */
  queueUrl: string;
  /** The queue consumer's share of REFINER_RATE_PER_MINUTE: the rate divided by REFINER_CONSUMERS. */
  consumerRatePerMinute: number;
  /** REFINER_RETRY_BACKOFF_SECONDS: a retryable message's first wait; it doubles at each receive. */
  firstBackoffSeconds: number;
  /** REFINER_DELIVERED_TABLE: the DynamoDB table of delivered messageIds; empty for none. */
  deliveredTable: string;
  /** What makes the webhook refuse every request as retryable (a token too short); else none. */
  webhookProblem: string | undefined;
  /** What the log should say about the webhook's configuration without refusing anything. */
  webhookWarning: string | undefined;
}

/**
 * The secret's values of the secret variables, and the names of its other keys (at most 20, each
 * cut to 64 characters, for the log): those are ignored, so that a key such as
 * ALLOW_UNSIGNED_WEBHOOKS in the secret cannot change what the deploy set.
 */
export function secretVariables(values: Record<string, string>): {
  declared: Environment;
  ignored: string[];
} {
  const declared: Environment = {};
  const ignored: string[] = [];
  const secrets: readonly string[] = SECRET_VARIABLES;
  for (const [key, value] of Object.entries(values)) {
    if (secrets.includes(key)) declared[key] = value;
    else if (ignored.length < 20) ignored.push(key.slice(0, 64));
  }
  return { declared, ignored };
}

/**
 * A webhook token can be guessed below this length; `refiner-destination secret` makes 64 hex
 * characters.
 */
export const MIN_TOKEN_CHARACTERS = 32;

export function configFromEnvironment(env: Environment): LambdaConfig {
  // Unset, each takes its declared default (lib/runtimes/variables.ts).
  const [rate, consumers, backoff] = (
    ["REFINER_RATE_PER_MINUTE", "REFINER_CONSUMERS", "REFINER_RETRY_BACKOFF_SECONDS"] as const
  ).map((name) => positiveNumber(read(env, name), declaredNumber(name)));
  const settings = parseSettings(settingsFromEnvironment(env), LAMBDA_ENVIRONMENT);
  const problem =
    rate === undefined
      ? "REFINER_RATE_PER_MINUTE must be a positive number of requests a minute."
      : consumers === undefined
        ? "REFINER_CONSUMERS must be a positive whole number."
        : backoff === undefined
          ? "REFINER_RETRY_BACKOFF_SECONDS must be a positive number of seconds."
          : undefined;
  return {
    settings: problem && settings.ok ? { ok: false, message: problem } : settings,
    queueUrl: read(env, "REFINER_QUEUE_URL")?.trim() ?? "",
    deliveredTable: read(env, "REFINER_DELIVERED_TABLE")?.trim() ?? "",
    consumerRatePerMinute:
      (rate ?? declaredNumber("REFINER_RATE_PER_MINUTE")) /
      (consumers ?? declaredNumber("REFINER_CONSUMERS")),
    firstBackoffSeconds: backoff ?? declaredNumber("REFINER_RETRY_BACKOFF_SECONDS"),
    sharedSecrets: present(
      read(env, "SEGMENT_SHARED_SECRET"),
      read(env, "SEGMENT_SHARED_SECRET_PREVIOUS"),
    ),
    webhookTokens: present(
      read(env, "SEGMENT_WEBHOOK_TOKEN"),
      read(env, "SEGMENT_WEBHOOK_TOKEN_PREVIOUS"),
    ).map((token) => token.trim()),
    allowUnsignedWebhooks: isTrue(read(env, "ALLOW_UNSIGNED_WEBHOOKS")),
    allowFirstEventSignature: isTrue(read(env, "ALLOW_FIRST_EVENT_SIGNATURE")),
    ...tokenLengths(env),
  };
}

/**
 * A current token shorter than MIN_TOKEN_CHARACTERS is a configuration error. A previous one is
 * still accepted, with a warning: it is on its way out, and refusing it would refuse Segment's
 * requests until the rotation away from it ends.
 */
function tokenLengths(env: Environment): Pick<LambdaConfig, "webhookProblem" | "webhookWarning"> {
  const short = (name: "SEGMENT_WEBHOOK_TOKEN" | "SEGMENT_WEBHOOK_TOKEN_PREVIOUS") => {
    const token = read(env, name)?.trim() ?? "";
    return token !== "" && token.length < MIN_TOKEN_CHARACTERS;
  };
  return {
    webhookProblem: short("SEGMENT_WEBHOOK_TOKEN")
      ? `SEGMENT_WEBHOOK_TOKEN is shorter than ${MIN_TOKEN_CHARACTERS} characters, so it could be guessed: make a new one with \`refiner-destination secret --rotate\` (docs/lambda.md, "Rotating the secret and the token"). Until then every webhook request is answered 503, which Segment retries.`
      : undefined,
    webhookWarning: short("SEGMENT_WEBHOOK_TOKEN_PREVIOUS")
      ? `SEGMENT_WEBHOOK_TOKEN_PREVIOUS is shorter than ${MIN_TOKEN_CHARACTERS} characters: it is accepted only while the rotation lasts. End it once Segment sends the new token.`
      : undefined,
  };
}

/**
 * The configuration as the webhook uses it: a webhook problem (a token too short) stands for the
 * settings, so that every request is refused as retryable and counted as Misconfigured, while the
 * other functions, which take no token, go on.
 */
export function webhookConfig(config: LambdaConfig): LambdaConfig {
  if (!config.settings.ok || config.webhookProblem === undefined) return config;
  return { ...config, settings: { ok: false, message: config.webhookProblem } };
}

function positiveNumber(value: string | undefined, fallback: number): number | undefined {
  if (value === undefined || value.trim() === "") return fallback;
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? number : undefined;
}

/** The values that are set, in order. */
function present(...values: (string | undefined)[]): string[] {
  return values.filter((value): value is string => Boolean(value?.trim()));
}

function isTrue(value: string | undefined): boolean {
  return value?.trim().toLowerCase() === "true";
}

/**
 * The one line a cold start logs when the configuration cannot deliver anything. Until it is fixed
 * every event is answered as retryable, so Segment keeps it.
 */
export function logConfigProblem(config: LambdaConfig): void {
  if (!config.settings.ok) {
    log("ERROR", "Refiner destination misconfigured: every event is answered as retryable", {
      error: config.settings.message,
    });
  }
  if (config.webhookProblem) {
    log("ERROR", "Webhook misconfigured: every request is answered 503", {
      error: config.webhookProblem,
    });
  }
  if (config.webhookWarning) log("WARN", config.webhookWarning);
}

/** Removes the API key and every other secret of the configuration from a message. */
export function redactSecrets(message: string, config: LambdaConfig): string {
  const apiKey = config.settings.ok ? config.settings.settings.apiKey : "";
  return [apiKey, ...config.sharedSecrets, ...config.webhookTokens].reduce(
    (text, secret) => redact(text, secret),
    message,
  );
}
