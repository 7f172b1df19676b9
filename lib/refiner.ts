// The Refiner REST API: the only code that speaks HTTP. One call in, one Outcome out.

import { classify, type Outcome, type RefinerAnswer, retry } from "./outcome.ts";
import type { Settings } from "./settings.ts";

export type RefinerCall =
  | { call: "identifyUser"; body: Record<string, unknown> }
  | { call: "trackEvent"; body: Record<string, unknown> }
  | { call: "deleteContact"; query: { id: string } | { email: string } };

/**
 * Every Refiner endpoint the destination uses (MAPPING.md, "Refiner REST API"), with how messages
 * name it and whether a 404 means the work is already done.
 */
export const ENDPOINTS = {
  identifyUser: { method: "POST", path: "/identify-user", request: "POST /identify-user" },
  trackEvent: { method: "POST", path: "/track-event", request: "POST /track-event" },
  deleteContact: {
    method: "DELETE",
    path: "/contact",
    request: "DELETE /contact",
    // The contact is already gone.
    notFoundIsSuccess: true,
  },
} as const;

/**
 * The part of `fetch` we use: Segment's node-fetch v2 and Node's own. Both stop a request, and
 * close its connection, when its `signal` is aborted. node-fetch honours `size`; Node's fetch does
 * not, so it is used through `boundedFetch`.
 */
export type Fetch = (
  url: string,
  init: {
    method: string;
    headers: Record<string, string>;
    body?: string;
    redirect: "manual";
    signal: AbortSignal;
    /** node-fetch v2 only: read at most this many bytes of the body. */
    size?: number;
  },
) => Promise<FetchResponse>;

export interface FetchResponse {
  status: number;
  headers: { get(name: string): string | null };
  /** node-fetch v2: a Node stream; Node's fetch: a web ReadableStream; null when empty. */
  body?: unknown;
  /** Must stop reading after MAX_RESPONSE_BYTES: node-fetch does with `size`, see boundedFetch. */
  text(): Promise<string>;
}

/** Refiner's answers are a few hundred bytes; whatever a server sends, no more than this is read. */
export const MAX_RESPONSE_BYTES = 64 * 1024;

export interface Transport {
  fetch: Fetch;
  settings: Settings;
  /** Epoch ms after which nothing may still be waiting on Refiner. */
  deadline: number;
  /**
   * Epoch ms after which no request starts. It leaves a round trip's time before the deadline, so
   * that what was started gets its answer: a request cut off at the deadline may still have been
   * stored by Refiner, and its retry would then arrive twice.
   */
  startBy: number;
}

type Answer = RefinerAnswer | { error: unknown };

export function send(
  call: RefinerCall,
  { fetch, settings, deadline, startBy }: Transport,
): Promise<Outcome> {
  const endpoint = ENDPOINTS[call.call];
  const now = Date.now();
  const remaining = deadline - now;
  if (now >= startBy) {
    return Promise.resolve(
      retry(
        `Not sent: no time was left for ${endpoint.request} before the deadline (Segment stops a call at 5 s).`,
      ),
    );
  }
  const url =
    call.call === "deleteContact"
      ? `${settings.apiBaseUrl}${endpoint.path}?${Object.entries(call.query)
          .map(([key, value]) => `${key}=${encodeURIComponent(value)}`)
          .join("&")}`
      : `${settings.apiBaseUrl}${endpoint.path}`;
  const headers: Record<string, string> = {
    Accept: "application/json",
    Authorization: `Bearer ${settings.apiKey}`,
  };
  if ("body" in call) headers["Content-Type"] = "application/json";
  // One deadline for the whole exchange, body included: the watch below settles the call when it
  // passes, and aborts the request, which also closes its connection.
  const controller = new (abortController())();
  const init: Parameters<Fetch>[1] = {
    method: endpoint.method,
    headers,
    body: "body" in call ? JSON.stringify(call.body) : undefined,
    redirect: "manual",
    signal: controller.signal,
    size: MAX_RESPONSE_BYTES,
  };

  return new Promise((resolve, reject) => {
    // Whichever comes first, the answer or the deadline, decides; the other finds it settled.
    const settle = (answer: Answer) => {
      try {
        resolve(classify(answer, endpoint, settings.apiKey));
      } catch (error) {
        reject(error); // a bug: the caller turns it into a retry
      }
    };
    const watched: Watched = {
      deadline,
      expire: () => {
        settle({
          error: new Error(
            `no complete answer within the ${remaining} ms left before the deadline (Segment stops a call at 5 s)`,
          ),
        });
        // Stops the request and closes its connection, even while a body trickles in.
        controller.abort();
      },
    };
    watch(watched);
    exchange(fetch, url, init).then((answer) => {
      if (inFlight.delete(watched)) settle(answer);
    });
  });
}

interface Watched {
  /** Epoch ms. */
  deadline: number;
  expire(): void;
}

/**
 * Requests in flight, watched by one timer that wakes at the earliest deadline among them. A timer
 * per request cost 2–3 % per event in the benchmark (npm run bench): Node creates and drops a
 * timer list for it each time. The timer is unref'd: open requests keep a process alive by their
 * sockets, this timer never does. It may stay set after the last request, and then finds nothing
 * to expire.
 */
const inFlight = new Set<Watched>();
let alarm: ReturnType<typeof setTimeout> | undefined;
let alarmAt = Number.POSITIVE_INFINITY;

function watch(watched: Watched): void {
  inFlight.add(watched);
  if (watched.deadline < alarmAt) setAlarm(watched.deadline);
}

function setAlarm(at: number): void {
  clearTimeout(alarm);
  alarmAt = at;
  alarm = setTimeout(ring, Math.max(0, at - Date.now()));
  alarm.unref?.();
}

function ring(): void {
  alarm = undefined;
  alarmAt = Number.POSITIVE_INFINITY;
  const now = Date.now();
  const expired = [...inFlight].filter((watched) => watched.deadline <= now);
  for (const watched of expired) inFlight.delete(watched);
  let next = Number.POSITIVE_INFINITY;
  for (const watched of inFlight) next = Math.min(next, watched.deadline);
  if (next !== Number.POSITIVE_INFINITY) setAlarm(next);
  // Set again before expiring anything, so that nothing an expiry does can leave the rest unwatched.
  for (const watched of expired) watched.expire();
}

/**
 * The runtime's AbortController, looked up on the first request (in Node the first lookup loads its
 * implementation, a cost on every cold start) and kept, since global lookups are slow in Segment's
 * vm. Segment's runtime may not provide one (RUNTIMES.md); then a minimal one serves, which
 * node-fetch v2 accepts: it recognises a signal by its class being named AbortSignal.
 */
let AbortControllerClass: (new () => { signal: AbortSignal; abort(): void }) | undefined;

function abortController() {
  AbortControllerClass ??=
    typeof AbortController === "function" ? AbortController : MinimalAbortController;
  return AbortControllerClass;
}

class MinimalAbortSignal {
  aborted = false;
  listeners: (() => void)[] = [];
  addEventListener(_type: "abort", listener: () => void): void {
    this.listeners.push(listener);
  }
  removeEventListener(_type: "abort", listener: () => void): void {
    this.listeners = this.listeners.filter((other) => other !== listener);
  }
}
Object.defineProperty(MinimalAbortSignal, "name", { value: "AbortSignal" });

class MinimalAbortController {
  private readonly minimal = new MinimalAbortSignal();
  readonly signal = this.minimal as unknown as AbortSignal;
  abort(): void {
    if (this.minimal.aborted) return;
    this.minimal.aborted = true;
    for (const listener of this.minimal.listeners) listener();
  }
}

/** The request and its answer, reduced to what the decision needs; never rejects. */
async function exchange(fetch: Fetch, url: string, init: Parameters<Fetch>[1]): Promise<Answer> {
  try {
    const response = await fetch(url, init);
    const { status } = response;
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      // node-fetch v2 stops keeping the body at the `size` the request gave it, and says so; it
      // would still drain the rest from the socket, so the stream is closed here.
      if ((error as { type?: unknown })?.type !== "max-size") throw error;
      (response.body as { destroy?: () => void } | undefined)?.destroy?.();
      text = `(an answer of more than ${MAX_RESPONSE_BYTES} bytes, not read)`;
    }
    return {
      status,
      text,
      retryAfter: status === 429 ? response.headers.get("retry-after") : null,
    };
  } catch (error) {
    return { error };
  }
}

/**
 * Node's own fetch (Lambda, the CLI) reads a body of any size; this one reads at most
 * MAX_RESPONSE_BYTES of it and cancels the rest.
 */
export function boundedFetch(fetch: Fetch): Fetch {
  return async (url, init) => {
    const response = await fetch(url, init);
    const { body } = response;
    if (!body || typeof (body as ReadableStream).getReader !== "function") return response;
    return {
      status: response.status,
      headers: response.headers,
      text: () => readAtMost(body as ReadableStream<Uint8Array>),
    };
  };
}

async function readAtMost(body: ReadableStream<Uint8Array>): Promise<string> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size < MAX_RESPONSE_BYTES) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
  }
  if (size >= MAX_RESPONSE_BYTES) reader.cancel().catch(() => {});
  return Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BYTES).toString("utf8");
}
