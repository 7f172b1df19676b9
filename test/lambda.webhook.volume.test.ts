// The webhook at the sizes Segment sends with batching on (docs/lambda.md, "Connect Segment's
// Webhooks (Actions) destination"): realistic analytics.js events in one request, 1,000 of them
// (1.2 MB) at full size, and Segment's whole-batch resend after a 503 against a Refiner that answers
// in 80 ms. Direct delivery, through the handlers built from source.

import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { analyticsBatch } from "../local/batches.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { API_KEY, trackCounts as countTracks } from "./support/fixtures.ts";
import {
  captureConsole,
  type LambdaHandlers,
  loadLambda,
  type TestContext,
  webhookPost,
} from "./support/lambda.ts";
import { size } from "./support/volume.ts";

const TOKEN = "wht_0b7e2c9d4a1f8e3c6b5a2d9f7e4c1b8a";
const auth = { authorization: `Bearer ${TOKEN}` };

let refiner: RefinerEmulator;
let lambda: LambdaHandlers;

beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
});
afterAll(() => refiner.close());
beforeEach(() => {
  refiner.reset();
  vi.stubEnv("REFINER_API_KEY", API_KEY);
  vi.stubEnv("REFINER_API_BASE_URL", refiner.url);
  vi.stubEnv("SEGMENT_SHARED_SECRET", "whsec_unused_in_these_tests");
  vi.stubEnv("SEGMENT_WEBHOOK_TOKEN", TOKEN);
  captureConsole();
  lambda = loadLambda();
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** How often Refiner received each track or page event, by contact and event name. */
const trackCounts = () => countTracks(refiner.requests);

/** The identify requests Refiner received, by contact id. */
function identifiedIds(): Set<unknown> {
  return new Set(
    refiner.requests
      .filter((request) => request.path === "/identify-user")
      .map((request) => (request.body as { id: unknown }).id),
  );
}

const USERS = size(40, 200);
// A try's budget: at full size Segment's own 4.5 s; small, Lambda says 2.6 s are left, which
// leaves 0.6 s of starts (none in the last second), so the batch takes several tries too.
const context = size<TestContext | undefined>(
  { awsRequestId: "volume", getRemainingTimeInMillis: () => 2600 },
  undefined,
);
// Small, the door's clock is the test's, so that what a try delivers does not depend on how busy
// the machine is; at full size it is real.
const testClock = size(true, false);

describe(`a ${USERS * 5}-event batch`, () => {
  const events = analyticsBatch({ users: USERS });
  const body = JSON.stringify(events);

  it("with a valid token is delivered whole: one identify per user and every track and page once", async () => {
    // analytics.js events with their context: about 1.2 KB each.
    expect(body.length).toBeGreaterThan(USERS * 5 * 1200);
    // One try on a quiet machine, or on a clock that stands still; a loaded one may need Segment's
    // resend, which adds nothing.
    if (testClock) vi.useFakeTimers({ toFake: ["Date"] });
    let result = await lambda.webhook(webhookPost(body, auth));
    for (let tries = 1; result.statusCode === 503 && tries < 4; tries++) {
      result = await lambda.webhook(webhookPost(body, auth));
    }
    expect(result.statusCode).toBe(200);
    const { results } = JSON.parse(String(result.body)) as { results: { status: number }[] };
    expect(results).toHaveLength(USERS * 5);
    expect(results.every((item) => item.status === 200)).toBe(true);

    expect(refiner.requests).toHaveLength(USERS * 5); // 1 identify and 4 tracks or pages each
    expect(identifiedIds().size).toBe(USERS);
    const counts = trackCounts();
    expect(counts.size).toBe(USERS * 4);
    expect([...counts.values()].every((count) => count === 1)).toBe(true);
    expect(refiner.maxInFlight).toBeLessThanOrEqual(8);
  });

  it("resent by Segment after each 503, with Refiner at 80 ms, ends delivered with no track twice", async () => {
    // Small, the clock moves 25 ms as each request arrives and stands still otherwise: a try starts
    // about 24 requests, and never none.
    if (testClock) vi.useFakeTimers({ toFake: ["Date"] });
    refiner.respond(() => {
      if (testClock) vi.setSystemTime(Date.now() + 25);
      return { status: 201, body: { message: "ok", contact_uuid: randomUUID() }, delayMs: 80 };
    });
    const statuses: number[] = [];
    /** Refiner's requests after each try. */
    const after: number[] = [];
    // Segment resends the whole batch after a 5xx; the same instance takes each try. How many
    // tries it takes depends on the machine's speed; that each one moves on does not.
    while (statuses.length < 30) {
      const result = await lambda.webhook(webhookPost(body, auth), context);
      const status = result.statusCode ?? 0;
      statuses.push(status);
      after.push(refiner.requests.length);
      if (status !== 503) break;
    }
    // More than one try (one would not show the resends adding nothing), each one delivering what
    // the ones before it left.
    expect(statuses.at(-1)).toBe(200);
    expect(statuses.length).toBeGreaterThan(1);
    after.forEach((requests, at) => {
      if (at > 0) expect(requests).toBeGreaterThan(after[at - 1] as number);
    });

    const counts = trackCounts();
    expect(counts.size).toBe(USERS * 4);
    const twice = [...counts].filter(([, count]) => count > 1);
    expect(twice).toEqual([]);
    expect(identifiedIds().size).toBe(USERS);
  }, 120_000);
});
