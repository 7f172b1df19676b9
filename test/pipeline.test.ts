// The pipeline's parts with what they can be given: a short deadline, a clock. The real 4.5 s
// deadline of each runtime is waited out in `npm run test:volume` (test/volume/real-deadlines.test.ts);
// these check the same rules in a fraction of the time, by what was answered rather than by clocks.

import type { RequestListener } from "node:http";
import nodeFetch from "node-fetch";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { decide } from "../lib/pipeline/decide.ts";
import { forward } from "../lib/pipeline/forward.ts";
import { tokenBucket } from "../lib/pipeline/pace.ts";
import { boundedFetch, ENDPOINTS, type Fetch, request } from "../lib/refiner/client.ts";
import { parseSettings } from "../lib/settings.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { API_KEY, answerOnceOpen } from "./support/fixtures.ts";
import { rawServers } from "./support/raw-server.ts";

const runtimes: [name: string, fetch: Fetch][] = [
  ["node-fetch v2 (Segment)", nodeFetch as unknown as Fetch],
  ["Node's fetch (Lambda, CLI)", boundedFetch(fetch as unknown as Fetch)],
];

describe("forward, with a 1.5 s deadline", () => {
  let refiner: RefinerEmulator;
  beforeAll(async () => {
    refiner = await startRefinerEmulator({ apiKey: API_KEY });
  });
  afterEach(() => {
    vi.useRealTimers();
    refiner.reset();
  });
  afterAll(() => refiner.close());

  const parsed = parseSettings({ apiKey: API_KEY, apiBaseUrl: "http://127.0.0.1:1/v1" });
  if (!parsed.ok) throw new Error(parsed.message);
  const settings = () => ({ ...parsed.settings, apiBaseUrl: refiner.url });
  const tracks = (count: number, user: (i: number) => string) =>
    Array.from({ length: count }, (_, i) => ({ type: "track", userId: user(i), event: `E${i}` }));

  it("starts nothing in the last second before its deadline, and answers what it started", async () => {
    // The test's clock moves 25 ms at every start. With 1.5 s to go, the starts at 0, 25, … 475 ms
    // go; the one at 500 ms could end in the last second, when its answer might come too late to
    // report, and does not start. One contact, so that its requests go one after another.
    vi.useFakeTimers({ toFake: ["Date"], now: 0 });
    let starts = 0;
    const outcomes = await forward(
      tracks(60, () => "u1"),
      settings(),
      {
        fetch: nodeFetch as unknown as Fetch,
        startedAt: 0,
        budgetMs: 1500,
        pace: async () => {
          vi.setSystemTime(25 * starts++);
        },
      },
    );
    expect(outcomes.slice(0, 20)).toEqual(Array(20).fill({ kind: "done" }));
    expect(refiner.requests.map((request) => (request.body as { event: string }).event)).toEqual(
      Array.from({ length: 20 }, (_, i) => `E${i}`),
    );
    expect(outcomes[20]).toEqual({
      kind: "retry",
      status: 500,
      message: "Not sent: too little time was left for POST /track-event before the deadline.",
    });
    // The contact's later events wait behind it, so that none overtakes what is to be retried.
    for (const outcome of outcomes.slice(21)) {
      expect(outcome).toEqual({
        kind: "retry",
        status: 500,
        message:
          "Not sent: an earlier event of this contact waits for its retry (Not sent: too little time was left for POST /track-event before the deadline.)",
      });
    }
  });

  it("keeps at most 8 requests open at once", async () => {
    answerOnceOpen(refiner, 8);
    const outcomes = await forward(
      tracks(40, (i) => `u${i}`),
      settings(),
      {
        fetch: nodeFetch as unknown as Fetch,
        startedAt: Date.now(),
        budgetMs: 60_000,
      },
    );
    expect(outcomes).toEqual(Array(40).fill({ kind: "done" }));
    expect(refiner.requests).toHaveLength(40);
    // Side by side, not one after another, and no more.
    expect(refiner.maxInFlight).toBe(8);
  });
});

describe.each(runtimes)("request through %s, with a 500 ms limit", (_, runtimeFetch) => {
  const serveRaw = rawServers();
  /** Resolves once the connection of the server's one request is closed. */
  let closed: Promise<void>;
  function serve(listener: RequestListener): Promise<string> {
    let close = () => {};
    closed = new Promise((resolve) => {
      close = resolve;
    });
    return serveRaw((req, res) => {
      res.on("close", close);
      listener(req, res);
    });
  }

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
    // And the connection is closed, not left to the server: the abort reached the socket (the
    // server never ends it, so without the abort this waits until the test's timeout).
    await closed;
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
