import nodeFetch from "node-fetch";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { API_KEY, loadEvent } from "./support/fixtures.ts";
import {
  captureConsole,
  type LambdaHandlers,
  loadLambda,
  sign,
  webhookPost,
} from "./support/lambda.ts";
import { rawServers } from "./support/raw-server.ts";
import {
  loadSegmentFunction,
  RetryError,
  type SegmentFunction,
  settle,
  ValidationError,
} from "./support/segment-function.ts";

/** A raw HTTP server on 127.0.0.1; returns its base URL as an apiBaseUrl. */
const serve = rawServers();

let fn: SegmentFunction;
let lambda: LambdaHandlers;
let consoleLines: unknown[][];

beforeEach(() => {
  // A worker of its own for each test: they send the same sample events, which one worker would
  // rightly send once.
  fn = loadSegmentFunction();
  consoleLines = captureConsole();
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

/** Runs the sample track through the Segment bundle and through Lambda `segment`, side by side. */
async function bothRuntimes(url: string) {
  vi.stubEnv("REFINER_API_KEY", API_KEY);
  vi.stubEnv("REFINER_API_BASE_URL", url);
  lambda = loadLambda();
  const [segment, direct] = await Promise.all([
    settle(fn.handlers.onTrack(loadEvent("track"), { apiKey: API_KEY, apiBaseUrl: url })),
    settle(lambda.segment(loadEvent("track"))),
  ]);
  return { segment, direct };
}

describe("redirects", () => {
  let elsewhere: RefinerEmulator;
  beforeAll(async () => {
    elsewhere = await startRefinerEmulator();
  });
  afterAll(() => elsewhere.close());

  it.each([301, 302, 307, 308])(
    "does not follow a %i, so the key never reaches the second server",
    async (status) => {
      elsewhere.reset();
      const url = await serve((_req, res) => {
        res.writeHead(status, { location: `${elsewhere.url}/track-event` }).end();
      });
      const { segment, direct } = await bothRuntimes(url);

      expect(segment.error).toBeInstanceOf(ValidationError);
      expect(segment.error?.message).toContain("apiBaseUrl");
      expect(direct.value).toEqual({ status: 400, error: expect.stringContaining("apiBaseUrl") });
      expect(elsewhere.requests).toHaveLength(0);
    },
  );
});

describe("bodies", () => {
  it("stops reading a 32 MB body after 64 KB, and keeps the message short", async () => {
    const size = 32 * 1024 * 1024;
    const written = new Map<string, number>();
    let lambdaClosed: Promise<unknown> | undefined;
    const url = await serve((req, res) => {
      const client = String(req.headers["user-agent"]);
      written.set(client, 0);
      if (client === "node") lambdaClosed = new Promise((resolve) => res.on("close", resolve));
      res.writeHead(400, { "content-type": "text/plain" });
      const chunk = "x".repeat(64 * 1024);
      const pump = () => {
        while ((written.get(client) as number) < size) {
          written.set(client, (written.get(client) as number) + chunk.length);
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    });
    // Segment's node-fetch, watched for the body it hands over being closed.
    let segmentClosed: Promise<unknown> | undefined;
    fn = loadSegmentFunction({
      fetch: async (...args) => {
        const response = await nodeFetch(...args);
        segmentClosed = new Promise((resolve) => response.body.once("close", resolve));
        return response;
      },
    });
    const { segment, direct } = await bothRuntimes(url);
    expect(segment.error).toBeInstanceOf(ValidationError);
    expect(segment.error?.message.length).toBeLessThanOrEqual(500);
    expect((direct.value as { error: string }).error.length).toBeLessThanOrEqual(500);
    // Both clients stopped reading: Node's fetch (Lambda) closed the connection, node-fetch
    // (Segment) closed the body it hands over, after which nothing takes from its socket. So the
    // server could push only what socket buffers hold (a few MB here), far from the whole body,
    // which a client that kept draining the socket would have taken by then.
    await Promise.all([lambdaClosed, segmentClosed]);
    expect([...written.keys()].sort()).toEqual([
      "node",
      "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    ]);
    for (const bytes of written.values()) expect(bytes).toBeLessThan(size / 2);
  });

  it("shows an HTML error page as short, flattened text", async () => {
    const url = await serve((_req, res) => {
      res.writeHead(502, { "content-type": "text/html" });
      res.end(
        `<html>\n<head><title>502 Bad Gateway</title></head>\n<body>${"<p>nginx</p>\n".repeat(200)}</body></html>`,
      );
    });
    const { segment, direct } = await bothRuntimes(url);
    expect(segment.error).toBeInstanceOf(RetryError);
    expect(segment.error?.message).toMatch(
      /^Refiner answered 502 to POST \/track-event: <html> <head><title>502 Bad Gateway/,
    );
    expect(segment.error?.message).not.toContain("\n");
    expect(segment.error?.message.length).toBeLessThanOrEqual(500);
    expect(direct.error?.name).toBe("RetryError");
  });

  it("shows invalid JSON as text", async () => {
    const url = await serve((_req, res) => {
      res.writeHead(422, { "content-type": "application/json" });
      res.end('{"error": "bad trait", ');
    });
    const { segment, direct } = await bothRuntimes(url);
    expect(segment.error).toBeInstanceOf(ValidationError);
    expect(segment.error?.message).toBe(
      'Refiner rejected POST /track-event with 422: {"error": "bad trait",',
    );
    expect(direct.value).toEqual({ status: 400, error: segment.error?.message });
  });

  it("accepts a 2xx whose body is not JSON", async () => {
    const url = await serve((_req, res) => {
      res.writeHead(201, { "content-type": "text/plain" });
      res.end("Created");
    });
    const { segment, direct } = await bothRuntimes(url);
    expect(segment.error).toBeUndefined();
    expect(direct.value).toEqual({ status: 200 });
  });
});

describe("connections", () => {
  it("retries a connection reset before any answer", async () => {
    const url = await serve((req) => {
      req.socket.resetAndDestroy();
    });
    const { segment, direct } = await bothRuntimes(url);
    expect(segment.error).toBeInstanceOf(RetryError);
    expect(direct.error?.name).toBe("RetryError");
  });

  it("retries a connection reset in the middle of the answer's body", async () => {
    const url = await serve((req, res) => {
      res.writeHead(201, { "content-type": "application/json", "content-length": "100" });
      res.write('{"message":');
      setTimeout(() => req.socket.resetAndDestroy(), 20);
    });
    const { segment, direct } = await bothRuntimes(url);
    expect(segment.error).toBeInstanceOf(RetryError);
    expect(direct.error?.name).toBe("RetryError");
  });
});

describe("secrets", () => {
  it("never lets an echoed API key or shared secret into messages, results or logs", async () => {
    const SECRET = "whsec_do_not_print_7f3e";
    // A hostile or buggy server that echoes everything it might know back in every answer.
    const url = await serve((req, res) => {
      const echo = `${req.headers.authorization} ${SECRET} ${API_KEY}`;
      const status = req.url?.endsWith("/track-event") ? 503 : 400;
      res.writeHead(status, { "content-type": "application/json", "x-echo": echo });
      res.end(JSON.stringify({ error: `Invalid request with key ${API_KEY}: ${echo}` }));
    });

    // The Segment function knows only the API key.
    const single = await settle(
      fn.handlers.onTrack(loadEvent("track"), { apiKey: API_KEY, apiBaseUrl: url }),
    );
    const batch = await fn.handlers.onBatch([loadEvent("identify"), loadEvent("track")], {
      apiKey: API_KEY,
      apiBaseUrl: url,
    });
    const fromSegment = JSON.stringify([single.error?.message, batch, fn.logs]);
    expect(fromSegment).toContain("[redacted]");
    expect(fromSegment).not.toContain(API_KEY);

    // The Lambda knows both.
    vi.stubEnv("REFINER_API_KEY", API_KEY);
    vi.stubEnv("REFINER_API_BASE_URL", url);
    vi.stubEnv("SEGMENT_SHARED_SECRET", SECRET);
    lambda = loadLambda();
    const direct = await settle(lambda.segment(loadEvent("track")));
    const rejected = await lambda.segment(loadEvent("identify"));
    const body = JSON.stringify([loadEvent("identify"), loadEvent("track")]);
    const hook = await lambda.webhook(webhookPost(body, { "x-signature": sign(SECRET, body) }));
    const fromLambda = JSON.stringify([direct.error?.message, rejected, hook, consoleLines]);
    expect(consoleLines.length).toBeGreaterThan(0);
    expect(fromLambda).toContain("[redacted]");
    expect(fromLambda).not.toContain(API_KEY);
    expect(fromLambda).not.toContain(SECRET);
  });
});
