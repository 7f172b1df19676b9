// The Segment destination function's door: a single event (`onTrack`, …) or `onBatch`, with the
// settings Segment passes on every call. It checks the settings, sends through the one pipeline and
// translates the outcomes: Segment's error classes for a single event, `{status, errormessage}`
// items for a batch. What Refiner took is remembered by messageId in this worker (`delivered`), so
// that Segment's retry of the same events to the same worker sends nothing twice.

import { deliverOnce, type Runtime } from "../delivery/deliver.ts";
import type { DeliveredIds } from "../delivery/delivered.ts";
import { invalid } from "../outcome.ts";
import type { EventType } from "../segment/event.ts";
import { parseSettings } from "../settings.ts";
import { type BatchItem, toBatchItem, toSegmentError } from "./doors.ts";

/** A single-event handler: resolve on success, else throw the matching Segment error. */
export async function segmentHandler(
  type: EventType,
  event: unknown,
  rawSettings: unknown,
  runtime: Runtime,
  delivered: DeliveredIds,
): Promise<void> {
  const parsed = parseSettings(rawSettings);
  if (!parsed.ok) throw toSegmentError(invalid(parsed.message));
  // The handler, not the event's `type` field, says which call it is.
  const [outcome] = await deliverOnce([event], parsed.settings, runtime, delivered, () => type);
  if (outcome && outcome.kind !== "delivered") throw toSegmentError(outcome);
}

/** Segment's `onBatch`: one `{status, errormessage?}` per event, in input order. */
export async function segmentBatchHandler(
  events: unknown,
  rawSettings: unknown,
  runtime: Runtime,
  delivered: DeliveredIds,
): Promise<BatchItem[]> {
  if (!Array.isArray(events)) throw toSegmentError(invalid("onBatch expects an array of events."));
  const parsed = parseSettings(rawSettings);
  const outcomes = parsed.ok
    ? await deliverOnce(events, parsed.settings, runtime, delivered)
    : events.map(() => invalid(parsed.message));
  return outcomes.map(toBatchItem);
}
