// Any JSON value as an event must end in success or in one of Segment's error classes: anything
// else thrown is an event Segment silently discards. Property-based tests feed arbitrary, deep,
// wide and hostile-keyed events through every handler and onBatch of the function, built from
// source as handler.ts builds it, against the emulator.

import fc from "fast-check";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type RecordedRequest,
  type RefinerEmulator,
  startRefinerEmulator,
} from "../local/refiner-emulator.ts";
import { HANDLER_NAMES } from "../local/segment-runtime.ts";
import { API_KEY } from "./support/fixtures.ts";
import {
  EventNotSupported,
  loadSegmentFunction,
  RetryError,
  type SegmentFunction,
  ValidationError,
} from "./support/segment-function.ts";

let refiner: RefinerEmulator;
let fn: SegmentFunction;
/** Object.prototype's own names before any event ran here (the function shares this realm). */
const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype).sort().join();

beforeAll(async () => {
  refiner = await startRefinerEmulator();
  fn = loadSegmentFunction();
});
afterAll(() => refiner.close());

// The three classes the destination throws (docs/mapping.md, "Outcomes"); Segment's fourth,
// InvalidEventPayload, is never thrown, so it would hide a wrong class here.
const SEGMENT_ERRORS = [RetryError, ValidationError, EventNotSupported];
const RUNS = 200;

/** The call types Segment has a single-event handler for: its own list, `onIdentify` → identify. */
const CALL_TYPES = HANDLER_NAMES.filter((name) => name !== "onBatch").map((name) =>
  name.slice(2).toLowerCase(),
);

// ---- arbitraries ---------------------------------------------------------------------------

const hostileKey = fc.oneof(
  fc.constantFrom(
    "__proto__",
    "constructor",
    "prototype",
    "toString",
    "hasOwnProperty",
    "",
    " ",
    "💥🙂",
    "ID",
    "Email",
    "userId",
    "company",
    "account",
    "k".repeat(3000),
  ),
  fc.string({ maxLength: 12 }),
);

/** JSON values whose objects use hostile keys, nested a few levels. */
const hostileJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null)),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(hostileKey, tie("value"), { maxKeys: 6 }),
  ),
})).value;

/** A nested object `depth` levels deep (deeper than JSON.stringify can handle). */
const deepObject = fc.integer({ min: 1, max: 5000 }).map((depth) => {
  let value: Record<string, unknown> = { leaf: "bottom" };
  for (let i = 0; i < depth; i++) value = { level: value };
  return value;
});

const traits = fc.oneof(hostileJson, fc.dictionary(hostileKey, hostileJson, { maxKeys: 8 }));
const identity = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.integer(),
  fc.constant(undefined),
  hostileJson,
);

/** Segment-shaped events with every field optional and any type; sometimes no shape at all. */
const segmentLike = fc.record(
  {
    type: fc.oneof(fc.constantFrom(...CALL_TYPES, "", "refund"), hostileJson),
    userId: identity,
    anonymousId: fc.string({ maxLength: 8 }),
    groupId: identity,
    event: fc.oneof(fc.string({ maxLength: 20 }), hostileJson),
    name: fc.oneof(fc.string({ maxLength: 10 }), hostileJson),
    category: fc.oneof(fc.string({ maxLength: 10 }), hostileJson),
    messageId: fc.oneof(fc.constantFrom("m-1", "m-2"), fc.string({ maxLength: 8 })),
    timestamp: fc.oneof(
      fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
      fc.string({ maxLength: 10 }),
      fc.integer(),
    ),
    traits,
    properties: traits,
    context: fc.oneof(fc.record({ traits }), hostileJson),
  },
  { requiredKeys: [] },
);

/** Events that identify someone and name what they did, with hostile traits. */
const plausible = fc.record({
  type: fc.constantFrom(...CALL_TYPES.filter((type) => type !== "alias")),
  userId: fc.string({ minLength: 1, maxLength: 8 }),
  groupId: fc.string({ minLength: 1, maxLength: 8 }),
  event: fc.string({ minLength: 1, maxLength: 20 }),
  messageId: fc.constantFrom("m-1", "m-2", "m-3"),
  traits,
  properties: traits,
});

/** Events as Segment hands them over: parsed JSON, so `__proto__` is an own key. */
const event = fc
  .tuple(
    fc.oneof(
      { arbitrary: plausible, weight: 3 },
      { arbitrary: segmentLike, weight: 3 },
      { arbitrary: hostileJson, weight: 1 },
    ),
    fc.option(deepObject, { freq: 4 }),
  )
  .map(([value, deep]) => {
    const parsed = JSON.parse(JSON.stringify(value) ?? "null");
    if (deep && parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
      parsed.traits = { ...(typeof parsed.traits === "object" ? parsed.traits : {}), deep };
    }
    return parsed as unknown;
  });

const settings = fc.boolean().map((preserveTraitKeys) => ({
  apiKey: API_KEY,
  apiBaseUrl: refiner.url,
  preserveTraitKeys,
}));

// ---- checks --------------------------------------------------------------------------------

function isPrimitive(value: unknown): boolean {
  return (
    typeof value === "string" ||
    typeof value === "boolean" ||
    (typeof value === "number" && Number.isFinite(value))
  );
}

/** Flat bodies (but a one-level `account`), each naming the contact by id or email. */
function expectWellFormed(requests: RecordedRequest[]): void {
  for (const request of requests) {
    if (request.method === "DELETE") {
      expect(request.path).toMatch(/^\/contact\?(id|email)=.+/);
      continue;
    }
    const body = request.body as Record<string, unknown>;
    expect(typeof body).toBe("object");
    for (const [key, value] of Object.entries(body)) {
      if (key === "account") {
        expect(typeof value).toBe("object");
        for (const nested of Object.values(value as object)) expect(isPrimitive(nested)).toBe(true);
        expect(typeof (value as { id?: unknown }).id).toBe("string");
      } else {
        expect(isPrimitive(value)).toBe(true);
      }
    }
    const named =
      (typeof body.id === "string" && body.id !== "") ||
      (typeof body.email === "string" && body.email !== "");
    expect(named).toBe(true);
  }
}

function expectSegmentOutcome(error: unknown): void {
  if (error === undefined) return;
  expect(
    SEGMENT_ERRORS.some((cls) => error instanceof cls),
    `not a Segment error: ${String(error)}`,
  ).toBe(true);
}

// ---- properties ----------------------------------------------------------------------------

/**
 * Runs `property` over RUNS generated inputs, with the emulator cleared before each, and checks
 * the requests of each run. Also checks that the property does not hold vacuously: enough
 * generated events must be valid and sent.
 */
async function forAll<T>(
  inputs: fc.Arbitrary<T>,
  property: (input: T) => Promise<void>,
  minSent = RUNS / 10,
) {
  let sent = 0;
  await fc.assert(
    fc.asyncProperty(inputs, async (input) => {
      refiner.reset();
      // A worker of its own for each run: generated messageIds repeat across runs, and one worker
      // rightly sends a messageId once.
      fn = loadSegmentFunction();
      await property(input);
      expectWellFormed(refiner.requests);
      if (refiner.requests.length) sent += 1;
    }),
    { numRuns: RUNS },
  );
  expect(sent).toBeGreaterThanOrEqual(minSent);
}

describe("any JSON event", () => {
  const singles = HANDLER_NAMES.filter((name) => name !== "onBatch");
  // A call that never settles fails its test at the test's timeout. One that a busy machine makes
  // slow meets the handler's own 4.5 s deadline instead, a RetryError the property allows.

  it.each(singles)(
    "%s ends in success or a Segment error, sends only well-formed bodies, never hangs",
    async (name) => {
      await forAll(
        fc.tuple(event, settings),
        async ([value, config]) => {
          let error: unknown;
          try {
            await fn.handlers[name](value, config);
          } catch (caught) {
            error = caught;
          }
          expectSegmentOutcome(error);
        },
        name === "onAlias" ? 0 : RUNS / 10,
      );
    },
  );

  it("onBatch answers every event with a status, or rejects with a Segment error", async () => {
    await forAll(
      fc.tuple(fc.oneof(fc.array(event, { maxLength: 12 }), event), settings),
      async ([events, config]) => {
        let items: unknown;
        let error: unknown;
        try {
          items = await fn.handlers.onBatch(events, config);
        } catch (caught) {
          error = caught;
        }
        if (!Array.isArray(events)) {
          expect(error).toBeInstanceOf(ValidationError);
          return;
        }
        expect(error).toBeUndefined();
        expect(items).toHaveLength(events.length);
        for (const item of items as { status: unknown; errormessage?: unknown }[]) {
          expect([200, 400, 401, 429, 500]).toContain(item.status);
          if (item.status !== 200) expect(typeof item.errormessage).toBe("string");
        }
      },
    );
  });

  it("never touches a prototype", () => {
    const probe = {} as Record<string, unknown>;
    expect(Object.getOwnPropertyNames(Object.prototype).sort().join()).toBe(PROTOTYPE_NAMES);
    expect([probe.isAdmin, probe.polluted, Object.prototype.toString.name]).toEqual([
      undefined,
      undefined,
      "toString",
    ]);
  });
});

describe("extremes", () => {
  // The clock stands still: the 4.5 s deadline leaves the whole of it to the request, however long
  // a busy machine takes to map these events.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("flattens a 5,000-level object, sending what lies below the depth limit as JSON text", async () => {
    let deep: Record<string, unknown> = { leaf: "bottom" };
    for (let i = 0; i < 5000; i++) deep = { level: deep };
    refiner.reset();
    await fn.handlers.onIdentify(
      { userId: "u1", traits: { deep } },
      { apiKey: API_KEY, apiBaseUrl: refiner.url },
    );
    const body = refiner.requests[0]?.body as Record<string, string>;
    const [key, text] = Object.entries(body)[0] ?? [];
    expect(key).toBe(["deep", ...Array(7).fill("level")].join("_"));
    expect(text).toMatch(/^\{"level":\{"level":/);
    expect(text).toContain('"[nested too deep]"');
  });

  it("handles an event with 20,000 traits", async () => {
    const wide = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`trait${i}`, i]));
    refiner.reset();
    await fn.handlers.onIdentify(
      { userId: "u1", traits: wide },
      { apiKey: API_KEY, apiBaseUrl: refiner.url },
    );
    expect(Object.keys(refiner.requests[0]?.body as object)).toHaveLength(20_001);
  });
});
