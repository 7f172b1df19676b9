// `npm start`'s demo page (local/browser-demo.ts) in Chromium: a person clicks identify, group and
// track and sees each `_refiner` call, and the events go on to the webhook as Segment would send them.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { startBrowserDemo } from "../../local/browser-demo.ts";
import type { BrowserServer } from "../../local/browser-server.ts";
import { type Chromium, launchChromium } from "../../local/chromium.ts";
import { ROOT } from "./support.ts";

let chromium: Chromium;
let demo: BrowserServer;
let webhook: Server;
const forwarded: Record<string, unknown>[] = [];

beforeAll(async () => {
  webhook = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    forwarded.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
    res.writeHead(200, { "content-type": "application/json" }).end('{"status":200}');
  });
  await new Promise<void>((resolve) => webhook.listen(0, "127.0.0.1", resolve));
  const { port } = webhook.address() as AddressInfo;
  vi.spyOn(console, "log").mockImplementation(() => undefined);
  [chromium, demo] = await Promise.all([
    launchChromium(),
    startBrowserDemo({ root: ROOT, port: 0, webhookUrl: `http://127.0.0.1:${port}/` }),
  ]);
  vi.restoreAllMocks();
});
afterAll(async () => {
  await chromium?.close();
  await demo?.close();
  webhook?.close();
});

it("shows each _refiner call as the person clicks, and forwards the events to the webhook", async () => {
  const page = await chromium.context.newPage();
  await page.goto(`${demo.origin}/`);
  await page.waitForSelector("#calls li");
  await page.click("#identify");
  await page.click("#group-call");
  await page.click("#track");
  await page.waitForFunction(
    () => Reflect.get(globalThis, "document").querySelectorAll("#events li").length === 3,
  );
  expect(await page.locator("#calls li").allTextContents()).toEqual([
    '_refiner("setProject", "demo-project")',
    '_refiner("identifyUser", {"first_name":"Ann","plan_name":"pro","id":"u-42","email":"ann@example.com"})',
    '_refiner("identifyUser", {"account":{"name":"Acme","employees":120,"id":"acct-9"},"id":"u-42"})',
    '_refiner("trackEvent", "Report Exported")',
  ]);
  expect(await page.locator("#events li").allTextContents()).toEqual([
    "identify u-42",
    "group acct-9",
    "track Report Exported: marked, the server skips it",
  ]);
  await vi.waitFor(() => expect(forwarded).toHaveLength(3), { timeout: 20_000 });
  expect(
    forwarded.map(({ type, writeKey, context }) => [type, writeKey, Object(context).refiner]),
  ).toEqual([
    ["identify", undefined, undefined],
    ["group", undefined, undefined],
    ["track", undefined, { webClient: true }],
  ]);
  await page.close();
});
