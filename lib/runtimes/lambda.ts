// The AWS Lambda forms of the destination. `invokeDirect` serves Segment's "AWS Lambda" destination,
// which invokes the function with the Segment event itself; `consumeQueue` drains the queue. What a
// cold start builds (the configuration, the clients, the memories) lives in one LambdaInstance;
// `invocation` runs each call with its request id, its deadline and its metrics.

import { dynamoContactStates } from "../aws/contact-state.ts";
import { dynamoIdempotencyTable } from "../aws/dynamodb.ts";
import { type SecretReader, secretsManagerReader } from "../aws/secrets.ts";
import { sqsQueueClient } from "../aws/sqs.ts";
import { describe, type Failure, type Outcome, untilFixed } from "../outcome.ts";
import { beforeDeadline } from "../pipeline/deadline.ts";
import { DEADLINE_MS, forwardOnce, type Runtime } from "../pipeline/forward.ts";
import { type IdempotencyStore, idempotencyStore } from "../pipeline/idempotency.ts";
import { tokenBucket } from "../pipeline/pace.ts";
import type { SentMemory } from "../pipeline/unchanged.ts";
import {
  consume,
  enqueue,
  type QueueClient,
  type QueueRecord,
  retryLater,
} from "../queue/queue.ts";
import { boundedFetch, type Fetch } from "../refiner/client.ts";
import type { KeyNotice } from "../segment/traits.ts";
import { isPlainObject } from "../segment/traits.ts";
import { answerOf, type BatchItem, toBatchItem, toSegmentError } from "./doors.ts";
import {
  configFromEnvironment,
  type Environment,
  type LambdaConfig,
  logConfigProblem,
  read,
  redactSecrets,
  secretVariables,
} from "./lambda-config.ts";
import { eventText, keyNotices, log, setRequestId } from "./log.ts";
import { countOutcomes, embeddedMetrics, type Metrics, serviceOf } from "./metrics.ts";

/** What one Lambda instance builds at its cold start and keeps for every invocation. */
export interface LambdaInstance {
  config: LambdaConfig;
  /** The messageIds Refiner took: this instance's memory and the shared table. */
  delivered: IdempotencyStore;
  metrics: Metrics;
  /** Queued mode: the SQS client. */
  queue: QueueClient | undefined;
  /** The queue consumer's pace. */
  pace: () => Promise<void>;
  /**
   * What Refiner holds of each contact, in the shared table: read by the queue's consumer only,
   * where a contact's messages come one at a time (lib/pipeline/unchanged.ts).
   */
  sent: SentMemory | undefined;
  /** Trait keys the mapping drops or merges: counted, and each name logged once. */
  notice: KeyNotice;
  /** Node's fetch, read through boundedFetch. */
  fetch: Fetch;
  /** On AWS: the stage's secret, read on the first invocation and again every 5 minutes. */
  secret:
    | {
        id: string;
        read: SecretReader;
        readAt: number;
        env: Environment;
        /** Whether the keys the secret holds beyond the secret variables were logged. */
        toldIgnored?: boolean;
      }
    | undefined;
}

/** How often the secret is read again, so that a rotation reaches running instances. */
export const SECRET_REFRESH_MS = 5 * 60 * 1000;
/**
 * The longest a later read of the secret may hold an invocation: the instance has a configuration
 * already, and the events their time. The first read may take until the deadline.
 */
const SECRET_REFRESH_WAIT_MS = 1000;

export function coldStart(env: Environment, fetch: Fetch): LambdaInstance {
  // On AWS the secret variables are keys of the stage's secret; a REFINER_API_KEY in the
  // environment (npm start, tests, `serverless invoke local`) means everything is there already.
  const secretId = read(env, "REFINER_SECRET_ID")?.trim();
  const fromSecret = Boolean(secretId) && !read(env, "REFINER_API_KEY");
  const config = fromSecret ? pendingConfig(env) : configFromEnvironment(env);
  if (!fromSecret) logConfigProblem(config);
  const metrics = embeddedMetrics(serviceOf(env.AWS_LAMBDA_FUNCTION_NAME));
  const table = config.deliveredTable
    ? dynamoIdempotencyTable(config.deliveredTable, env)
    : undefined;
  return {
    config,
    metrics,
    fetch: boundedFetch(fetch),
    secret:
      fromSecret && secretId
        ? { id: secretId, read: secretsManagerReader(env), readAt: 0, env }
        : undefined,
    delivered: idempotencyStore(table, (action, error) => {
      // A duplicate is better than a loss: delivery goes on without the table.
      metrics.count("DeliveredTableUnavailable");
      log(
        "WARN",
        `The table of delivered messageIds could not ${action === "find" ? "be read: delivering anyway" : "be written"}`,
        { table: config.deliveredTable, error: describe(error) },
      );
    }),
    queue: config.queueUrl ? sqsQueueClient(env) : undefined,
    // Each consumer may start a tenth of a second's worth at once (a batch arrives at once); that
    // burst is taken out of its share over 10 s, so that all consumers together stay within
    // REFINER_RATE_PER_MINUTE in any 10 s window.
    pace: tokenBucket(config.consumerRatePerMinute * 0.99).take,
    sent: config.deliveredTable
      ? dynamoContactStates(config.deliveredTable, env, (action, error) => {
          metrics.count("DeliveredTableUnavailable");
          log(
            "WARN",
            `What Refiner holds of a contact could not be ${action === "load" ? "read: sending anyway" : action === "store" ? "written: forgetting it" : "forgotten"}`,
            {
              table: config.deliveredTable,
              error: describe(error),
            },
          );
        })
      : undefined,
    notice: keyNotices(
      (message, key) => log("WARN", message, { key }),
      (kind) => metrics.count(kind === "empty" ? "TraitKeyEmpty" : "TraitKeyCollision"),
    ),
  };
}

/** The configuration before the secret is read: everything but the secret variables. */
function pendingConfig(env: Environment): LambdaConfig {
  return {
    ...configFromEnvironment(env),
    settings: { ok: false, message: "The secret has not been read yet." },
  };
}

/**
 * Reads the stage's secret when it was never read, or not for SECRET_REFRESH_MS, giving up at the
 * invocation's deadline. Only the secret variables are taken from it: a key such as
 * ALLOW_UNSIGNED_WEBHOOKS or REFINER_QUEUE_URL there must not change authentication or routing
 * without a deploy.
 */
async function refreshSecret(lambda: LambdaInstance, now: number, deadline: number): Promise<void> {
  const { secret } = lambda;
  if (!secret || now - secret.readAt < SECRET_REFRESH_MS) return;
  const first = secret.readAt === 0;
  try {
    const until = first ? deadline : Math.min(now + SECRET_REFRESH_WAIT_MS, deadline);
    const values = await beforeDeadline(until, "Secrets Manager", (signal) =>
      secret.read(secret.id, signal),
    );
    const { declared, ignored } = secretVariables(values);
    if (ignored.length && !secret.toldIgnored) {
      secret.toldIgnored = true;
      log("WARN", `The secret ${secret.id} has keys that are not secret variables: ignored`, {
        keys: ignored,
      });
    }
    lambda.config = configFromEnvironment({ ...secret.env, ...declared });
    secret.readAt = now;
    logConfigProblem(lambda.config);
  } catch (error) {
    const name = (error as { name?: unknown })?.name;
    const why = `${typeof name === "string" && name !== "Error" ? `${name}: ` : ""}${describe(error)}`;
    const message = `The secret ${secret.id} could not be read (${why}). Check that it exists (refiner-destination secret) and that the function's role may read it.`;
    log("ERROR", message);
    // A running instance keeps what it read; a new one answers every event as retryable.
    if (first) lambda.config = { ...lambda.config, settings: { ok: false, message } };
    // Tried again on the next invocation a few seconds on, not after 5 minutes.
    secret.readAt = now - SECRET_REFRESH_MS + 5000;
  }
}

/** What Lambda's context gives the handlers (the parts used). */
export interface InvocationContext {
  awsRequestId?: string;
  getRemainingTimeInMillis?: () => number;
}

/** Time kept back from the function's own timeout to answer after the last Refiner request. */
const ANSWER_RESERVE_MS = 1000;
/** The consumer keeps more: it still changes the visibility of what failed, then answers SQS. */
const CONSUMER_RESERVE_MS = 5000;

/**
 * Runs one invocation: the secret read if due, its request id on every log line, its deadline from
 * the time Lambda says is left (at most Segment's 4.5 s for the doors), and what it counted
 * written, whatever its end.
 */
export async function invocation<T>(
  lambda: LambdaInstance,
  context: InvocationContext | undefined,
  role: "door" | "consumer",
  work: (runtime: Runtime) => Promise<T>,
): Promise<T> {
  const startedAt = Date.now();
  const budgetMs = budget(context, role);
  setRequestId(context?.awsRequestId);
  try {
    await refreshSecret(lambda, startedAt, startedAt + budgetMs);
    return await work({
      fetch: lambda.fetch,
      startedAt,
      budgetMs,
      notice: lambda.notice,
      answered: (ms) => lambda.metrics.record("RefinerLatency", ms),
      ...(role === "consumer"
        ? { pace: lambda.pace, ...(lambda.sent ? { sent: lambda.sent } : {}) }
        : {}),
    });
  } finally {
    lambda.metrics.flush();
    setRequestId(undefined);
  }
}

/** The deadline's budget: what Lambda says is left, less what answering takes. */
export function budget(context: InvocationContext | undefined, role: "door" | "consumer"): number {
  const left = context?.getRemainingTimeInMillis?.();
  // Without a context (called directly, as by the tests), the function's usual time.
  if (left === undefined) return role === "door" ? DEADLINE_MS : 60_000 - CONSUMER_RESERVE_MS;
  if (role === "consumer") return Math.max(0, left - CONSUMER_RESERVE_MS);
  // Segment gives up after 5 s, whatever the function's timeout.
  return Math.max(0, Math.min(DEADLINE_MS, left - ANSWER_RESERVE_MS));
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
  if (Array.isArray(event)) return (await dispatch(event, lambda, runtime)).map(toBatchItem);
  const [outcome] = await dispatch([event], lambda, runtime);
  if (!outcome || outcome.kind === "done") return { status: 200 };
  const status = answerOf(outcome).lambda;
  if (status === "throw") throw toSegmentError(outcome);
  return { status, error: outcome.message };
}

/**
 * Events whose type each event names, through the one pipeline (queued: onto the queue), each
 * counted and every failure logged; shared by both doors. Events delivered before (by messageId)
 * are answered as delivered and not sent or queued again.
 */
export async function dispatch(
  events: readonly unknown[],
  lambda: LambdaInstance,
  runtime: Runtime,
): Promise<Outcome[]> {
  const { config, queue } = lambda;
  const { settings } = config;
  // Logged once per cold start (logConfigProblem), not once per event; counted per event.
  if (!settings.ok) {
    const outcomes = events.map(() => untilFixed(settings.message, "configuration"));
    countOutcomes(lambda.metrics, outcomes);
    return outcomes;
  }
  // Every AWS call of this door gives up in time for its deadline, as its Refiner requests do.
  const deadline = runtime.startedAt + (runtime.budgetMs ?? DEADLINE_MS);
  const delivered = lambda.delivered.until(deadline);
  const outcomes =
    config.queueUrl && queue
      ? await enqueue(
          events,
          settings.settings,
          queueUntil(queue, deadline),
          config.queueUrl,
          delivered,
          runtime.notice,
        )
      : await forwardOnce(events, settings.settings, runtime, delivered);
  return observed(outcomes, described(events), lambda);
}

/** The queue for one call of a door: a SendMessageBatch still unanswered at `deadline` is given up. */
function queueUntil(queue: QueueClient, deadline: number): QueueClient {
  return {
    sendBatch: (queueUrl, entries) =>
      beforeDeadline(deadline, "SQS", (signal) => queue.sendBatch(queueUrl, entries, signal)),
    changeVisibility: queue.changeVisibility,
  };
}

/** Every outcome counted, every failure logged once, its message cleared of the secrets. */
function observed(
  outcomes: Outcome[],
  events: readonly { type?: unknown; messageId?: unknown }[][],
  { config, metrics }: LambdaInstance,
): Outcome[] {
  countOutcomes(metrics, outcomes);
  return outcomes.map((outcome, index) => {
    if (outcome.kind === "done") return outcome;
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
  const retrying = outcome.kind === "retry";
  log(
    retrying ? "WARN" : "ERROR",
    retrying ? "Refiner delivery will be retried" : "Event rejected for Refiner",
    {
      outcome: retrying ? "retry" : outcome.reason,
      error: outcome.message,
      type: eventText(type),
      messageId: eventText(messageId),
    },
  );
}

/**
 * The queue consumer: a batch from SQS's event source mapping through the one pipeline, paced to
 * this consumer's share of the rate. Answers `batchItemFailures` for what may succeed later, each
 * made to wait its back-off; a broken configuration waits the same way until it is fixed.
 */
export async function consumeQueue(
  records: readonly QueueRecord[],
  lambda: LambdaInstance,
  runtime: Runtime,
): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
  const { config, queue, delivered } = lambda;
  const { settings } = config;
  if (!queue || !config.queueUrl) {
    // Without the queue's URL no message can be made to wait: each comes back after the queue's
    // visibility timeout. serverless.yml always sets it.
    log("ERROR", "REFINER_QUEUE_URL is not set: every message comes back");
    return { batchItemFailures: records.map((record) => ({ itemIdentifier: record.messageId })) };
  }
  // A broken configuration is logged once per cold start (logConfigProblem), not per message.
  const consumed = settings.ok
    ? await consume(records, settings.settings, runtime, delivered)
    : {
        events: records.map(() => []),
        outcomes: records.map(() => untilFixed(settings.message, "configuration")),
      };
  const { events } = consumed;
  // The queue's column of the table: a refused key waits to be fixed, like any retry.
  const outcomes = consumed.outcomes.map((outcome) =>
    outcome.kind === "rejected" && answerOf(outcome).deliver === "back-off"
      ? untilFixed(outcome.message, "api-key")
      : outcome,
  );
  observed(outcomes, events, lambda);
  const batchItemFailures = await retryLater(
    records,
    outcomes,
    queue,
    config.queueUrl,
    config.firstBackoffSeconds,
  );
  return { batchItemFailures };
}
