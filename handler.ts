// Entry points only.
// - segmentHandlers (onIdentify … onBatch): the Segment destination function's handlers; build.mjs
//   turns them into the top-level `async function onX(event, settings)` declarations Segment's
//   editor expects.
// - segment, webhook: AWS Lambda handlers (serverless.yml), configured from the environment. With
//   REFINER_QUEUE_URL set they put events on the SQS queue, and `deliver` drains it.
// Each reads its runtime's globals here, once, and passes them in.

import type { APIGatewayProxyEventV2, Context, SQSEvent } from "aws-lambda";
import type { Fetch } from "./lib/refiner/client.ts";
import { lambdaHandlers } from "./lib/runtimes/lambda-handlers.ts";
import { segmentFunction } from "./lib/runtimes/segment-function.ts";

// Segment's runtime provides `fetch` (node-fetch v2) and `cache` as globals; Lambda's Node has a
// `fetch` of its own.
declare const cache: unknown;

/** The Segment function's handlers, `onIdentify` … `onDelete` and `onBatch` (see build.mjs). */
export const segmentHandlers = segmentFunction({
  fetch: typeof fetch === "function" ? fetch : undefined,
  cache: typeof cache === "object" ? cache : undefined,
  warn: (line) => console.warn(line),
});

// What a Lambda cold start builds once: the checked configuration, the clients and the memories
// (lib/runtimes/lambda.ts). The Segment function never uses it: `__PURE__` lets esbuild leave it
// out of that bundle.
const lambda = /* @__PURE__ */ lambdaColdStart();

function lambdaColdStart() {
  return lambdaHandlers(process.env, fetch as unknown as Fetch);
}

/** Segment's "AWS Lambda" destination invokes this with the Segment event itself. */
export const segment = (event: unknown, context?: Context) => lambda.segment(event, context);

/** Segment's "Webhooks (Actions)" destination POSTs here through the Lambda Function URL. */
export const webhook = (event: APIGatewayProxyEventV2 | null | undefined, context?: Context) =>
  lambda.webhook(event, context);

/** SQS's event source mapping invokes this with up to 10 messages, at this consumer's pace. */
export const deliver = (event: SQSEvent, context?: Context) => lambda.deliver(event, context);
