// Segment's "Webhooks (Actions)" destination → a Lambda Function URL. Segment POSTs one event, or an
// array when batching is on, and signs it with the shared secret: `X-Signature` is the hex
// HMAC-SHA1 of the body, or, for a batch, of `JSON.stringify` of its first event only.

import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import type { Runtime } from "./destination.ts";
import { deliverAll, type LambdaConfig } from "./lambda.ts";
import { type Outcome, toBatchItem } from "./outcome.ts";

/** Larger bodies are refused before any work is done. Segment batches stay well below this. */
export const MAX_BODY_BYTES = 1024 * 1024;

export type WebhookResult = APIGatewayProxyStructuredResultV2 & {
  statusCode: number;
  body: string;
};

export async function handleWebhook(
  event: APIGatewayProxyEventV2,
  config: LambdaConfig,
  runtime: Runtime,
): Promise<WebhookResult> {
  const method = event.requestContext?.http?.method ?? "";
  if (method !== "POST") {
    return reply(405, { error: "Only POST is accepted." }, { allow: "POST" });
  }

  const raw = Buffer.from(event.body ?? "", event.isBase64Encoded ? "base64" : "utf8");
  if (raw.length > MAX_BODY_BYTES) {
    return reply(413, { error: `The body is larger than ${MAX_BODY_BYTES} bytes.` });
  }

  if (!config.sharedSecret && !config.allowUnsignedWebhooks) {
    // A public URL with no secret would let anyone write into the customer's Refiner. 500 makes
    // Segment keep retrying, so nothing is lost while the secret is being set.
    console.error({ message: "Webhook refused: SEGMENT_SHARED_SECRET is not set" });
    return reply(500, {
      error:
        "This endpoint has no SEGMENT_SHARED_SECRET. Set it to the Webhooks destination's shared secret (or ALLOW_UNSIGNED_WEBHOOKS=true for local testing).",
    });
  }

  const text = raw.toString("utf8");
  let body: unknown;
  let parsed = true;
  try {
    body = JSON.parse(text);
  } catch {
    parsed = false;
  }

  if (
    config.sharedSecret &&
    !(await signedBySegment(raw, body, header(event, "x-signature"), config.sharedSecret))
  ) {
    return reply(401, { error: "Missing or wrong X-Signature for this body and shared secret." });
  }
  if (!parsed) return reply(400, { error: "The body is not JSON." });

  if (Array.isArray(body)) {
    const outcomes = await deliverAll(body, config, runtime);
    return reply(batchStatus(outcomes), { results: outcomes.map(toBatchItem) });
  }

  const [outcome] = await deliverAll([body], config, runtime);
  if (!outcome || outcome.kind === "delivered") return reply(200, { status: 200 });
  const status = httpStatus(outcome);
  return reply(status, { status, error: outcome.message });
}

/** Segment retries 408, 423, 429 and 5xx but 501 from a webhook, and drops other 4xx. */
function httpStatus(outcome: Outcome): number {
  if (outcome.kind === "delivered") return 200;
  if (outcome.kind === "retry") return outcome.status === 429 ? 429 : 503;
  return 400;
}

/**
 * One status for a whole batch. Any retryable item makes Segment send the batch again (delivered
 * items too: delivery is at least once). Otherwise 200, unless every item was rejected.
 */
function batchStatus(outcomes: Outcome[]): number {
  const retries = outcomes.filter((outcome) => outcome.kind === "retry");
  if (retries.length) return retries.some((outcome) => outcome.status === 429) ? 429 : 503;
  if (outcomes.length && outcomes.every((outcome) => outcome.kind === "rejected")) return 400;
  return 200;
}

async function signedBySegment(
  raw: Buffer,
  body: unknown,
  signature: string | undefined,
  secret: string,
): Promise<boolean> {
  if (!signature) return false;
  // Loaded on first use, so that requiring the Lambda bundle (its cold start) does not pay for it.
  const { createHmac, timingSafeEqual } = await import("node:crypto");
  const given = Buffer.from(signature.trim().toLowerCase());
  const matches = (data: Buffer | string) => {
    const expected = Buffer.from(createHmac("sha1", secret).update(data).digest("hex"));
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  if (matches(raw)) return true;
  // With batching on, Segment signs only the first event of the array.
  if (!Array.isArray(body) || body.length === 0) return false;
  try {
    return matches(JSON.stringify(body[0]));
  } catch {
    return false; // nested too deep to serialize: Segment cannot have signed it either
  }
}

function header(event: APIGatewayProxyEventV2, name: string): string | undefined {
  for (const [key, value] of Object.entries(event.headers ?? {})) {
    if (key.toLowerCase() === name) return value;
  }
  return undefined;
}

function reply(
  statusCode: number,
  body: object,
  headers: Record<string, string> = {},
): WebhookResult {
  return {
    statusCode,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  };
}
