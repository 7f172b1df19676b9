// `npm run bench`: the figures of the README's performance section, each measured against a
// baseline in the same run, on this machine, so that machine noise cancels out.

import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import nodeFetch from "node-fetch";
import { startRefinerEmulator } from "../test/support/refiner-emulator.ts";
import { loadSegmentFunction } from "../test/support/segment-runtime.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const SEGMENT_FUNCTION = join(ROOT, "dist", "segment-function.js");
const LAMBDA_HANDLER = join(ROOT, "dist", "lambda", "handler.js");
const API_KEY = "bench-key";

const rows: [figure: string, measured: string, target: string, met: boolean][] = [];
const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

async function perEventOverhead(): Promise<void> {
  const refiner = await startRefinerEmulator();
  const fn = loadSegmentFunction({ path: SEGMENT_FUNCTION });
  const settings = { apiKey: API_KEY, apiBaseUrl: refiner.url };
  const event = {
    type: "track",
    userId: "u1",
    event: "Login Button Clicked",
    properties: { plan: "pro" },
  };
  const body = JSON.stringify({ event: "Login Button Clicked", id: "u1" });
  const headers = {
    Accept: "application/json",
    Authorization: `Bearer ${API_KEY}`,
    "Content-Type": "application/json",
  };

  const viaBundle = async (n: number) => {
    for (let i = 0; i < n; i++) await fn.handlers.onTrack(event, settings);
  };
  const bare = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const response = await nodeFetch(`${refiner.url}/track-event`, {
        method: "POST",
        headers,
        body,
      });
      await response.text();
    }
  };
  const time = async (run: (n: number) => Promise<void>, n: number) => {
    const started = performance.now();
    await run(n);
    return performance.now() - started;
  };

  await viaBundle(200);
  await bare(200);
  const ratios: number[] = [];
  for (let round = 0; round < 15; round++) {
    // Alternate which side goes first, so neither always gets the warmer machine.
    let bundleMs: number;
    let bareMs: number;
    if (round % 2) {
      bareMs = await time(bare, 100);
      bundleMs = await time(viaBundle, 100);
    } else {
      bundleMs = await time(viaBundle, 100);
      bareMs = await time(bare, 100);
    }
    ratios.push(bundleMs / bareMs);
  }
  await refiner.close();
  const ratio = median(ratios);
  rows.push([
    "per-event overhead (bundle / bare node-fetch)",
    `${ratio.toFixed(3)} ×`,
    "≤ 1.10 ×",
    ratio <= 1.1,
  ]);
}

function coldStart(): void {
  const run = (code: string) => {
    const started = performance.now();
    const result = spawnSync(process.execPath, ["-e", code], { stdio: "ignore" });
    if (result.status !== 0) throw new Error(`node -e ${code} failed`);
    return performance.now() - started;
  };
  const requireIt = `require(${JSON.stringify(LAMBDA_HANDLER)})`;
  run(requireIt);
  run("");
  const withBundle: number[] = [];
  const bareNode: number[] = [];
  for (let i = 0; i < 21; i++) {
    withBundle.push(run(requireIt));
    bareNode.push(run(""));
  }
  const ratio = median(withBundle) / median(bareNode);
  rows.push([
    "cold start (node + require(lambda) / bare node)",
    `${ratio.toFixed(3)} × (${median(withBundle).toFixed(1)} ms vs ${median(bareNode).toFixed(1)} ms)`,
    "≤ 1.05 ×",
    ratio <= 1.05,
  ]);
}

/** 40 users, each with repeated identifies, a group, five pages and a track: 400 events. */
function realisticBatch(): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = [];
  for (let step = 0; step < 10; step++) {
    for (let user = 0; user < 40; user++) {
      const base = {
        userId: `user-${user}`,
        messageId: `m-${user}-${step}`,
        timestamp: new Date(Date.UTC(2026, 10, 2, 9, step, user)).toISOString(),
      };
      if (step < 3)
        events.push({
          ...base,
          type: "identify",
          traits: {
            plan: ["trial", "pro", "pro"][step],
            seats: step + 1,
            email: `u${user}@example.com`,
          },
        });
      else if (step === 3)
        events.push({
          ...base,
          type: "group",
          groupId: `acct-${user % 7}`,
          traits: { name: `Account ${user % 7}`, employees: 20 },
        });
      else if (step < 9)
        events.push({
          ...base,
          type: "page",
          name: `Page ${step}`,
          properties: { path: `/p/${step}` },
        });
      else events.push({ ...base, type: "track", event: "Report Exported" });
    }
  }
  return events;
}

async function batchThroughput(): Promise<void> {
  const refiner = await startRefinerEmulator();
  refiner.respond(() => ({ status: 201, body: { message: "ok" }, delayMs: 25 }));
  const fn = loadSegmentFunction({ path: SEGMENT_FUNCTION });
  const settings = { apiKey: API_KEY, apiBaseUrl: refiner.url };
  const events = realisticBatch();

  let started = performance.now();
  const items = (await fn.handlers.onBatch(events, settings)) as { status: number }[];
  const batchMs = performance.now() - started;
  const batchRequests = refiner.requests.length;
  const inFlight = refiner.maxInFlight;
  if (items.some((item) => item.status !== 200))
    throw new Error("the benchmark batch did not fully deliver");

  // Baseline: one request per event, one after another, through the single-event handlers.
  refiner.reset();
  refiner.respond(() => ({ status: 201, body: { message: "ok" }, delayMs: 25 }));
  const handlerFor = {
    identify: "onIdentify",
    group: "onGroup",
    page: "onPage",
    track: "onTrack",
  } as const;
  started = performance.now();
  for (const event of events) {
    await fn.handlers[handlerFor[event.type as keyof typeof handlerFor]](event, settings);
  }
  const sequentialMs = performance.now() - started;
  await refiner.close();

  const perEvent = batchRequests / events.length;
  rows.push([
    "400-event batch: requests per event",
    `${perEvent.toFixed(2)} (${batchRequests} requests; one per event: 1.00)`,
    "≤ 0.75",
    perEvent <= 0.75,
  ]);
  rows.push([
    "400-event batch at 25 ms latency: wall time",
    `${(batchMs / 1000).toFixed(2)} s (one after another: ${(sequentialMs / 1000).toFixed(2)} s, ${(sequentialMs / batchMs).toFixed(1)} × slower)`,
    "≤ 1.5 s",
    batchMs <= 1500,
  ]);
  rows.push([
    "400-event batch: most requests in flight",
    `${inFlight} (one after another: 1)`,
    "≤ 8",
    inFlight <= 8,
  ]);
}

function sizes(): void {
  const segment = statSync(SEGMENT_FUNCTION).size;
  const lambda = statSync(LAMBDA_HANDLER).size;
  rows.push([
    "dist/segment-function.js (unminified)",
    `${(segment / 1024).toFixed(1)} KB (${segment} bytes)`,
    "≤ 20 KB",
    segment <= 20 * 1024,
  ]);
  rows.push([
    "dist/lambda/handler.js",
    `${(lambda / 1024).toFixed(1)} KB (${lambda} bytes)`,
    "≤ 40 KB",
    lambda <= 40 * 1024,
  ]);
}

async function main(): Promise<void> {
  console.log(`Benchmarks on node ${process.version}, ${new Date().toISOString()}\n`);
  await perEventOverhead();
  coldStart();
  await batchThroughput();
  sizes();
  const width = Math.max(...rows.map(([figure]) => figure.length));
  const measuredWidth = Math.max(...rows.map(([, measured]) => measured.length));
  for (const [figure, measured, target, met] of rows) {
    console.log(
      `${met ? "✓" : "✗"} ${figure.padEnd(width)}  ${measured.padEnd(measuredWidth)}  target ${target}`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
