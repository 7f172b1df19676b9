// The Refiner REST API: the only code that speaks HTTP. One call in; Refiner's answer, or the error
// that kept it from answering, out. What that means for the event is decided elsewhere
// (lib/pipeline/decide.ts); this module knows nothing of Segment.

/** A value Refiner stores as a trait: text, a number or a boolean (docs/mapping.md, "Traits"). */
export type TraitValue = string | number | boolean;

/** Who a request is about: a userId, an email, or both. */
export interface Who {
  id?: string;
  email?: string;
}

/** An account: its id, and its traits. */
export type AccountBody = { id: string } & { [trait: string]: TraitValue };

/** `POST /identify-user`: the contact, its traits, and its account. */
export type IdentifyBody = Who & {
  account?: AccountBody;
  [trait: string]: TraitValue | AccountBody | undefined;
};

/** `POST /track-event`: the contact and the event's name; nothing else is stored. */
export interface TrackBody extends Who {
  event: string;
}

/** A Refiner request, as the mapping describes it. */
export type RefinerCall =
  | { call: "identifyUser"; body: IdentifyBody }
  | { call: "trackEvent"; body: TrackBody }
  | { call: "deleteContact"; query: { id: string } | { email: string } };

export interface Endpoint {
  method: "POST" | "DELETE";
  path: string;
  /** e.g. "POST /identify-user", for messages. */
  request: string;
  /** A 404 that is not about the API key means the work is already done. */
  notFoundIsSuccess?: boolean;
}

/** Every Refiner endpoint the destination uses, declared once (docs/mapping.md). */
export const ENDPOINTS: Record<RefinerCall["call"], Endpoint> = {
  identifyUser: { method: "POST", path: "/identify-user", request: "POST /identify-user" },
  trackEvent: { method: "POST", path: "/track-event", request: "POST /track-event" },
  // The contact is already gone.
  deleteContact: {
    method: "DELETE",
    path: "/contact",
    request: "DELETE /contact",
    notFoundIsSuccess: true,
  },
};

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

/** What Refiner answered, reduced to what a decision needs. */
export interface Answer {
  status: number;
  /** The response body as text (possibly cut short). */
  text: string;
  retryAfter: string | null;
}

/** Refiner's answer, or why there was none (refused, reset, DNS, the deadline). */
export type Result = Answer | { error: unknown };

export interface Connection {
  fetch: Fetch;
  apiKey: string;
  /** No trailing slash. */
  baseUrl: string;
}

/**
 * Sends one call and waits at most `timeoutMs` for the whole exchange, body included. At the
 * limit the request is aborted, which also closes its connection. Never rejects.
 */
export function request(
  call: RefinerCall,
  connection: Connection,
  timeoutMs: number,
): Promise<Result> {
  const endpoint = ENDPOINTS[call.call];
  const headers: Record<string, string> = {
    Accept: "application/json",
    Authorization: `Bearer ${connection.apiKey}`,
  };
  if ("body" in call) headers["Content-Type"] = "application/json";
  const controller = newAbortController();

  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      resolve({ error: new Error(`no complete answer within ${timeoutMs} ms`) });
      controller.abort(); // stops the request even while a body trickles in
    }, timeoutMs);
    exchange(connection.fetch, `${connection.baseUrl}${pathOf(call)}`, {
      method: endpoint.method,
      headers,
      body: "body" in call ? JSON.stringify(call.body) : undefined,
      redirect: "manual",
      signal: controller.signal,
      size: MAX_RESPONSE_BYTES,
    }).then((result) => {
      clearTimeout(timer);
      resolve(result); // a no-op when the timer already answered
    });
  });
}

/** The call's path below the base URL, with its query: `/contact?id=u%201`. */
export function pathOf(call: RefinerCall): string {
  const { path } = ENDPOINTS[call.call];
  if (call.call !== "deleteContact") return path;
  const query = Object.entries(call.query)
    .map(([key, value]) => `${key}=${encodeURIComponent(value)}`)
    .join("&");
  return `${path}?${query}`;
}

/** The request and its answer; never rejects. */
async function exchange(fetch: Fetch, url: string, init: Parameters<Fetch>[1]): Promise<Result> {
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
 * Segment's runtime may not provide AbortController (docs/architecture.md). Then a minimal one
 * serves, which node-fetch v2 accepts: it recognises a signal by its class being named AbortSignal.
 */
function newAbortController(): { signal: AbortSignal; abort(): void } {
  return typeof AbortController === "function"
    ? new AbortController()
    : new MinimalAbortController();
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
