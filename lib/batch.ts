// A batch of Segment events → as few Refiner requests as keep the data right, sent a few at a time.
//
// - All identify and group calls for one contact become one `POST /identify-user`, with traits
//   applied in timestamp order (later wins) and the account of the latest group. Sending them one
//   by one, concurrently, could let yesterday's traits land last.
// - Events that repeat a `messageId` (Segment delivers at least once) are sent once.
// - At most MAX_IN_FLIGHT requests are open at once. Once Refiner answers 429, nothing more is sent:
//   the rest come back 429 so Segment retries them later.
// - Contacts are identified before their events are tracked. A delete splits the batch, so what
//   came before it is sent before it, and what came after, after.
// Every event gets exactly one outcome, in input order; work the deadline cuts off is retryable.

import { eventType, isFailure, mapEvent } from "./mapping.ts";
import { type Failure, type Outcome, retry } from "./outcome.ts";
import { type RefinerCall, send, type Transport } from "./refiner.ts";
import type { Settings } from "./settings.ts";
import { isPlainObject } from "./traits.ts";

/** The most Refiner requests one batch keeps open at once. */
export const MAX_IN_FLIGHT = 8;

/** One Refiner request and the input positions of the events it delivers. */
export interface PlannedRequest {
  call: RefinerCall;
  events: number[];
}

interface Identify {
  body: Record<string, unknown>;
  timestamp: number;
  index: number;
}

/**
 * What a batch becomes, before anything is sent: requests in phases (each phase is sent after the
 * one before it), the failures of events that map to no request, and the events that repeat an
 * earlier one's messageId, which share its outcome.
 */
export interface BatchPlan {
  phases: PlannedRequest[][];
  failures: Map<number, Failure>;
  copies: [copy: number, original: number][];
}

export function planBatch(events: readonly unknown[], settings: Settings): BatchPlan {
  const failures = new Map<number, Failure>();
  const firstWithId = new Map<string, number>();
  const copies: [copy: number, original: number][] = [];
  const phases: PlannedRequest[][] = [];
  let identifies = new Map<string, Identify[]>();
  let tracked: PlannedRequest[] = [];

  const closePhase = () => {
    const merged = [...identifies.values()].map(mergeIdentifies);
    if (merged.length) phases.push(merged);
    if (tracked.length) phases.push(tracked);
    identifies = new Map();
    tracked = [];
  };

  events.forEach((event, index) => {
    const id = messageIdOf(event);
    const original = id === undefined ? undefined : firstWithId.get(id);
    if (original !== undefined) {
      copies.push([index, original]);
      return;
    }
    if (id !== undefined) firstWithId.set(id, index);

    const type = eventType(event);
    const call = typeof type === "string" ? mapEvent(type, event, settings) : type;
    if (isFailure(call)) {
      failures.set(index, call);
      return;
    }
    if (call.call === "identifyUser") {
      const key = contactOf(call);
      const list = identifies.get(key) ?? [];
      list.push({ body: call.body, timestamp: timestampOf(event), index });
      identifies.set(key, list);
    } else if (call.call === "deleteContact") {
      closePhase();
      phases.push([{ call, events: [index] }]);
    } else {
      tracked.push({ call, events: [index] });
    }
  });
  closePhase();
  return { phases, failures, copies };
}

export async function sendBatch(
  events: readonly unknown[],
  settings: Settings,
  transport: Transport,
): Promise<Outcome[]> {
  const { phases, failures, copies } = planBatch(events, settings);
  const outcomes: (Outcome | undefined)[] = new Array(events.length);
  for (const [index, failure] of failures) outcomes[index] = failure;

  let throttled: Outcome | undefined;
  for (const phase of phases) {
    await pool(phase, async (request) => {
      const outcome = throttled ?? (await send(request.call, transport));
      if (outcome.kind === "retry" && outcome.status === 429 && throttled === undefined) {
        throttled = retry(
          `Not sent: Refiner throttled this batch (${outcome.message})`,
          429,
          outcome.retryAfterSeconds,
        );
      }
      for (const index of request.events) outcomes[index] = outcome;
    });
  }

  for (const [copy, original] of copies) outcomes[copy] = outcomes[original];
  // Every position has been assigned above; the fallback keeps a bug from losing an event.
  return outcomes.map(
    (outcome) => outcome ?? retry("Internal error: the event was not processed."),
  );
}

/** Runs `work` over `items` with at most MAX_IN_FLIGHT at once, in order of start. */
async function pool<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(MAX_IN_FLIGHT, items.length) }, worker));
}

/** Whom a request is about: the same userId, or the same email when there is no userId. */
export function contactOf(call: RefinerCall): string {
  const who = call.call === "deleteContact" ? call.query : call.body;
  return "id" in who && who.id !== undefined
    ? `id:${who.id}`
    : `email:${(who as { email?: unknown }).email}`;
}

/** One identify for a contact: traits in timestamp order (later wins), the latest account. */
function mergeIdentifies(list: Identify[]): PlannedRequest {
  const ordered = [...list].sort((a, b) => a.timestamp - b.timestamp || a.index - b.index);
  const traits = new Map<string, unknown>();
  let account: unknown;
  let email: unknown;
  let id: unknown;
  for (const { body } of ordered) {
    for (const [key, value] of Object.entries(body)) {
      if (key === "account") account = value;
      else if (key === "email") email = value;
      else if (key === "id") id = value;
      else traits.set(key, value);
    }
  }
  const body: Record<string, unknown> = Object.fromEntries(traits);
  if (account !== undefined) body.account = account;
  if (id !== undefined) body.id = id;
  if (email !== undefined) body.email = email;
  return {
    call: { call: "identifyUser", body },
    events: list.map((item) => item.index),
  };
}

export function messageIdOf(event: unknown): string | undefined {
  if (!isPlainObject(event)) return undefined;
  const { messageId } = event;
  return typeof messageId === "string" && messageId !== "" ? messageId : undefined;
}

/** Events without a usable timestamp sort first, keeping their input order. */
function timestampOf(event: unknown): number {
  const value = isPlainObject(event) ? event.timestamp : undefined;
  const time =
    typeof value === "string" || typeof value === "number" ? new Date(value).getTime() : Number.NaN;
  return Number.isNaN(time) ? Number.NEGATIVE_INFINITY : time;
}
