// Entry points only.
// - onIdentify … onBatch: the Segment destination function's handlers; build.mjs turns them into the
//   top-level `async function onX(event, settings)` declarations Segment's editor expects.
// - segment, webhook: AWS Lambda handlers (serverless.yml), configured from the environment.

import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { type Runtime, segmentBatchHandler, segmentHandler } from "./lib/destination.ts";
import { configFromEnvironment, invokeDirect } from "./lib/lambda.ts";
import type { Fetch } from "./lib/refiner.ts";
import { handleWebhook } from "./lib/webhook.ts";

// Segment's runtime provides `fetch` (node-fetch v2) as a global, and Lambda's Node has its own:
// it is read here only, once. Without one, every request fails as retryable instead of throwing
// a ReferenceError that Segment would treat as a reason to discard the event.
const runtimeFetch: Fetch =
  typeof fetch === "function"
    ? (fetch as unknown as Fetch)
    : () => Promise.reject(new Error("this runtime provides no fetch"));
const runtime = (): Runtime => ({ fetch: runtimeFetch, startedAt: Date.now() });

export const onIdentify = (event: unknown, settings: unknown) =>
  segmentHandler("identify", event, settings, runtime());
export const onGroup = (event: unknown, settings: unknown) =>
  segmentHandler("group", event, settings, runtime());
export const onTrack = (event: unknown, settings: unknown) =>
  segmentHandler("track", event, settings, runtime());
export const onPage = (event: unknown, settings: unknown) =>
  segmentHandler("page", event, settings, runtime());
export const onScreen = (event: unknown, settings: unknown) =>
  segmentHandler("screen", event, settings, runtime());
export const onAlias = (event: unknown, settings: unknown) =>
  segmentHandler("alias", event, settings, runtime());
export const onDelete = (event: unknown, settings: unknown) =>
  segmentHandler("delete", event, settings, runtime());
export const onBatch = (events: unknown, settings: unknown) =>
  segmentBatchHandler(events, settings, runtime());

/** Segment's "AWS Lambda" destination invokes this with the Segment event itself. */
export const segment = (event: unknown) =>
  invokeDirect(event, configFromEnvironment(process.env), runtime());

/** Segment's "Webhooks (Actions)" destination POSTs here through the Lambda Function URL. */
export const webhook = (event: APIGatewayProxyEventV2) =>
  handleWebhook(event, configFromEnvironment(process.env), runtime());
