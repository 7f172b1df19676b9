// What the browser tests share: Chromium, the local pages (local/browser-server.ts), and a page
// with analytics-next and the plugin loaded, whose requests and console are recorded.

import { join } from "node:path";
import type { Page } from "playwright-core";
import { type BrowserServer, startBrowserServer } from "../../local/browser-server.ts";
import { type Chromium, launchChromium } from "../../local/chromium.ts";

export const ROOT = join(import.meta.dirname, "..", "..");

export interface WebClientCall {
  method: string;
  args: unknown[];
}

export interface Received {
  type: string;
  event?: string;
  userId?: string;
  groupId?: string;
  name?: string;
  marked: boolean;
}

export interface Visit {
  page: Page;
  /** Every URL the page requested. */
  requests: string[];
  /** Console messages, as `type: text`. */
  console: string[];
  /** Runs an expression in the page and returns its (JSON) value. */
  run<T = unknown>(expression: string): Promise<T>;
  /** The `_refiner` calls the stand-in client recorded (none when it never ran). */
  calls(): Promise<WebClientCall[]>;
  /** What the second plugin received. */
  received(): Promise<Received[]>;
}

export async function startBoth(): Promise<{ chromium: Chromium; server: BrowserServer }> {
  const [chromium, server] = await Promise.all([
    launchChromium(),
    startBrowserServer({ root: ROOT }),
  ]);
  return { chromium, server };
}

/** Opens the test page and loads analytics-next with the plugin given these options (JS text). */
export async function visit(
  chromium: Chromium,
  server: BrowserServer,
  pluginOptions: string,
  prepare?: (page: Page) => Promise<unknown>,
): Promise<Visit> {
  const page = await chromium.context.newPage();
  const requests: string[] = [];
  const messages: string[] = [];
  page.on("request", (request) => requests.push(request.url()));
  page.on("console", (message) => messages.push(`${message.type()}: ${message.text()}`));
  await prepare?.(page);
  await page.goto(`${server.origin}/test.html`);
  await page.evaluate(`startAnalytics(${pluginOptions})`);
  const run = <T>(expression: string) => page.evaluate(expression) as Promise<T>;
  return {
    page,
    requests,
    console: messages,
    run,
    calls: () => run<WebClientCall[]>("window.refinerWebClient ? refinerWebClient.calls : []"),
    received: () => run<Received[]>("received"),
  };
}

/** Waits (on the page, not the clock) until `expression` is true. */
export async function until(visit: Visit, expression: string): Promise<void> {
  await visit.page.waitForFunction(expression, undefined, { polling: 20, timeout: 20_000 });
}
