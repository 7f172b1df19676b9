// The destination: checked settings and an event in, Outcome out. Entry points (Segment function,
// Lambda) check the settings and translate what comes back.

import { sendBatch } from "./batch.ts";
import { type EventType, isFailure, mapEvent } from "./mapping.ts";
import {
  type BatchItem,
  invalid,
  type Outcome,
  redact,
  retry,
  toBatchItem,
  toSegmentError,
} from "./outcome.ts";
import { type Fetch, send, type Transport } from "./refiner.ts";
import { parseSettings, type Settings } from "./settings.ts";

/**
 * Segment kills a call after 5 s. Every Refiner request a call starts is given up 4.5 s after the
 * call began, leaving time to report it as retryable.
 */
export const DEADLINE_MS = 4500;
/** No request starts later than this before the deadline: a round trip to Refiner fits in it. */
export const LAST_START_MS = 1000;

export interface Runtime {
  fetch: Fetch;
  /** When the handler began (epoch ms); the deadline counts from here. */
  startedAt: number;
  /** How long a call may wait on Refiner; DEADLINE_MS unless Segment's 5 s limit does not apply. */
  budgetMs?: number;
}

/**
 * A mixed batch: each event's own `type` decides; one outcome per event, in input order. Requests
 * are coalesced and sent concurrently (batch.ts) under the same deadline as a single event.
 */
export async function deliverBatch(
  events: readonly unknown[],
  settings: Settings,
  runtime: Runtime,
): Promise<Outcome[]> {
  try {
    return await sendBatch(events, settings, transport(settings, runtime));
  } catch (error) {
    const outcome = unexpected(error, settings.apiKey);
    return events.map(() => outcome);
  }
}

function transport(settings: Settings, runtime: Runtime): Transport {
  const deadline = runtime.startedAt + (runtime.budgetMs ?? DEADLINE_MS);
  return { fetch: runtime.fetch, settings, deadline, startBy: deadline - LAST_START_MS };
}

/** A bug must not become an exception Segment silently discards: retrying keeps the event. */
function unexpected(error: unknown, apiKey: string): Outcome {
  let detail: string;
  try {
    detail = error instanceof Error ? error.message : String(error);
  } catch {
    detail = "an unprintable value was thrown";
  }
  return retry(redact(`Unexpected error in the Refiner destination: ${detail}`, apiKey));
}

/** A Segment single-event handler: resolve on success, else throw the matching Segment error. */
export async function segmentHandler(
  type: EventType,
  event: unknown,
  rawSettings: unknown,
  runtime: Runtime,
): Promise<void> {
  const parsed = parseSettings(rawSettings);
  if (!parsed.ok) throw toSegmentError(invalid(parsed.message));
  const { settings } = parsed;
  let outcome: Outcome;
  try {
    const call = mapEvent(type, event, settings);
    outcome = isFailure(call) ? call : await send(call, transport(settings, runtime));
  } catch (error) {
    outcome = unexpected(error, settings.apiKey);
  }
  if (outcome.kind !== "delivered") throw toSegmentError(outcome);
}

/** Segment's `onBatch`: one `{status, errormessage?}` per event, in input order. */
export async function segmentBatchHandler(
  events: unknown,
  rawSettings: unknown,
  runtime: Runtime,
): Promise<BatchItem[]> {
  if (!Array.isArray(events)) throw toSegmentError(invalid("onBatch expects an array of events."));
  const parsed = parseSettings(rawSettings);
  const outcomes = parsed.ok
    ? await deliverBatch(events, parsed.settings, runtime)
    : events.map(() => invalid(parsed.message));
  return outcomes.map(toBatchItem);
}
