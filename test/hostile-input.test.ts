// What a stranger can send, through the function and the Lambda: trait keys of 30,000 capitals (anyone with
// a site's public write key can put one in an event), an unauthenticated 5 MB body at the webhook,
// and messageIds longer than DynamoDB's key. Costs are compared as ratios of this process's CPU
// time against the same work at ordinary sizes, in the same test, never against a clock.

import { createHash } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { firstElement } from "../lib/runtimes/webhook.ts";
import { normalizeTraits } from "../lib/segment/traits.ts";
import { parseSettings } from "../lib/settings.ts";
import { localTableEnvironment, startLocalTable } from "../local/dynamodb-emulator.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { API_KEY } from "./support/fixtures.ts";
import { captureConsole, loadLambda, sign, stubEnvs, webhookPost } from "./support/lambda.ts";
import { loadSegmentFunction } from "./support/segment-function.ts";

const TOKEN = "wht_4d1f9c2a7b8e3f6a0c5d9e2b7a4f1c8e";
const SECRET = "whsec_segment_shared_8f3a2b1c9d";

let refiner: RefinerEmulator;
let logged: unknown[][];

beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
});
afterAll(() => refiner.close());
beforeEach(() => {
  refiner.reset();
  logged = captureConsole();
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

/** An identify per user, each with one trait key of `keyLength` capitals and an ordinary trait. */
function identifies(count: number, keyLength: number) {
  return Array.from({ length: count }, (_, user) => ({
    type: "identify",
    userId: `user-${user}`,
    traits: { [`${"K".repeat(keyLength - 1)}${user % 10}`]: true, plan: "pro" },
  }));
}

/** The 30,000-capital keys as Refiner gets them: cut to 255 characters, then snake_cased. */
const KEY = "k".repeat(255);

/** Refiner's request bodies by the contact's id (requests run side by side, in any order). */
const bodiesById = () =>
  new Map(refiner.requests.map(({ body }) => [(body as { id: string }).id, body]));

/**
 * The process's CPU time for `heavy` over `light`: after a warm-up call of each, `rounds` rounds of
 * `calls` calls a side, taking turns (who goes first alternates), totals compared.
 */
async function cpuRatio(
  heavy: () => Promise<unknown>,
  light: () => Promise<unknown>,
  { rounds = 6, calls = 3 } = {},
) {
  const cpu = async (run: () => Promise<unknown>) => {
    const started = process.cpuUsage();
    for (let call = 0; call < calls; call++) await run();
    const { user, system } = process.cpuUsage(started);
    return user + system;
  };
  await heavy();
  await light();
  let heavyCpu = 0;
  let lightCpu = 0;
  for (let round = 0; round < rounds; round++) {
    if (round % 2) lightCpu += await cpu(light);
    heavyCpu += await cpu(heavy);
    if (!(round % 2)) lightCpu += await cpu(light);
  }
  return heavyCpu / lightCpu;
}

describe("trait keys of 30,000 capitals", () => {
  it("cost the pasted script's onBatch of 10 events little more than 30-character keys", async () => {
    const fn = loadSegmentFunction();
    const settings = { apiKey: API_KEY, apiBaseUrl: refiner.url, skipUnchangedMinutes: "0" };
    const long = identifies(10, 30_000);
    const short = identifies(10, 30);

    const items = await fn.handlers.onBatch(long, settings);
    expect(items).toEqual(long.map(() => ({ status: 200 })));
    // Cut to 255 characters as written, then snake_cased (docs/mapping.md).
    expect(bodiesById()).toEqual(
      new Map(long.map(({ userId }) => [userId, { [KEY]: true, plan: "pro", id: userId }])),
    );

    const ratio = await cpuRatio(
      () => fn.handlers.onBatch(long, settings),
      () => fn.handlers.onBatch(short, settings),
    );
    // The quadratic rule took 1.3 s a key here, a thousand times the batch; a linear one over all
    // 30,000 characters still took about 8 times (2.3 ms a key). Measured here: 0.7 to 0.8.
    expect(ratio).toBeLessThan(3);
    // CPU-bound by design: a loaded machine may take longer than the default 15 s.
  }, 60_000);

  it("cost a webhook batch of 20 little more than 30-character keys", async () => {
    stubEnvs({
      REFINER_API_KEY: API_KEY,
      REFINER_API_BASE_URL: refiner.url,
      REFINER_SKIP_UNCHANGED_MINUTES: "0",
      SEGMENT_WEBHOOK_TOKEN: TOKEN,
      SEGMENT_SHARED_SECRET: "",
    });
    const lambda = loadLambda();
    const post = (events: unknown[]) =>
      lambda.webhook(webhookPost(JSON.stringify(events), { authorization: `Bearer ${TOKEN}` }));
    const long = identifies(20, 30_000);
    const short = identifies(20, 30);

    const answer = await post(long);
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(String(answer.body))).toEqual({ results: long.map(() => ({ status: 200 })) });
    expect(refiner.requests).toHaveLength(20);
    expect(bodiesById()).toEqual(
      new Map(long.map(({ userId }) => [userId, { [KEY]: true, plan: "pro", id: userId }])),
    );

    // The long batch is 600 KB of JSON to decode and parse, against 2 KB. Measured here: 1.3 to 1.5.
    expect(
      await cpuRatio(
        () => post(long),
        () => post(short),
      ),
    ).toBeLessThan(4);
    // CPU-bound by design: a loaded machine may take longer than the default 15 s.
  }, 60_000);
});

describe("an unauthenticated 5 MB body", () => {
  const body = "[".repeat(5 * 1024 * 1024);
  /** Calls of JSON.parse that were given the body (or any text of 1 MB or more). */
  const parsedBig = (parse: { mock: { calls: unknown[][] } }) =>
    parse.mock.calls.filter(([text]) => typeof text === "string" && text.length >= 1024 * 1024);

  it.each([
    ["no token and no signature", {}, "/"],
    ["a wrong Bearer token", { authorization: "Bearer wht_guessed" }, "/"],
    ["a wrong token in the URL", {}, "/?token=wht_guessed"],
    ["a wrong X-Signature", { "x-signature": sign("guessed", body) }, "/"],
    ["a signature of a first event that never ends", { "x-signature": sign(SECRET, "[") }, "/"],
  ])("gets 401 without being parsed: %s", async (_, headers, url) => {
    stubEnvs({
      REFINER_API_KEY: API_KEY,
      SEGMENT_WEBHOOK_TOKEN: TOKEN,
      SEGMENT_SHARED_SECRET: SECRET,
    });
    const lambda = loadLambda();
    const parse = vi.spyOn(JSON, "parse");
    const answer = await lambda.webhook(webhookPost(body, headers, { url }));
    expect(answer.statusCode).toBe(401);
    expect(parsedBig(parse)).toEqual([]);
    expect(refiner.requests).toHaveLength(0);
  });

  it("is parsed once authenticated: the spy sees a body that size then", async () => {
    stubEnvs({ REFINER_API_KEY: API_KEY, SEGMENT_WEBHOOK_TOKEN: TOKEN, SEGMENT_SHARED_SECRET: "" });
    const lambda = loadLambda();
    const parse = vi.spyOn(JSON, "parse");
    // 1.2 MB of JSON that parses fast: 600,001 numbers, too many events for one batch.
    const numbers = `[${"1,".repeat(600_000)}1]`;
    const answer = await lambda.webhook(webhookPost(numbers, { authorization: `Bearer ${TOKEN}` }));
    expect(answer.statusCode).toBe(413);
    expect(parsedBig(parse)).toHaveLength(1);
  });
});

describe("firstElement: a batch's first event as Segment signed it", () => {
  const first = (text: string) => {
    const bytes = firstElement(Buffer.from(text));
    return bytes === undefined ? undefined : Buffer.from(bytes).toString("utf8");
  };

  it("is JSON.stringify of the first event, strings holding brackets, quotes and other scripts", () => {
    const events = [
      { type: "track", event: 'a "]}" ,[{', properties: { path: "\\", name: "prénom 🙂" } },
      { type: "page" },
    ];
    expect(first(JSON.stringify(events))).toBe(JSON.stringify(events[0]));
    expect(first(JSON.stringify([[1, [2]], 3]))).toBe("[1,[2]]");
    expect(first('["x\\"]",1]')).toBe('"x\\"]"');
    expect(first(" [ 12 , 3]")).toBe("12");
    expect(first("[true]")).toBe("true");
  });

  it.each([
    ["an empty array", "[]"],
    ["an object", '{"type":"track"}'],
    ["an unclosed event", '[{"type":"track"'],
    ["unending nesting", "[".repeat(100_000)],
    ["an unclosed string", '["abc'],
    ["nothing", ""],
  ])("is undefined for %s", (_, text) => {
    expect(first(text)).toBeUndefined();
  });
});

describe("messageIds and types of any length", () => {
  it("are keyed in the table of delivered ids by a digest beyond 512 characters, and cut in logs", async () => {
    const table = await startLocalTable();
    try {
      stubEnvs({
        ...localTableEnvironment(table),
        REFINER_API_KEY: API_KEY,
        REFINER_API_BASE_URL: refiner.url,
      });
      const longId = `m-${"x".repeat(3000)}`;
      const events = [
        { type: "track", userId: "u1", event: "Signed Up", messageId: longId },
        { type: "track", userId: "u2", event: "Signed Up", messageId: "m-ordinary" },
        { type: "track", userId: "u3", event: "Signed Up", messageId: `m-\ud800-lone` },
        { type: "refund".repeat(1000), userId: "u4", messageId: `m-${"y".repeat(10_000)}` },
      ];
      const lambda = loadLambda();
      const context = { awsRequestId: "r-long-ids", getRemainingTimeInMillis: () => 5900 };
      const results = await lambda.segment(events, context);
      expect(results).toEqual([
        { status: 200 },
        { status: 200 },
        { status: 200 },
        { status: 400, errormessage: expect.stringContaining("Refiner does not support") },
      ]);
      expect(refiner.requests).toHaveLength(3);
      const digest = (id: string) =>
        `sha256:${createHash("sha256").update(id, "utf8").digest("hex")}`;
      expect([...(await table.items()).keys()].sort()).toEqual(
        [digest(longId), digest("m-\ud800-lone"), "m-ordinary"].sort(),
      );
      // Nothing about the table was logged: the lookup and the writes went through.
      const ours = logged.filter(
        ([, fields]) => (fields as { requestId?: string }).requestId === "r-long-ids",
      );
      expect(ours).toEqual([
        [
          "error",
          {
            requestId: "r-long-ids",
            message: "Event rejected for Refiner",
            outcome: "unsupported",
            error: expect.stringContaining("Refiner does not support"),
            type: `${"refund".repeat(16)}refu… (6000 characters)`,
            messageId: `m-${"y".repeat(98)}… (10002 characters)`,
          },
        ],
      ]);

      // Another instance (an empty memory) finds all three in the table and sends nothing again.
      const again = await loadLambda().segment(events.slice(0, 3));
      expect(again).toEqual([{ status: 200 }, { status: 200 }, { status: 200 }]);
      expect(refiner.requests).toHaveLength(3);
    } finally {
      await table.stop();
    }
  });
});

describe("a setting of hostile size", () => {
  it("apiBaseUrl with a run of 30,000 slashes costs about 4 times one of 7,500", () => {
    // Trailing slashes were trimmed by a regex that rescanned the run from each slash: 16 times
    // the CPU for 4 times the length (24 ms, then 377 ms).
    const base = (slashes: number) => `https://api.refiner.io/v1${"/".repeat(slashes)}x//`;
    const cpu = (slashes: number) => {
      const started = process.cpuUsage();
      for (let i = 0; i < 5; i++) parseSettings({ apiKey: API_KEY, apiBaseUrl: base(slashes) });
      const { user, system } = process.cpuUsage(started);
      return user + system;
    };
    expect(parseSettings({ apiKey: API_KEY, apiBaseUrl: base(30_000) })).toMatchObject({
      ok: true,
      settings: { apiBaseUrl: `https://api.refiner.io/v1${"/".repeat(30_000)}x` },
    });
    let short = 0;
    let long = 0;
    for (let round = 0; round < 4; round++) {
      short += cpu(7_500);
      long += cpu(30_000);
    }
    expect(long / short).toBeLessThan(8);
  });

  it("a traitAllowList of 1,000 entries costs an event of 5,000 keys about what one of 10 does", () => {
    // Every key was compared with every entry: 22 ms an event for 1,000 entries, a hundred times 10.
    const traits = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i]));
    const options = (entries: number) => ({
      preserveKeys: false,
      selection: {
        rename: new Map<string, string>(),
        allow: new Set(Array.from({ length: entries }, (_, i) => `trait_${i}.nested`)),
        deny: new Set<string>(),
      },
    });
    const [many, few] = [options(1000), options(10)];
    const cpu = (chosen: ReturnType<typeof options>) => {
      const started = process.cpuUsage();
      for (let i = 0; i < 5; i++) normalizeTraits(traits, chosen);
      const { user, system } = process.cpuUsage(started);
      return user + system;
    };
    expect(normalizeTraits({ ...traits, trait_7: { nested: 1, other: 2 } }, many)).toStrictEqual({
      trait_7_nested: 1,
    });
    let manyCpu = 0;
    let fewCpu = 0;
    for (let round = 0; round < 4; round++) {
      manyCpu += cpu(many);
      fewCpu += cpu(few);
    }
    expect(manyCpu / fewCpu).toBeLessThan(4);
  });
});
