// A stand-in for Refiner's REST API: a real HTTP server on 127.0.0.1 that records every request and
// answers the way a remote API does — success, any error, slowly, never, or by dropping the
// connection. Used by the tests, the benchmarks and `npm start`.

import { randomUUID } from "node:crypto";
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface RecordedRequest {
  method: string;
  /** Path and query, without the `/v1` prefix, e.g. `/contact?id=42`. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON when the body is JSON, else the raw text; `undefined` when empty. */
  body: unknown;
  /** When the request arrived (epoch ms). */
  at: number;
}

export type Reply =
  | {
      status?: number;
      /** An object is sent as JSON; a string as it is. */
      body?: unknown;
      headers?: Record<string, string>;
      /** Wait this long before answering. */
      delayMs?: number;
      /** Answer once this settles: a test holds the answer until it has done its part. */
      until?: Promise<unknown>;
    }
  | { hang: true }
  | { drop: true };

export type Responder = (request: RecordedRequest) => Reply | undefined;

export interface EmulatorOptions {
  /** When set, requests must carry it as a Bearer token, and are refused as Refiner does if not. */
  apiKey?: string;
  /** Called with every request and the reply chosen for it (for `npm start`'s log). */
  onRequest?: (request: RecordedRequest, reply: Reply) => void;
}

export interface RefinerEmulator {
  /** Base URL to use as `apiBaseUrl`, e.g. `http://127.0.0.1:41234/v1`. */
  url: string;
  requests: RecordedRequest[];
  /** Most requests that were open at the same moment. */
  maxInFlight: number;
  /** Answer the next requests with these replies, in order, then fall back to the responder. */
  queue(...replies: Reply[]): void;
  /** Decide the answer for every request not covered by the queue. */
  respond(responder: Responder): void;
  reset(): void;
  close(): Promise<void>;
}

export const PREFIX = "/v1";

export async function startRefinerEmulator(
  options: EmulatorOptions = {},
): Promise<RefinerEmulator> {
  const queued: Reply[] = [];
  let responder: Responder = () => undefined;
  let inFlight = 0;
  const sockets = new Set<Socket>();

  const emulator: RefinerEmulator = {
    url: "",
    requests: [],
    maxInFlight: 0,
    queue: (...replies) => {
      queued.push(...replies);
    },
    respond: (next) => {
      responder = next;
    },
    reset: () => {
      queued.length = 0;
      responder = () => undefined;
      emulator.requests.length = 0;
      emulator.maxInFlight = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };

  const server = createServer(async (req, res) => {
    inFlight += 1;
    emulator.maxInFlight = Math.max(emulator.maxInFlight, inFlight);
    res.on("close", () => {
      inFlight -= 1;
    });
    const recorded = await record(req);
    emulator.requests.push(recorded);
    const reply = queued.shift() ?? responder(recorded) ?? defaultReply(recorded, options.apiKey);
    options.onRequest?.(recorded, reply);
    await answer(req, res, reply);
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  emulator.url = `http://127.0.0.1:${port}${PREFIX}`;
  return emulator;
}

async function record(req: IncomingMessage): Promise<RecordedRequest> {
  const at = Date.now();
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  let body: unknown;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  const url = req.url ?? "/";
  return {
    method: req.method ?? "GET",
    path: url.startsWith(PREFIX) ? url.slice(PREFIX.length) : url,
    headers: req.headers,
    body,
    at,
  };
}

/** What Refiner answers when nothing else was asked for (docs/mapping.md, "Refiner"). */
function defaultReply(request: RecordedRequest, apiKey: string | undefined): Reply {
  const auth = request.headers.authorization;
  if (apiKey !== undefined) {
    if (!auth) return { status: 401, body: { error: "No API key found in headers" } };
    if (auth !== `Bearer ${apiKey}`) {
      return { status: 404, body: { message: "API key not valid or does not exist" } };
    }
  }
  // Refiner's routes as its API documents them (docs/mapping.md), written here rather than taken
  // from the client, so that a wrong path in the client gets Refiner's 404.
  const known = ["POST /identify-user", "POST /track-event", "DELETE /contact"];
  const route = `${request.method} ${request.path.split("?")[0]}`;
  if (!known.includes(route)) return { status: 404, body: { message: "Not found" } };
  return { status: 201, body: { message: "ok", contact_uuid: randomUUID() } };
}

async function answer(req: IncomingMessage, res: ServerResponse, reply: Reply): Promise<void> {
  if ("hang" in reply) return; // never answer; close() destroys the socket
  if ("drop" in reply) {
    req.socket.destroy();
    return;
  }
  if (reply.delayMs) await new Promise((resolve) => setTimeout(resolve, reply.delayMs));
  await reply.until;
  const body =
    reply.body === undefined
      ? ""
      : typeof reply.body === "string"
        ? reply.body
        : JSON.stringify(reply.body);
  const headers: Record<string, string> = { ...reply.headers };
  if (typeof reply.body === "object" && reply.body !== null)
    headers["content-type"] ??= "application/json";
  res.writeHead(reply.status ?? 200, headers);
  res.end(body);
}
