// Unchanged identifies are skipped only where that keeps Refiner as sending each event alone would
// (lib/pipeline/unchanged.ts): at the queue's consumer, with what Refiner holds of each contact in
// the shared DynamoDB table. The Segment function, the direct Lambda and `send` send every one.
// And a door with a memory of messageIds sends a resent event once.

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { forward } from "../lib/pipeline/forward.ts";
import { mapMemory } from "../lib/pipeline/unchanged.ts";
import { boundedFetch, type Fetch } from "../lib/refiner/client.ts";
import { parseSettings, type Settings } from "../lib/settings.ts";
import {
  type LocalTable,
  localTableEnvironment,
  startLocalTable,
} from "../local/dynamodb-emulator.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { API_KEY } from "./support/fixtures.ts";
import { captureConsole, type LambdaHandlers, loadLambda, stubEnvs } from "./support/lambda.ts";
import { loadSegmentFunction } from "./support/segment-function.ts";
import { size } from "./support/volume.ts";

let refiner: RefinerEmulator;
beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
});
afterAll(() => refiner.close());
beforeEach(() => refiner.reset());

let seq = 0;
const identify = (traits: Record<string, unknown>, userId = "u1") => ({
  type: "identify",
  userId,
  traits,
  messageId: `m-${++seq}`,
});
const group = (groupId: string, traits: Record<string, unknown>, userId = "u1") => ({
  type: "group",
  userId,
  groupId,
  traits,
  messageId: `m-${++seq}`,
});
const sent = () => refiner.requests.map((request) => request.body);
const lines = () => refiner.requests.map((request) => `${request.method} ${request.path}`);

describe("where no instance sees another's memory, every identify is sent", () => {
  it.each([
    ["with Segment's cache", true],
    ["without a cache", false],
  ])("the Segment function %s sends the same identify every time", async (_, cache) => {
    const fn = loadSegmentFunction({ cache });
    const settings = { apiKey: API_KEY, apiBaseUrl: refiner.url, skipUnchangedMinutes: "60" };
    for (let i = 0; i < 3; i++) await fn.handlers.onIdentify(identify({ plan: "trial" }), settings);
    expect(sent()).toEqual([
      { plan: "trial", id: "u1" },
      { plan: "trial", id: "u1" },
      { plan: "trial", id: "u1" },
    ]);
  });

  it("Lambda segment sends the same identify every time", async () => {
    stubEnvs({ REFINER_API_KEY: API_KEY, REFINER_API_BASE_URL: refiner.url });
    captureConsole();
    try {
      const lambda = loadLambda();
      await lambda.segment(identify({ plan: "trial" }));
      await lambda.segment(identify({ plan: "trial" }));
      expect(sent()).toEqual([
        { plan: "trial", id: "u1" },
        { plan: "trial", id: "u1" },
      ]);
    } finally {
      vi.unstubAllEnvs();
      vi.restoreAllMocks();
    }
  });
});

describe("a batch Segment sends again to the same worker of the function", () => {
  it.each([
    ["with Segment's cache", true],
    ["without a cache", false],
  ])("%s: nothing twice; another worker, which cannot know, sends it again", async (_, cache) => {
    const fn = loadSegmentFunction({ cache });
    const settings = { apiKey: API_KEY, apiBaseUrl: refiner.url };
    const batch = [
      identify({ plan: "trial" }),
      { type: "track", userId: "u1", event: "Clicked", messageId: "resent-track" },
    ];
    await expect(fn.handlers.onBatch(batch, settings)).resolves.toEqual([
      { status: 200 },
      { status: 200 },
    ]);
    await expect(fn.handlers.onBatch(batch, settings)).resolves.toEqual([
      { status: 200 },
      { status: 200 },
    ]);
    await fn.handlers.onTrack(batch[1], settings);
    expect(lines()).toEqual(["POST /identify-user", "POST /track-event"]);

    await loadSegmentFunction({ cache }).handlers.onBatch(batch, settings);
    expect(lines()).toEqual([
      "POST /identify-user",
      "POST /track-event",
      "POST /identify-user",
      "POST /track-event",
    ]);
  });
});

describe("the queue consumer, with the shared table", () => {
  let table: LocalTable;
  let consumers: LambdaHandlers[];
  beforeEach(async () => {
    table = await startLocalTable();
    stubEnvs({
      ...localTableEnvironment(table),
      REFINER_API_KEY: API_KEY,
      REFINER_API_BASE_URL: refiner.url,
      // Only failures reach the queue (ChangeMessageVisibility); here none do.
      REFINER_QUEUE_URL: "http://127.0.0.1:9/000000000000/unused.fifo",
    });
    captureConsole();
    // Two instances, A and B, each with its own memory: only the table is shared.
    consumers = [loadLambda(), loadLambda()];
  });
  afterEach(async () => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
    await table.stop();
  });

  /** One SQS batch of these events (as single-event messages) to consumer A (0) or B (1). */
  const consume = async (consumer: 0 | 1, ...events: Record<string, unknown>[]) => {
    const Records = events.map((event) => ({
      messageId: String(event.messageId),
      receiptHandle: String(event.messageId),
      body: JSON.stringify(event),
      attributes: { ApproximateReceiveCount: "1", MessageGroupId: String(event.userId) },
    }));
    const answer = await consumers[consumer]?.deliver({ Records } as never);
    expect(answer).toEqual({ batchItemFailures: [] });
  };

  it("skips an identify Refiner already holds, whichever instance took it, and sends a change", async () => {
    await consume(0, identify({ plan: "trial" }));
    await consume(1, identify({ plan: "trial" }));
    await consume(1, identify({ plan: "paid" }));
    await consume(0, identify({ plan: "trial" }));
    await consume(0, identify({ plan: "trial" }));
    expect(sent()).toEqual([
      { plan: "trial", id: "u1" },
      { plan: "paid", id: "u1" },
      { plan: "trial", id: "u1" },
    ]);
  });

  it("sends an identify again after a delete on another instance", async () => {
    await consume(0, identify({ plan: "trial" }));
    await consume(1, { type: "delete", userId: "u1", messageId: "delete-1" });
    await consume(0, identify({ plan: "trial" }));
    expect(lines()).toEqual([
      "POST /identify-user",
      "DELETE /contact?id=u1",
      "POST /identify-user",
    ]);
  });

  it("sends the contact's move back to an account it left", async () => {
    const onAccount = (id: string) => identify({ plan: "trial", company: { id } });
    await consume(0, onAccount("acctA"));
    await consume(1, onAccount("acctB"));
    await consume(0, onAccount("acctA"));
    expect(sent()).toEqual([
      { plan: "trial", account: { id: "acctA" }, id: "u1" },
      { plan: "trial", account: { id: "acctB" }, id: "u1" },
      { plan: "trial", account: { id: "acctA" }, id: "u1" },
    ]);
  });

  it("always sends account traits: another contact may have changed them", async () => {
    await consume(0, group("acctA", { plan: "gold" }, "u1"));
    await consume(1, group("acctA", { plan: "silver" }, "u2"));
    await consume(0, group("acctA", { plan: "gold" }, "u1"));
    expect(sent()).toEqual([
      { account: { plan: "gold", id: "acctA" }, id: "u1" },
      { account: { plan: "silver", id: "acctA" }, id: "u2" },
      { account: { plan: "gold", id: "acctA" }, id: "u1" },
    ]);
  });

  it("knows the traits an identify and a group of one batch gave the contact", async () => {
    await consume(0, identify({ plan: "a" }));
    await consume(1, identify({ plan: "b" }), group("acctA", { name: "Alpha" }));
    await consume(0, identify({ plan: "a" }));
    await consume(1, identify({ plan: "a" }));
    expect(sent()).toEqual([
      { plan: "a", id: "u1" },
      { plan: "b", id: "u1" },
      { account: { name: "Alpha", id: "acctA" }, id: "u1" },
      { plan: "a", id: "u1" },
    ]);
  });
});

describe("the pipeline's skip, on a clock of the test's own", () => {
  const fetch = boundedFetch(globalThis.fetch as unknown as Fetch);
  const settings = (extra: Record<string, string> = {}): Settings => {
    const parsed = parseSettings({ apiKey: API_KEY, apiBaseUrl: refiner.url, ...extra });
    if (!parsed.ok) throw new Error(parsed.message);
    return parsed.settings;
  };
  let now = 1_000_000;
  const runtime = (sent = mapMemory()) => ({
    fetch,
    startedAt: Date.now(),
    sent,
    now: () => now,
  });

  it("trusts what Refiner holds for skipUnchangedMinutes after it last changed", async () => {
    const memory = mapMemory();
    const send = () => forward([identify({ plan: "trial" })], settings(), runtime(memory));
    await send();
    now += 59 * 60_000;
    await send();
    expect(sent()).toHaveLength(1);
    now += 2 * 60_000;
    await send();
    expect(sent()).toHaveLength(2);
  });

  it('sends every identify with skipUnchangedMinutes "0"', async () => {
    const memory = mapMemory();
    for (let i = 0; i < 3; i++) {
      await forward(
        [identify({ plan: "trial" })],
        settings({ skipUnchangedMinutes: "0" }),
        runtime(memory),
      );
    }
    expect(sent()).toHaveLength(3);
  });

  it("forgets a contact whose identify failed, since Refiner may have taken it anyway", async () => {
    const memory = mapMemory();
    await forward([identify({ plan: "trial" })], settings(), runtime(memory));
    refiner.queue({ status: 503 });
    const [failed] = await forward([identify({ plan: "pro" })], settings(), runtime(memory));
    expect(failed?.kind).toBe("retry");
    await forward([identify({ plan: "trial" })], settings(), runtime(memory));
    expect(sent()).toEqual([
      { plan: "trial", id: "u1" },
      { plan: "pro", id: "u1" },
      { plan: "trial", id: "u1" },
    ]);
  });

  it("keeps two destinations apart", async () => {
    const memory = mapMemory();
    const other = await startRefinerEmulator({ apiKey: "rfk_other_destination_key" });
    try {
      await forward([identify({ plan: "trial" })], settings(), runtime(memory));
      const otherSettings = parseSettings({
        apiKey: "rfk_other_destination_key",
        apiBaseUrl: other.url,
      });
      if (!otherSettings.ok) throw new Error(otherSettings.message);
      await forward([identify({ plan: "trial" })], otherSettings.settings, runtime(memory));
      expect(sent()).toHaveLength(1);
      expect(other.requests).toHaveLength(1);
    } finally {
      await other.close();
    }
  });

  it("rejects an invalid skipUnchangedMinutes by name", () => {
    expect(parseSettings({ apiKey: API_KEY, skipUnchangedMinutes: "soon" })).toEqual({
      ok: false,
      message:
        "The skipUnchangedMinutes setting must be a number of minutes (0 sends every identify and group).",
    });
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
      await memory.store(`dest|id:user-${i}`, {
        traits: { plan: "0123456789abcdef0123456789" },
        until: i,
      });
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
    // About 400 bytes a contact held, not per contact seen.
    expect(grown).toBeLessThan(BOUND * 400);
  }, 60_000);
});
