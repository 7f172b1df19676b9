// The Refiner REST API: the only code that speaks HTTP. One call in, one Outcome out.

import { classify, type Outcome, retry } from "./outcome.ts";
import type { Settings } from "./settings.ts";

export type RefinerCall =
  | { call: "identifyUser"; body: Record<string, unknown> }
  | { call: "trackEvent"; body: Record<string, unknown> }
  | { call: "deleteContact"; query: { id: string } | { email: string } };

/** Every Refiner endpoint the destination uses (MAPPING.md, "Refiner REST API"). */
export const ENDPOINTS = {
  identifyUser: { method: "POST", path: "/identify-user" },
  trackEvent: { method: "POST", path: "/track-event" },
  deleteContact: { method: "DELETE", path: "/contact" },
} as const;

/**
 * The part of `fetch` we use. Segment's is node-fetch v2 (which honours `timeout` but may lack
 * AbortController); Lambda's is Node's own (which honours `signal` and ignores `timeout`).
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
  text(): Promise<string>;
}

/** Refiner's answers are a few hundred bytes; whatever a server sends, no more than this is read. */
export const MAX_RESPONSE_BYTES = 64 * 1024;

// Segment's runtime may not have AbortController; looked up once, since global lookups are slow there.
const Abort = typeof AbortController === "function" ? AbortController : undefined;

export interface Transport {
  fetch: Fetch;
  settings: Settings;
  /** Epoch ms after which nothing may still be waiting on Refiner. */
  deadline: number;
}

export async function send(
  call: RefinerCall,
  { fetch, settings, deadline }: Transport,
): Promise<Outcome> {
  const { method, path } = ENDPOINTS[call.call];
  const context = {
    request: `${method} ${path}`,
    apiKey: settings.apiKey,
    notFoundIsSuccess: call.call === "deleteContact",
  };
  const remaining = deadline - Date.now();
  if (remaining <= 0) {
    return retry(
      `Not sent: no time was left for ${context.request} before the deadline (Segment stops a call at 5 s).`,
    );
  }

  const url =
    call.call === "deleteContact"
      ? `${settings.apiBaseUrl}${path}?${Object.entries(call.query)
          .map(([key, value]) => `${key}=${encodeURIComponent(value)}`)
          .join("&")}`
      : `${settings.apiBaseUrl}${path}`;
  const headers: Record<string, string> = {
    Accept: "application/json",
    Authorization: `Bearer ${settings.apiKey}`,
  };
  if ("body" in call) headers["Content-Type"] = "application/json";

  // Three guards for one deadline: `signal` aborts Node's fetch, `timeout` aborts node-fetch v2
  // (Segment's runtime may have no AbortController), and the race settles us in time whatever the
  // fetch implementation does, including while a body trickles in.
  const controller = Abort ? new Abort() : undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<{ error: Error }>((resolve) => {
    timer = setTimeout(() => {
      controller?.abort();
      resolve({
        error: new Error(
          `no complete answer within the ${remaining} ms left before the deadline (Segment stops a call at 5 s)`,
        ),
      });
    }, remaining);
  });

  const exchange = (async () => {
    try {
      const response = await fetch(url, {
        method,
        headers,
        body: "body" in call ? JSON.stringify(call.body) : undefined,
        redirect: "manual",
        signal: controller?.signal,
        timeout: remaining,
        size: MAX_RESPONSE_BYTES,
      });
      const text = await readBounded(response);
      const { status } = response;
      return {
        status,
        text,
        retryAfter: status === 429 ? response.headers.get("retry-after") : null,
      };
    } catch (error) {
      return { error };
    }
  })();

  try {
    return classify(await Promise.race([exchange, expired]), context);
  } finally {
    clearTimeout(timer);
  }
}

/** A response body, or its start: never more than MAX_RESPONSE_BYTES is kept. */
async function readBounded(response: FetchResponse): Promise<string> {
  const { body } = response;
  if (body && typeof (body as ReadableStream).getReader === "function") {
    // Node's fetch: read chunks up to the limit, then cancel the rest.
    const reader = (body as ReadableStream<Uint8Array>).getReader();
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
  // node-fetch v2 stops reading at the `size` the request gave it, and says so.
  try {
    return (await response.text()).slice(0, MAX_RESPONSE_BYTES);
  } catch (error) {
    if ((error as { type?: unknown })?.type === "max-size") {
      return `(an answer of more than ${MAX_RESPONSE_BYTES} bytes, not read)`;
    }
    throw error;
  }
}
