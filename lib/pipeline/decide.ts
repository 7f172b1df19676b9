// The one place that decides what Refiner's answer means for an event (docs/mapping.md,
// "Outcomes"). Every door only translates the Outcome it returns.

import { DELIVERED, describe, invalid, type Outcome, redact, retry } from "../outcome.ts";
import type { Endpoint, Result } from "../refiner/client.ts";
import { isPlainObject } from "../segment/traits.ts";

/**
 * Refiner's answer to a call, or the failure to get one, → what becomes of the call's events: the
 * one place that decides delivered, rejected (why) or retry (when). Pure but for reading the clock
 * for a Retry-After date. `apiKey` is removed from every message, since Refiner may echo it.
 */
export function decide(
  result: Result,
  endpoint: Endpoint,
  apiKey: string,
  now = Date.now(),
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

  // 423 (locked) passes: Segment's own clients retry it too.
  if (status === 408 || status === 423 || status === 429 || (status >= 500 && status !== 501)) {
    const wait = status === 429 && result.retryAfter ? `; Retry-After: ${result.retryAfter}` : "";
    return retry(
      say(`Refiner answered ${status} to ${request}${detail ? `: ${detail}` : ""}${wait}`),
      status === 429 ? 429 : 500,
      seconds(result.retryAfter, now),
    );
  }

  if (status >= 400) {
    return invalid(say(`Refiner rejected ${request} with ${status}${detail ? `: ${detail}` : ""}`));
  }

  // 1xx and codes outside HTTP's range: nothing says the event was stored, so let Segment retry.
  return retry(say(`Refiner gave an unexpected status ${status} to ${request}`));
}

/** `Retry-After` is seconds or an HTTP date. */
function seconds(retryAfter: string | null, now: number): number | undefined {
  if (!retryAfter) return undefined;
  const value = retryAfter.trim();
  const wait = /^\d+$/.test(value) ? Number(value) : (Date.parse(value) - now) / 1000;
  return Number.isFinite(wait) ? Math.max(0, wait) : undefined;
}

/** Refiner puts its reason in `error` or `message`; anything else is shown as text. */
function errorText(body: string): string {
  const trimmed = body.trim();
  if (trimmed.startsWith("{")) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (isPlainObject(parsed)) {
        const { error, message } = parsed;
        if (typeof error === "string" && error) return error;
        if (typeof message === "string" && message) return message;
      }
    } catch {
      // not JSON after all: fall through to the raw text
    }
  }
  return trimmed.replace(/\s+/g, " ");
}
