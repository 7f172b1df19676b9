// What reaches Refiner, as the user chooses it (docs/mapping.md, "Settings"): trait renames, allow
// and deny lists, the event allow list and page views off. Through the function and the Lambda
// handlers built from source, with the same settings as variables for the Lambda.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { API_KEY, expectRefinerRequest, loadEvent, onlyRequest } from "./support/fixtures.ts";
import { captureConsole, loadLambda, metricLines, stubEnvs } from "./support/lambda.ts";
import {
  loadSegmentFunction,
  type SegmentFunction,
  settle,
  ValidationError,
} from "./support/segment-function.ts";

let refiner: RefinerEmulator;
let handlers: SegmentFunction["handlers"];
const base = () => ({ apiKey: API_KEY, apiBaseUrl: refiner.url });

beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
});
// A worker of its own for each test: they send the same sample events, which one worker would
// rightly send once.
beforeEach(() => {
  handlers = loadSegmentFunction().handlers;
});
afterAll(() => refiner.close());
beforeEach(() => refiner.reset());

const identify = {
  type: "identify",
  userId: "u-sel",
  messageId: "sel-1",
  traits: {
    email: "ada@example.com",
    firstName: "Ada",
    plan_name: "pro",
    ssn: "078-05-1120",
    address: { city: "London", zip: "NW1", geo: { lat: 51.5, lng: -0.1 } },
    company: { id: "acct-9", name: "Analytical", employees: 12, vat: "GB123" },
  },
};

async function sentIdentify(settings: Record<string, unknown>, event: unknown = identify) {
  await expect(handlers.onIdentify(event, { ...base(), ...settings })).resolves.toBeUndefined();
  return onlyRequest(refiner);
}

describe("trait renames", () => {
  it("renames a trait as written and a dotted path, sending the new names as written", async () => {
    const request = await sentIdentify({
      traitMapping: { plan_name: "Plan", "address.city": "city", address: "home" },
      accountTraitMapping: { employees: "company_size" },
    });
    expectRefinerRequest(request, {
      method: "POST",
      path: "/identify-user",
      body: {
        first_name: "Ada",
        Plan: "pro",
        ssn: "078-05-1120",
        city: "London",
        home_zip: "NW1",
        home_geo_lat: 51.5,
        home_geo_lng: -0.1,
        account: { name: "Analytical", company_size: 12, vat: "GB123", id: "acct-9" },
        id: "u-sel",
        email: "ada@example.com",
      },
    });
  });

  it("renames group traits with the account mapping", async () => {
    await handlers.onGroup(loadEvent("group"), {
      ...base(),
      accountTraitMapping: { "total billed": "billed_usd", industry: "Sector" },
    });
    expect(onlyRequest(refiner).body).toEqual({
      account: {
        name: "Initech",
        Sector: "Technology",
        employees: 329,
        plan: "enterprise",
        billed_usd: 830,
        id: "0e8c78ea9d97a7b8185e8632",
      },
      id: "userId123",
    });
  });
});

describe("trait allow and deny lists", () => {
  it("sends only allowed traits, a dotted path alone or a key with everything below it", async () => {
    const request = await sentIdentify({ traitAllowList: ["plan_name", "address.city", "name"] });
    expect(request.body).toEqual({
      plan_name: "pro",
      address_city: "London",
      // The account's id always goes; its traits by the same list.
      account: { name: "Analytical", id: "acct-9" },
      id: "u-sel",
      email: "ada@example.com",
    });
  });

  it("lets a key on the allow list cover its nested ones", async () => {
    const request = await sentIdentify({ traitAllowList: ["address"] });
    expect(request.body).toEqual({
      address_city: "London",
      address_zip: "NW1",
      address_geo_lat: 51.5,
      address_geo_lng: -0.1,
      account: { id: "acct-9" },
      id: "u-sel",
      email: "ada@example.com",
    });
  });

  it("never sends a denied trait, and denies a nested object whole", async () => {
    const request = await sentIdentify({ traitDenyList: ["ssn", "address", "vat"] });
    expect(request.body).toEqual({
      first_name: "Ada",
      plan_name: "pro",
      account: { name: "Analytical", employees: 12, id: "acct-9" },
      id: "u-sel",
      email: "ada@example.com",
    });
    expect(JSON.stringify(request.body)).not.toContain("078-05-1120");
  });

  it("lets an Engage audience's own key through the allow list", async () => {
    const audience = {
      type: "identify",
      userId: "u-aud",
      traits: { order_completed_last_30days: true, lifetime_value: 340 },
      context: {
        personas: { computation_key: "order_completed_last_30days", computation_class: "audience" },
        traits: { email: "aud@example.com" },
      },
    };
    const request = await sentIdentify({ traitAllowList: ["plan_name"] }, audience);
    expect(request.body).toEqual({
      order_completed_last_30days: true,
      id: "u-aud",
      email: "aud@example.com",
    });
  });
});

describe("events", () => {
  it("sends only events on the event allow list, by their Refiner names; the rest succeed unsent", async () => {
    const settings = { ...base(), eventAllowList: ["Trial Started", "Viewed Pricing Page"] };
    const page = { type: "page", userId: "u1", name: "Pricing" };
    await expect(handlers.onPage(page, settings)).resolves.toBeUndefined();
    await expect(
      handlers.onTrack({ type: "track", userId: "u1", event: "Trial Started" }, settings),
    ).resolves.toBeUndefined();
    await expect(
      handlers.onTrack({ type: "track", userId: "u1", event: "Clicked Logo" }, settings),
    ).resolves.toBeUndefined();
    await expect(
      handlers.onPage({ type: "page", userId: "u1", name: "Docs" }, settings),
    ).resolves.toBeUndefined();
    expect(refiner.requests.map((request) => request.body)).toEqual([
      { event: "Viewed Pricing Page", id: "u1" },
      { event: "Trial Started", id: "u1" },
    ]);
  });

  it("sends no page or screen with sendPageViews false, and still every track and identify", async () => {
    const settings = { ...base(), sendPageViews: false };
    const items = await handlers.onBatch(
      [
        { type: "page", userId: "u2", name: "Home", messageId: "b1" },
        { type: "screen", userId: "u2", name: "Feed", messageId: "b2" },
        { type: "track", userId: "u2", event: "Upgraded", messageId: "b3" },
        { type: "identify", userId: "u2", traits: { plan: "pro" }, messageId: "b4" },
      ],
      settings,
    );
    // A left-out event is handled, not failed: Segment retries nothing.
    expect(items).toEqual([{ status: 200 }, { status: 200 }, { status: 200 }, { status: 200 }]);
    expect(refiner.requests.map((request) => [request.path, request.body])).toEqual([
      ["/identify-user", { plan: "pro", id: "u2" }],
      ["/track-event", { event: "Upgraded", id: "u2" }],
    ]);
  });
});

describe("malformed settings", () => {
  it.each<[string, unknown, string]>([
    ["traitMapping", ["plan"], "The traitMapping setting must map trait names to Refiner names"],
    ["accountTraitMapping", { plan: 3 }, "The accountTraitMapping setting must map trait names"],
    ["traitAllowList", { plan: true }, "The traitAllowList setting must be a list of names"],
    ["traitDenyList", [1, 2], "The traitDenyList setting must be a list of names"],
    ["eventAllowList", 7, "The eventAllowList setting must be a list of names"],
    ["sendPageViews", "sometimes", "The sendPageViews setting must be true or false."],
  ])(
    "rejects a malformed %s with a ValidationError naming it, and sends nothing",
    async (name, value, message) => {
      const { error } = await settle(handlers.onIdentify(identify, { ...base(), [name]: value }));
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as Error).message).toContain(message);
      expect(refiner.requests).toHaveLength(0);
    },
  );
});

describe("in the Lambda, from variables", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
  });
  const lambdaWith = (env: Record<string, string>) => {
    captureConsole();
    stubEnvs({ REFINER_API_KEY: API_KEY, REFINER_API_BASE_URL: refiner.url, ...env });
    return loadLambda();
  };

  it("takes JSON and comma-separated lists, and counts what it left out as filtered", async () => {
    const lambda = lambdaWith({
      REFINER_TRAIT_MAPPING: '{"address.city": "city"}',
      REFINER_TRAIT_DENY_LIST: "ssn, company",
      REFINER_TRAIT_ALLOW_LIST: '["address.city", "plan_name", "ssn"]',
      REFINER_EVENT_ALLOW_LIST: "Trial Started",
      REFINER_SEND_PAGE_VIEWS: "false",
    });
    const results = await lambda.segment([
      identify,
      { type: "track", userId: "u-sel", event: "Trial Started", messageId: "sel-2" },
      { type: "track", userId: "u-sel", event: "Other", messageId: "sel-3" },
      { type: "page", userId: "u-sel", name: "Pricing", messageId: "sel-4" },
    ]);
    expect(results).toEqual([{ status: 200 }, { status: 200 }, { status: 200 }, { status: 200 }]);
    expect(refiner.requests.map((request) => request.body)).toEqual([
      {
        plan_name: "pro",
        city: "London",
        account: { id: "acct-9" },
        id: "u-sel",
        email: "ada@example.com",
      },
      { event: "Trial Started", id: "u-sel" },
    ]);
    expect(metricLines).toEqual([expect.objectContaining({ Delivered: 2, Filtered: 2 })]);
  });

  it("answers a malformed variable as a retryable configuration error naming it", async () => {
    const lambda = lambdaWith({ REFINER_TRAIT_MAPPING: "{not json" });
    const { error } = await settle(lambda.segment(loadEvent("track")));
    expect(error?.constructor.name).toBe("RetryError");
    expect(error?.message).toContain("REFINER_TRAIT_MAPPING must map trait names to Refiner names");
    expect(refiner.requests).toHaveLength(0);
  });
});
