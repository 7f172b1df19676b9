// The AWS Lambda forms of the destination. `invokeDirect` serves Segment's "AWS Lambda" destination,
// which invokes the function with the Segment event itself. Configuration comes from the
// environment (docs/mapping.md, "Settings"), read and checked once per cold start by handler.ts.

import { deliver, type Runtime } from "../delivery/deliver.ts";
import { type Failure, type Outcome, redact, retry } from "../delivery/outcome.ts";
import type { RecentIds } from "../delivery/recent-ids.ts";
import { type BatchItem, toBatchItem, toSegmentError } from "../segment/errors.ts";
import {
  LAMBDA_ENVIRONMENT,
  parseSettings,
  type SettingsResult,
  settingsFromEnvironment,
} from "../settings.ts";

export type Environment = Record<string, string | undefined>;

export interface LambdaConfig {
  settings: SettingsResult;
  /** The Webhooks destination's shared secret; empty when unset. */
  sharedSecret: string;
  /** A token Segment sends with every webhook request (header or URL); empty when unset. */
  webhookToken: string;
  allowUnsignedWebhooks: boolean;
  /** Let a batch in on its first event's signature alone, as Segment signs batches. */
  allowFirstEventSignature: boolean;
}

export function configFromEnvironment(env: Environment): LambdaConfig {
  return {
    settings: parseSettings(settingsFromEnvironment(env), LAMBDA_ENVIRONMENT),
    sharedSecret: env.SEGMENT_SHARED_SECRET ?? "",
    webhookToken: env.SEGMENT_WEBHOOK_TOKEN?.trim() ?? "",
    allowUnsignedWebhooks: isTrue(env.ALLOW_UNSIGNED_WEBHOOKS),
    allowFirstEventSignature: isTrue(env.ALLOW_FIRST_EVENT_SIGNATURE),
  };
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
    console.error({
      message: "Refiner destination misconfigured: every event is answered as retryable",
      error: config.settings.message,
    });
  }
}

/** Removes the API key and every other secret of the configuration from a message. */
export function redactSecrets(message: string, config: LambdaConfig): string {
  const apiKey = config.settings.ok ? config.settings.settings.apiKey : "";
  return [apiKey, config.sharedSecret, config.webhookToken].reduce(
    (text, secret) => redact(text, secret),
    message,
  );
}

export type DirectResult = { status: number; error?: string };

/**
 * One Segment event, or an array answered per event like `onBatch`. Throws only when a retry can
 * help (a `RetryError`); a permanent rejection is logged and returned, since retrying it for hours
 * cannot succeed.
 */
export async function invokeDirect(
  event: unknown,
  config: LambdaConfig,
  runtime: Runtime,
  delivered: RecentIds,
): Promise<DirectResult | BatchItem[]> {
  if (Array.isArray(event)) {
    return (await deliverAll(event, config, runtime, delivered)).map(toBatchItem);
  }
  const [outcome] = await deliverAll([event], config, runtime, delivered);
  if (!outcome || outcome.kind === "delivered") return { status: 200 };
  if (outcome.kind === "retry") throw toSegmentError(outcome);
  return { status: toBatchItem(outcome).status, error: outcome.message };
}

/**
 * Events whose type each event names, through the one pipeline, with every failure logged; shared
 * by both Lambda forms. Events this instance already delivered (by messageId) are answered as
 * delivered and not sent again.
 */
export async function deliverAll(
  events: readonly unknown[],
  config: LambdaConfig,
  runtime: Runtime,
  delivered: RecentIds,
): Promise<Outcome[]> {
  const { settings } = config;
  // Logged once per cold start (logConfigProblem), not once per event.
  if (!settings.ok) return events.map(() => retry(settings.message));
  const outcomes = await deliver(events, settings.settings, { ...runtime, delivered });
  return outcomes.map((outcome, index) => {
    if (outcome.kind === "delivered") return outcome;
    // The key is already out of every message; the webhook's secrets must be too.
    const safe = { ...outcome, message: redactSecrets(outcome.message, config) };
    logFailure(safe, events[index]);
    return safe;
  });
}

/** One JSON log line per failed event, without the event's contents (they may be personal data). */
function logFailure(outcome: Failure, event: unknown): void {
  const { type, messageId } = (event && typeof event === "object" ? event : {}) as Record<
    string,
    unknown
  >;
  const line = {
    message:
      outcome.kind === "retry" ? "Refiner delivery will be retried" : "Event rejected for Refiner",
    outcome: outcome.kind === "retry" ? "retry" : outcome.reason,
    error: outcome.message,
    type: typeof type === "string" ? type : undefined,
    messageId: typeof messageId === "string" ? messageId : undefined,
  };
  if (outcome.kind === "retry") console.warn(line);
  else console.error(line);
}
