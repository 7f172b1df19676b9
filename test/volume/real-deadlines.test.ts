// The one real deadline of each runtime, against a Refiner that never answers: Segment kills a
// call at 5 s, so the pasteable function and the Lambda doors give up at 4.5 s. These wait that
// long, so they run in `npm run test:volume`; the main suite tests the same paths with injected,
// shorter deadlines (test/pipeline.test.ts, test/lambda.operations.test.ts). The time left when the
// request starts is all the deadline's but what the start took, up to half a second on a busy
// machine; each test may take the run's two minutes.

import { afterAll, afterEach, beforeAll, beforeEach, expect, it, vi } from "vitest";
import { type RefinerEmulator, startRefinerEmulator } from "../../local/refiner-emulator.ts";
import { API_KEY, loadEvent } from "../support/fixtures.ts";
import { captureConsole, loadLambda } from "../support/lambda.ts";
import { loadSegmentFunction, RetryError, settle } from "../support/segment-function.ts";

let refiner: RefinerEmulator;
beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
});
afterAll(() => refiner.close());
beforeEach(() => refiner.reset());
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

it("the Segment function gives up on a Refiner that never answers at 4.5 s, with node-fetch v2", async () => {
  const fn = loadSegmentFunction();
  refiner.queue({ hang: true });
  const { error } = await settle(
    fn.handlers.onTrack(loadEvent("track"), { apiKey: API_KEY, apiBaseUrl: refiner.url }),
  );
  expect(error).toBeInstanceOf(RetryError);
  expect(error?.message).toMatch(
    /^Refiner could not be reached for POST \/track-event: no complete answer within 4[0-5]\d\d ms$/,
  );
});

it("the Lambda gives up at 4.5 s without a context, with Node's fetch and AbortController", async () => {
  captureConsole();
  vi.stubEnv("REFINER_API_KEY", API_KEY);
  vi.stubEnv("REFINER_API_BASE_URL", refiner.url);
  const lambda = loadLambda();
  refiner.queue({ hang: true });
  const { error } = await settle(lambda.segment(loadEvent("identify")));
  expect(error?.name).toBe("RetryError");
  expect(error?.message).toMatch(/no complete answer within 4[0-5]\d\d ms$/);
});
