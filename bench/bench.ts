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

interface Ratio {
  /** The median round's ratio of total time to the baseline's. */
  median: number;
  low: number;
  high: number;
  /** Mean time of one call, µs, over all rounds. */
  microseconds: number;
}

/**
 * Runs the sides one call at a time, taking turns (who goes first rotates), so that a slow moment
 * of this noisy machine hits every side alike. Garbage collection is triggered by allocation, so on
 * average it still lands on the side that allocates. Each round gives each side's total time over
 * the baseline's; the median round is reported, with the lowest and highest.
 */
async function interleave(
  sides: Record<string, () => Promise<unknown>>,
  baseline: string,
  { rounds = 11, calls = 3000 } = {},
): Promise<Record<string, Ratio>> {
  const names = Object.keys(sides);
  const runs = names.map((name) => sides[name] as () => Promise<unknown>);
  const base = names.indexOf(baseline);
  const ratios = names.map((): number[] => []);
  const totals = names.map(() => 0);
  for (let round = 0; round < rounds; round++) {
    const ms = names.map(() => 0);
    for (let call = 0; call < calls; call++) {
      for (let turn = 0; turn < runs.length; turn++) {
        const side = (call + turn) % runs.length;
        const started = performance.now();
        await (runs[side] as () => Promise<unknown>)();
        ms[side] = (ms[side] as number) + performance.now() - started;
      }
    }
    names.forEach((_, side) => {
      ratios[side]?.push((ms[side] as number) / (ms[base] as number));
      totals[side] = (totals[side] as number) + (ms[side] as number);
    });
  }
  return Object.fromEntries(
    names.map((name, side) => {
      const sorted = [...(ratios[side] as number[])].sort((a, b) => a - b);
      return [
        name,
        {
          median: median(sorted),
          low: sorted[0] as number,
          high: sorted[sorted.length - 1] as number,
          microseconds: ((totals[side] as number) * 1000) / (rounds * calls),
        },
      ];
    }),
  );
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
  await interleave(sides, "bare", { rounds: 1, calls: 2000 }); // warm-up
  const {
    bundle,
    bare,
    minimal: inRuntime,
  } = (await interleave(sides, "bare")) as Record<keyof typeof sides, Ratio>;
  await refiner.close();
  const range = ({ low, high }: Ratio) => `rounds ${low.toFixed(3)}–${high.toFixed(3)}`;
  rows.push([
    "per-event overhead (bundle / bare node-fetch)",
    `${bundle.median.toFixed(3)} × (${range(bundle)}; ${bundle.microseconds.toFixed(0)} µs vs ${bare.microseconds.toFixed(0)} µs)`,
    "≤ 1.10 ×",
    bundle.median <= 1.1,
  ]);
  rows.push([
    "  bare node-fetch in the Segment-style runtime",
    `${inRuntime.median.toFixed(3)} × (${range(inRuntime)})`,
    "",
    false,
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
    const mark = target ? (met ? "✓" : "✗") : " ";
    const line = `${mark} ${figure.padEnd(width)}  ${measured.padEnd(measuredWidth)}`;
    console.log(target ? `${line}  target ${target}` : line.trimEnd());
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
