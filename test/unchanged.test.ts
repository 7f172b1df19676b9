// Identifies and groups Refiner already has are not sent again (lib/delivery/unchanged.ts): through
// the pasteable script with a `cache` like Segment's and without one, through the Lambda `segment`
// handler, and through the queue consumer.

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { mapMemory } from "../lib/delivery/unchanged.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { loadSegmentFunction, RetryError, settle } from "../local/segment-runtime.ts";
import { API_KEY } from "./support/fixtures.ts";
import { captureConsole, loadLambda } from "./support/lambda.ts";
import { size } from "./support/volume.ts";

let refiner: RefinerEmulator;
beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
});
afterAll(() => refiner.close());
beforeEach(() => refiner.reset());

const identify = (traits: Record<string, unknown>, userId = "u1") => ({
  type: "identify",
  userId,
  traits,
});
const group = (groupId: string) => ({
  type: "group",
  userId: "u1",
  groupId,
  traits: { plan: "pro" },
});
const sent = () => refiner.requests.map((request) => request.body);

describe.each([
  ["with Segment's cache", true],
  ["without a cache (the script's own map)", false],
])("the Segment function %s", (_, cache) => {
  const load = () => loadSegmentFunction({ cache });
  const settings = (extra: Record<string, unknown> = {}) => ({
    apiKey: API_KEY,
    apiBaseUrl: refiner.url,
    ...extra,
  });

  it("sends the same identify once, and a changed trait again", async () => {
    const fn = load();
    await fn.handlers.onIdentify(identify({ plan: "trial" }), settings());
    await fn.handlers.onIdentify(identify({ plan: "trial" }), settings());
    expect(sent()).toEqual([{ plan: "trial", id: "u1" }]);
    await fn.handlers.onIdentify(identify({ plan: "pro" }), settings());
    expect(sent()).toEqual([
      { plan: "trial", id: "u1" },
      { plan: "pro", id: "u1" },
    ]);
  });

  it("remembers identify and group bodies of a contact apart, and each group's account apart", async () => {
    const fn = load();
    for (const event of [
      identify({ plan: "trial" }),
      group("g1"),
      group("g2"),
      identify({ plan: "trial" }),
      group("g1"),
    ]) {
      if (event.type === "group") await fn.handlers.onGroup(event, settings());
      else await fn.handlers.onIdentify(event, settings());
    }
    expect(sent()).toHaveLength(3);
  });

  it("sends again once the time-to-live is over", async () => {
    const fn = load();
    const short = settings({ skipUnchangedMinutes: "0.002" }); // 120 ms
    await fn.handlers.onIdentify(identify({ plan: "trial" }), short);
    await fn.handlers.onIdentify(identify({ plan: "trial" }), short);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await fn.handlers.onIdentify(identify({ plan: "trial" }), short);
    expect(sent()).toHaveLength(2);
  });

  it("sends the retry of an identify that failed", async () => {
    const fn = load();
    refiner.queue({ status: 503 });
    const first = await settle(fn.handlers.onIdentify(identify({ plan: "trial" }), settings()));
    expect(first.error).toBeInstanceOf(RetryError);
    await fn.handlers.onIdentify(identify({ plan: "trial" }), settings());
    expect(sent()).toHaveLength(2);
  });

  it("sends an identify again after a delete of the contact", async () => {
    const fn = load();
    await fn.handlers.onIdentify(identify({ plan: "trial" }), settings());
    await fn.handlers.onDelete({ type: "delete", userId: "u1" }, settings());
    await fn.handlers.onIdentify(identify({ plan: "trial" }), settings());
    expect(refiner.requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      "POST /identify-user",
      "DELETE /contact?id=u1",
      "POST /identify-user",
    ]);
  });

  it('sends every identify with skipUnchangedMinutes "0"', async () => {
    const fn = load();
    for (let i = 0; i < 3; i++) {
      await fn.handlers.onIdentify(
        identify({ plan: "trial" }),
        settings({ skipUnchangedMinutes: "0" }),
      );
    }
    expect(sent()).toHaveLength(3);
  });

  it("keeps two destinations apart", async () => {
    const fn = load();
    const other = await startRefinerEmulator({ apiKey: "rfk_other_destination_key" });
    try {
      await fn.handlers.onIdentify(identify({ plan: "trial" }), settings());
      await fn.handlers.onIdentify(identify({ plan: "trial" }), {
        apiKey: "rfk_other_destination_key",
        apiBaseUrl: other.url,
      });
      expect(sent()).toHaveLength(1);
      expect(other.requests).toHaveLength(1);
    } finally {
      await other.close();
    }
  });

  it("rejects an invalid skipUnchangedMinutes by name, sending nothing", async () => {
    const fn = load();
    const result = await settle(
      fn.handlers.onIdentify(
        identify({ plan: "trial" }),
        settings({ skipUnchangedMinutes: "soon" }),
      ),
    );
    expect(result.error?.name).toBe("ValidationError");
    expect(result.error?.message).toBe(
      "The skipUnchangedMinutes setting must be a number of minutes (0 sends every identify and group).",
    );
    expect(sent()).toHaveLength(0);
  });
});

// A Lambda instance has one destination, fixed at its cold start; the Segment function above, which
// gets its settings with every call, is where destinations could mix.
describe("Lambda", () => {
  beforeEach(() => {
    vi.stubEnv("REFINER_API_KEY", API_KEY);
    vi.stubEnv("REFINER_API_BASE_URL", refiner.url);
    captureConsole();
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
  });

  it("segment sends the same identify once per instance, and every one with 0", async () => {
    const lambda = loadLambda();
    await lambda.segment(identify({ plan: "trial" }));
    await lambda.segment(identify({ plan: "trial" }));
    expect(sent()).toHaveLength(1);

    vi.stubEnv("REFINER_SKIP_UNCHANGED_MINUTES", "0");
    const everyOne = loadLambda();
    await everyOne.segment(identify({ plan: "trial" }));
    await everyOne.segment(identify({ plan: "trial" }));
    expect(sent()).toHaveLength(3);
  });

  it("segment sends a changed trait, the retry of a failure, and an identify after a delete", async () => {
    const lambda = loadLambda();
    await lambda.segment(identify({ plan: "trial" }));
    await lambda.segment(identify({ plan: "pro" }));
    refiner.queue({ status: 503 });
    const failed = await settle(lambda.segment(identify({ plan: "team" })));
    expect(failed.error?.name).toBe("RetryError");
    await lambda.segment(identify({ plan: "team" }));
    await lambda.segment({ type: "delete", userId: "u1" });
    await lambda.segment(identify({ plan: "team" }));
    expect(refiner.requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      "POST /identify-user",
      "POST /identify-user",
      "POST /identify-user",
      "POST /identify-user",
      "DELETE /contact?id=u1",
      "POST /identify-user",
    ]);
  });

  it("the queue consumer sends the same identify once across batches", async () => {
    vi.stubEnv("REFINER_QUEUE_URL", "http://127.0.0.1:9/000000000000/unused.fifo");
    vi.stubEnv("AWS_REGION", "us-east-1");
    const lambda = loadLambda();
    const record = (messageId: string, traits: Record<string, unknown>) => ({
      messageId,
      receiptHandle: messageId,
      body: JSON.stringify(identify(traits)),
      attributes: { ApproximateReceiveCount: "1", MessageGroupId: "u1" },
    });
    const batch = (records: ReturnType<typeof record>[]) =>
      lambda.deliver({ Records: records } as unknown as Parameters<typeof lambda.deliver>[0]);
    await expect(batch([record("m1", { plan: "trial" })])).resolves.toEqual({
      batchItemFailures: [],
    });
    await expect(batch([record("m2", { plan: "trial" })])).resolves.toEqual({
      batchItemFailures: [],
    });
    await batch([record("m3", { plan: "pro" })]);
    expect(sent()).toEqual([
      { plan: "trial", id: "u1" },
      { plan: "pro", id: "u1" },
    ]);
  });
});

describe("memory", () => {
  // Bounded whatever the traffic: ten times the bound in distinct contacts (at full size, a map of
  // 100,000 over 1,000,000), measured after full garbage collections.
  const BOUND = size(20_000, 100_000);
  it(`holds at most its bound over ${BOUND * 10} distinct contacts, in bounded heap`, async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const heap = () => {
      for (let i = 0; i < 3; i++) gc();
      return process.memoryUsage().heapUsed;
    };
    const memory = mapMemory(BOUND);
    const before = heap();
    let held = 0;
    for (let i = 0; i < BOUND * 10; i++) {
      await memory.store(
        `dest|id:user-${i}`,
        { "": { hash: "0123456789abcdef0123456789", until: i } },
        60_000,
      );
      // The contact stored BOUND / 2 - 1 stores ago (i counts from 0).
      if ((await memory.load(`dest|id:user-${i - (BOUND / 2 - 1)}`)) !== undefined) held += 1;
    }
    let remembered = 0;
    for (let i = 0; i < BOUND * 10; i += 1) {
      if ((await memory.load(`dest|id:user-${i}`)) !== undefined) remembered += 1;
    }
    const grown = heap() - before;
    expect(remembered).toBeLessThanOrEqual(BOUND);
    expect(remembered).toBeGreaterThanOrEqual(BOUND / 2);
    // The latest half of the bound is always remembered.
    expect(held).toBe(BOUND * 10 - (BOUND / 2 - 1));
    // About 400 bytes a contact held (MAX_CONTACTS' 40 MB at 100,000), not per contact seen.
    expect(grown).toBeLessThan(BOUND * 400);
  }, 60_000);
});
