// onBatch coalescing, concurrency and throttling, through the function built from
// source, against the emulator.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { API_KEY, answerOnceOpen } from "./support/fixtures.ts";
import { loadSegmentFunction, type SegmentFunction } from "./support/segment-function.ts";

let refiner: RefinerEmulator;
let fn: SegmentFunction;
let settings: Record<string, unknown>;

beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
  settings = { apiKey: API_KEY, apiBaseUrl: refiner.url };
});
// A worker of its own for each test: the tests send the same messageIds again and again, which one
// worker would rightly send once (it remembers what Refiner took).
beforeEach(() => {
  fn = loadSegmentFunction();
});
afterAll(() => refiner.close());
beforeEach(() => refiner.reset());

const at = (minute: number) => `2026-11-02T09:${String(minute).padStart(2, "0")}:00.000Z`;
const identify = (
  userId: string | undefined,
  minute: number,
  traits: object,
  extra: object = {},
) => ({
  type: "identify",
  userId,
  timestamp: at(minute),
  traits,
  ...extra,
});
const group = (userId: string, minute: number, groupId: string, traits: object) => ({
  type: "group",
  userId,
  timestamp: at(minute),
  groupId,
  traits,
});
const track = (userId: string, event: string, extra: object = {}) => ({
  type: "track",
  userId,
  event,
  ...extra,
});

const batch = (events: unknown[]) => fn.handlers.onBatch(events, settings) as Promise<unknown[]>;
const requestLines = () => refiner.requests.map((r) => `${r.method} ${r.path}`);

describe("coalescing", () => {
  it("merges a contact's identifies and groups in arrival order, whatever their timestamps, and gives another account its own request", async () => {
    const events = [
      identify("u1", 3, { plan: "pro", seats: 5 }),
      group("u1", 4, "g2", { name: "Globex" }),
      identify("u2", 1, { plan: "trial" }),
      identify("u1", 1, { plan: "trial", firstName: "Ann" }),
      group("u1", 2, "g1", { name: "Initech" }),
      identify("u1", 2, { seats: 3, lastName: "Lee" }),
    ];
    const result = await batch(events);
    expect(result).toEqual(events.map(() => ({ status: 200 })));
    expect(requestLines()).toEqual([
      "POST /identify-user",
      "POST /identify-user",
      "POST /identify-user",
    ]);
    const bodies = refiner.requests.map((r) => r.body as Record<string, unknown>);
    // u1's two requests in order: Globex with its traits, then Initech, where u1 ends.
    expect(bodies.filter((body) => body.id === "u1")).toStrictEqual([
      {
        plan: "trial",
        seats: 5,
        first_name: "Ann",
        account: { name: "Globex", id: "g2" },
        id: "u1",
      },
      { seats: 3, last_name: "Lee", account: { name: "Initech", id: "g1" }, id: "u1" },
    ]);
    expect(bodies.find((body) => body.id === "u2")).toStrictEqual({ plan: "trial", id: "u2" });
  });

  it("gives every merged event the merged request's outcome", async () => {
    refiner.queue({ status: 422, body: { message: "Trait plan is too long" } });
    const result = await batch([
      identify("u1", 1, { plan: "x" }),
      track("u2", "Other"),
      group("u1", 2, "g1", {}),
    ]);
    const rejected = {
      status: 400,
      errormessage: expect.stringContaining("Trait plan is too long"),
    };
    expect(result).toEqual([rejected, { status: 200 }, rejected]);
  });

  it("keys a contact by email only when it has no userId", async () => {
    await batch([
      identify(undefined, 1, { email: "ann@example.com", plan: "trial" }),
      identify(undefined, 2, { email: "ann@example.com", seats: 2 }),
      identify("u1", 3, { email: "ann@example.com", plan: "pro" }),
    ]);
    expect(refiner.requests.map((r) => r.body)).toEqual(
      expect.arrayContaining([
        { plan: "trial", seats: 2, email: "ann@example.com" },
        { plan: "pro", id: "u1", email: "ann@example.com" },
      ]),
    );
    expect(refiner.requests).toHaveLength(2);
  });

  it("takes the email of the contact's last identify to arrive, whatever the timestamps", async () => {
    await batch([
      identify("u1", 2, { email: "first@example.com" }),
      identify("u1", 1, { email: "last@example.com" }),
    ]);
    expect(refiner.requests.map((r) => r.body)).toEqual([{ id: "u1", email: "last@example.com" }]);
  });

  it("sends events that repeat a messageId once, and gives each copy the outcome", async () => {
    refiner.queue({ status: 503 });
    const copy = track("u1", "Order Completed", { messageId: "m-1" });
    const result = await batch([
      copy,
      track("u2", "Other", { messageId: "m-2" }),
      { ...copy },
      { ...copy },
    ]);
    expect(requestLines()).toEqual(["POST /track-event", "POST /track-event"]);
    const retried = { status: 500, errormessage: expect.stringContaining("503") };
    expect(result).toEqual([retried, { status: 200 }, retried, retried]);
  });

  it("holds back a contact's later events while an earlier one is to be retried", async () => {
    refiner.respond((request) =>
      (request.body as { plan?: string }).plan === "trial" ? { status: 503 } : undefined,
    );
    const result = await batch([
      identify("u1", 1, { plan: "trial" }),
      track("u1", "Signed Up"),
      track("u1", "Invited"),
      track("u2", "Signed Up"),
    ]);
    expect(requestLines()).toEqual(["POST /identify-user", "POST /track-event"]);
    expect(refiner.requests[1]?.body).toEqual({ event: "Signed Up", id: "u2" });
    const waits = {
      status: 500,
      errormessage: expect.stringMatching(/^Not sent: an earlier event of this contact waits/),
    };
    expect(result).toEqual([
      { status: 500, errormessage: expect.stringContaining("503") },
      waits,
      waits,
      { status: 200 },
    ]);
  });

  it("identifies contacts before tracking their events", async () => {
    await batch([track("u1", "Signed Up"), identify("u1", 1, { plan: "trial" })]);
    expect(requestLines()).toEqual(["POST /identify-user", "POST /track-event"]);
  });

  it("keeps a delete between what came before it and what came after", async () => {
    await batch([
      identify("u1", 1, { plan: "trial" }),
      { type: "delete", userId: "u1" },
      identify("u1", 3, { plan: "pro" }),
      track("u1", "Signed Up Again"),
    ]);
    expect(requestLines()).toEqual([
      "POST /identify-user",
      "DELETE /contact?id=u1",
      "POST /identify-user",
      "POST /track-event",
    ]);
    expect(refiner.requests[2]?.body).toStrictEqual({ plan: "pro", id: "u1" });
  });
});

describe("concurrency and back-off", () => {
  it("never has more than 8 requests in flight", async () => {
    answerOnceOpen(refiner, 8);
    const events = Array.from({ length: 60 }, (_, i) => track(`u${i}`, "Viewed"));
    const result = await batch(events);
    expect(result).toEqual(events.map(() => ({ status: 200 })));
    expect(refiner.requests).toHaveLength(60);
    expect(refiner.maxInFlight).toBe(8);
  });

  it("stops sending once Refiner answers 429, and answers the rest 429 with Retry-After", async () => {
    refiner.respond((request) =>
      (request.body as { event: string }).event === "E0"
        ? { status: 429, body: { message: "Too Many Attempts." }, headers: { "retry-after": "7" } }
        : { status: 201, delayMs: 50 },
    );
    const events = Array.from({ length: 30 }, (_, i) => track(`u${i}`, `E${i}`));
    const result = (await batch(events)) as { status: number; errormessage?: string }[];

    expect(refiner.requests).toHaveLength(8);
    expect(result[0]).toEqual({
      status: 429,
      errormessage: expect.stringContaining("Retry-After: 7"),
    });
    expect(result.slice(1, 8)).toEqual(Array(7).fill({ status: 200 }));
    for (const item of result.slice(8)) {
      expect(item).toEqual({
        status: 429,
        errormessage: expect.stringMatching(/^Not sent: .*Retry-After: 7/),
      });
    }
  });
});
