// The plugin in Chromium with the real analytics-next, against the stand-in for Refiner's web client
// (local/refiner-web-client.js): the exact `_refiner` calls for each case, what a second plugin
// receives, and what the page requests.

import type { Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { BrowserServer } from "../../local/browser-server.ts";
import type { Chromium } from "../../local/chromium.ts";
import { startBoth, until, visit } from "./support.ts";

let chromium: Chromium;
let server: BrowserServer;
let client: string;

beforeAll(async () => {
  ({ chromium, server } = await startBoth());
  client = `${server.origin}/refiner-web-client.js`;
});
afterAll(async () => {
  await chromium?.close();
  await server?.close();
});
beforeEach(() => server.reset());

describe("with Refiner's client loaded", () => {
  it("sets the project first, then identifies, groups and tracks exactly as the server would send", async () => {
    const page = await visit(
      chromium,
      server,
      `{ projectId: "prj-7f3a", scriptUrl: "${client}", traitMapping: { plan_name: "plan" }, traitDenyList: ["ssn"], eventAllowList: ["Report Exported"] }`,
    );
    await page.run(`analytics.identify("u-42", {
      firstName: "Ann", email: "ann@example.com", plan_name: "pro", ssn: "123", address: { city: "Oslo" } })`);
    await page.run(`analytics.group("acct-9", { name: "Acme", employees: 120 })`);
    await page.run(`analytics.track("Report Exported", { format: "csv" })`);
    await page.run(`analytics.track("Scrolled", { depth: 3 })`);
    await page.run(`analytics.page("Pricing")`);
    await page.run("analytics.reset()");

    expect(await page.calls()).toEqual([
      { method: "setProject", args: ["prj-7f3a"] },
      {
        method: "identifyUser",
        args: [
          {
            first_name: "Ann",
            plan: "pro",
            address_city: "Oslo",
            id: "u-42",
            email: "ann@example.com",
          },
        ],
      },
      {
        method: "identifyUser",
        args: [{ account: { name: "Acme", employees: 120, id: "acct-9" }, id: "u-42" }],
      },
      { method: "trackEvent", args: ["Report Exported"] },
      { method: "resetUser", args: [] },
    ]);
    expect(await page.run("refinerWebClient.replayed")).toBeGreaterThanOrEqual(1);
    expect(await page.run("RefinerSegment.refinerPlugin({projectId: 'x'}).isLoaded()")).toBe(false);
    expect(
      await page.run(
        "analytics.instance.queue.plugins.find((p) => p.name === 'Refiner').isLoaded()",
      ),
    ).toBe(true);
    // One async script, its src exactly as given.
    expect(
      await page.run(
        `[...document.scripts].filter((s) => s.src.includes("refiner-web-client")).map((s) => [s.src, s.async])`,
      ),
    ).toEqual([[client, true]]);
    // Only the track the client took is marked for Segment; the page went to neither.
    expect((await page.received()).map(({ type, event, marked }) => [type, event, marked])).toEqual(
      [
        ["identify", undefined, false],
        ["group", undefined, false],
        ["track", "Report Exported", true],
        ["track", "Scrolled", false],
        ["page", undefined, false],
      ],
    );
    // Nothing outside 127.0.0.1, and from the plugin nothing but its script.
    expect(page.requests.filter((url) => !url.startsWith(`${server.origin}/`))).toEqual([]);
    expect(server.paths.filter((path) => !path.startsWith("/v1/"))).toEqual([
      "/test.html",
      "/analytics.js",
      "/refiner.js",
      "/page-setup.js",
      "/refiner-web-client.js",
    ]);
    await page.page.close();
  });

  it("sends page views as events when sendPageViews is on, and honours integrations: { Refiner: false }", async () => {
    const page = await visit(
      chromium,
      server,
      `{ projectId: "prj-7f3a", scriptUrl: "${client}", sendPageViews: true }`,
    );
    await until(page, "window.refinerWebClient !== undefined");
    await page.run(`analytics.page("Docs", "Pricing")`);
    await page.run(`analytics.track("Hidden", {}, { integrations: { Refiner: false } })`);
    await page.run(`analytics.track("Shown")`);
    expect(await page.calls()).toEqual([
      { method: "setProject", args: ["prj-7f3a"] },
      { method: "trackEvent", args: ["Viewed Docs Pricing Page"] },
      { method: "trackEvent", args: ["Shown"] },
    ]);
    // The second plugin gets all three; only what Refiner's client took is marked.
    expect((await page.received()).map(({ marked }) => marked)).toEqual([true, false, true]);
    await page.page.close();
  });

  it("passes an identity verification signature as identifyUser's second argument, and on to groups", async () => {
    const page = await visit(chromium, server, `{ projectId: "prj-7f3a", scriptUrl: "${client}" }`);
    await page.run(`analytics.identify("u-42", { email: "ann@example.com" },
      { integrations: { Refiner: { signature: "5f2b9c0d7e" } } })`);
    await page.run(`analytics.group("acct-9", { name: "Acme" })`);
    expect((await page.calls()).slice(1)).toEqual([
      {
        method: "identifyUser",
        args: [{ id: "u-42", email: "ann@example.com" }, { signature: "5f2b9c0d7e" }],
      },
      {
        method: "identifyUser",
        args: [
          { account: { name: "Acme", id: "acct-9" }, id: "u-42" },
          { signature: "5f2b9c0d7e" },
        ],
      },
    ]);
    await page.page.close();
  });
});

describe("bad configuration and failures", () => {
  it("with no projectId: one console error naming it, no script, and the other plugin gets everything", async () => {
    const page = await visit(chromium, server, `{ scriptUrl: "${client}" }`);
    await page.run(`analytics.identify("u-42", { email: "ann@example.com" })`);
    await page.run(`analytics.track("Report Exported")`);
    await page.run(`analytics.page("Pricing")`);
    await page.run("analytics.ready()");
    expect(page.console.filter((line) => line.includes("Refiner"))).toEqual([
      "error: Refiner: the projectId option is missing (Refiner → Settings → Web Client).",
    ]);
    expect(await page.run("typeof window._refiner")).toBe("undefined");
    expect(await page.run("document.scripts.length")).toBe(3);
    expect(server.paths).not.toContain("/refiner-web-client.js");
    expect((await page.received()).map(({ type }) => type)).toEqual(["identify", "track", "page"]);
    expect(server.segmentEvents.map(({ type }) => type)).toEqual(["identify", "track", "page"]);
    await page.page.close();
  });

  // The page's Content-Security-Policy names the page's own three scripts, not the stand-in
  // client, which loads without it (tried: with the client's URL added, this test fails).
  const policy = () =>
    [
      "script-src 'unsafe-inline' 'unsafe-eval'",
      ...["analytics.js", "refiner.js", "page-setup.js"].map((name) => `${server.origin}/${name}`),
    ].join(" ");
  const blockers: [string, () => string, ((page: Page) => Promise<unknown>) | undefined][] = [
    ["answers 404", () => `${server.origin}/missing-client.js`, undefined],
    [
      "is blocked by an ad blocker",
      () => `${server.origin}/blocked-client.js`,
      (page) => page.route("**/blocked-client.js", (route) => route.abort("blockedbyclient")),
    ],
    [
      "is refused by the page's Content-Security-Policy",
      () => client,
      (page) =>
        page.route("**/test.html", async (route) => {
          const response = await route.fetch();
          await route.fulfill({
            response,
            headers: {
              ...response.headers(),
              "content-security-policy": policy(),
            },
          });
        }),
    ],
  ];
  for (const [what, scriptUrl, prepare] of blockers) {
    it(`when Refiner's script ${what}: analytics is ready, says so once, and marks nothing`, async () => {
      const script = scriptUrl();
      const page = await visit(
        chromium,
        server,
        `{ projectId: "prj-7f3a", scriptUrl: "${script}" }`,
        prepare,
      );
      await page.run("analytics.ready()");
      await page.run(`analytics.identify("u-42", { email: "ann@example.com" })`);
      await page.run(`analytics.track("Report Exported")`);
      await page.run(`analytics.page("Pricing")`);
      await page.run(`analytics.track("Report Shared")`);
      expect((await page.received()).map(({ type, marked }) => [type, marked])).toEqual([
        ["identify", false],
        ["track", false],
        ["page", false],
        ["track", false],
      ]);
      // Console messages come over their own channel: wait for the one expected, then compare all.
      await vi.waitFor(() => expect(page.console.join("\n")).toContain("did not load"));
      expect(page.console.filter((line) => line.includes("Refiner"))).toEqual([
        `warning: Refiner: ${script} did not load: no surveys on this page.`,
      ]);
      expect(await page.calls()).toEqual([]);
      await page.page.close();
    });
  }

  it("never throws, whatever the options, and its ES module loads with import() as built", async () => {
    const page = await visit(chromium, server, `{ projectId: "prj-7f3a", scriptUrl: "${client}" }`);
    const outcomes = await page.run(`[undefined, null, 42, "x", [], { projectId: 5 },
      { projectId: "p", traitMapping: "not a map" }, { get projectId() { throw new Error("no") } }]
      .map((options) => { try { return typeof RefinerSegment.refinerPlugin(options).load } catch { return "threw" } })`);
    expect(outcomes).toEqual(Array(8).fill("function"));
    const shape =
      await page.run(`import("${server.origin}/refiner.mjs").then(({ refinerPlugin }) => {
      const plugin = refinerPlugin({ projectId: "p" });
      return [plugin.name, plugin.type, typeof plugin.version, ...["isLoaded", "load", "identify", "group", "track", "page"].map((key) => typeof plugin[key])];
    })`);
    expect(shape).toEqual([
      "Refiner",
      "destination",
      "string",
      "function",
      "function",
      "function",
      "function",
      "function",
      "function",
    ]);
    await page.page.close();
  });
});
