// The Segment function's handlers for tests, built from lib/ as handler.ts builds them, over what
// Segment's runtime gives the pasted script: node-fetch v2 as `fetch`, a `cache` like Segment's
// when asked, and a console whose warnings are kept. The error classes are the ones lib/ throws
// here, where the runtime provides none (lib/segment/errors.ts); that the pasted script throws
// Segment's own classes is tested on the built script, loaded as Segment loads it
// (local/segment-runtime.ts, test/segment-function.outcomes.test.ts).

import nodeFetch from "node-fetch";
import { type SegmentHandler, segmentFunction } from "../../lib/runtimes/segment-function.ts";
import { SegmentErrors } from "../../lib/segment/errors.ts";
import { type HandlerName, type LoadOptions, segmentCache } from "../../local/segment-runtime.ts";

export { InvalidEventPayload, settle } from "../../local/segment-runtime.ts";
export const { RetryError, ValidationError, EventNotSupported } = SegmentErrors;

export interface SegmentFunction {
  handlers: Record<HandlerName, SegmentHandler>;
  /** What the function wrote with console.warn, as `warn: …`. */
  logs: string[];
}

/** A worker of the function: its own memory of delivered messageIds, its own `cache`. */
export function loadSegmentFunction({
  fetch = nodeFetch,
  cache = false,
}: Omit<LoadOptions, "path"> = {}): SegmentFunction {
  const logs: string[] = [];
  const handlers = segmentFunction({
    fetch,
    cache: cache ? segmentCache() : undefined,
    warn: (line) => logs.push(`warn: ${line}`),
  });
  return { handlers: handlers as Record<HandlerName, SegmentHandler>, logs };
}
