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

/** Runs each side `rounds` times, alternating which goes first; the median of per-round ratios. */
async function compare(
  sides: Record<string, () => Promise<unknown>>,
  baseline: string,
  { rounds = 31, perRound = 100 } = {},
): Promise<Record<string, number>> {
  const names = Object.keys(sides);
  const ratios: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [...names].reverse() : names;
    const ms: Record<string, number> = {};
    for (const name of order) {
      const run = sides[name] as () => Promise<unknown>;
      const started = performance.now();
      for (let i = 0; i < perRound; i++) await run();
      ms[name] = performance.now() - started;
    }
    for (const name of names) ratios[name]?.push((ms[name] as number) / (ms[baseline] as number));
  }
  return Object.fromEntries(names.map((name) => [name, median(ratios[name] as number[])]));
}

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
  const url = `${refiner.url}/track-event`;
  const body = JSON.stringify({ event: "Login Button Clicked", id: "u1" });
  const headers = {
    Accept: "application/json",
    Authorization: `Bearer ${API_KEY}`,
    "Content-Type": "application/json",
  };
  // The same POST written by hand as a minimal Segment function, in the same Segment-style runtime.
  const minimal = loadSegmentFunction({ path: SEGMENT_FUNCTION }).run(
    `async (fetch, url, headers, body) => { const response = await fetch(url, { method: "POST", headers, body }); await response.text(); }`,
  ) as (...args: unknown[]) => Promise<void>;

  const sides = {
    bundle: () => fn.handlers.onTrack(event, settings),
    bare: async () => {
      const response = await nodeFetch(url, { method: "POST", headers, body });
      await response.text();
    },
    minimal: () => minimal(nodeFetch, url, headers, body),
  };
  await compare(sides, "bare", { rounds: 3 }); // warm-up
  const ratios = await compare(sides, "bare");
  await refiner.close();
  const overhead = (ratios.bundle as number) / (ratios.minimal as number);
  rows.push([
    "per-event overhead (bundle / bare node-fetch)",
    `${(ratios.bundle as number).toFixed(3)} ×`,
    "≤ 1.10 ×",
    (ratios.bundle as number) <= 1.1,
  ]);
  rows.push([
    "  the same, both in the Segment-style runtime",
    `${overhead.toFixed(3)} × (bare node-fetch there: ${(ratios.minimal as number).toFixed(3)} ×)`,
    "≤ 1.10 ×",
    overhead <= 1.1,
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
  // Pairs run back to back, alternating which goes first, so a slow moment hits both sides.
  const ratios: number[] = [];
  const times: { bundle: number[]; bare: number[] } = { bundle: [], bare: [] };
  for (let i = 0; i < 31; i++) {
    let bundleMs: number;
    let bareMs: number;
    if (i % 2) {
      bundleMs = run(requireIt);
      bareMs = run("");
    } else {
      bareMs = run("");
      bundleMs = run(requireIt);
    }
    times.bundle.push(bundleMs);
    times.bare.push(bareMs);
    ratios.push(bundleMs / bareMs);
  }
  const ratio = median(ratios);
  rows.push([
    "cold start (node + require(lambda) / bare node)",
    `${ratio.toFixed(3)} × (${median(times.bundle).toFixed(1)} ms vs ${median(times.bare).toFixed(1)} ms)`,
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
