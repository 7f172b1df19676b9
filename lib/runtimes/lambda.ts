// The AWS Lambda forms of the destination. `invokeDirect` serves Segment's "AWS Lambda" destination,
// which invokes the function with the Segment event itself. Configuration comes from the
// environment (docs/mapping.md, "Settings"), read and checked once per cold start by handler.ts.

import { dynamoDeliveredTable } from "../aws/dynamodb.ts";
import { sqsQueueClient } from "../aws/sqs.ts";
import { deliver, type Runtime } from "../delivery/deliver.ts";
import { type DeliveredIds, deliveredIds } from "../delivery/delivered.ts";
import {
  DELIVERED,
  describe,
  type Failure,
  type Outcome,
  redact,
  retry,
} from "../delivery/outcome.ts";
import { tokenBucket } from "../delivery/pace.ts";
import { messageIdOf } from "../delivery/plan.ts";
import { mapMemory, type SentMemory } from "../delivery/unchanged.ts";
import {
  consume,
  enqueue,
  FIRST_BACKOFF_SECONDS,
  type QueueClient,
  type QueueRecord,
  retryLater,
} from "../queue/queue.ts";
import { type BatchItem, toBatchItem, toSegmentError } from "../segment/errors.ts";
import { isPlainObject } from "../segment/traits.ts";
import {
  LAMBDA_ENVIRONMENT,
  parseSettings,
  type Settings,
  type SettingsResult,
  settingsFromEnvironment,
} from "../settings.ts";
import { embeddedMetrics, type Metrics } from "./metrics.ts";

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
    deliveredTable: env.REFINER_DELIVERED_TABLE?.trim() ?? "",
    consumerRatePerMinute: (rate ?? DEFAULT_RATE_PER_MINUTE) / (consumers ?? DEFAULT_CONSUMERS),
    firstBackoffSeconds: backoff ?? FIRST_BACKOFF_SECONDS,
    sharedSecrets: present(env.SEGMENT_SHARED_SECRET, env.SEGMENT_SHARED_SECRET_PREVIOUS),
    webhookTokens: present(env.SEGMENT_WEBHOOK_TOKEN, env.SEGMENT_WEBHOOK_TOKEN_PREVIOUS).map(
      (token) => token.trim(),
    ),
    allowUnsignedWebhooks: isTrue(env.ALLOW_UNSIGNED_WEBHOOKS),
    allowFirstEventSignature: isTrue(env.ALLOW_FIRST_EVENT_SIGNATURE),
  };
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
  return [apiKey, ...config.sharedSecrets, ...config.webhookTokens].reduce(
    (text, secret) => redact(text, secret),
    message,
  );
}

/** What one Lambda instance builds at its cold start and keeps for every invocation. */
export interface LambdaInstance {
  config: LambdaConfig;
  /** The messageIds Refiner took: this instance's memory and the shared table. */
  delivered: DeliveredIds;
  metrics: Metrics;
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
  const metrics = embeddedMetrics(env.AWS_LAMBDA_FUNCTION_NAME ?? "local");
  const table = config.deliveredTable
    ? dynamoDeliveredTable(config.deliveredTable, env)
    : undefined;
  return {
    config,
    metrics,
    delivered: deliveredIds(table, (action, error) => {
      // A duplicate is better than a loss: delivery goes on without the table.
      metrics.count("DeliveredTableUnavailable");
      console.warn({
        message: `The table of delivered messageIds could not ${action === "find" ? "be read: delivering anyway" : "be written"}`,
        table: config.deliveredTable,
        error: describe(error),
      });
    }),
    queue: config.queueUrl ? sqsQueueClient(env) : undefined,
    // Each consumer may start a tenth of a second's worth at once (a batch arrives at once); that
    // burst is taken out of its share over 10 s, so that all consumers together stay within
    // REFINER_RATE_PER_MINUTE in any 10 s window.
    pace: tokenBucket(config.consumerRatePerMinute * 0.99).take,
    sent: mapMemory(),
  };
}

/** Runs one invocation and writes what it counted, whatever its end. */
export async function invocation<T>(lambda: LambdaInstance, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } finally {
    lambda.metrics.flush();
  }
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
      ? await enqueue(events, settings.settings, queue, config.queueUrl, delivered)
      : await deliverOnce(events, settings.settings, runtime, delivered);
  return logged(outcomes, described(events), config);
}

/** Events delivered before are answered as delivered, and not sent again. */
async function deliverOnce(
  events: readonly unknown[],
  settings: Settings,
  runtime: Runtime,
  delivered: DeliveredIds,
): Promise<Outcome[]> {
  const outcomes: Outcome[] = new Array(events.length);
  const positions: number[] = [];
  const ids = events.map(messageIdOf);
  const done = await delivered.find(ids.filter((id) => id !== undefined));
  ids.forEach((id, index) => {
    if (id !== undefined && done.has(id)) outcomes[index] = DELIVERED;
    else positions.push(index);
  });
  const sent = await deliver(
    positions.map((index) => events[index]),
    settings,
    runtime,
  );
  const took: string[] = [];
  sent.forEach((outcome, at) => {
    const index = positions[at] as number;
    outcomes[index] = outcome;
    const id = ids[index];
    if (outcome.kind === "delivered" && id !== undefined) took.push(id);
  });
  await delivered.record(took);
  return outcomes;
}

/** Every failure logged once, its message cleared of the configuration's secrets. */
function logged(
  outcomes: Outcome[],
  events: readonly { type?: unknown; messageId?: unknown }[][],
  config: LambdaConfig,
): Outcome[] {
  return outcomes.map((outcome, index) => {
    if (outcome.kind === "delivered") return outcome;
    // The key is already out of every message; the webhook's secrets must be too.
    const safe = { ...outcome, message: redactSecrets(outcome.message, config) };
    for (const event of events[index] ?? [{}]) logFailure(safe, event);
    return safe;
  });
}

/** The type and messageId of each Segment event, for logs: never its contents. */
function described(events: readonly unknown[]): { type?: unknown; messageId?: unknown }[][] {
  return events.map((event) => [isPlainObject(event) ? event : {}]);
}

/** One JSON log line per failed event, without the event's contents (they may be personal data). */
function logFailure(
  outcome: Failure,
  { type, messageId }: { type?: unknown; messageId?: unknown },
): void {
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
 * this consumer's share of the rate. Answers `batchItemFailures` for what may succeed later, each
 * made to wait its back-off; a broken configuration waits the same way until it is fixed.
 */
export async function consumeQueue(
  records: readonly QueueRecord[],
  { config, queue, delivered }: LambdaInstance,
  runtime: Runtime,
): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
  const { settings } = config;
  if (!queue || !config.queueUrl) {
    // Without the queue's URL no message can be made to wait: each comes back after the queue's
    // visibility timeout. serverless.yml always sets it.
    console.error({ message: "REFINER_QUEUE_URL is not set: every message comes back" });
    return { batchItemFailures: records.map((record) => ({ itemIdentifier: record.messageId })) };
  }
  // A broken configuration is logged once per cold start (logConfigProblem), not per message.
  const { events, outcomes } = settings.ok
    ? await consume(records, settings.settings, runtime, delivered)
    : { events: records.map(() => []), outcomes: records.map(() => retry(settings.message)) };
  logged(outcomes, events, config);
  const batchItemFailures = await retryLater(
    records,
    outcomes,
    queue,
    config.queueUrl,
    config.firstBackoffSeconds,
  );
  return { batchItemFailures };
}
