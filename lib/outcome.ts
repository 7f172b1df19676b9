// What became of one event. decide.ts makes it from Refiner's answer; every door (the Segment
// function, onBatch, Lambda, the webhook, the CLI) only translates it.

export type Outcome =
  /**
   * Done: delivered (Refiner took it; no `via`), or nothing is left to send (`via` says why no
   * request was made: Refiner already has this body, or this messageId; it was queued for the
   * consumer; or the settings leave it out).
   */
  | { kind: "done"; via?: "unchanged" | "already-delivered" | "queued" | "filtered" }
  /** Permanent: retrying the same event cannot succeed. */
  | {
      kind: "rejected";
      /** `no-contact`: no userId and no email, so Refiner cannot know whom the event is about. */
      reason: "invalid" | "no-contact" | "unsupported" | "api-key";
      message: string;
    }
  /**
   * Temporary: the same event may succeed later. `status` is 429 when Refiner throttled us;
   * `cause` is set where the fix is the operator's (the queue consumer waits for it).
   */
  | {
      kind: "retry";
      status: 429 | 500;
      message: string;
      retryAfterSeconds?: number;
      cause?: "api-key" | "configuration";
    };

export type Failure = Exclude<Outcome, { kind: "done" }>;

/** Delivered: Refiner took it. */
export const DELIVERED: Outcome = { kind: "done" };
export const UNCHANGED: Outcome = { kind: "done", via: "unchanged" };
export const ALREADY_DELIVERED: Outcome = { kind: "done", via: "already-delivered" };
export const QUEUED: Outcome = { kind: "done", via: "queued" };

/** Left out by the user's own settings (allow lists, page views off): handled, not failed. */
export type Filtered = { kind: "done"; via: "filtered" };
export const FILTERED: Filtered = { kind: "done", via: "filtered" };

/** What an event can become without a request: a failure, or left out by the settings. */
export type Unsent = Failure | Filtered;

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

/** Retryable once the operator fixes the key or the configuration. */
export function untilFixed(message: string, cause: "api-key" | "configuration"): Failure {
  return { kind: "retry", status: 500, message, cause };
}

/** An error's message with its code, and its cause's: Node's fetch says only "fetch failed". */
export function describe(error: unknown, depth = 0): string {
  if (!error || typeof error !== "object") return String(error);
  const [message, code, cause]: unknown[] = ["message", "code", "cause"].map((key) =>
    Reflect.get(error, key),
  );
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
