// Queued delivery on an SQS FIFO queue: the Lambda doors put events on the queue (enqueue), and the
// `deliver` Lambda drains it through the one pipeline (consume).
//
// - One Segment event per message. MessageGroupId is the contact, so a contact's events stay in
//   order and one contact never holds up another. MessageDeduplicationId is the messageId (or the
//   body), so Segment's resend of a whole batch within 5 minutes adds nothing.
// - What can never be delivered (no contact, alias, invalid) is answered as rejected and never
//   enqueued, exactly as the direct path answers it.
// - A retryable message is reported in batchItemFailures, with every later message of its group in
//   the batch (SQS's FIFO rule), and waits a back-off before it is received again.

import { deliver, pool, type Runtime } from "../delivery/deliver.ts";
import { DELIVERED, type Failure, invalid, type Outcome, retry } from "../delivery/outcome.ts";
import { contactOf, messageIdOf } from "../delivery/plan.ts";
import { eventType, isFailure, mapEvent } from "../segment/mapping.ts";
import type { Settings } from "../settings.ts";

export interface QueueEntry {
  Id: string;
  MessageBody: string;
  MessageGroupId: string;
  MessageDeduplicationId: string;
}

/** The two SQS calls the destination makes itself (lib/queue/sqs.ts; tests pass the real one). */
export interface QueueClient {
  /** Resolves with the entries SQS did not take; rejects when the call itself failed. */
  sendBatch(queueUrl: string, entries: QueueEntry[]): Promise<{ id: string; reason: string }[]>;
  changeVisibility(queueUrl: string, receiptHandle: string, seconds: number): Promise<void>;
}

/** SQS's limits: a message and a SendMessageBatch call each carry at most 1 MiB, 10 entries a call. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
const BATCH_ENTRIES = 10;
/** SendMessageBatch calls in flight at once: a 1,000-event webhook batch takes 100 of them. */
const BATCHES_IN_FLIGHT = 10;

/** Puts each deliverable event on the queue; one outcome per event, in input order. */
export async function enqueue(
  events: readonly unknown[],
  settings: Settings,
  client: QueueClient,
  queueUrl: string,
): Promise<Outcome[]> {
  const { createHash } = await import("node:crypto");
  const hash = (text: string) => createHash("sha256").update(text).digest("hex");
  const outcomes: Outcome[] = new Array(events.length);
  const entries: { entry: QueueEntry; index: number; bytes: number }[] = [];
  events.forEach((event, index) => {
    const type = eventType(event);
    const call = typeof type === "string" ? mapEvent(type, event, settings) : type;
    if (isFailure(call)) {
      outcomes[index] = call;
      return;
    }
    const body = JSON.stringify(event);
    const bytes = Buffer.byteLength(body);
    if (bytes > MAX_MESSAGE_BYTES) {
      outcomes[index] = invalid(
        `The event is larger than SQS's ${MAX_MESSAGE_BYTES} bytes a message.`,
      );
      return;
    }
    entries.push({
      index,
      bytes,
      entry: {
        Id: String(index),
        MessageBody: body,
        // Both at most 128 characters: hashes of the contact and of the messageId.
        MessageGroupId: hash(contactOf(call)),
        MessageDeduplicationId: hash(messageIdOf(event) ?? body),
      },
    });
  });

  const batches: (typeof entries)[] = [];
  let current: typeof entries = [];
  let size = 0;
  for (const item of entries) {
    if (current.length === BATCH_ENTRIES || size + item.bytes > MAX_MESSAGE_BYTES) {
      batches.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += item.bytes;
  }
  if (current.length) batches.push(current);

  await pool(
    batches,
    async (batch) => {
      let failed: Map<string, string>;
      try {
        const answer = await client.sendBatch(
          queueUrl,
          batch.map((item) => item.entry),
        );
        failed = new Map(answer.map((failure) => [failure.id, failure.reason]));
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        failed = new Map(batch.map((item) => [item.entry.Id, reason]));
      }
      for (const item of batch) {
        const reason = failed.get(item.entry.Id);
        outcomes[item.index] =
          reason === undefined ? DELIVERED : retry(`Not queued: SQS refused it (${reason}).`);
      }
    },
    BATCHES_IN_FLIGHT,
  );
  return outcomes;
}

/** An SQS message as the event source mapping hands it to the function. */
export interface QueueRecord {
  messageId: string;
  receiptHandle: string;
  body: string;
  attributes: { ApproximateReceiveCount?: string; MessageGroupId?: string };
}

/** The first wait before a retryable message comes back, doubled at each receive (default). */
export const FIRST_BACKOFF_SECONDS = 30;
/** The longest SQS lets a message wait (ChangeMessageVisibility). */
export const MAX_BACKOFF_SECONDS = 12 * 60 * 60;

export interface Consumed {
  batchItemFailures: { itemIdentifier: string }[];
  /** Per record, its event (undefined when the body is not JSON) and what became of it. */
  events: unknown[];
  outcomes: Outcome[];
}

/** One batch from the queue through the pipeline; what may succeed later is reported and delayed. */
export async function consume(
  records: readonly QueueRecord[],
  settings: Settings,
  runtime: Runtime,
  client: QueueClient,
  queueUrl: string,
  firstBackoffSeconds = FIRST_BACKOFF_SECONDS,
): Promise<Consumed> {
  const events: unknown[] = [];
  const unreadable = new Map<number, Failure>();
  records.forEach((record, index) => {
    try {
      events.push(JSON.parse(record.body));
    } catch {
      events.push(undefined);
      unreadable.set(index, invalid("The message body is not JSON."));
    }
  });
  const delivered = await deliver(events, settings, runtime);
  const outcomes = delivered.map((outcome, index) => unreadable.get(index) ?? outcome);

  // SQS's FIFO rule: after a failed message, every later one of its group is failed too.
  const failedGroups = new Set<string>();
  const failures: { itemIdentifier: string }[] = [];
  const delays: Promise<void>[] = [];
  records.forEach((record, index) => {
    const group = record.attributes.MessageGroupId ?? "";
    const outcome = outcomes[index] as Outcome;
    if (outcome.kind === "retry") {
      failedGroups.add(group);
      failures.push({ itemIdentifier: record.messageId });
      const receives = Number(record.attributes.ApproximateReceiveCount ?? 1) || 1;
      // SQS takes whole seconds.
      const seconds = Math.ceil(
        Math.min(
          MAX_BACKOFF_SECONDS,
          Math.max(firstBackoffSeconds * 2 ** (receives - 1), outcome.retryAfterSeconds ?? 0),
        ),
      );
      delays.push(
        client.changeVisibility(queueUrl, record.receiptHandle, seconds).catch(() => {
          // The message still comes back, after the queue's own visibility timeout.
        }),
      );
    } else if (failedGroups.has(group)) {
      failures.push({ itemIdentifier: record.messageId });
    }
  });
  await Promise.all(delays);
  return { batchItemFailures: failures, events, outcomes };
}
