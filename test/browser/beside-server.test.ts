// One visit through the plugin, then what analytics-next sent to Segment posted to the webhook door
// (the Lambda handlers built from source) against the Refiner emulator, as Segment would forward it: each
// track reaches Refiner exactly once, through the web client (marked, and skipped as Filtered by the
// server) or through the server (unmarked), whether Refiner's script loaded, failed, or was still
// loading when the track was made.

import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { BrowserServer } from "../../local/browser-server.ts";
import type { Chromium } from "../../local/chromium.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../../local/refiner-emulator.ts";
import { API_KEY } from "../support/fixtures.ts";
import { captureConsole, loadLambda, metricLines, webhookPost } from "../support/lambda.ts";
import { startBoth, until, type Visit, visit } from "./support.ts";

let chromium: Chromium;
let server: BrowserServer;
let refiner: RefinerEmulator;

beforeAll(async () => {
  [{ chromium, server }, refiner] = await Promise.all([
    startBoth(),
    startRefinerEmulator({ apiKey: API_KEY }),
  ]);
});
afterAll(async () => {
  await chromium?.close();
  await server?.close();
  await refiner?.close();
});
beforeEach(() => {
  server.reset();
  refiner.reset();
  vi.stubEnv("REFINER_API_KEY", API_KEY);
  vi.stubEnv("REFINER_API_BASE_URL", refiner.url);
  vi.stubEnv("ALLOW_UNSIGNED_WEBHOOKS", "true");
  vi.stubEnv("SEGMENT_SHARED_SECRET", "");
  vi.stubEnv("SEGMENT_WEBHOOK_TOKEN", "");
  vi.stubEnv("REFINER_QUEUE_URL", "");
  vi.stubEnv("REFINER_DELIVERED_TABLE", "");
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

/** Posts every event Segment received, one by one, to the webhook door; the metrics it counted. */
async function throughTheServer(expected: number): Promise<Record<string, number>> {
  await vi.waitFor(() => expect(server.segmentEvents).toHaveLength(expected), { timeout: 20_000 });
  captureConsole();
  const lambda = loadLambda();
  for (const { writeKey: _, ...event } of server.segmentEvents) {
    const result = await lambda.webhook(webhookPost(JSON.stringify(event)));
    expect(result.statusCode).toBe(200);
  }
  const counted: Record<string, number> = {};
  for (const line of metricLines) {
    for (const name of ["Delivered", "Filtered"]) {
      if (typeof line[name] === "number")
        counted[name] = (counted[name] ?? 0) + (line[name] as number);
    }
  }
  return counted;
}

/** How many times Refiner got each track: from the web client, and from the server. */
async function tracksInRefiner(
  page: Visit,
): Promise<Record<string, [client: number, server: number]>> {
  const counts: Record<string, [number, number]> = {};
  const count = (name: unknown, door: 0 | 1) => {
    const pair = counts[String(name)] ?? [0, 0];
    pair[door] += 1;
    counts[String(name)] = pair;
  };
  for (const { method, args } of await page.calls()) {
    if (method === "trackEvent") count(args[0], 0);
  }
  for (const { method, path, body } of refiner.requests) {
    if (method === "POST" && path === "/track-event") count((body as { event: string }).event, 1);
  }
  return counts;
}

const identified = (page: Visit) =>
  page.run(`analytics.identify("u-42", { email: "ann@example.com", plan: "pro" })`);

describe("each track reaches Refiner exactly once", () => {
  it("with the client loaded: through the web client, and the server counts them Filtered", async () => {
    const page = await visit(
      chromium,
      server,
      `{ projectId: "prj-7f3a", scriptUrl: "${server.origin}/refiner-web-client.js" }`,
    );
    await until(page, "window.refinerWebClient !== undefined");
    await identified(page);
    await page.run(`analytics.track("Report Exported")`);
    await page.run(`analytics.track("Report Shared")`);
    const counted = await throughTheServer(3);
    expect(await tracksInRefiner(page)).toEqual({
      "Report Exported": [1, 0],
      "Report Shared": [1, 0],
    });
    // Identifies go both ways: the web client and the server each send it.
    expect(refiner.requests.map(({ method, path }) => `${method} ${path}`)).toEqual([
      "POST /identify-user",
    ]);
    expect(counted).toEqual({ Delivered: 1, Filtered: 2 });
    await page.page.close();
  });

  it("with the client blocked (404): through the server, unmarked", async () => {
    const page = await visit(
      chromium,
      server,
      `{ projectId: "prj-7f3a", scriptUrl: "${server.origin}/missing-client.js" }`,
    );
    await page.run("analytics.ready()");
    await identified(page);
    await page.run(`analytics.track("Report Exported")`);
    await page.run(`analytics.track("Report Shared")`);
    const counted = await throughTheServer(3);
    expect(await tracksInRefiner(page)).toEqual({
      "Report Exported": [0, 1],
      "Report Shared": [0, 1],
    });
    expect(counted).toEqual({ Delivered: 3 });
    await page.page.close();
  });
});

describe("a track made while Refiner's script is still loading", () => {
  /** The page's clock stands still: time moves only as far as the test runs it. */
  async function loadingVisit(): Promise<Visit> {
    let clock: Page["clock"] | undefined;
    const page = await visit(
      chromium,
      server,
      `{ projectId: "prj-7f3a", scriptUrl: "${server.origin}/slow-client.js" }`,
      async (page) => {
        clock = page.clock;
        // The clock is the whole browser context's: a former test may have left it standing still.
        await page.clock.install();
        await page.clock.resume();
      },
    );
    await identified(page);
    await clock?.pauseAt((await page.run<number>("Date.now()")) + 1000);
    return page;
  }

  /**
   * Waits for the stand-in client to have run, without moving the page's clock (which stands still,
   * so the page's own polling would never fire): the script's load is the event waited on.
   */
  async function clientRan(page: Visit) {
    for (let tries = 0; tries < 2000; tries += 1) {
      if (await page.run("window.refinerWebClient !== undefined")) return;
    }
    throw new Error("the stand-in client never ran");
  }

  /** Moves the page's clock on in small steps until `expression` holds (at most `ms`). */
  async function runUntil(page: Visit, expression: string, ms = 1000) {
    for (let ran = 0; ran < ms && !(await page.run(expression)); ran += 10) {
      await page.page.clock.runFor(10);
    }
    expect(await page.run(expression)).toBe(true);
  }

  it("waits for the script: once it has run, the client replays the track and the server skips it", async () => {
    const page = await loadingVisit();
    await page.run(`analytics.track("Report Exported"); true`);
    await runUntil(page, `_refinerQueue.some((call) => call[0] === "trackEvent")`);
    // Held: not yet sent to Segment, whatever happens to the script.
    expect(server.segmentEvents.map(({ type }) => type)).toEqual(["identify"]);
    server.releaseSlowClient();
    await clientRan(page);
    await runUntil(page, "received.length === 2");
    expect(await page.received()).toEqual([
      expect.objectContaining({ type: "identify", marked: false }),
      expect.objectContaining({ type: "track", event: "Report Exported", marked: true }),
    ]);
    const counted = await throughTheServer(2);
    expect(await tracksInRefiner(page)).toEqual({ "Report Exported": [1, 0] });
    expect(counted).toEqual({ Delivered: 1, Filtered: 1 });
    await page.page.close();
  });

  it("past 3 seconds goes on unmarked, out of the queue, so the server sends it and the late client does not", async () => {
    const page = await loadingVisit();
    await page.run(`analytics.track("Report Exported"); true`);
    await runUntil(page, `_refinerQueue.some((call) => call[0] === "trackEvent")`);
    await page.page.clock.runFor(2900);
    expect(await page.run("received.length")).toBe(1);
    await runUntil(page, "received.length === 2", 200);
    expect(await page.run(`_refinerQueue.map((call) => call[0])`)).toEqual([
      "setProject",
      "identifyUser",
    ]);
    // Until the script has run, later tracks go on at once, unmarked.
    await page.run(`analytics.track("Report Shared"); true`);
    await runUntil(page, "received.length === 3", 100);
    server.releaseSlowClient();
    await clientRan(page);
    // Once it has, tracks go through the client again.
    await page.run(`analytics.track("Report Printed"); true`);
    await runUntil(page, "received.length === 4");
    expect((await page.received()).map(({ event, marked }) => [event, marked])).toEqual([
      [undefined, false],
      ["Report Exported", false],
      ["Report Shared", false],
      ["Report Printed", true],
    ]);
    const counted = await throughTheServer(4);
    expect(await tracksInRefiner(page)).toEqual({
      "Report Exported": [0, 1],
      "Report Shared": [0, 1],
      "Report Printed": [1, 0],
    });
    expect(counted).toEqual({ Delivered: 3, Filtered: 1 });
    await page.page.close();
  });
});
