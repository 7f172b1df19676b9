// Entry points only.
// - segmentHandlers (onIdentify … onBatch): the Segment destination function's handlers; build.mjs
//   turns them into the top-level `async function onX(event, settings)` declarations Segment's
//   editor expects.
// - segment, webhook: AWS Lambda handlers (serverless.yml), configured from the environment. With
//   REFINER_QUEUE_URL set they put events on the SQS queue, and `deliver` drains it.

import type { APIGatewayProxyEventV2, Context, SQSEvent } from "aws-lambda";
import type { Runtime } from "./lib/delivery/deliver.ts";
import {
  type DeliveredIds,
  deliveredIds,
  type SegmentCache,
  segmentCacheIds,
} from "./lib/delivery/delivered.ts";
import type { Fetch } from "./lib/refiner/client.ts";
import { coldStart, consumeQueue, invocation, invokeDirect } from "./lib/runtimes/lambda.ts";
import { keyNotices } from "./lib/runtimes/log.ts";
import { segmentBatchHandler, segmentHandler } from "./lib/runtimes/segment-function.ts";
import { handleWebhook } from "./lib/runtimes/webhook.ts";
import { SEGMENT_HANDLERS } from "./lib/segment/event.ts";

// Segment's runtime provides `fetch` (node-fetch v2) as a global, and Lambda's Node has its own:
// it is read here only, once. Without one, every request fails as retryable instead of throwing
// a ReferenceError that Segment would treat as a reason to discard the event.
const runtimeFetch: Fetch =
  typeof fetch === "function"
    ? (fetch as unknown as Fetch)
    : () => Promise.reject(new Error("this runtime provides no fetch"));
// The messageIds Refiner took (lib/delivery/delivered.ts): Segment's `cache` where the runtime has
// one, else a memory of the script's own. Either is this worker's alone.
declare const cache: unknown;
const segmentDelivered: DeliveredIds =
  typeof cache === "object" && cache !== null && typeof (cache as SegmentCache).load === "function"
    ? segmentCacheIds(cache as SegmentCache)
    : deliveredIds(undefined, () => {});
// Said once per key name in the function's log, which Segment shows with a failed event only.
const segmentNotice = keyNotices((message, key) => console.warn(`${message}: ${key}`));
const runtime = (): Runtime => ({
  fetch: runtimeFetch,
  startedAt: Date.now(),
  notice: segmentNotice,
});
type SegmentHandler = (event: unknown, settings: unknown) => Promise<unknown>;

/** The Segment function's handlers, `onIdentify` … `onDelete` and `onBatch` (see build.mjs). */
export const segmentHandlers: Record<string, SegmentHandler> = {
  ...Object.fromEntries(
    Object.entries(SEGMENT_HANDLERS).map(([name, type]) => [
      name,
      (event: unknown, settings: unknown) =>
        segmentHandler(type, event, settings, runtime(), segmentDelivered),
    ]),
  ),
  onBatch: (events, settings) => segmentBatchHandler(events, settings, runtime(), segmentDelivered),
};

// What a Lambda cold start builds once: the checked configuration, the clients and the memories
// (lib/runtimes/lambda.ts). The Segment function never uses it: `__PURE__` lets esbuild leave it
// out of that bundle.
const lambda = /* @__PURE__ */ lambdaColdStart();

function lambdaColdStart() {
  return coldStart(process.env, runtimeFetch);
}

/** Segment's "AWS Lambda" destination invokes this with the Segment event itself. */
export const segment = (event: unknown, context?: Context) =>
  invocation(lambda, context, "door", (runtime) => invokeDirect(event, lambda, runtime));

/** Segment's "Webhooks (Actions)" destination POSTs here through the Lambda Function URL. */
export const webhook = (event: APIGatewayProxyEventV2 | null | undefined, context?: Context) =>
  invocation(lambda, context, "door", (runtime) => handleWebhook(event, lambda, runtime));

/** SQS's event source mapping invokes this with up to 10 messages, at this consumer's pace. */
export const deliver = (event: SQSEvent, context?: Context) =>
  invocation(lambda, context, "consumer", (runtime) =>
    consumeQueue(event.Records, lambda, runtime),
  );
