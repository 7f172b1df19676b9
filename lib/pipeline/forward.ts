// The one pipeline every door goes through: events in, one Outcome per event out, in input order.
//
//   plan (pure: map, coalesce, de-duplicate) → send (at most MAX_IN_FLIGHT at once, a contact's
//   requests one after another, within the deadline) → decide (pure: answer → Outcome)
//
// Once Refiner answers 429, nothing more is sent: the rest come back 429 so they are retried later.
// What the deadline cuts off is retryable. A bug becomes a retry too, never an exception that a
// door could let Segment discard.

import { type Outcome, redact, retry, UNCHANGED } from "../outcome.ts";
import { pool } from "../pool.ts";
import {
  type Connection,
  ENDPOINTS,
  type Fetch,
  type RefinerCall,
  request,
} from "../refiner/client.ts";
import type { KeyNotice } from "../segment/traits.ts";
import type { Settings } from "../settings.ts";
import { decide } from "./decide.ts";
import { deliveredBefore, type IdempotencyStore } from "./idempotency.ts";
import { type BatchPlan, contactOf, type PlannedRequest, planBatch, type TypeOf } from "./plan.ts";
import { afterDelivery, hash, isUnchanged, type SentMemory } from "./unchanged.ts";

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
  /** Resolves when the next request may start (the queue consumer's share of the rate). */
  pace?: () => Promise<void>;
  /** Told how long each answer from Refiner took (the Lambda's latency metric). */
  answered?: (ms: number) => void;
  /**
   * What Refiner holds of each contact, where every instance sees it and a contact's requests are
   * ordered (the queue's consumer on AWS): an identify that changes nothing is not sent
   * (unchanged.ts). Nowhere else.
   */
  sent?: SentMemory;
  /** The clock of `sent`'s time-to-live (epoch ms); Date.now unless a test moves its own. */
  now?: () => number;
  /** Hears of trait keys the mapping drops or merges (lib/segment/traits.ts). */
  notice?: KeyNotice;
}

/** `known`: what became of some events already; they are answered so and not sent. */
export function forward(
  events: readonly unknown[],
  settings: Settings,
  runtime: Runtime,
  typeOf?: TypeOf,
  known?: ReadonlyMap<number, Outcome>,
): Promise<Outcome[]> {
  return guarded(events.length, settings, () =>
    sendEach(
      planBatch(events, settings, typeOf, known, runtime.notice),
      events.length,
      settings,
      runtime,
    ),
  );
}

/**
 * `forward`, with the messageIds Refiner already took answered as delivered and not sent again, and
 * those it takes now remembered: a door's answer to Segment's resends.
 */
export async function forwardOnce(
  events: readonly unknown[],
  settings: Settings,
  runtime: Runtime,
  delivered: IdempotencyStore,
  typeOf?: TypeOf,
): Promise<Outcome[]> {
  const { ids, known } = await deliveredBefore(events, delivered);
  const outcomes = await forward(events, settings, runtime, typeOf, known);
  await delivered.record(
    ids.filter(
      (id, index): id is string =>
        id !== undefined && !known.has(index) && outcomes[index]?.kind === "done",
    ),
  );
  return outcomes;
}

/**
 * A plan's requests through Refiner: one Outcome per planned position (`count` of them). The
 * queue consumer calls it with the requests its messages carry, planned at the door.
 */
export function sendPlan(
  plan: BatchPlan,
  count: number,
  settings: Settings,
  runtime: Runtime,
): Promise<Outcome[]> {
  return guarded(count, settings, () => sendEach(plan, count, settings, runtime));
}

/** A bug must not become an exception a door lets Segment discard: retrying keeps the events. */
async function guarded(
  count: number,
  settings: Settings,
  work: () => Promise<Outcome[]>,
): Promise<Outcome[]> {
  try {
    return await work();
  } catch (error) {
    const outcome = unexpected(error, settings.apiKey);
    return Array.from({ length: count }, () => outcome);
  }
}

async function sendEach(
  { phases, answered, copies }: BatchPlan,
  count: number,
  settings: Settings,
  runtime: Runtime,
): Promise<Outcome[]> {
  const results: (Outcome | undefined)[] = new Array(count);
  for (const [at, outcome] of answered) results[at] = outcome;

  const deadline = runtime.startedAt + (runtime.budgetMs ?? DEADLINE_MS);
  const connection: Connection = {
    fetch: runtime.fetch,
    apiKey: settings.apiKey,
    baseUrl: settings.apiBaseUrl,
  };
  const skip = unchangedSkip(settings, runtime);
  let throttled: Outcome | undefined;
  // A contact's requests go one after another, in order; once one may succeed later, the rest of
  // that contact's wait too, so nothing of it overtakes what is to be retried.
  const waiting = new Map<string, Outcome>();
  for (const phase of phases) {
    await pool(
      byContact(phase),
      async (requests) => {
        for (const planned of requests) {
          const contact = contactOf(planned.call);
          const outcome =
            throttled ??
            waiting.get(contact) ??
            (await (skip && planned.call.call !== "trackEvent"
              ? sendUnlessUnchanged(planned.call, connection, deadline, runtime, skip)
              : send(planned.call, connection, deadline, runtime)));
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
      },
      MAX_IN_FLIGHT,
    );
  }
  for (const [copy, original] of copies) results[copy] = results[original];

  // Every position was assigned above; the fallback keeps a bug from losing an event.
  return Array.from(
    results,
    (outcome) => outcome ?? retry("Internal error: the event was not processed."),
  );
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

interface Skip {
  memory: SentMemory;
  ttlMs: number;
  now: () => number;
  /** Entries are kept per destination: a hash of the key and the base URL, never the key. */
  destination: string;
}

function unchangedSkip(settings: Settings, runtime: Runtime): Skip | undefined {
  const ttlMs = settings.skipUnchangedMinutes * 60_000;
  if (!runtime.sent || ttlMs <= 0) return undefined;
  return {
    memory: runtime.sent,
    ttlMs,
    now: runtime.now ?? Date.now,
    destination: hash(`${settings.apiKey}\n${settings.apiBaseUrl}`),
  };
}

/**
 * An identify that would change nothing Refiner holds of the contact (unchanged.ts) is answered
 * as delivered without a request; what Refiner takes updates the state, and a delete forgets it.
 */
async function sendUnlessUnchanged(
  call: RefinerCall,
  connection: Connection,
  deadline: number,
  runtime: Runtime,
  skip: Skip,
): Promise<Outcome> {
  const key = `${skip.destination}|${contactOf(call)}`;
  if (call.call === "deleteContact") {
    // Forgotten first: a delete that Refiner took but whose answer was lost leaves no stale state.
    await skip.memory.forget(key);
    return send(call, connection, deadline, runtime);
  }
  if (call.call !== "identifyUser") return send(call, connection, deadline, runtime);
  const state = await skip.memory.load(key);
  if (isUnchanged(call.body, state, skip.now())) return UNCHANGED;

  const outcome = await send(call, connection, deadline, runtime);
  if (outcome.kind === "done") {
    await skip.memory.store(key, afterDelivery(call.body, state, skip.now() + skip.ttlMs));
  } else if (state) {
    // Refiner may have taken it even so (an answer lost, a timeout): the state is no longer known.
    await skip.memory.forget(key);
  }
  return outcome;
}

/** One call within the deadline, decided. */
async function send(
  call: RefinerCall,
  connection: Connection,
  deadline: number,
  runtime: Runtime,
): Promise<Outcome> {
  const endpoint = ENDPOINTS[call.call];
  await runtime.pace?.();
  const now = Date.now();
  if (now >= deadline - LAST_START_MS) {
    return retry(`Not sent: too little time was left for ${endpoint.request} before the deadline.`);
  }
  const result = await request(call, connection, deadline - now);
  if (!("error" in result)) runtime.answered?.(Date.now() - now);
  return decide(result, endpoint, connection.apiKey);
}

function unexpected(error: unknown, apiKey: string): Outcome {
  let detail: string;
  try {
    detail = error instanceof Error ? error.message : String(error);
  } catch {
    detail = "an unprintable value was thrown";
  }
  return retry(redact(`Unexpected error in the Refiner destination: ${detail}`, apiKey));
}
