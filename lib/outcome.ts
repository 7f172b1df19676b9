// What became of one event, and the single place that decides retry-or-discard for an answer from
// Refiner or a network failure. Every entry point (Segment function, onBatch, Lambda, webhook)
// only translates an Outcome; none of them decides on its own.

import { SegmentErrors } from "./errors.ts";

export type Outcome =
  | { kind: "delivered" }
  /** Permanent: retrying the same event cannot succeed. */
  | {
      kind: "rejected";
      /** `no-contact`: no userId and no email, so Refiner cannot know whom the event is about. */
      reason: "invalid" | "no-contact" | "unsupported" | "api-key";
      message: string;
    }
  /** Temporary: the same event may succeed later. `status` is 429 when Refiner throttled us. */
  | { kind: "retry"; status: 429 | 500; message: string; retryAfterSeconds?: number };

export type Failure = Exclude<Outcome, { kind: "delivered" }>;

export const DELIVERED: Outcome = { kind: "delivered" };

/** Segment shows error messages to people; keep them readable and bounded whatever Refiner sends. */
export const MAX_MESSAGE_LENGTH = 500;

export function invalid(message: string): Failure {
  return { kind: "rejected", reason: "invalid", message };
}

export function unsupported(message: string): Failure {
  return { kind: "rejected", reason: "unsupported", message };
}

export function retry(
  message: string,
  status: 429 | 500 = 500,
  retryAfterSeconds?: number,
): Failure {
  return retryAfterSeconds === undefined
    ? { kind: "retry", status, message }
    : { kind: "retry", status, message, retryAfterSeconds };
}

/** An answer Refiner gave, reduced to what the decision needs. */
export interface RefinerAnswer {
  status: number;
  /** The response body as text (possibly cut short). */
  text: string;
  retryAfter: string | null;
}

/** The request an answer is to. */
export interface Endpoint {
  /** e.g. "POST /identify-user", for messages. */
  request: string;
  /** A 404 that is not about the API key means the contact is already gone. */
  notFoundIsSuccess?: boolean;
}

/**
 * HTTP status, or the failure to get one, → what Segment should do with the event. `apiKey` is
 * removed from every message, since Refiner may echo it.
 */
export function classify(
  result: RefinerAnswer | { error: unknown },
  endpoint: Endpoint,
  apiKey: string,
): Outcome {
  const { request } = endpoint;
  if ("error" in result) {
    // Refused, reset, DNS failure, our own deadline: nothing was stored, so sending again is safe.
    return retry(
      redact(`Refiner could not be reached for ${request}: ${describe(result.error)}`, apiKey),
    );
  }

  const { status } = result;
  if (status >= 200 && status < 300) return DELIVERED;
  const say = (message: string) => redact(message, apiKey);
  const detail = errorText(result.text);

  if (status >= 300 && status < 400) {
    return invalid(
      say(
        `Refiner answered ${status} (a redirect) to ${request}; redirects are not followed so the API key stays with apiBaseUrl. Check the apiBaseUrl setting.`,
      ),
    );
  }

  const aboutKey = status === 401 || status === 403 || (status === 404 && /api key/i.test(detail));
  if (aboutKey) {
    return {
      kind: "rejected",
      reason: "api-key",
      message: say(
        `Refiner rejected the API key (${status}${detail ? `: ${detail}` : ""}). Check the apiKey setting: it is the key under Refiner → Integrations.`,
      ),
    };
  }
  if (status === 404 && endpoint.notFoundIsSuccess) return DELIVERED;

  if (status === 408 || status === 429 || (status >= 500 && status !== 501)) {
    const wait = status === 429 && result.retryAfter ? `; Retry-After: ${result.retryAfter}` : "";
    return retry(
      say(`Refiner answered ${status} to ${request}${detail ? `: ${detail}` : ""}${wait}`),
      status === 429 ? 429 : 500,
      seconds(result.retryAfter),
    );
  }

  if (status >= 400) {
    return invalid(say(`Refiner rejected ${request} with ${status}${detail ? `: ${detail}` : ""}`));
  }

  // 1xx and codes outside HTTP's range: nothing says the event was stored, so let Segment retry.
  return retry(say(`Refiner gave an unexpected status ${status} to ${request}`));
}

/** `Retry-After` is seconds or an HTTP date. */
function seconds(retryAfter: string | null): number | undefined {
  if (!retryAfter) return undefined;
  const value = retryAfter.trim();
  const wait = /^\d+$/.test(value) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(wait) ? Math.max(0, wait) : undefined;
}

/** Refiner puts its reason in `error` or `message`; anything else is shown as text. */
function errorText(body: string): string {
  const trimmed = body.trim();
  if (trimmed.startsWith("{")) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (parsed && typeof parsed === "object") {
        const { error, message } = parsed as Record<string, unknown>;
        if (typeof error === "string" && error) return error;
        if (typeof message === "string" && message) return message;
      }
    } catch {
      // not JSON after all: fall through to the raw text
    }
  }
  return trimmed.replace(/\s+/g, " ");
}

/** An error's message with its code, and its cause's: Node's fetch says only "fetch failed". */
export function describe(error: unknown, depth = 0): string {
  if (!error || typeof error !== "object") return String(error);
  const { message, code, cause } = error as { message?: unknown; code?: unknown; cause?: unknown };
  let text = typeof message === "string" && message ? message : "unknown error";
  if (typeof code === "string" && !text.includes(code)) text += ` (${code})`;
  if (cause && depth === 0) text += `: ${describe(cause, 1)}`;
  return text;
}

/** Never let the API key into a message, and keep messages short. */
export function redact(message: string, apiKey: string): string {
  const clean = apiKey ? message.split(apiKey).join("[redacted]") : message;
  return clean.length > MAX_MESSAGE_LENGTH ? `${clean.slice(0, MAX_MESSAGE_LENGTH - 1)}…` : clean;
}

/** The Segment error class for an outcome, for the single-event handlers. */
export function toSegmentError(outcome: Failure): Error {
  if (outcome.kind === "retry") return new SegmentErrors.RetryError(outcome.message);
  if (outcome.reason === "unsupported") return new SegmentErrors.EventNotSupported(outcome.message);
  return new SegmentErrors.ValidationError(outcome.message);
}

export interface BatchItem {
  status: number;
  errormessage?: string;
}

/** One `onBatch` result. Segment retries only the items whose status calls for it. */
export function toBatchItem(outcome: Outcome): BatchItem {
  if (outcome.kind === "delivered") return { status: 200 };
  if (outcome.kind === "retry") return { status: outcome.status, errormessage: outcome.message };
  return { status: outcome.reason === "api-key" ? 401 : 400, errormessage: outcome.message };
}
