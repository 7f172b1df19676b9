// The browser plugin without a browser (`npm test`; `npm run test:browser` runs it in Chromium):
// its options and the web client calls it makes, which are the server's mapping; and the server
// doors skipping what the web client took. The built files' size and shape: bundle-shape.test.ts.

import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { parseOptions, webClientCall } from "../lib/browser/calls.ts";
import { refinerPlugin } from "../lib/browser/plugin.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { API_KEY, expectRefinerRequest, onlyRequest } from "./support/fixtures.ts";
import {
  captureConsole,
  loadLambda,
  metricLines,
  stubEnvs,
  webhookPost,
} from "./support/lambda.ts";
import { loadSegmentFunction, type SegmentFunction } from "./support/segment-function.ts";

const _ROOT = join(import.meta.dirname, "..");

/** The options as the page gives them, parsed; fails the test when they are refused. */
function mapping(options: Record<string, unknown> = {}) {
  const parsed = parseOptions({ projectId: "prj-7f3a", ...options });
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.options.mapping;
}

/** An identify as analytics-next makes it. */
const identify = {
  type: "identify",
  userId: "u-42",
  anonymousId: "4c1f6a9e-0b1d-4e8a-9a53-2f0c1d7e8b61",
  messageId: "ajs-next-1",
  traits: {
    email: "ann@example.com",
    firstName: "Ann",
    plan_name: "pro",
    ssn: "078-05-1120",
    address: { city: "Oslo", geo: { lat: 59.9 } },
  },
  context: { library: { name: "analytics.js", version: "npm:next-1.84.3" } },
  integrations: {},
};

describe("options", () => {
  it("take the server's selection settings by the same names, with page views off by default", () => {
    const parsed = parseOptions({ projectId: " prj-7f3a ", eventAllowList: ["Trial Started"] });
    expect(parsed).toEqual({
      ok: true,
      options: {
        projectId: "prj-7f3a",
        scriptUrl: "https://js.refiner.io/v001/client.js",
        mapping: {
          preserveTraitKeys: false,
          traitMapping: new Map(),
          accountTraitMapping: new Map(),
          traitAllowList: undefined,
          traitDenyList: new Set(),
          eventAllowList: new Set(["Trial Started"]),
          sendPageViews: false,
        },
      },
    });
  });

  it("refuse a missing projectId or a bad setting with a message naming it", () => {
    expect(parseOptions({})).toEqual({
      ok: false,
      message: "Refiner: the projectId option is missing (Refiner → Settings → Web Client).",
    });
    expect(parseOptions(undefined)).toEqual(parseOptions({ projectId: "" }));
    expect(parseOptions({ projectId: "p", scriptUrl: 42 })).toEqual({
      ok: false,
      message: "Refiner: the scriptUrl option must be a URL.",
    });
    expect(parseOptions({ projectId: "p", traitAllowList: "plan" })).toEqual({
      ok: true,
      options: expect.objectContaining({
        mapping: expect.objectContaining({ traitAllowList: new Set(["plan"]) }),
      }),
    });
    expect(parseOptions({ projectId: "p", traitMapping: ["plan"] })).toEqual({
      ok: false,
      message:
        'Refiner: the traitMapping option must map trait names to Refiner names, text to text (in a variable, a JSON object such as {"address.city": "city"}).',
    });
  });

  it("never make refinerPlugin throw, and a bad one is reported once, when analytics loads it", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const hostile = {
      get projectId() {
        throw new Error("no");
      },
    };
    for (const options of [undefined, null, 42, "prj", [], hostile, { projectId: 7 }]) {
      const plugin = refinerPlugin(options);
      expect([plugin.name, plugin.type, plugin.isLoaded()]).toEqual([
        "Refiner",
        "destination",
        false,
      ]);
    }
    const register = vi.fn(async () => undefined);
    await expect(refinerPlugin({}).load({}, { register })).resolves.toBeUndefined();
    expect(errors.mock.calls).toEqual([
      ["Refiner: the projectId option is missing (Refiner → Settings → Web Client)."],
    ]);
    expect(register).not.toHaveBeenCalled();
  });
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe("web client calls: the server's mapping", () => {
  it("identify: exactly id, email and the traits as the server sends them (renames, deny list)", () => {
    const options = mapping({
      traitMapping: { plan_name: "plan" },
      traitDenyList: ["ssn", "address.geo"],
    });
    expect(webClientCall("identify", identify, options)).toEqual([
      "identifyUser",
      {
        first_name: "Ann",
        plan: "pro",
        address_city: "Oslo",
        id: "u-42",
        email: "ann@example.com",
      },
    ]);
    expect(webClientCall("identify", identify, options, "5f2b9c0d7e")).toEqual([
      "identifyUser",
      {
        first_name: "Ann",
        plan: "pro",
        address_city: "Oslo",
        id: "u-42",
        email: "ann@example.com",
      },
      { signature: "5f2b9c0d7e" },
    ]);
  });

  it("group: the identified user with the account and its traits (account mapping, allow list)", () => {
    const group = {
      type: "group",
      userId: "u-42",
      groupId: "acct-9",
      traits: { name: "Acme", employees: 120, vat: "NO123" },
    };
    const options = mapping({
      accountTraitMapping: { employees: "size" },
      traitAllowList: ["name", "employees"],
    });
    expect(webClientCall("group", group, options)).toEqual([
      "identifyUser",
      { account: { name: "Acme", size: 120, id: "acct-9" }, id: "u-42" },
    ]);
    // No one to attach the account to: nothing.
    expect(webClientCall("group", { ...group, userId: null }, options)).toBeUndefined();
  });

  it("track: the name only, for whoever the client knows, within the event allow list", () => {
    const track = { type: "track", event: "Trial Started", properties: { plan: "pro" } };
    expect(webClientCall("track", track, mapping())).toEqual(["trackEvent", "Trial Started"]);
    expect(webClientCall("track", { ...track, userId: "u-42" }, mapping())).toEqual([
      "trackEvent",
      "Trial Started",
    ]);
    const allowed = mapping({ eventAllowList: ["Report Exported"] });
    expect(webClientCall("track", track, allowed)).toBeUndefined();
    expect(webClientCall("track", { ...track, event: "" }, mapping())).toBeUndefined();
  });

  it("page and screen: nothing unless sendPageViews is on, then the server's event name", () => {
    const page = { type: "page", name: "Pricing", category: "Docs", properties: {} };
    expect(webClientCall("page", page, mapping())).toBeUndefined();
    expect(webClientCall("page", page, mapping({ sendPageViews: true }))).toEqual([
      "trackEvent",
      "Viewed Docs Pricing Page",
    ]);
    expect(webClientCall("screen", { type: "screen" }, mapping({ sendPageViews: "true" }))).toEqual(
      ["trackEvent", "Loaded a Screen"],
    );
  });
});

describe("the server doors skip what Refiner's web client took", () => {
  let refiner: RefinerEmulator;
  let handlers: SegmentFunction["handlers"];
  let settings: Record<string, unknown>;
  const marked = { context: { refiner: { webClient: true } } };

  beforeAll(async () => {
    refiner = await startRefinerEmulator({ apiKey: API_KEY });
    handlers = loadSegmentFunction().handlers;
    settings = { apiKey: API_KEY, apiBaseUrl: refiner.url };
  });
  afterAll(() => refiner.close());
  beforeEach(() => refiner.reset());

  it("in the Segment function: a marked track, page or screen resolves with no request", async () => {
    const track = { type: "track", userId: "u-42", event: "Report Exported", messageId: "m-1" };
    await expect(handlers.onTrack({ ...track, ...marked }, settings)).resolves.toBeUndefined();
    await expect(
      handlers.onPage({ type: "page", userId: "u-42", name: "Pricing", ...marked }, settings),
    ).resolves.toBeUndefined();
    await expect(
      handlers.onScreen({ type: "screen", userId: "u-42", name: "Home", ...marked }, settings),
    ).resolves.toBeUndefined();
    // Even an anonymous one: the web client took it for its visitor.
    await expect(
      handlers.onTrack(
        { type: "track", anonymousId: "a-1", event: "Clicked", ...marked },
        settings,
      ),
    ).resolves.toBeUndefined();
    expect(refiner.requests).toEqual([]);
    // Only `true` marks: anything else is sent (another event, so another messageId: the worker
    // rightly takes the same one once).
    await handlers.onTrack(
      { ...track, messageId: "m-2", context: { refiner: { webClient: "true" } } },
      settings,
    );
    expectRefinerRequest(onlyRequest(refiner), {
      method: "POST",
      path: "/track-event",
      body: { event: "Report Exported", id: "u-42" },
    });
  });

  it("in the Segment function: a marked identify is sent all the same", async () => {
    await handlers.onIdentify(
      { type: "identify", userId: "u-42", traits: { plan: "pro" }, ...marked },
      settings,
    );
    expectRefinerRequest(onlyRequest(refiner), {
      method: "POST",
      path: "/identify-user",
      body: { plan: "pro", id: "u-42" },
    });
  });

  it("at the webhook: a batch's marked track counts as Filtered, the unmarked one is sent", async () => {
    stubEnvs({
      REFINER_API_KEY: API_KEY,
      REFINER_API_BASE_URL: refiner.url,
      ALLOW_UNSIGNED_WEBHOOKS: "true",
      SEGMENT_SHARED_SECRET: "",
      SEGMENT_WEBHOOK_TOKEN: "",
      REFINER_QUEUE_URL: "",
      REFINER_DELIVERED_TABLE: "",
    });
    captureConsole();
    const batch = [
      { type: "track", userId: "u-42", event: "Report Exported", messageId: "w-1", ...marked },
      { type: "track", userId: "u-42", event: "Report Shared", messageId: "w-2" },
    ];
    const result = await loadLambda().webhook(webhookPost(JSON.stringify(batch)));
    expect(result.statusCode).toBe(200);
    expect(refiner.requests.map(({ path, body }) => [path, body])).toEqual([
      ["/track-event", { event: "Report Shared", id: "u-42" }],
    ]);
    expect(metricLines.map((line) => [line.Filtered, line.Delivered])).toContainEqual([1, 1]);
  });
});

describe("the loading window, on a fake page and a clock the test moves", () => {
  type Script = { async?: boolean; src?: string; onload?: () => void; onerror?: () => void };
  type Hook = (ctx: {
    event: Record<string, unknown>;
  }) => Promise<{ event: Record<string, unknown> }>;
  let scripts: Script[];
  let marking: { track: Hook };
  const page = globalThis as { _refiner?: unknown; _refinerQueue?: unknown };
  /** What Refiner's client, once it has run, received directly (the stub's queue aside). */
  let taken: unknown[][];

  beforeEach(async () => {
    vi.useFakeTimers();
    scripts = [];
    taken = [];
    vi.stubGlobal("document", {
      createElement: () => ({}),
      head: { appendChild: (script: Script) => scripts.push(script) },
    });
    const plugin = refinerPlugin({
      projectId: "prj-7f3a",
      scriptUrl: "https://cdn.example.com/r.js",
    });
    await plugin.load(
      {},
      {
        register: async (enrichment) => {
          marking = enrichment as unknown as { track: Hook };
        },
      },
    );
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
    delete page._refiner;
    delete page._refinerQueue;
  });

  const queued = () => (page._refinerQueue as ArrayLike<unknown>[]).map((args) => Array.from(args));
  /** Refiner's client running: it replays the queue and takes the next calls itself. */
  const clientRuns = () => {
    taken.push(...queued());
    page._refiner = (...args: unknown[]) => taken.push(args);
    scripts[0]?.onload?.();
  };
  const track = (event: string) => ({ event: { type: "track", event, context: {} } });

  it("injects one async script from scriptUrl and queues setProject first", () => {
    expect(scripts).toEqual([
      expect.objectContaining({ async: true, src: "https://cdn.example.com/r.js" }),
    ]);
    expect(queued()).toEqual([["setProject", "prj-7f3a"]]);
  });

  it("holds an early track until the script has run, then marks it", async () => {
    let done = false;
    const held = marking.track(track("Report Exported")).then((ctx) => {
      done = true;
      return ctx;
    });
    await vi.advanceTimersByTimeAsync(2999);
    expect(done).toBe(false);
    expect(queued()).toEqual([
      ["setProject", "prj-7f3a"],
      ["trackEvent", "Report Exported"],
    ]);
    clientRuns();
    expect((await held).event.context).toEqual({ refiner: { webClient: true } });
    expect(taken).toEqual([
      ["setProject", "prj-7f3a"],
      ["trackEvent", "Report Exported"],
    ]);
  });

  it("lets it go unmarked after 3 seconds, out of the queue, and the next ones at once until the script runs", async () => {
    let done = false;
    const held = marking.track(track("Report Exported")).then((ctx) => {
      done = true;
      return ctx;
    });
    await vi.advanceTimersByTimeAsync(2999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect((await held).event.context).toEqual({});
    expect(queued()).toEqual([["setProject", "prj-7f3a"]]);
    expect((await marking.track(track("Report Shared"))).event.context).toEqual({});
    expect(queued()).toEqual([["setProject", "prj-7f3a"]]);
    clientRuns();
    await vi.advanceTimersByTimeAsync(0);
    expect((await marking.track(track("Report Printed"))).event.context).toEqual({
      refiner: { webClient: true },
    });
    expect(taken).toEqual([
      ["setProject", "prj-7f3a"],
      ["trackEvent", "Report Printed"],
    ]);
  });

  it("when the script fails: says so once, and marks and sends nothing", async () => {
    const warnings = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const held = marking.track(track("Report Exported"));
    scripts[0]?.onerror?.();
    expect((await held).event.context).toEqual({});
    expect((await marking.track(track("Report Shared"))).event.context).toEqual({});
    expect(queued()).toEqual([["setProject", "prj-7f3a"]]);
    expect(warnings.mock.calls).toEqual([
      ["Refiner: https://cdn.example.com/r.js did not load: no surveys on this page."],
    ]);
  });
});
