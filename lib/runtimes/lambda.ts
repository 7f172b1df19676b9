// The AWS Lambda forms of the destination. `invokeDirect` serves Segment's "AWS Lambda" destination,
// which invokes the function with the Segment event itself. Configuration comes from the
// environment (docs/mapping.md, "Settings"), read and checked once per cold start by handler.ts.

import { deliver, type Runtime } from "../delivery/deliver.ts";
import { DELIVERED, type Failure, type Outcome, redact, retry } from "../delivery/outcome.ts";
import { tokenBucket } from "../delivery/pace.ts";
import { messageIdOf } from "../delivery/plan.ts";
import { type RecentIds, recentIds } from "../delivery/recent-ids.ts";
import { mapMemory, type SentMemory } from "../delivery/unchanged.ts";
import {
  consume,
  enqueue,
  FIRST_BACKOFF_SECONDS,
  type QueueClient,
  type QueueRecord,
} from "../queue/queue.ts";
import { sqsQueueClient } from "../queue/sqs.ts";
import { type BatchItem, toBatchItem, toSegmentError } from "../segment/errors.ts";
import {
  LAMBDA_ENVIRONMENT,
  parseSettings,
  type Settings,
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
  /** Queued delivery: the SQS FIFO queue the doors put events on; empty for direct delivery. */
  queueUrl: string;
  /** The queue consumer's share of REFINER_RATE_PER_MINUTE: the rate divided by REFINER_CONSUMERS. */
  consumerRatePerMinute: number;
  /** REFINER_RETRY_BACKOFF_SECONDS: a retryable message's first wait; it doubles at each receive. */
  firstBackoffSeconds: number;
}

/** Refiner allows about 4,000 requests a minute per key; this leaves room for other callers. */
export const DEFAULT_RATE_PER_MINUTE = 3600;
export const DEFAULT_CONSUMERS = 2;
/** How long the queue consumer waits on Refiner; its function may run 60 s (serverless.yml). */
export const CONSUMER_BUDGET_MS = 50_000;

export function configFromEnvironment(env: Environment): LambdaConfig {
  const rate = positiveNumber(env.REFINER_RATE_PER_MINUTE, DEFAULT_RATE_PER_MINUTE);
  const consumers = positiveNumber(env.REFINER_CONSUMERS, DEFAULT_CONSUMERS);
  const backoff = positiveNumber(env.REFINER_RETRY_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS);
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
    queueUrl: env.REFINER_QUEUE_URL?.trim() ?? "",
    consumerRatePerMinute: (rate ?? DEFAULT_RATE_PER_MINUTE) / (consumers ?? DEFAULT_CONSUMERS),
    firstBackoffSeconds: backoff ?? FIRST_BACKOFF_SECONDS,
    sharedSecret: env.SEGMENT_SHARED_SECRET ?? "",
    webhookToken: env.SEGMENT_WEBHOOK_TOKEN?.trim() ?? "",
    allowUnsignedWebhooks: isTrue(env.ALLOW_UNSIGNED_WEBHOOKS),
    allowFirstEventSignature: isTrue(env.ALLOW_FIRST_EVENT_SIGNATURE),
  };
}

function positiveNumber(value: string | undefined, fallback: number): number | undefined {
  if (value === undefined || value.trim() === "") return fallback;
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? number : undefined;
}

function isTrue(value: string | undefined): boolean {
  return value?.trim().toLowerCase() === "true";
}

/**
 * The one line a cold start logs when the configuration cannot deliver anything. Until it is fixed
 * every event is answered as retryable, so Segment keeps it.
 */
function logConfigProblem(config: LambdaConfig): void {
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

/** What one Lambda instance builds at its cold start and keeps for every invocation. */
export interface LambdaInstance {
  config: LambdaConfig;
  /** The messageIds this instance delivered (direct mode). */
  delivered: RecentIds;
  /** Queued mode: the SQS client. */
  queue: QueueClient | undefined;
  /** The queue consumer's pace. */
  pace: () => Promise<void>;
  /** What Refiner already has, for all three handlers. */
  sent: SentMemory;
}

export function coldStart(env: Environment): LambdaInstance {
  const config = configFromEnvironment(env);
  logConfigProblem(config);
  return {
    config,
    delivered: recentIds(),
    queue: config.queueUrl ? sqsQueueClient(env) : undefined,
    // Each consumer may start a tenth of a second's worth at once (a batch arrives at once); that
    // burst is taken out of its share over 10 s, so that all consumers together stay within
    // REFINER_RATE_PER_MINUTE in any 10 s window.
    pace: tokenBucket(config.consumerRatePerMinute * 0.99).take,
    sent: mapMemory(),
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
  lambda: LambdaInstance,
  runtime: Runtime,
): Promise<DirectResult | BatchItem[]> {
  if (Array.isArray(event)) return (await deliverAll(event, lambda, runtime)).map(toBatchItem);
  const [outcome] = await deliverAll([event], lambda, runtime);
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
  { config, delivered, queue }: LambdaInstance,
  runtime: Runtime,
): Promise<Outcome[]> {
  const { settings } = config;
  // Logged once per cold start (logConfigProblem), not once per event.
  if (!settings.ok) return events.map(() => retry(settings.message));
  const outcomes =
    config.queueUrl && queue
      ? await enqueue(events, settings.settings, queue, config.queueUrl)
      : await deliverOnce(events, settings.settings, runtime, delivered);
  return logged(outcomes, events, config);
}

/** Events this instance delivered before are answered as delivered, and not sent again. */
async function deliverOnce(
  events: readonly unknown[],
  settings: Settings,
  runtime: Runtime,
  delivered: RecentIds,
): Promise<Outcome[]> {
  const outcomes: Outcome[] = new Array(events.length);
  const positions: number[] = [];
  events.forEach((event, index) => {
    const id = messageIdOf(event);
    if (id !== undefined && delivered.has(id)) outcomes[index] = DELIVERED;
    else positions.push(index);
  });
  const sent = await deliver(
    positions.map((index) => events[index]),
    settings,
    runtime,
  );
  sent.forEach((outcome, at) => {
    const index = positions[at] as number;
    outcomes[index] = outcome;
    const id = messageIdOf(events[index]);
    if (outcome.kind === "delivered" && id !== undefined) delivered.add(id);
  });
  return outcomes;
}

/** Every failure logged once, its message cleared of the configuration's secrets. */
function logged(outcomes: Outcome[], events: readonly unknown[], config: LambdaConfig): Outcome[] {
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

/**
 * The queue consumer: a batch from SQS's event source mapping through the one pipeline, paced to
 * this consumer's share of the rate. Answers `batchItemFailures` for what may succeed later.
 */
export async function consumeQueue(
  records: readonly QueueRecord[],
  { config, queue }: LambdaInstance,
  runtime: Runtime,
): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
  const { settings } = config;
  if (!settings.ok || !queue || !config.queueUrl) {
    // Nothing can be delivered until the configuration is fixed: every message comes back.
    return { batchItemFailures: records.map((record) => ({ itemIdentifier: record.messageId })) };
  }
  const { batchItemFailures, events, outcomes } = await consume(
    records,
    settings.settings,
    runtime,
    queue,
    config.queueUrl,
    config.firstBackoffSeconds,
  );
  logged(outcomes, events, config);
  return { batchItemFailures };
}
