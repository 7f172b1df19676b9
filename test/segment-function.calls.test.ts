// Every call row of docs/mapping.md, through the function built from source
// (test/support/segment-function.ts).

import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import {
  API_KEY,
  expectRefinerRequest,
  loadEvent,
  onlyRequest,
  SEED_GROUP_REQUEST,
  SEED_IDENTIFY_REQUEST,
} from "./support/fixtures.ts";
import {
  EventNotSupported,
  loadSegmentFunction,
  type SegmentFunction,
  settle,
  ValidationError,
} from "./support/segment-function.ts";

let refiner: RefinerEmulator;
let handlers: SegmentFunction["handlers"];
let settings: Record<string, unknown>;

beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
  settings = { apiKey: API_KEY, apiBaseUrl: refiner.url };
});
// A worker of its own for each test: they send the same sample events, which one worker would
// rightly send once.
beforeEach(() => {
  handlers = loadSegmentFunction().handlers;
});
afterAll(() => refiner.close());
beforeEach(() => refiner.reset());

/** Expects the handler to reject with `cls` and send nothing; returns the message. */
async function rejectsWithoutSending(
  promise: Promise<unknown>,
  cls: typeof ValidationError | typeof EventNotSupported,
): Promise<string> {
  const { error } = await settle(promise);
  expect(error).toBeInstanceOf(cls);
  expect(refiner.requests).toHaveLength(0);
  return (error as Error).message;
}

describe("identify", () => {
  it("sends the seed identify as a contact with normalized traits, id and email", async () => {
    await expect(handlers.onIdentify(loadEvent("identify"), settings)).resolves.toBeUndefined();
    const request = onlyRequest(refiner);
    expectRefinerRequest(request, SEED_IDENTIFY_REQUEST);
    // id and email are written last, and anonymousId is never sent.
    expect(Object.keys(request.body as object).slice(-2)).toEqual(["id", "email"]);
    expect(JSON.stringify(request.body)).not.toContain("507f191e810c19729de860ea");
  });

  it("passes an Engage audience trait through unchanged, with the email from context.traits", async () => {
    await handlers.onIdentify(loadEvent("audience-entered"), settings);
    expectRefinerRequest(onlyRequest(refiner), {
      method: "POST",
      path: "/identify-user",
      body: { order_completed_last_30days: true, id: "userId123", email: "john.doe@example.com" },
    });
  });

  it("sends a numeric userId as its string", async () => {
    await handlers.onIdentify({ type: "identify", userId: 42, traits: {} }, settings);
    expect(onlyRequest(refiner).body).toStrictEqual({ id: "42" });
  });

  it("treats an empty userId as absent and identifies by email", async () => {
    await handlers.onIdentify(
      { type: "identify", userId: "", traits: { email: "a@example.com" } },
      settings,
    );
    expect(onlyRequest(refiner).body).toStrictEqual({ email: "a@example.com" });
  });

  it("prefers traits.email over context.traits.email, skipping empty ones", async () => {
    await handlers.onIdentify(
      { userId: "u1", traits: { email: "" }, context: { traits: { email: "ctx@example.com" } } },
      settings,
    );
    expect(onlyRequest(refiner).body).toStrictEqual({ id: "u1", email: "ctx@example.com" });
  });

  it("never lets a trait overwrite id or email, and does not send id/userId/email as traits", async () => {
    await handlers.onIdentify(
      {
        userId: "u1",
        traits: { id: "other", userId: "other", email: "a@example.com", Id: "x", plan: "pro" },
      },
      settings,
    );
    expect(onlyRequest(refiner).body).toStrictEqual({
      plan: "pro",
      id: "u1",
      email: "a@example.com",
    });
  });

  it("turns traits.company with an id into the account", async () => {
    await handlers.onIdentify(
      {
        userId: "u1",
        traits: { company: { id: 77, name: "Initech", employeeCount: 329 }, plan: "pro" },
      },
      settings,
    );
    expect(onlyRequest(refiner).body).toStrictEqual({
      plan: "pro",
      account: { name: "Initech", employee_count: 329, id: "77" },
      id: "u1",
    });
  });

  it("flattens traits.company without an id like any nested trait", async () => {
    await handlers.onIdentify({ userId: "u1", traits: { company: { name: "Initech" } } }, settings);
    expect(onlyRequest(refiner).body).toStrictEqual({ company_name: "Initech", id: "u1" });
  });

  it("rejects an identify with only an anonymousId, naming what is missing", async () => {
    const message = await rejectsWithoutSending(
      handlers.onIdentify(
        { type: "identify", anonymousId: "anon-1", traits: { plan: "pro" } },
        settings,
      ),
      ValidationError,
    );
    expect(message).toContain("needs a userId or an email");
    expect(message).toContain("traits.email");
  });

  it("rejects a userId that is neither a string nor a number", async () => {
    const message = await rejectsWithoutSending(
      handlers.onIdentify({ userId: { id: 1 }, traits: { email: "a@example.com" } }, settings),
      ValidationError,
    );
    expect(message).toContain("userId must be a string or a number");
  });
});

describe("trait normalization", () => {
  it("normalizes every MAPPING example in one identify", async () => {
    await handlers.onIdentify(
      {
        userId: "u1",
        traits: {
          firstName: "Ann",
          "total billed": 830,
          HTMLTitle: "Home",
          createdAt: "2026-01-01T00:00:00Z",
          order_completed_last_30days: false,
          "": "dropped",
          lastName: "camel",
          last_name: "snake wins",
          address: { city: "Paris", geo: { lat: 48.85 } },
          roles: ["admin", "owner"],
          orders: [{ sku: "A1" }],
          revenueCents: 9007199254740991,
          nickname: null,
        },
      },
      settings,
    );
    expect(onlyRequest(refiner).body).toStrictEqual({
      first_name: "Ann",
      total_billed: 830,
      html_title: "Home",
      created_at: "2026-01-01T00:00:00Z",
      order_completed_last_30days: false,
      last_name: "snake wins",
      address_city: "Paris",
      address_geo_lat: 48.85,
      roles: "admin, owner",
      orders: '[{"sku":"A1"}]',
      revenue_cents: "9007199254740991",
      id: "u1",
    });
  });

  it("keeps a plain `account` trait out of the body, since Refiner reads `account` as the account", async () => {
    await handlers.onIdentify(
      { userId: "u1", traits: { account: "Initech", accountTier: { level: 2 }, plan: "pro" } },
      settings,
    );
    expect(onlyRequest(refiner).body).toStrictEqual({
      account_tier_level: 2,
      plan: "pro",
      id: "u1",
    });
  });

  it("keeps keys as written with preserveTraitKeys", async () => {
    await handlers.onIdentify(
      { userId: "u1", traits: { firstName: "Ann", address: { postCode: "75001" } } },
      { ...settings, preserveTraitKeys: true },
    );
    expect(onlyRequest(refiner).body).toStrictEqual({
      firstName: "Ann",
      address_postCode: "75001",
      id: "u1",
    });
  });

  it("sends __proto__ and constructor keys as data without touching a prototype", async () => {
    const event = JSON.parse(
      '{"userId":"u1","traits":{"__proto__":{"isAdmin":true},"constructor":"c","toString":"t"}}',
    );
    await handlers.onIdentify(event, { ...settings, preserveTraitKeys: true });
    expect(onlyRequest(refiner).body).toStrictEqual({
      __proto___isAdmin: true,
      constructor: "c",
      toString: "t",
      id: "u1",
    });
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });
});

describe("group", () => {
  it("sends the seed Initech group as the contact's account", async () => {
    await handlers.onGroup(loadEvent("group"), settings);
    expectRefinerRequest(onlyRequest(refiner), SEED_GROUP_REQUEST);
  });

  it("keeps traits.email with the account and takes the contact's email from context.traits", async () => {
    await handlers.onGroup(
      {
        groupId: "g1",
        traits: { email: "billing@initech.example", id: "ignored" },
        context: { traits: { email: "peter@initech.example" } },
      },
      settings,
    );
    expect(onlyRequest(refiner).body).toStrictEqual({
      account: { email: "billing@initech.example", id: "g1" },
      email: "peter@initech.example",
    });
  });

  it("does not take the contact from the group's own traits.email", async () => {
    const message = await rejectsWithoutSending(
      handlers.onGroup({ groupId: "g1", traits: { email: "billing@initech.example" } }, settings),
      ValidationError,
    );
    expect(message).toContain("context.traits.email");
  });

  it("rejects a group without groupId", async () => {
    const message = await rejectsWithoutSending(
      handlers.onGroup({ userId: "u1", traits: { name: "Initech" } }, settings),
      ValidationError,
    );
    expect(message).toContain("groupId");
  });
});

describe("track", () => {
  it("sends the seed event's name and not its properties", async () => {
    await handlers.onTrack(loadEvent("track"), settings);
    expectRefinerRequest(onlyRequest(refiner), {
      method: "POST",
      path: "/track-event",
      body: { event: "Login Button Clicked", id: "userId123" },
    });
  });

  it("identifies by properties.email when there is no userId or context email", async () => {
    await handlers.onTrack(
      { event: "Signed Up", properties: { email: "p@example.com" } },
      settings,
    );
    expect(onlyRequest(refiner).body).toStrictEqual({ event: "Signed Up", email: "p@example.com" });
  });

  it("prefers context.traits.email to properties.email", async () => {
    await handlers.onTrack(
      {
        event: "Signed Up",
        properties: { email: "p@example.com" },
        context: { traits: { email: "c@example.com" } },
      },
      settings,
    );
    expect(onlyRequest(refiner).body).toStrictEqual({ event: "Signed Up", email: "c@example.com" });
  });

  it("rejects a track without an event name", async () => {
    const message = await rejectsWithoutSending(
      handlers.onTrack({ userId: "u1", event: "" }, settings),
      ValidationError,
    );
    expect(message).toContain("event name");
  });

  it("rejects a track with no userId and no email", async () => {
    const message = await rejectsWithoutSending(
      handlers.onTrack({ event: "Signed Up", anonymousId: "anon" }, settings),
      ValidationError,
    );
    expect(message).toContain("needs a userId or an email");
  });
});

describe("page and screen", () => {
  it("names the seed page from its category and name", async () => {
    await handlers.onPage(loadEvent("page"), settings);
    expectRefinerRequest(onlyRequest(refiner), {
      method: "POST",
      path: "/track-event",
      body: { event: "Viewed Docs Pricing Page", id: "userId123" },
    });
  });

  it.each([
    [{ name: "Pricing" }, "Viewed Pricing Page"],
    [{ category: "Docs" }, "Viewed Docs Page"],
    [{}, "Loaded a Page"],
    [{ properties: { name: "Pricing", category: "Docs" } }, "Viewed Docs Pricing Page"],
    [{ name: "Top", properties: { name: "Props" } }, "Viewed Top Page"],
  ])("names a page %j as %s", async (fields, expected) => {
    await handlers.onPage({ userId: "u1", ...fields }, settings);
    expect(onlyRequest(refiner).body).toStrictEqual({ event: expected, id: "u1" });
  });

  it("identifies a page or screen by context.traits.email, else properties.email", async () => {
    await handlers.onPage({ name: "Home", properties: { email: "p@example.com" } }, settings);
    await handlers.onScreen(
      {
        name: "Home",
        properties: { email: "p@example.com" },
        context: { traits: { email: "c@example.com" } },
      },
      settings,
    );
    expect(refiner.requests.map((request) => request.body)).toEqual([
      { event: "Viewed Home Page", email: "p@example.com" },
      { event: "Viewed Home Screen", email: "c@example.com" },
    ]);
  });

  it("names the seed screen", async () => {
    await handlers.onScreen(loadEvent("screen"), settings);
    expectRefinerRequest(onlyRequest(refiner), {
      method: "POST",
      path: "/track-event",
      body: { event: "Viewed Dashboard Screen", id: "userId123" },
    });
  });

  it.each([
    [{ category: "Settings", name: "Billing" }, "Viewed Settings Billing Screen"],
    [{}, "Loaded a Screen"],
  ])("names a screen %j as %s", async (fields, expected) => {
    await handlers.onScreen({ userId: "u1", ...fields }, settings);
    expect(onlyRequest(refiner).body).toStrictEqual({ event: expected, id: "u1" });
  });
});

describe("alias, delete and other types", () => {
  it("does not support alias", async () => {
    const message = await rejectsWithoutSending(
      handlers.onAlias({ type: "alias", userId: "u1", previousId: "anon" }, settings),
      EventNotSupported,
    );
    expect(message).toContain("alias");
  });

  it("deletes the seed contact by id", async () => {
    await expect(handlers.onDelete(loadEvent("delete"), settings)).resolves.toBeUndefined();
    expectRefinerRequest(onlyRequest(refiner), { method: "DELETE", path: "/contact?id=userId123" });
  });

  it("encodes the id in the delete query", async () => {
    await handlers.onDelete({ userId: "a&b=c d" }, settings);
    expect(onlyRequest(refiner).path).toBe("/contact?id=a%26b%3Dc%20d");
  });

  it("deletes by email when there is no userId", async () => {
    await handlers.onDelete({ context: { traits: { email: "gone@example.com" } } }, settings);
    expect(onlyRequest(refiner).path).toBe("/contact?email=gone%40example.com");
  });

  it("treats a 404 that is not about the key as already deleted", async () => {
    refiner.queue({ status: 404, body: { message: "Contact not found" } });
    await expect(handlers.onDelete({ userId: "u1" }, settings)).resolves.toBeUndefined();
  });

  it("rejects a 404 about the key on delete", async () => {
    refiner.queue({ status: 404, body: { message: "API key not valid or does not exist" } });
    const { error } = await settle(handlers.onDelete({ userId: "u1" }, settings));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error?.message).toContain("Refiner rejected the API key");
  });

  it("rejects an event that is not an object", async () => {
    for (const event of [null, "identify", 42, []]) {
      const message = await rejectsWithoutSending(
        handlers.onIdentify(event, settings),
        ValidationError,
      );
      expect(message).toContain("must be a JSON object");
    }
  });
});

describe("onBatch", () => {
  it("answers per event, in input order, dispatching on each event's type", async () => {
    const result = await handlers.onBatch(
      [
        loadEvent("identify"),
        { type: "alias", userId: "u1", previousId: "a" },
        loadEvent("track"),
        { userId: "u1", event: "No type" },
        { type: "refund", userId: "u1" },
        { type: "track", anonymousId: "anon", event: "X" },
        loadEvent("group"),
        loadEvent("delete"),
      ],
      settings,
    );
    expect(result).toEqual([
      { status: 200 },
      { status: 400, errormessage: expect.stringContaining("alias") },
      { status: 200 },
      { status: 400, errormessage: expect.stringContaining("has no type") },
      { status: 400, errormessage: expect.stringContaining('"refund"') },
      { status: 400, errormessage: expect.stringContaining("needs a userId or an email") },
      { status: 200 },
      { status: 200 },
    ]);
    // The identify and the group of userId123 became one request (see batch.test.ts).
    expect(refiner.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      "POST /identify-user",
      "POST /track-event",
      "DELETE /contact?id=userId123",
    ]);
  });

  it("rejects a batch that is not an array", async () => {
    await rejectsWithoutSending(handlers.onBatch({ type: "track" }, settings), ValidationError);
  });

  it("answers an empty batch with an empty list", async () => {
    await expect(handlers.onBatch([], settings)).resolves.toEqual([]);
  });
});
