// Queued delivery on an SQS FIFO queue: the Lambda doors put events on the queue (enqueue), and the
// `deliver` Lambda drains it through the one pipeline (consume).
//
// - The door plans the batch as direct delivery would (lib/pipeline/plan.ts): a contact's
//   identifies and groups become one message with the latest traits, carrying all of their
//   messageIds, and every track, page or delete a message of its own (lib/queue/message.ts).
// - MessageGroupId is the contact, so a contact's messages stay in order and one contact never holds
//   up another. MessageDeduplicationId comes from the messageIds, so Segment's resend of a batch
//   within 5 minutes adds nothing; after that, the table of delivered messageIds catches it.
// - What can never be delivered (no contact, alias, invalid, refused by SQS for good) is answered
//   as rejected and never queued, exactly as the direct path answers it.
// - A retryable message is reported in batchItemFailures, with every later message of its group in
//   the batch (SQS's FIFO rule), and waits a growing back-off before it is received again. A
//   refused API key and a broken configuration wait the same way: the events stay until the key is
//   fixed, and Segment already has its 200.

import {
  ALREADY_DELIVERED,
  type Failure,
  invalid,
  type Outcome,
  QUEUED,
  retry,
  type Unsent,
} from "../outcome.ts";
import { backoff } from "../pipeline/backoff.ts";
import { type Runtime, sendPlan } from "../pipeline/forward.ts";
import { deliveredBefore, type IdempotencyStore } from "../pipeline/idempotency.ts";
import {
  type BatchPlan,
  contactOf,
  messageIdOf,
  type PlannedRequest,
  planBatch,
} from "../pipeline/plan.ts";
import { hash } from "../pipeline/unchanged.ts";
import { pool } from "../pool.ts";
import type { IdentifyBody, RefinerCall, TraitValue } from "../refiner/client.ts";
import { eventType } from "../segment/event.ts";
import { isOutcome } from "../segment/mapping.ts";
import { isPlainObject, type KeyNotice } from "../segment/traits.ts";
import type { Settings } from "../settings.ts";
import {
  asciiJson,
  decodeMessage,
  encodeMessage,
  type QueuedEvent,
  type QueuedMessage,
} from "./message.ts";

export interface QueueEntry {
  Id: string;
  MessageBody: string;
  MessageGroupId: string;
  MessageDeduplicationId: string;
}

/** An entry SQS did not take; `permanent` when it refused it for good (a sender fault). */
export interface EntryFailure {
  id: string;
  reason: string;
  permanent: boolean;
}

/** The two SQS calls the destination makes itself (lib/aws/sqs.ts). */
export interface QueueClient {
  /**
   * Resolves with the entries SQS did not take; rejects when the call itself failed, or was given
   * up through `signal`.
   */
  sendBatch(queueUrl: string, entries: QueueEntry[], signal?: AbortSignal): Promise<EntryFailure[]>;
  changeVisibility(queueUrl: string, receiptHandle: string, seconds: number): Promise<void>;
}

/** SQS's limits: a message and a SendMessageBatch call each carry at most 1 MiB, 10 entries a call. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
const BATCH_ENTRIES = 10;
/** SendMessageBatch calls in flight at once. */
const BATCHES_IN_FLIGHT = 10;

interface Pending {
  entry: QueueEntry;
  bytes: number;
  /** The input positions of the events the message delivers. */
  positions: number[];
}

/** Puts each deliverable event on the queue; one outcome per event, in input order. */
export async function enqueue(
  events: readonly unknown[],
  settings: Settings,
  client: QueueClient,
  queueUrl: string,
  delivered: IdempotencyStore,
  notice?: KeyNotice,
): Promise<Outcome[]> {
  // What Refiner already has is not queued again: Segment resends whole batches for 4 hours.
  const { known } = await deliveredBefore(events, delivered);
  let plan = planBatch(events, settings, eventType, known, notice);
  let encoded = encodeAll(plan, events);
  // An event too large for a message by itself is refused alone; the rest are planned without it.
  const tooLarge = tooLargeAlone(encoded, events, settings);
  if (tooLarge.size) {
    plan = planBatch(events, settings, eventType, new Map([...known, ...tooLarge]));
    encoded = encodeAll(plan, events);
  }
  const outcomes: (Outcome | undefined)[] = new Array(events.length);
  for (const [index, outcome] of plan.answered) outcomes[index] = outcome;
  const pending: Pending[] = [];
  for (const [planned, whole] of encoded) {
    const messages = toMessages(planned, whole);
    if (isOutcome(messages)) {
      for (const index of planned.events) outcomes[index] = messages;
      continue;
    }
    for (const message of messages) {
      pending.push(message);
      message.entry.Id = String(pending.length - 1);
    }
  }

  await sendAll(pending, client, queueUrl, (item, outcome) => {
    for (const index of item.positions) {
      // A request in several messages is queued once all of them are.
      if (outcomes[index] === undefined || outcome.kind !== "done") outcomes[index] = outcome;
    }
  });
  for (const [copy, original] of plan.copies) outcomes[copy] = outcomes[original];
  // Every position was answered above; the fallback keeps a bug from losing an event.
  return Array.from(outcomes, (outcome) => outcome ?? retry("Internal error: not queued."));
}

/** Escaped, a body is ASCII: its length is its size in bytes. */
const sizeOfMessage = (message: QueuedMessage) => encodeMessage(message).length;

/** A planned request's whole message, and its body as SQS would take it. */
interface Encoded {
  message: QueuedMessage;
  body: string;
}

/** Each planned request's message, encoded once, in the plan's order. */
function encodeAll(plan: BatchPlan, events: readonly unknown[]): Map<PlannedRequest, Encoded> {
  const encoded = new Map<PlannedRequest, Encoded>();
  for (const planned of plan.phases.flat()) {
    const message: QueuedMessage = {
      refiner: 1,
      call: planned.call,
      events: queuedEvents(planned, events),
    };
    encoded.set(planned, { message, body: encodeMessage(message) });
  }
  return encoded;
}

/** The events of oversized requests whose own message, alone, would pass SQS's limit. */
function tooLargeAlone(
  encoded: ReadonlyMap<PlannedRequest, Encoded>,
  events: readonly unknown[],
  settings: Settings,
): Map<number, Outcome> {
  const refused = new Map<number, Outcome>();
  for (const [planned, { body }] of encoded) {
    if (body.length <= MAX_MESSAGE_BYTES) continue;
    for (const index of planned.events) {
      const alone = planBatch([events[index]], settings).phases.flat()[0];
      if (!alone) continue;
      const message = {
        refiner: 1 as const,
        call: alone.call,
        events: queuedEvents(alone, [events[index]]),
      };
      if (sizeOfMessage(message) > MAX_MESSAGE_BYTES) {
        refused.set(
          index,
          invalid(
            `The event is larger than SQS's ${MAX_MESSAGE_BYTES} bytes a message, even alone.`,
          ),
        );
      }
    }
  }
  return refused;
}

function queuedEvents(planned: PlannedRequest, events: readonly unknown[]): QueuedEvent[] {
  return planned.events.map((index) => {
    const event = events[index];
    const type = isPlainObject(event) && typeof event.type === "string" ? event.type : "unknown";
    const messageId = messageIdOf(event);
    return messageId === undefined ? { type } : { messageId, type };
  });
}

/**
 * The messages of one planned request: one, or for a request over SQS's limit, several that each
 * carry some of its traits (splitIdentify), in order.
 */
function toMessages(
  planned: PlannedRequest,
  { message: whole, body }: Encoded,
): Pending[] | Failure {
  const ids = whole.events.map((event) => event.messageId);
  // Events without a messageId are never taken for one another: their message gets an id of its
  // own, so SQS de-duplicates only a copy of this very message.
  const identity = ids.every((id) => id !== undefined) ? ids.join("\n") : freshId();
  const calls = body.length <= MAX_MESSAGE_BYTES ? [planned.call] : splitIdentify(whole);
  if (calls === undefined) {
    return invalid(`The event is larger than SQS's ${MAX_MESSAGE_BYTES} bytes a message.`);
  }
  const parts = calls.length;
  const messages: Pending[] = [];
  for (const [at, call] of calls.entries()) {
    // The whole request's body is already encoded; only a part's is new.
    const partBody =
      call === planned.call
        ? body
        : encodeMessage(parts === 1 ? { ...whole, call } : { ...whole, call, part: at + 1, parts });
    if (partBody.length > MAX_MESSAGE_BYTES) {
      return invalid(`The event is larger than SQS's ${MAX_MESSAGE_BYTES} bytes a message.`);
    }
    messages.push({
      positions: planned.events,
      bytes: partBody.length,
      entry: {
        Id: "",
        MessageBody: partBody,
        // Both at most 128 characters: hashes of the contact and of the message's identity.
        MessageGroupId: hash(contactOf(planned.call)),
        MessageDeduplicationId: hash(
          parts === 1 ? identity : `${identity}\npart ${at + 1}/${parts}`,
        ),
      },
    });
  }
  return messages;
}

/** A random id (Lambda's Node has `crypto.randomUUID`). */
function freshId(): string {
  return globalThis.crypto.randomUUID();
}

/**
 * An identify too large for one message as several identifies for the same contact and account,
 * each with some of its traits and the account's: sent one after another, they leave Refiner as
 * the whole would. Undefined when it cannot be split (not an identify).
 */
function splitIdentify(message: QueuedMessage): RefinerCall[] | undefined {
  const { call } = message;
  if (call.call !== "identifyUser") return undefined;
  const { account, id, email, ...traits } = call.body;
  const who = { ...(id === undefined ? {} : { id }), ...(email === undefined ? {} : { email }) };
  const base = (): IdentifyBody => ({
    ...(account ? { account: { id: account.id } } : {}),
    ...who,
  });
  // Room for traits in each part: the limit less the part's fixed text, with a margin for the
  // part numbers and commas.
  const room =
    MAX_MESSAGE_BYTES -
    sizeOfMessage({ ...message, call: { call: "identifyUser", body: base() }, part: 1, parts: 1 }) -
    64;
  type Entry = [where: "contact" | "account", key: string, value: TraitValue];
  const entries: Entry[] = [
    ...Object.entries(traits).flatMap(([key, value]): Entry[] =>
      value === undefined || typeof value === "object" ? [] : [["contact", key, value]],
    ),
    ...Object.entries(account ?? {}).flatMap(([key, value]): Entry[] =>
      key === "id" ? [] : [["account", key, value]],
    ),
  ];
  const bodies: IdentifyBody[] = [];
  let body = base();
  let used = 0;
  for (const [where, key, value] of entries) {
    // `"key":value,` as the message carries it.
    const size = asciiJson(`${JSON.stringify(key)}:${JSON.stringify(value)}`).length + 1;
    if (used > 0 && used + size > room) {
      bodies.push(body);
      body = base();
      used = 0;
    }
    if (where === "account" && body.account) body.account[key] = value;
    else body[key] = value;
    used += size;
  }
  bodies.push(body);
  return bodies.map((each) => ({ call: "identifyUser", body: each }));
}

/**
 * Sends the messages in SendMessageBatch calls, a contact's messages in order: a contact whose
 * messages fit one call has them in one call, and a longer one's calls go one after another, each
 * only once the one before it was taken whole.
 */
async function sendAll(
  pending: Pending[],
  client: QueueClient,
  queueUrl: string,
  answer: (item: Pending, outcome: Outcome) => void,
): Promise<void> {
  const batches = packBatches(pending);
  // Whether each batch was taken whole. The pool starts batches in order, so the one a batch waits
  // for has always started.
  const taken: Promise<boolean>[] = [];
  const sendOne = async ({ items, after }: Batch): Promise<boolean> => {
    if (after !== undefined && !(await taken[after])) {
      const outcome = retry("Not queued: an earlier event of this contact was not queued.");
      for (const item of items) answer(item, outcome);
      return false;
    }
    let failed: Map<string, EntryFailure>;
    try {
      const failures = await client.sendBatch(
        queueUrl,
        items.map((item) => item.entry),
      );
      failed = new Map(failures.map((failure) => [failure.id, failure]));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      failed = new Map(
        items.map((item) => [item.entry.Id, { id: item.entry.Id, reason, permanent: false }]),
      );
    }
    for (const item of items) {
      const failure = failed.get(item.entry.Id);
      answer(
        item,
        failure === undefined
          ? QUEUED
          : failure.permanent
            ? invalid(`SQS refused the event for good, so it is not queued (${failure.reason}).`)
            : retry(`Not queued: SQS refused it (${failure.reason}).`),
      );
    }
    return failed.size === 0;
  };
  await pool(
    batches.map((batch, index) => ({ batch, index })),
    async ({ batch, index }) => {
      taken[index] = sendOne(batch);
      await taken[index];
    },
    BATCHES_IN_FLIGHT,
  );
}

interface Batch {
  items: Pending[];
  bytes: number;
  /** The batch that must be taken first: the previous part of the same contact's messages. */
  after?: number;
}

/**
 * SendMessageBatch calls: each contact's messages whole in the first call with room for them
 * (first fit), or, for a contact with more than a call holds, in calls of their own, chained.
 */
function packBatches(pending: Pending[]): Batch[] {
  const groups = new Map<string, Pending[]>();
  for (const item of pending) {
    const list = groups.get(item.entry.MessageGroupId);
    if (list) list.push(item);
    else groups.set(item.entry.MessageGroupId, [item]);
  }
  const batches: Batch[] = [];
  const fits = (batch: Batch, items: Pending[], bytes: number) =>
    batch.items.length + items.length <= BATCH_ENTRIES && batch.bytes + bytes <= MAX_MESSAGE_BYTES;
  for (const items of groups.values()) {
    const parts = split(items);
    if (parts.length === 1) {
      const bytes = sizeOf(items);
      const open = batches.find((batch) => fits(batch, items, bytes));
      if (open) {
        open.items.push(...items);
        open.bytes += bytes;
        continue;
      }
    }
    parts.forEach((part, at) => {
      batches.push({
        items: part,
        bytes: sizeOf(part),
        ...(at > 0 ? { after: batches.length - 1 } : {}),
      });
    });
  }
  return batches;
}

/** A contact's messages in parts that each fit one call. */
function split(items: Pending[]): Pending[][] {
  const parts: Pending[][] = [];
  let part: Pending[] = [];
  let bytes = 0;
  for (const item of items) {
    if (part.length && (part.length === BATCH_ENTRIES || bytes + item.bytes > MAX_MESSAGE_BYTES)) {
      parts.push(part);
      part = [];
      bytes = 0;
    }
    part.push(item);
    bytes += item.bytes;
  }
  if (part.length) parts.push(part);
  return parts;
}

function sizeOf(items: Pending[]): number {
  return items.reduce((total, item) => total + item.bytes, 0);
}

/** An SQS message as the event source mapping hands it to the function. */
export interface QueueRecord {
  messageId: string;
  receiptHandle: string;
  body: string;
  attributes: { ApproximateReceiveCount?: string; MessageGroupId?: string };
}

/** The longest SQS lets a message wait (ChangeMessageVisibility). */
export const MAX_BACKOFF_SECONDS = 12 * 60 * 60;

/**
 * One batch from the queue through the pipeline: per record, the events its message delivers (none
 * when it cannot be read) and what became of them. Messages whose events were all delivered before
 * are not sent again; what Refiner takes is recorded.
 */
export async function consume(
  records: readonly QueueRecord[],
  settings: Settings,
  runtime: Runtime,
  delivered: IdempotencyStore,
): Promise<{ events: QueuedEvent[][]; outcomes: Outcome[] }> {
  const messages = records.map((record) => decodeMessage(record.body, settings));
  const events = messages.map((message) => (isOutcome(message) ? [] : message.events));
  // A part before the last of a split request is known by its own ids: the events count as
  // delivered once the last part is.
  const idsOf = (index: number) => {
    const message = messages[index];
    const suffix =
      message &&
      !isOutcome(message) &&
      message.part !== undefined &&
      message.part < (message.parts ?? 0)
        ? `#part ${message.part}/${message.parts}`
        : "";
    return (events[index] ?? []).flatMap((event) =>
      event.messageId ? [`${event.messageId}${suffix}`] : [],
    );
  };
  const done = await delivered.find(records.flatMap((_, index) => idsOf(index)));
  const isDone = (index: number) => {
    const ids = idsOf(index);
    return ids.length > 0 && ids.every((id) => done.has(id));
  };

  // One phase, in the queue's order: the pipeline keeps each contact's requests in that order.
  const requests: PlannedRequest[] = [];
  const answered = new Map<number, Unsent>();
  messages.forEach((message, index) => {
    if (isOutcome(message)) answered.set(index, message);
    else if (!isDone(index)) requests.push({ call: message.call, events: [index] });
  });
  const sent = await sendPlan(
    { phases: [requests], answered, copies: [] },
    records.length,
    settings,
    runtime,
  );
  const outcomes = sent.map((outcome, index) => (isDone(index) ? ALREADY_DELIVERED : outcome));
  await delivered.record(
    requests.flatMap(({ events }) =>
      events.flatMap((index) => (outcomes[index]?.kind === "done" ? idsOf(index) : [])),
    ),
  );
  return { events, outcomes };
}

/**
 * The batch's answer to SQS: what is to be retried, with every later message of its group (SQS's
 * FIFO rule), each retried message made invisible for its back-off.
 */
export async function retryLater(
  records: readonly QueueRecord[],
  outcomes: readonly Outcome[],
  client: QueueClient,
  queueUrl: string,
  firstBackoffSeconds: number,
): Promise<{ itemIdentifier: string }[]> {
  const failedGroups = new Set<string>();
  const failures: { itemIdentifier: string }[] = [];
  const delays: Promise<void>[] = [];
  records.forEach((record, index) => {
    const group = record.attributes.MessageGroupId ?? "";
    // A record without an outcome (a bug) is kept, like one to retry.
    const outcome = outcomes[index] ?? retry("Internal error: the message was not processed.");
    if (outcome.kind === "retry") {
      failedGroups.add(group);
      failures.push({ itemIdentifier: record.messageId });
      const receives = Number(record.attributes.ApproximateReceiveCount ?? 1) || 1;
      const seconds = backoffSeconds(receives, firstBackoffSeconds, outcome.retryAfterSeconds);
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
  return failures;
}

/** The back-off after the `tries`-th receive, in the whole seconds SQS takes. */
function backoffSeconds(tries: number, first: number, retryAfterSeconds = 0): number {
  return Math.ceil(backoff(tries, first, MAX_BACKOFF_SECONDS, retryAfterSeconds));
}
