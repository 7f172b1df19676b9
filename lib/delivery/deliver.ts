// The one pipeline every door goes through: events in, one Outcome per event out, in input order.
//
//   plan (pure: map, coalesce, de-duplicate) → send (at most MAX_IN_FLIGHT at once, a contact's
//   requests one after another, within the deadline) → decide (pure: answer → Outcome)
//
// Once Refiner answers 429, nothing more is sent: the rest come back 429 so they are retried later.
// What the deadline cuts off is retryable. A bug becomes a retry too, never an exception that a
// door could let Segment discard.

import {
  type Connection,
  ENDPOINTS,
  type Fetch,
  type RefinerCall,
  request,
} from "../refiner/client.ts";
import type { Settings } from "../settings.ts";
import { decide } from "./decide.ts";
import { DELIVERED, type Outcome, redact, retry } from "./outcome.ts";
import { contactOf, messageIdOf, type PlannedRequest, planBatch, type TypeOf } from "./plan.ts";
import type { RecentIds } from "./recent-ids.ts";

/**
 * Segment kills a call after 5 s. Every Refiner request a call starts is given up 4.5 s after the
 * call began, leaving time to report it as retryable.
 */
export const DEADLINE_MS = 4500;
/**
 * No request starts later than this before the deadline. It leaves a round trip's time, so that
 * what was started gets its answer: a request cut off at the deadline may still have been stored
 * by Refiner, and its retry would then arrive twice.
 */
export const LAST_START_MS = 1000;
/** The most Refiner requests one call keeps open at once. */
export const MAX_IN_FLIGHT = 8;

export interface Runtime {
  fetch: Fetch;
  /** When the door began (epoch ms); the deadline counts from here. */
  startedAt: number;
  /** How long a call may wait on Refiner: DEADLINE_MS unless Segment's 5 s limit does not apply. */
  budgetMs?: number;
  /** messageIds delivered before (Lambda): answered as delivered and not sent again. */
  delivered?: RecentIds;
  /** Resolves when the next request may start (the queue consumer's share of the rate). */
  pace?: () => Promise<void>;
}

export async function deliver(
  events: readonly unknown[],
  settings: Settings,
  runtime: Runtime,
  typeOf?: TypeOf,
): Promise<Outcome[]> {
  try {
    return await deliverEach(events, settings, runtime, typeOf);
  } catch (error) {
    const outcome = unexpected(error, settings.apiKey);
    return events.map(() => outcome);
  }
}

async function deliverEach(
  events: readonly unknown[],
  settings: Settings,
  runtime: Runtime,
  typeOf: TypeOf | undefined,
): Promise<Outcome[]> {
  const outcomes: (Outcome | undefined)[] = new Array(events.length);
  const { delivered } = runtime;
  // Events delivered before are answered now; the positions of the rest are kept.
  const positions: number[] = [];
  events.forEach((event, index) => {
    const id = delivered ? messageIdOf(event) : undefined;
    if (id !== undefined && delivered?.has(id)) outcomes[index] = DELIVERED;
    else positions.push(index);
  });
  const fresh = positions.map((index) => events[index]);

  const { phases, failures, copies } = planBatch(fresh, settings, typeOf);
  const results: (Outcome | undefined)[] = new Array(fresh.length);
  for (const [at, failure] of failures) results[at] = failure;

  const deadline = runtime.startedAt + (runtime.budgetMs ?? DEADLINE_MS);
  const connection: Connection = {
    fetch: runtime.fetch,
    apiKey: settings.apiKey,
    baseUrl: settings.apiBaseUrl,
  };
  let throttled: Outcome | undefined;
  // A contact's requests go one after another, in order; once one may succeed later, the rest of
  // that contact's wait too, so nothing of it overtakes what is to be retried.
  const waiting = new Map<string, Outcome>();
  for (const phase of phases) {
    await pool(byContact(phase), async (requests) => {
      for (const planned of requests) {
        const contact = contactOf(planned.call);
        const outcome =
          throttled ??
          waiting.get(contact) ??
          (await send(planned.call, connection, deadline, runtime.pace));
        if (outcome.kind === "retry") {
          if (outcome.status === 429 && throttled === undefined) {
            throttled = retry(
              `Not sent: Refiner throttled these events (${outcome.message})`,
              429,
              outcome.retryAfterSeconds,
            );
          }
          if (!waiting.has(contact)) {
            waiting.set(contact, {
              ...outcome,
              message: `Not sent: an earlier event of this contact waits for its retry (${outcome.message})`,
            });
          }
        }
        for (const at of planned.events) results[at] = outcome;
      }
    });
  }
  for (const [copy, original] of copies) results[copy] = results[original];

  results.forEach((outcome, at) => {
    const index = positions[at] as number;
    // Every position was assigned above; the fallback keeps a bug from losing an event.
    outcomes[index] = outcome ?? retry("Internal error: the event was not processed.");
    if (outcome?.kind === "delivered" && delivered) {
      const id = messageIdOf(events[index]);
      if (id !== undefined) delivered.add(id);
    }
  });
  return outcomes as Outcome[];
}

/** A phase's requests, one list per contact, in order. */
function byContact(requests: readonly PlannedRequest[]): PlannedRequest[][] {
  const lists = new Map<string, PlannedRequest[]>();
  for (const planned of requests) {
    const contact = contactOf(planned.call);
    const list = lists.get(contact);
    if (list) list.push(planned);
    else lists.set(contact, [planned]);
  }
  return [...lists.values()];
}

/** One call within the deadline, decided. */
async function send(
  call: RefinerCall,
  connection: Connection,
  deadline: number,
  pace: (() => Promise<void>) | undefined,
): Promise<Outcome> {
  const endpoint = ENDPOINTS[call.call];
  await pace?.();
  const now = Date.now();
  if (now >= deadline - LAST_START_MS) {
    return retry(`Not sent: too little time was left for ${endpoint.request} before the deadline.`);
  }
  const result = await request(call, connection, deadline - now);
  return decide(result, endpoint, connection.apiKey);
}

/** Runs `work` over `items` with at most MAX_IN_FLIGHT at once, in order of start. */
async function pool<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++] as T);
  };
  const workers: Promise<void>[] = [];
  while (workers.length < MAX_IN_FLIGHT && workers.length < items.length) workers.push(worker());
  await Promise.all(workers);
}

/** A bug must not become an exception a door lets Segment discard: retrying keeps the event. */
function unexpected(error: unknown, apiKey: string): Outcome {
  let detail: string;
  try {
    detail = error instanceof Error ? error.message : String(error);
  } catch {
    detail = "an unprintable value was thrown";
  }
  return retry(redact(`Unexpected error in the Refiner destination: ${detail}`, apiKey));
}
