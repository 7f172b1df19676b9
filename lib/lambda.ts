// The AWS Lambda forms of the destination. `invokeDirect` serves Segment's "AWS Lambda" destination,
// which invokes the function with the Segment event itself. Configuration comes from the
// environment (MAPPING.md, "Settings").

import { deliverBatch, type Runtime } from "./destination.ts";
import {
  type BatchItem,
  type Failure,
  invalid,
  type Outcome,
  redact,
  toBatchItem,
  toSegmentError,
} from "./outcome.ts";
import { LAMBDA_ENVIRONMENT, parseSettings, type SettingsResult } from "./settings.ts";

export type Environment = Record<string, string | undefined>;

export interface LambdaConfig {
  settings: SettingsResult;
  /** The Webhooks destination's shared secret; empty when unset. */
  sharedSecret: string;
  allowUnsignedWebhooks: boolean;
}

export function configFromEnvironment(env: Environment): LambdaConfig {
  return {
    settings: parseSettings(
      {
        apiKey: env.REFINER_API_KEY,
        apiBaseUrl: env.REFINER_API_BASE_URL,
        preserveTraitKeys: env.REFINER_PRESERVE_TRAIT_KEYS,
      },
      LAMBDA_ENVIRONMENT,
    ),
    sharedSecret: env.SEGMENT_SHARED_SECRET ?? "",
    allowUnsignedWebhooks: env.ALLOW_UNSIGNED_WEBHOOKS?.trim().toLowerCase() === "true",
  };
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
): Promise<DirectResult | BatchItem[]> {
  if (Array.isArray(event)) {
    return (await deliverAll(event, config, runtime)).map(toBatchItem);
  }
  const [outcome] = await deliverAll([event], config, runtime);
  if (!outcome || outcome.kind === "delivered") return { status: 200 };
  if (outcome.kind === "retry") throw toSegmentError(outcome);
  return { status: toBatchItem(outcome).status, error: outcome.message };
}

/** Events whose type each event names, with every failure logged; shared by both Lambda forms. */
export async function deliverAll(
  events: readonly unknown[],
  config: LambdaConfig,
  runtime: Runtime,
): Promise<Outcome[]> {
  const { settings } = config;
  const outcomes = settings.ok
    ? await deliverBatch(events, settings.settings, runtime)
    : events.map(() => invalid(settings.message));
  return outcomes.map((outcome, index) => {
    if (outcome.kind === "delivered") return outcome;
    // The key is already out of every message; the shared secret must be too, whatever echoed it.
    const safe = { ...outcome, message: redact(outcome.message, config.sharedSecret) };
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
