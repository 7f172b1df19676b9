// The pipeline's parts with what they can be given: a short deadline, a clock. The real 4.5 s
// deadline of each runtime is waited out in `npm run test:volume` (test/volume/real-deadlines.test.ts);
// these check the same rules in a fraction of the time, by what was answered rather than by clocks.

import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import nodeFetch from "node-fetch";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { decide } from "../lib/delivery/decide.ts";
import { deliver } from "../lib/delivery/deliver.ts";
import { tokenBucket } from "../lib/delivery/pace.ts";
import { boundedFetch, ENDPOINTS, type Fetch, request } from "../lib/refiner/client.ts";
import { parseSettings } from "../lib/settings.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { API_KEY } from "./support/fixtures.ts";

const runtimes: [name: string, fetch: Fetch][] = [
  ["node-fetch v2 (Segment)", nodeFetch as unknown as Fetch],
  ["Node's fetch (Lambda, CLI)", boundedFetch(fetch as unknown as Fetch)],
];

describe("deliver, with a 1.5 s deadline", () => {
  let refiner: RefinerEmulator;
  beforeAll(async () => {
    refiner = await startRefinerEmulator({ apiKey: API_KEY });
  });
  afterAll(() => refiner.close());

  it("answers what it started and starts nothing in the last second, at most 8 at a time", async () => {
    refiner.respond(() => ({ status: 201, delayMs: 200 }));
    const events = Array.from({ length: 60 }, (_, i) => ({
      type: "track",
      userId: `u${i}`,
      event: `E${i}`,
    }));
    const parsed = parseSettings({
      apiKey: API_KEY,
      apiBaseUrl: refiner.url,
      skipUnchangedMinutes: "0",
    });
    if (!parsed.ok) throw new Error(parsed.message);
    const { settings } = parsed;
    const started = Date.now();
    const outcomes = await deliver(events, settings, {
      fetch: nodeFetch as unknown as Fetch,
      startedAt: started,
      budgetMs: 1500,
    });
    // Rounds of 8 start at about 0, 200 and 400 ms; none in the last second, after 500 ms.
    const delivered = outcomes.findIndex((outcome) => outcome.kind !== "delivered");
    expect(delivered).toBeGreaterThanOrEqual(16);
    expect(delivered).toBeLessThanOrEqual(32);
    expect(outcomes.slice(0, delivered).every((outcome) => outcome.kind === "delivered")).toBe(
      true,
    );
    for (const outcome of outcomes.slice(delivered)) {
      expect(outcome).toEqual({
        kind: "retry",
        status: 500,
        message: "Not sent: too little time was left for POST /track-event before the deadline.",
      });
    }
    expect(refiner.requests).toHaveLength(delivered);
    expect(refiner.maxInFlight).toBeLessThanOrEqual(8);
  });
});

describe.each(runtimes)("request through %s, with a 500 ms limit", (_, runtimeFetch) => {
  const servers: Server[] = [];
  const closedAt: number[] = [];
  async function serve(listener: RequestListener): Promise<string> {
    const server = createServer((req, res) => {
      res.on("close", () => closedAt.push(Date.now()));
      listener(req, res);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  }
  afterEach(() => {
    closedAt.length = 0;
  });
  afterAll(() => {
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
  });

  it.each<[string, RequestListener]>([
    [
      "a body that trickles a byte every 100 ms",
      (_req, res) => {
        res.writeHead(500, { "content-type": "application/json" });
        const drip = setInterval(() => res.write(" "), 100);
        res.on("close", () => clearInterval(drip));
      },
    ],
    [
      "headers, then a body that stalls",
      (_req, res) => {
        res.writeHead(201, { "content-type": "application/json" });
        res.write('{"message":');
      },
    ],
    ["no answer at all", () => {}],
  ])("gives up on %s at the limit, and closes the connection", async (_what, listener) => {
    const baseUrl = await serve(listener);
    const result = await request(
      { call: "trackEvent", body: { event: "E", id: "u1" } },
      { fetch: runtimeFetch, apiKey: API_KEY, baseUrl },
      500,
    );
    // Given up by the request's own limit, not by anything else.
    expect(result).toEqual({ error: new Error("no complete answer within 500 ms") });
    // And the connection is closed, not left to the server: the abort reached the socket.
    await vi.waitFor(() => expect(closedAt).toHaveLength(1), { timeout: 1000, interval: 20 });
  });
});

describe("decide", () => {
  const endpoint = ENDPOINTS.trackEvent;
  const now = Date.parse("2026-11-30T12:00:00Z");

  it.each([
    ["seconds", "120", 120],
    ["an HTTP date", "Mon, 30 Nov 2026 12:01:30 GMT", 90],
    ["a date already past", "Mon, 30 Nov 2026 11:59:00 GMT", 0],
  ])("keeps a 429's Retry-After given as %s", (_, retryAfter, seconds) => {
    expect(decide({ status: 429, text: "", retryAfter }, endpoint, API_KEY, now)).toEqual({
      kind: "retry",
      status: 429,
      message: `Refiner answered 429 to POST /track-event; Retry-After: ${retryAfter}`,
      retryAfterSeconds: seconds,
    });
  });

  it("ignores a Retry-After it cannot read", () => {
    expect(decide({ status: 429, text: "", retryAfter: "soon" }, endpoint, API_KEY, now)).toEqual({
      kind: "retry",
      status: 429,
      message: "Refiner answered 429 to POST /track-event; Retry-After: soon",
    });
  });
});

describe("tokenBucket", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("lets a tenth of a second's worth through at once, then one per 1/rate, in order", async () => {
    vi.useFakeTimers({ now: 0 });
    const bucket = tokenBucket(6000); // 100 a second, bursts of 10
    const passed: number[] = [];
    const takes = Array.from({ length: 30 }, (_, i) => bucket.take().then(() => passed.push(i)));
    await vi.advanceTimersByTimeAsync(0);
    expect(passed).toHaveLength(10);
    await vi.advanceTimersByTimeAsync(100);
    expect(passed).toHaveLength(20);
    await vi.advanceTimersByTimeAsync(100);
    await Promise.all(takes);
    expect(passed).toEqual(Array.from({ length: 30 }, (_, i) => i));
  });

  it("refills while idle, up to the burst and no more", async () => {
    vi.useFakeTimers({ now: 0 });
    let clock = 0;
    const bucket = tokenBucket(600, () => clock); // 10 a second, bursts of 1
    await bucket.take();
    clock = 60_000; // a minute idle
    const passed: number[] = [];
    const takes = [0, 1, 2].map((i) => bucket.take().then(() => passed.push(i)));
    await vi.advanceTimersByTimeAsync(0);
    expect(passed).toEqual([0]);
    clock += 100;
    await vi.advanceTimersByTimeAsync(100);
    expect(passed).toEqual([0, 1]);
    clock += 100;
    await vi.advanceTimersByTimeAsync(100);
    await Promise.all(takes);
    expect(passed).toEqual([0, 1, 2]);
  });
});
