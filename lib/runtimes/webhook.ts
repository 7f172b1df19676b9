// Segment's "Webhooks (Actions)" destination → a Lambda Function URL. Segment POSTs one event, or an
// array when batching is on. With a shared secret it signs the request: `X-Signature` is the hex
// HMAC-SHA1 of the body, or, for a batch, of `JSON.stringify` of its first event only. A batch's
// other events are therefore authenticated by a token instead (SEGMENT_WEBHOOK_TOKEN), which the
// destination sends with every request, in an `Authorization: Bearer` header or in the URL.

import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import type { Outcome } from "../outcome.ts";
import type { Runtime } from "../pipeline/forward.ts";
import { answerOf, toBatchItem } from "./doors.ts";
import { dispatch, type LambdaInstance } from "./lambda.ts";
import { type LambdaConfig, redactSecrets, webhookConfig } from "./lambda-config.ts";
import { log } from "./log.ts";

/** What a Function URL accepts; it refuses larger requests before the function runs. */
export const MAX_BODY_BYTES = 6 * 1024 * 1024;
/** The most events Segment puts in one batch (its default is 1,000). */
export const MAX_BATCH_EVENTS = 4000;

export type WebhookResult = APIGatewayProxyStructuredResultV2 & {
  statusCode: number;
  body: string;
};

export async function handleWebhook(
  event: APIGatewayProxyEventV2 | null | undefined,
  lambda: LambdaInstance,
  runtime: Runtime,
): Promise<WebhookResult> {
  const config = webhookConfig(lambda.config);
  const request = readRequest(event);
  if (typeof request === "string") return reply(400, { error: request });
  // Segment's Webhooks destination sends with the mapping's method: POST, PUT or PATCH.
  if (!ACCEPTED_METHODS.includes(request.method)) {
    return reply(
      405,
      { error: `Only ${ACCEPTED_METHODS.join(", ")} are accepted.` },
      { allow: ACCEPTED_METHODS.join(", ") },
    );
  }
  if (!isSigned(config) && !config.allowUnsignedWebhooks) {
    // A public URL without a secret would let anyone write into the customer's Refiner. 503 makes
    // Segment keep the events while the secret is being set. When the stage's secret could not be
    // read, that is the cause; either way the caller is not known yet, so only the log says it.
    lambda.metrics.count("Misconfigured");
    return notReady(
      config.settings.ok
        ? "neither SEGMENT_SHARED_SECRET nor SEGMENT_WEBHOOK_TOKEN is set. Set them (ALLOW_UNSIGNED_WEBHOOKS=true only for local testing)."
        : redactSecrets(config.settings.message, config),
    );
  }

  // Authenticated on the raw bytes: nothing is parsed for a caller who is not Segment.
  const access = await authenticate(request, config);
  if (access === "too large") return tooLarge();
  if (access === "first event only") {
    log("ERROR", FIRST_EVENT_ONLY);
    return reply(503, { error: FIRST_EVENT_ONLY });
  }
  if (access === "refused") {
    return reply(401, {
      error: "Missing or wrong token, or X-Signature, for this body and the configured secrets.",
    });
  }
  return authenticated(request, config, lambda, runtime);
}

/** What an authenticated request gets: its events delivered (queued), or what is wrong. */
async function authenticated(
  request: WebhookRequest,
  config: LambdaConfig,
  lambda: LambdaInstance,
  runtime: Runtime,
): Promise<WebhookResult> {
  const bytes = request.bytes();
  if (bytes.length > MAX_BODY_BYTES) return tooLarge();
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString("utf8"));
  } catch {
    return reply(400, { error: "The body is not JSON." });
  }
  if (Array.isArray(body) && body.length > MAX_BATCH_EVENTS) {
    return reply(413, {
      error: `The batch has ${body.length} events; Segment sends at most ${MAX_BATCH_EVENTS}.`,
    });
  }
  if (!config.settings.ok) {
    // The operator can fix this in minutes: 503 keeps the events in Segment meanwhile. Counted per
    // event, so that the Misconfigured alarm fires (logged once per cold start).
    lambda.metrics.count("Misconfigured", Array.isArray(body) ? body.length : 1);
    return reply(503, { error: redactSecrets(config.settings.message, config) });
  }

  if (Array.isArray(body)) {
    const outcomes = await dispatch(body, lambda, runtime);
    return reply(batchStatus(outcomes), { results: outcomes.map(toBatchItem) });
  }

  const [outcome] = await dispatch([body], lambda, runtime);
  if (!outcome || outcome.kind === "done") return reply(200, { status: 200 });
  const status = answerOf(outcome).webhook;
  return reply(status, { status, error: outcome.message });
}

const ACCEPTED_METHODS = ["POST", "PUT", "PATCH"];

function isSigned(config: LambdaConfig): boolean {
  return config.sharedSecrets.length > 0 || config.webhookTokens.length > 0;
}

/**
 * The answer before the caller is known to be Segment: a 503 that names nothing internal (no
 * secret's name, no role, no AWS error). The cause goes to the log, with the request id.
 */
function notReady(cause: string): WebhookResult {
  log("ERROR", `Webhook answered 503 until it is configured: ${cause}`);
  return reply(503, {
    error:
      "This endpoint is not ready to take events yet; its operator finds why in the function's log.",
  });
}

function tooLarge(): WebhookResult {
  return reply(413, { error: `The body is larger than ${MAX_BODY_BYTES} bytes.` });
}

const FIRST_EVENT_ONLY =
  "Webhook batch refused with 503 so that Segment keeps it: only its first event is signed, so the rest is not authenticated. Set SEGMENT_WEBHOOK_TOKEN and send it as the header Authorization: Bearer <the token> (the mapping's Headers field), or add ?token=<the token> to the Webhooks destination's URL, or turn batching off.";

interface WebhookRequest {
  method: string;
  /** The body's bytes, decoded on first use (once authenticated, or to check a signature). */
  bytes: () => Buffer;
  signature: string | undefined;
  /** Tokens the request carries: the `Authorization: Bearer` header and the URL's `token`. */
  tokens: string[];
}

/** The parts of a Function URL event the webhook reads, or what is wrong with it. */
function readRequest(event: APIGatewayProxyEventV2 | null | undefined): WebhookRequest | string {
  const method = event?.requestContext?.http?.method;
  if (!event || typeof method !== "string") {
    return "Not a Function URL request: expected an HTTP POST from Segment's Webhooks destination.";
  }
  const text = event.body ?? "";
  if (typeof text !== "string") return "The body is not text.";
  const headers = event.headers ?? {};
  const named = (name: string) =>
    Object.entries(headers)
      .filter(([key]) => key.toLowerCase() === name)
      .map(([, value]) => value);
  const [signature, ...moreSignatures] = named("x-signature");
  const [authorization, ...moreAuthorizations] = named("authorization");
  if (moreSignatures.length || (signature !== undefined && typeof signature !== "string")) {
    return "X-Signature must be one text header.";
  }
  if (
    moreAuthorizations.length ||
    (authorization !== undefined && typeof authorization !== "string")
  ) {
    return "Authorization must be one text header.";
  }
  const tokens: string[] = [];
  const bearer = authorization?.match(/^\s*Bearer\s+(\S+)\s*$/i)?.[1];
  if (bearer) tokens.push(bearer);
  const inUrl = new URLSearchParams(event.rawQueryString ?? "").getAll("token");
  tokens.push(...inUrl.filter(Boolean));
  let bytes: Buffer | undefined;
  return {
    method,
    bytes: () => {
      bytes ??= Buffer.from(text, event.isBase64Encoded ? "base64" : "utf8");
      return bytes;
    },
    signature,
    tokens,
  };
}

/**
 * Whether the whole request comes from Segment: by a token, or by a signature over the whole body,
 * with the current secret or, during a rotation, the previous one. A batch signed over its first
 * event only comes from Segment, but its tail could have been appended by anyone who saw one signed
 * event. Decided on the raw bytes, never parsing them: a token touches no byte of the body, a
 * signature costs one HMAC over it (and over its first event, found by a linear scan).
 */
async function authenticate(
  request: WebhookRequest,
  config: LambdaConfig,
): Promise<"authenticated" | "first event only" | "refused" | "too large"> {
  const { sharedSecrets, webhookTokens } = config;
  if (!isSigned(config)) return "authenticated"; // ALLOW_UNSIGNED_WEBHOOKS, checked before
  // Loaded on first use: requiring it at module load added 5–10 % to the Lambda's cold start.
  const { createHash, createHmac, timingSafeEqual } = await import("node:crypto");
  /** Constant time whatever the lengths: digests of equal length are compared. */
  const sameSecret = (given: string, expected: string) => {
    const digest = (text: string) => createHash("sha256").update(text).digest();
    return timingSafeEqual(digest(given), digest(expected));
  };
  const tokenMatches = request.tokens.some((token) =>
    webhookTokens.some((expected) => sameSecret(token, expected)),
  );
  if (tokenMatches) return "authenticated";
  if (!sharedSecrets.length || !request.signature) return "refused";
  const body = request.bytes();
  if (body.length > MAX_BODY_BYTES) return "too large";
  const given = request.signature.trim().toLowerCase();
  const signs = (data: Uint8Array) =>
    sharedSecrets.some((secret) =>
      sameSecret(given, createHmac("sha1", secret).update(data).digest("hex")),
    );
  if (signs(body)) return "authenticated";
  const first = firstElement(body);
  if (!first || !signs(first)) return "refused";
  return config.allowFirstEventSignature ? "authenticated" : "first event only";
}

const [TAB, LF, CR, SPACE, QUOTE, COMMA, BACKSLASH] = [0x09, 0x0a, 0x0d, 0x20, 0x22, 0x2c, 0x5c];
const [OPEN_ARRAY, CLOSE_ARRAY, OPEN_OBJECT, CLOSE_OBJECT] = [0x5b, 0x5d, 0x7b, 0x7d];

function isSpace(byte: number | undefined): boolean {
  return byte === SPACE || byte === LF || byte === CR || byte === TAB;
}

/**
 * The bytes of a JSON array's first element as they stand in `body`, or undefined when `body` is
 * not an array with one. Segment signs a batch's `JSON.stringify(events[0])`, which is exactly
 * those bytes (docs/lambda.md): found in one pass that counts brackets outside strings, so that
 * no body, whatever its shape, costs more than reading it once.
 */
export function firstElement(body: Uint8Array): Uint8Array | undefined {
  let at = 0;
  while (isSpace(body[at])) at++;
  if (body[at] !== OPEN_ARRAY) return undefined;
  let start = at + 1;
  while (isSpace(body[start])) start++;
  let depth = 0;
  let inString = false;
  for (at = start; at < body.length; at++) {
    const byte = body[at];
    if (inString) {
      if (byte === BACKSLASH) at++;
      else if (byte === QUOTE) {
        inString = false;
        if (depth === 0) return body.subarray(start, at + 1);
      }
    } else if (byte === QUOTE) inString = true;
    else if (byte === OPEN_ARRAY || byte === OPEN_OBJECT) depth++;
    else if (byte === CLOSE_ARRAY || byte === CLOSE_OBJECT || byte === COMMA) {
      // At depth 0, a number, true, false or null ends here.
      if (depth === 0) return primitiveBefore(body, start, at);
      if (byte !== COMMA && --depth === 0) return body.subarray(start, at + 1);
    }
  }
  return undefined;
}

function primitiveBefore(body: Uint8Array, start: number, end: number): Uint8Array | undefined {
  let last = end;
  while (last > start && isSpace(body[last - 1])) last--;
  return last > start ? body.subarray(start, last) : undefined;
}

/**
 * One status for a whole batch. Any retryable item makes Segment send the batch again; what this
 * instance already delivered is then not sent twice (lib/pipeline/recent-ids.ts). Otherwise 200, unless every
 * item was rejected.
 */
function batchStatus(outcomes: Outcome[]): number {
  const statuses = new Set(outcomes.map((outcome) => answerOf(outcome).webhook));
  if (statuses.has(429)) return 429;
  if (statuses.has(503)) return 503;
  if (statuses.size === 1 && statuses.has(400)) return 400;
  return 200;
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
