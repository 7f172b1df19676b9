// The rule above every optimization (docs/architecture.md): Refiner ends exactly as if each event
// had been sent alone, in arrival order. Random sequences of identify, group, track, page, screen
// and delete calls for three contacts and three accounts, with repeated and changed traits, events
// without a messageId and whole batches sent again, go through each door, spread over three
// instances of it (separate loads, separate memories); what the Refiner emulator received must
// leave the same state as the reference (test/support/refiner-model.ts), which sends each event
// alone: every contact's traits, email and account, every account's traits, every count of a
// contact's event, every delete.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { parseSettings } from "../lib/settings.ts";
import {
  type LocalTable,
  localTableEnvironment,
  startLocalTable,
} from "../local/dynamodb-emulator.ts";
import { startPoller } from "../local/poller.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { type LocalQueues, localSqsEnvironment, startLocalQueues } from "../local/sqs-emulator.ts";
import { CLI } from "./support/cli.ts";
import { API_KEY } from "./support/fixtures.ts";
import { captureConsole, loadLambda, stubEnvs, webhookPost } from "./support/lambda.ts";
import { fold, received, reference } from "./support/refiner-model.ts";
import { loadSegmentFunction } from "./support/segment-function.ts";
import { size } from "./support/volume.ts";

const TOKEN = "wht_differential_5d1c08e7a3b94f26";

let refiner: RefinerEmulator;
let table: LocalTable;
let queues: LocalQueues;
beforeAll(async () => {
  [refiner, table] = await Promise.all([
    startRefinerEmulator({ apiKey: API_KEY }),
    startLocalTable(),
  ]);
});
afterAll(async () => {
  await Promise.all([refiner.close(), table.stop()]);
});
beforeEach(() => {
  logged = captureConsole();
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

// ---- the sequences -------------------------------------------------------------------------

const contact = fc.constantFrom("u1", "u2", "u3");
const account = fc.constantFrom("acctA", "acctB", "acctC");
const maybe = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });

const identify = fc.record({
  type: fc.constant("identify"),
  userId: contact,
  plan: maybe(fc.constantFrom("trial", "paid")),
  seats: maybe(fc.constantFrom(1, 2)),
  company: maybe(fc.record({ id: account, name: maybe(fc.constantFrom("Alpha", "Beta")) })),
});
const group = fc.record({
  type: fc.constant("group"),
  userId: contact,
  groupId: account,
  name: maybe(fc.constantFrom("Alpha", "Beta")),
  tier: maybe(fc.constantFrom(1, 2)),
});
const track = fc.record({
  type: fc.constant("track"),
  userId: contact,
  event: fc.constantFrom("Clicked", "Signed Up"),
});
const view = fc.record({
  type: fc.constantFrom("page", "screen"),
  userId: contact,
  name: fc.constantFrom("Home", "Pricing"),
});
const remove = fc.record({ type: fc.constant("delete"), userId: contact });
/** An event, and whether it has a messageId (most do). */
const event = fc.tuple(
  fc.oneof(
    { arbitrary: identify, weight: 4 },
    { arbitrary: group, weight: 3 },
    { arbitrary: track, weight: 3 },
    { arbitrary: view, weight: 1 },
    { arbitrary: remove, weight: 1 },
  ),
  fc.boolean().map((noId) => !noId),
  fc.boolean(),
);

type Abstract = Record<string, unknown> & { type: string; userId: string };
/** A batch to one instance, or Segment sending an earlier batch again (to the same instance). */
type Step =
  | { kind: "batch"; events: [Abstract, boolean, boolean][]; instance: number }
  | { kind: "resend"; of: number };
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant("batch" as const),
      events: fc.array(event as fc.Arbitrary<[Abstract, boolean, boolean]>, {
        minLength: 1,
        maxLength: 6,
      }),
      instance: fc.nat(2),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ kind: fc.constant("resend" as const), of: fc.nat(20) }), weight: 1 },
);
const sequence = fc.array(step, { minLength: 1, maxLength: 6 });

interface Batch {
  events: Record<string, unknown>[];
  instance: number;
}

let run = 0;
let logged: unknown[][] = [];
/**
 * Segment events for one run: names of the run's own (so that no memory of an earlier run, in the
 * shared table say, can play a part), messageIds where the generator gave one (an id of 1 in 4
 * events is absent), and the resends resolved to the batch they repeat.
 */
function materialize(steps: readonly Step[]): Batch[] {
  const prefix = `r${++run}`;
  let seq = 0;
  const batches: Batch[] = [];
  for (const each of steps) {
    if (each.kind === "resend") {
      const earlier = batches[each.of % Math.max(1, batches.length)];
      if (earlier) batches.push(earlier);
      continue;
    }
    const events = each.events.map(([abstract, withId, idLater]) => {
      seq += 1;
      const named = (id: unknown) => `${prefix}-${String(id)}`;
      const {
        type,
        userId,
        plan,
        seats,
        company,
        groupId,
        name,
        tier,
        event: trackName,
      } = abstract;
      const base: Record<string, unknown> = { type, userId: named(userId) };
      // 1 in 4 without a messageId: two coin flips.
      if (withId || idLater) base.messageId = `${prefix}-m${seq}`;
      if (type === "identify") {
        const co = company as { id: string; name?: string } | undefined;
        base.traits = {
          ...(plan === undefined ? {} : { plan }),
          ...(seats === undefined ? {} : { seats }),
          ...(co ? { company: { ...co, id: named(co.id) } } : {}),
        };
      } else if (type === "group") {
        base.groupId = named(groupId);
        base.traits = {
          ...(name === undefined ? {} : { name }),
          ...(tier === undefined ? {} : { tier }),
        };
      } else if (type === "track") base.event = trackName;
      else if (type === "page" || type === "screen") base.name = name;
      return base;
    });
    batches.push({ events, instance: each.instance });
  }
  return batches;
}

const settings = (() => {
  const parsed = parseSettings({ apiKey: API_KEY, apiBaseUrl: "http://127.0.0.1:1/v1" });
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.settings;
})();

/** Feeds the batches through a door, then compares Refiner's state with the reference. */
async function holds(feed: (batches: Batch[]) => Promise<void>, runs: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(sequence, async (steps) => {
      refiner.reset();
      const batches = materialize(steps);
      await feed(batches);
      const arrived = batches.flatMap((batch) => batch.events);
      expect(fold(received(refiner.requests))).toEqual(reference(arrived, settings));
    }),
    { numRuns: runs },
  );
}

// ---- the doors -----------------------------------------------------------------------------

const HANDLER: Record<string, string> = {
  identify: "onIdentify",
  group: "onGroup",
  track: "onTrack",
  page: "onPage",
  screen: "onScreen",
  delete: "onDelete",
};
const RUNS = size(12, 100);
const QUEUED_RUNS = size(3, 25);

describe("Refiner ends as if each event were sent alone, in arrival order", () => {
  it("through the Segment function's onBatch, on three workers with Segment's cache", async () => {
    await holds(async (batches) => {
      const workers = [0, 1, 2].map(() => loadSegmentFunction({ cache: true }).handlers);
      const fnSettings = { apiKey: API_KEY, apiBaseUrl: refiner.url };
      for (const { events, instance } of batches) {
        const items = await workers[instance]?.onBatch?.(events, fnSettings);
        expect(items).toEqual(events.map(() => ({ status: 200 })));
      }
    }, RUNS);
  }, 120_000);

  it("through the Segment function's single handlers, on three workers", async () => {
    await holds(async (batches) => {
      const workers = [0, 1, 2].map(() => loadSegmentFunction({ cache: true }).handlers);
      const fnSettings = { apiKey: API_KEY, apiBaseUrl: refiner.url };
      for (const { events, instance } of batches) {
        for (const each of events) {
          const name = HANDLER[String(each.type)] as keyof (typeof workers)[number];
          await workers[instance]?.[name]?.(each, fnSettings);
        }
      }
    }, RUNS);
  }, 120_000);

  describe.each([
    ["segment", false],
    ["webhook", false],
    ["segment", true],
    ["webhook", true],
  ] as const)("through Lambda %s (queued: %s), on three instances", (door, queued) => {
    it("and two deliver consumers when queued", async () => {
      // A queue of this test's own: a poller stopped by another test may have left a receive that
      // takes a message after it was cut off, hiding that message for its visibility timeout.
      queues = await startLocalQueues();
      stubEnvs({
        ...localTableEnvironment(table),
        REFINER_API_KEY: API_KEY,
        REFINER_API_BASE_URL: refiner.url,
        SEGMENT_WEBHOOK_TOKEN: TOKEN,
        SEGMENT_SHARED_SECRET: "",
        ...(queued
          ? {
              ...localSqsEnvironment(queues.endpoint),
              REFINER_QUEUE_URL: queues.queueUrl,
              REFINER_RATE_PER_MINUTE: "600000",
            }
          : {}),
      });
      // The consumers run for the whole test, as Lambda's event source mapping does: a poller
      // stopped between runs could leave a message taken by a receive that was cut off.
      const poller = queued
        ? startPoller({
            client: queues.client,
            queueUrl: queues.queueUrl,
            handlers: [loadLambda().deliver, loadLambda().deliver],
          })
        : undefined;
      try {
        await holds(
          async (batches) => {
            const instances = [0, 1, 2].map(() => loadLambda());
            for (const { events, instance } of batches) {
              const lambda = instances[instance];
              if (!lambda) continue;
              if (door === "segment") {
                await expect(lambda.segment(events)).resolves.toEqual(
                  events.map(() => ({ status: 200 })),
                );
              } else {
                const answer = await lambda.webhook(
                  webhookPost(JSON.stringify(events), { authorization: `Bearer ${TOKEN}` }),
                );
                expect(answer.statusCode).toBe(200);
              }
              // Segment's batches follow one another; each is delivered before the next arrives.
              if (queued) await emptied();
            }
          },
          queued ? QUEUED_RUNS : RUNS,
        );
      } finally {
        await poller?.stop();
        await queues.stop();
      }
    }, 300_000);
  });

  it("through send, every batch in one file in arrival order", async () => {
    await holds(async (batches) => {
      const dir = mkdtempSync(join(tmpdir(), "refiner-differential-"));
      try {
        const lines = batches.flatMap((batch) => batch.events.map((each) => JSON.stringify(each)));
        writeFileSync(join(dir, "events.ndjson"), `${lines.join("\n")}\n`);
        const code = await new Promise<number | null>((resolve) => {
          const child = spawn(
            process.execPath,
            [
              CLI,
              "send",
              "events.ndjson",
              "--api-key",
              API_KEY,
              "--api-base-url",
              refiner.url,
              "--rate",
              "600000",
            ],
            { cwd: dir, stdio: "ignore" },
          );
          child.on("close", resolve);
        });
        expect(code).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }, QUEUED_RUNS);
  }, 120_000);
});

/** Waits until the queue holds nothing, visible or in flight: every message was delivered. */
async function emptied(): Promise<void> {
  for (let tries = 0; tries < 2000; tries++) {
    if ((await queues.count(queues.queueUrl)) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const problems = logged.filter((line) => JSON.stringify(line).match(/warn|error/i));
  throw new Error(`The queue was not drained: ${JSON.stringify(problems.slice(0, 5))}`);
}
