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
 * The part of `fetch` we use. Segment's is node-fetch v2 (which honours `timeout` and `size` but may
 * lack AbortController); Node's own honours `signal` and ignores the others, so it is used through
 * `boundedFetch`.
 */
export type Fetch = (
  url: string,
  init: {
    method: string;
    headers: Record<string, string>;
    body?: string;
    redirect: "manual";
    signal?: AbortSignal;
    /** node-fetch v2 only: give up after this many ms. */
    timeout?: number;
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

// Segment's runtime may not have AbortController. Looked up on the first request, not on load (in
// Node the first lookup loads its implementation, a cost on every cold start), then kept, since
// global lookups are slow in Segment's vm.
let Abort: typeof AbortController | false | undefined;

export interface Transport {
  fetch: Fetch;
  settings: Settings;
  /** Epoch ms after which nothing may still be waiting on Refiner. */
  deadline: number;
}

type Answer = RefinerAnswer | { error: unknown };

export function send(
  call: RefinerCall,
  { fetch, settings, deadline }: Transport,
): Promise<Outcome> {
  const endpoint = ENDPOINTS[call.call];
  const remaining = deadline - Date.now();
  if (remaining <= 0) {
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
  // Three guards for one deadline: `signal` aborts Node's fetch, `timeout` aborts node-fetch v2
  // (Segment's runtime may have no AbortController), and the timer below settles us in time
  // whatever the fetch implementation does, including while a body trickles in.
  if (Abort === undefined) Abort = typeof AbortController === "function" && AbortController;
  const controller = Abort ? new Abort() : undefined;
  const init: Parameters<Fetch>[1] = {
    method: endpoint.method,
    headers,
    body: "body" in call ? JSON.stringify(call.body) : undefined,
    redirect: "manual",
    signal: controller?.signal,
    timeout: remaining,
    size: MAX_RESPONSE_BYTES,
  };

  return new Promise((resolve, reject) => {
    // Whichever comes first, the answer or the timer, decides; the other finds the promise settled.
    const settle = (answer: Answer) => {
      clearTimeout(timer);
      try {
        resolve(classify(answer, endpoint, settings.apiKey));
      } catch (error) {
        reject(error); // a bug: the caller turns it into a retry
      }
    };
    const timer = setTimeout(() => {
      controller?.abort();
      settle({
        error: new Error(
          `no complete answer within the ${remaining} ms left before the deadline (Segment stops a call at 5 s)`,
        ),
      });
    }, remaining);
    exchange(fetch, url, init).then(settle);
  });
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
