// 10,000 events through the pasteable bundle must not grow the heap: no cache or queue may keep
// something per event. Measured after full garbage collections, which this file turns on.

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type RefinerEmulator, startRefinerEmulator } from "../../local/refiner-emulator.ts";
import { API_KEY } from "../support/fixtures.ts";
import { loadSegmentFunction, type SegmentFunction } from "../support/segment-function.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

let refiner: RefinerEmulator;
let fn: SegmentFunction;
beforeAll(async () => {
  refiner = await startRefinerEmulator();
  fn = loadSegmentFunction();
});
afterAll(() => refiner.close());

/** A mixed batch of 100 events for 20 users, each with its own ids and traits. */
function batch(round: number): unknown[] {
  return Array.from({ length: 100 }, (_, i) => {
    const userId = `user-${round}-${i % 20}`;
    // No messageId: the memory of delivered messageIds keeps each one it is given, by design and
    // within its bound (test/recent-ids.test.ts); without them, anything else kept per event shows.
    const base = {
      userId,
      timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    };
    switch (i % 5) {
      case 0:
        return {
          ...base,
          type: "identify",
          traits: { email: `${userId}@example.com`, [`trait_${round}_${i}`]: i, nested: { round } },
        };
      case 1:
        return {
          ...base,
          type: "group",
          groupId: `g-${round}-${i}`,
          traits: { name: `Account ${i}` },
        };
      case 2:
        return { ...base, type: "page", name: `Page ${round}-${i}` };
      case 3:
        return { ...base, type: "track", event: `Event ${round}-${i}` };
      default:
        return { ...base, type: "screen", name: `Screen ${i}` };
    }
  });
}

async function run(rounds: number, from: number): Promise<void> {
  const settings = { apiKey: API_KEY, apiBaseUrl: refiner.url };
  for (let round = from; round < from + rounds; round++) {
    const items = (await fn.handlers.onBatch(batch(round), settings)) as { status: number }[];
    if (items.some((item) => item.status !== 200)) throw new Error(`round ${round} failed`);
    refiner.reset(); // the emulator's own record of requests is not the bundle's memory
  }
}

function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

it("keeps the heap flat over 10,000 events", async () => {
  // Warm-up: optimized code, type feedback, the first use of each pattern all land on the heap once.
  // It takes about as many events again before the heap settles, so warm up with 10,000.
  await run(100, 0);
  const before = heapAfterGc();
  await run(100, 100); // 10,000 events
  const growth = heapAfterGc() - before;
  console.log(`heap growth over 10,000 events after warm-up: ${(growth / 1024).toFixed(0)} KB`);
  // Node's own HTTP machinery drifts by ~100 KB here either way; keeping as little as 40 bytes of
  // each event would add 400 KB.
  expect(growth).toBeLessThan(400 * 1024);
}, 60_000);
