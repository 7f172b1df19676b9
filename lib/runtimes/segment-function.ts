// The Segment destination function's door: a single event (`onTrack`, …) or `onBatch`, with the
// settings Segment passes on every call. It checks the settings, sends through the one pipeline and
// translates the outcomes: Segment's error classes for a single event, `{status, errormessage}`
// items for a batch. What Refiner took is remembered by messageId in this worker (`delivered`), so
// that Segment's retry of the same events to the same worker sends nothing twice.

import { invalid } from "../outcome.ts";
import { forwardOnce, type Runtime } from "../pipeline/forward.ts";
import {
  type IdempotencyStore,
  idempotencyStore,
  type SegmentCache,
  segmentCacheStore,
} from "../pipeline/idempotency.ts";
import type { Fetch } from "../refiner/client.ts";
import { type EventType, SEGMENT_HANDLERS } from "../segment/event.ts";
import { parseSettings } from "../settings.ts";
import { type BatchItem, toBatchItem, toSegmentError } from "./doors.ts";
import { keyNotices } from "./log.ts";

/** What Segment's runtime gives the script: its `fetch` and `cache` globals, and its console. */
export interface SegmentGlobals {
  fetch: unknown;
  cache: unknown;
  warn: (line: string) => void;
}

export type SegmentHandler = (event: unknown, settings: unknown) => Promise<unknown>;

/**
 * The function's handlers, `onIdentify` … `onDelete` and `onBatch`, over what the runtime gives
 * (handler.ts reads the globals; tests pass their own).
 */
export function segmentFunction(globals: SegmentGlobals): Record<string, SegmentHandler> {
  // Without a fetch every request fails as retryable, rather than with a ReferenceError that Segment
  // would take as a reason to discard the event.
  const fetch: Fetch =
    typeof globals.fetch === "function"
      ? (globals.fetch as Fetch)
      : () => Promise.reject(new Error("this runtime provides no fetch"));
  // The messageIds Refiner took (lib/pipeline/idempotency.ts): Segment's `cache` where the runtime
  // has one, else a memory of the script's own. Either is this worker's alone.
  const cache = globals.cache as SegmentCache | null | undefined;
  const delivered: IdempotencyStore =
    typeof cache === "object" && cache !== null && typeof cache.load === "function"
      ? segmentCacheStore(cache)
      : idempotencyStore(undefined, () => {});
  // Said once per key name in the function's log, which Segment shows with a failed event only.
  const notice = keyNotices((message, key) => globals.warn(`${message}: ${key}`));
  const runtime = (): Runtime => ({ fetch, startedAt: Date.now(), notice });
  return {
    ...Object.fromEntries(
      Object.entries(SEGMENT_HANDLERS).map(([name, type]) => [
        name,
        (event: unknown, settings: unknown) =>
          segmentHandler(type, event, settings, runtime(), delivered),
      ]),
    ),
    onBatch: (events, settings) => segmentBatchHandler(events, settings, runtime(), delivered),
  };
}

/** A single-event handler: resolve on success, else throw the matching Segment error. */
export async function segmentHandler(
  type: EventType,
  event: unknown,
  rawSettings: unknown,
  runtime: Runtime,
  delivered: IdempotencyStore,
): Promise<void> {
  const parsed = parseSettings(rawSettings);
  if (!parsed.ok) throw toSegmentError(invalid(parsed.message));
  // The handler, not the event's `type` field, says which call it is.
  const [outcome] = await forwardOnce([event], parsed.settings, runtime, delivered, () => type);
  if (outcome && outcome.kind !== "done") throw toSegmentError(outcome);
}

/** Segment's `onBatch`: one `{status, errormessage?}` per event, in input order. */
export async function segmentBatchHandler(
  events: unknown,
  rawSettings: unknown,
  runtime: Runtime,
  delivered: IdempotencyStore,
): Promise<BatchItem[]> {
  if (!Array.isArray(events)) throw toSegmentError(invalid("onBatch expects an array of events."));
  const parsed = parseSettings(rawSettings);
  const outcomes = parsed.ok
    ? await forwardOnce(events, parsed.settings, runtime, delivered)
    : events.map(() => invalid(parsed.message));
  return outcomes.map(toBatchItem);
}
