// `npm run bench`: the figures of the README's performance section, each measured against a
// baseline in the same run, on this machine, so that machine noise cancels out.

import { spawn, spawnSync } from "node:child_process";
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import nodeFetch from "node-fetch";
import { analyticsBatch, REALISTIC_SESSION } from "../local/batches.ts";
import { startBrowserServer } from "../local/browser-server.ts";
import { CHROMIUM_PATH, launchChromium } from "../local/chromium.ts";
import { localTableEnvironment, startLocalTable } from "../local/dynamodb-emulator.ts";
import { functionUrlEvent } from "../local/function-url.ts";
import { type DeliverHandler, startPoller } from "../local/poller.ts";
import { startRefinerEmulator } from "../local/refiner-emulator.ts";
import { loadSegmentFunction } from "../local/segment-runtime.ts";
import { localSqsEnvironment, startLocalQueues } from "../local/sqs-emulator.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const SEGMENT_FUNCTION = join(ROOT, "dist", "segment-function.js");
const LAMBDA_HANDLER = join(ROOT, "dist", "lambda", "handler.js");
const CLI = join(ROOT, "dist", "cli", "refiner-destination.js");
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
    "≤ 1.5 ×",
    bundle.median <= 1.5,
  ]);
  rows.push([
    "  bare node-fetch in the Segment-style runtime",
    `${inRuntime.median.toFixed(3)} × (${range(inRuntime)})`,
    "",
    false,
  ]);
}

function coldStart(): void {
  // A Lambda configured as deployed in direct mode (a missing key would add the cold start's one
  // log line), with the table of delivered messageIds.
  const env = { ...process.env, REFINER_API_KEY: API_KEY, REFINER_DELIVERED_TABLE: "delivered" };
  const run = (code: string) => {
    const started = performance.now();
    const result = spawnSync(process.execPath, ["-e", code], { stdio: "ignore", env });
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
    "≤ 1.10 ×",
    ratio <= 1.1,
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

/**
 * A day of a product's archive: 200 users, 6 sessions each; every session loads 5 pages with an
 * identify before each (as Segment recommends) and tracks one event; traits change in 1 session of 7.
 * The fewest requests it could take: one per page and track, and one identify per user.
 */
function dayArchive(): { events: Record<string, unknown>[]; minimum: number } {
  const events: Record<string, unknown>[] = [];
  let n = 0;
  let tracked = 0;
  for (let session = 0; session < 6; session++) {
    for (let user = 0; user < 200; user++) {
      const plan = (user + session) % 7 === 0 ? "pro" : "trial";
      const at = new Date(Date.UTC(2026, 10, 30, 8 + session, user % 60)).toISOString();
      for (let page = 0; page < 5; page++) {
        events.push({
          type: "identify",
          userId: `u${user}`,
          traits: { plan, email: `u${user}@example.com` },
          timestamp: at,
          messageId: `m${n++}`,
        });
        events.push({
          type: "page",
          userId: `u${user}`,
          name: `Page ${page}`,
          timestamp: at,
          messageId: `m${n++}`,
        });
        tracked += 1;
      }
      events.push({
        type: "track",
        userId: `u${user}`,
        event: `Session ${session}`,
        timestamp: at,
        messageId: `m${n++}`,
      });
      tracked += 1;
    }
  }
  return { events, minimum: tracked + 200 };
}

/** Runs the built CLI, returning its exit code, wall time and peak RSS (KB). */
function runCli(
  args: string[],
  cwd: string,
): Promise<{ code: number | null; ms: number; rssKb: number; stdout: string }> {
  const probe = join(cwd, "rss.cjs");
  writeFileSync(
    probe,
    'process.on("exit", () => process.stderr.write("peak RSS " + process.resourceUsage().maxRSS + "\\n"));',
  );
  const started = performance.now();
  const child = spawn(process.execPath, ["--require", probe, CLI, ...args], { cwd });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve) =>
    child.on("close", (code) =>
      resolve({
        code,
        ms: performance.now() - started,
        rssKb: Number(stderr.match(/peak RSS (\d+)/)?.[1]),
        stdout,
      }),
    ),
  );
}

async function backfill(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "refiner-bench-"));
  try {
    const { events, minimum } = dayArchive();
    const archive = join(dir, "day.ndjson.gz");
    writeFileSync(archive, gzipSync(events.map((event) => JSON.stringify(event)).join("\n")));
    const refiner = await startRefinerEmulator({ apiKey: API_KEY });
    const run = await runCli(
      ["send", archive, "--api-key", API_KEY, "--api-base-url", refiner.url, "--rate", "1000000"],
      dir,
    );
    const requests = refiner.requests.length;
    await refiner.close();
    if (run.code !== 0) throw new Error(`send failed on the day archive:\n${run.stdout}`);
    const perEvent = requests / events.length;
    rows.push([
      `send, a day's archive (${events.length} events, 200 users): requests per event`,
      `${perEvent.toFixed(3)} (${requests} requests; fewest possible ${(minimum / events.length).toFixed(3)}; one per event 1.000)`,
      "",
      true,
    ]);
    rows.push([
      "send, the same, unthrottled against the local emulator",
      `${Math.round(events.length / (run.ms / 1000))} events/s, peak RSS ${Math.round(run.rssKb / 1024)} MB`,
      "",
      true,
    ]);

    const large = join(dir, "large.ndjson.gz");
    const many = Array.from({ length: 200_000 }, (_, i) =>
      JSON.stringify({ ...events[i % events.length], messageId: `l${i}` }),
    );
    writeFileSync(large, gzipSync(many.join("\n")));
    const dry = await runCli(["send", large, "--dry-run", "--show", "0"], dir);
    if (dry.code !== 0) throw new Error(`the dry run failed:\n${dry.stdout}`);
    rows.push([
      "send --dry-run, 200,000 events",
      `${(dry.ms / 1000).toFixed(1)} s (${Math.round(200_000 / (dry.ms / 1000))} events/s), peak RSS ${Math.round(dry.rssKb / 1024)} MB`,
      "≤ 300 MB",
      dry.rssKb <= 300 * 1024,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Loads the built Lambda handler as a new instance, with these variables set for its cold start. */
function lambdaInstance(env: Record<string, string>) {
  Object.assign(process.env, env);
  const require = createRequire(import.meta.url);
  delete require.cache[LAMBDA_HANDLER];
  return require(LAMBDA_HANDLER) as {
    webhook: (event: APIGatewayProxyEventV2) => Promise<{ statusCode: number }>;
    deliver: DeliverHandler;
  };
}

/** A webhook batch, authenticated by the token. */
function post(to: ReturnType<typeof lambdaInstance>, events: unknown[]) {
  return to.webhook(
    functionUrlEvent({
      method: "POST",
      url: "/",
      headers: {
        "content-type": "application/json",
        authorization: "Bearer bench-token-5f0c2a9e7d1b4c8a3e6f2d9b",
      },
      body: Buffer.from(JSON.stringify(events)),
    }),
  );
}

/** A Lambda instance's variables for queued delivery through these local stand-ins. */
function queuedEnvironment(
  refiner: { url: string },
  queues: { endpoint: string; queueUrl: string },
  table: Parameters<typeof localTableEnvironment>[0],
): Record<string, string> {
  return {
    ...localSqsEnvironment(queues.endpoint),
    ...localTableEnvironment(table),
    REFINER_API_KEY: API_KEY,
    REFINER_API_BASE_URL: refiner.url,
    SEGMENT_WEBHOOK_TOKEN: "bench-token-5f0c2a9e7d1b4c8a3e6f2d9b",
    REFINER_QUEUE_URL: queues.queueUrl,
  };
}

async function queued(): Promise<void> {
  const refiner = await startRefinerEmulator({ apiKey: API_KEY });
  const queues = await startLocalQueues();
  // The table of delivered messageIds, which the doors read and the consumers read and write.
  const table = await startLocalTable({ root: ROOT });
  const env = {
    ...queuedEnvironment(refiner, queues, table),
    REFINER_RATE_PER_MINUTE: "6000",
    REFINER_CONSUMERS: "2",
  };
  const lambda = lambdaInstance(env);
  // Accepting: ten 1,000-event batches, each new (another batch's messageIds).
  const acceptMs: number[] = [];
  for (let run = 0; run < 10; run++) {
    const batch = analyticsBatch({ users: 200, seed: `accept${run}` });
    const started = performance.now();
    const result = await post(lambda, batch);
    acceptMs.push(performance.now() - started);
    if (result.statusCode !== 200)
      throw new Error(`a batch was not accepted: ${result.statusCode}`);
  }
  await queues.stop();
  const slowest = Math.max(...acceptMs);
  rows.push([
    "queued: accept a 1,000-event webhook batch (median, max of 10)",
    `${median(acceptMs).toFixed(0)} ms, ${slowest.toFixed(0)} ms`,
    "≤ 1 s",
    slowest <= 1000,
  ]);

  // Draining: 5,000 events at 80 ms a request, two consumers sharing 6,000 requests a minute.
  const drainQueues = await startLocalQueues();
  const drainEnv = {
    ...env,
    ...localSqsEnvironment(drainQueues.endpoint),
    REFINER_QUEUE_URL: drainQueues.queueUrl,
  };
  const producer = lambdaInstance(drainEnv);
  const events = analyticsBatch({ users: 1000, seed: "drain" });
  for (let at = 0; at < events.length; at += 1000) {
    await post(producer, events.slice(at, at + 1000));
  }
  refiner.reset();
  refiner.respond(() => ({ status: 201, body: { message: "ok" }, delayMs: 80 }));
  const consumers = [lambdaInstance(drainEnv).deliver, lambdaInstance(drainEnv).deliver];
  const poller = startPoller({
    client: drainQueues.client,
    queueUrl: drainQueues.queueUrl,
    handlers: consumers,
  });
  const tracked = events.filter((event) => event.type !== "identify").length;
  const trackKeys = () =>
    refiner.requests
      .filter((request) => request.path === "/track-event")
      .map((request) => JSON.stringify(request.body));
  const started = performance.now();
  while (new Set(trackKeys()).size < tracked && performance.now() - started < 180_000) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await poller.stop();
  await drainQueues.stop();
  await refiner.close();

  const keys = trackKeys();
  const duplicates = keys.length - new Set(keys).size;
  const missing = tracked - new Set(keys).size;
  const times = refiner.requests.map((request) => request.at).sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while ((times[j] as number) <= (times[i] as number) - 10_000) j += 1;
    most = Math.max(most, i - j + 1);
  }
  const share = most / 1000; // 6,000 a minute is 1,000 in 10 s
  rows.push([
    "queued: 5,000-event drain at 80 ms, 6,000 a minute: busiest 10 s",
    `${most} requests, ${share.toFixed(2)} × the budget's share (${((performance.now() - started) / 1000).toFixed(0)} s in all)`,
    "≤ 1.0 ×",
    share <= 1,
  ]);
  rows.push([
    "queued: duplicates, missing track and page events",
    `${duplicates}, ${missing} (of ${tracked})`,
    "0, 0",
    duplicates === 0 && missing === 0,
  ]);
  rows.push([
    "queued: requests per event, analytics.js sessions (one identify in five events)",
    `${(refiner.requests.length / events.length).toFixed(2)} (${refiner.requests.length} requests)`,
    "",
    true,
  ]);
  await queuedMix(env);
  await table.stop();
}

/**
 * A realistic 1,000-event webhook batch (100 users, each with three identifies, a group, five pages
 * and a track) through the queue: the door coalesces each contact's identifies and group into one
 * message, so the queue costs no more requests than direct delivery.
 */
async function queuedMix(env: Record<string, string>): Promise<void> {
  const refiner = await startRefinerEmulator({ apiKey: API_KEY });
  refiner.respond(() => ({ status: 201, body: { message: "ok" }, delayMs: 25 }));
  const queues = await startLocalQueues({ name: "mix" });
  const mixEnv = {
    ...env,
    ...localSqsEnvironment(queues.endpoint),
    REFINER_API_BASE_URL: refiner.url,
    REFINER_QUEUE_URL: queues.queueUrl,
  };
  const events = analyticsBatch({ users: 100, seed: "mix", session: REALISTIC_SESSION });
  const users = new Set(events.map((event) => event.userId)).size;
  const tracked = events.filter((event) => event.type === "page" || event.type === "track").length;
  const door = lambdaInstance(mixEnv);
  const result = await post(door, events);
  if (result.statusCode !== 200) throw new Error(`the mix was not accepted: ${result.statusCode}`);
  const poller = startPoller({
    client: queues.client,
    queueUrl: queues.queueUrl,
    handlers: [lambdaInstance(mixEnv).deliver, lambdaInstance(mixEnv).deliver],
  });
  const started = performance.now();
  const needed = users + tracked;
  while (refiner.requests.length < needed && performance.now() - started < 60_000) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await new Promise((resolve) => setTimeout(resolve, 1000)); // anything sent twice shows by now
  await poller.stop();
  await queues.stop();
  await refiner.close();
  const perEvent = refiner.requests.length / events.length;
  rows.push([
    "queued: requests per event, a realistic 1,000-event mix",
    `${perEvent.toFixed(2)} (fewest possible ${(needed / events.length).toFixed(2)})`,
    "≤ 0.72",
    perEvent <= 0.72,
  ]);
}

const DAY_PAGES = ["Home", "Pricing", "Docs", "Settings", "Billing"];

/**
 * A day of identifies on every page load: 300 users, 6 sessions each, an identify before each of 5
 * page loads and a track; traits change in about 1 session in 7. `surveyEvents`, when given, are
 * the only events Refiner needs (the eventAllowList): the fewest requests count only those.
 */
function dayTrace(surveyEvents?: ReadonlySet<string>) {
  const events: Record<string, unknown>[] = [];
  let minimum = 0;
  const needed = (name: string) => !surveyEvents || surveyEvents.has(name);
  // An identify is needed when its traits differ from the last ones Refiner got for the user.
  const lastPlan = new Map<number, string>();
  for (let session = 0; session < 6; session++) {
    for (let user = 0; user < 300; user++) {
      const changed = session === 0 || (user * 7 + session * 3) % 7 === 0;
      const plan = `plan-${user}-${changed ? session : "same"}`;
      if (lastPlan.get(user) !== plan) minimum += 1;
      lastPlan.set(user, plan);
      DAY_PAGES.forEach((page) => {
        events.push({ type: "identify", userId: `u${user}`, traits: { plan, seats: user % 9 } });
        events.push({ type: "page", userId: `u${user}`, name: page });
        if (needed(`Viewed ${page} Page`)) minimum += 1;
      });
      const name = session === 0 ? "Trial Started" : `Session ${session}`;
      events.push({ type: "track", userId: `u${user}`, event: name });
      if (needed(name)) minimum += 1;
    }
  }
  return { events, minimum };
}

/** Replays events through the Segment function's single handlers; Refiner's requests, counted. */
async function replay(events: Record<string, unknown>[], extra: Record<string, unknown>) {
  const handlerOf = { identify: "onIdentify", page: "onPage", track: "onTrack" } as const;
  const refiner = await startRefinerEmulator();
  const fn = loadSegmentFunction({ path: SEGMENT_FUNCTION, cache: true });
  const settings = { apiKey: API_KEY, apiBaseUrl: refiner.url, ...extra };
  for (const event of events) {
    await fn.handlers[handlerOf[event.type as keyof typeof handlerOf]](event, settings);
  }
  const requests = refiner.requests.length;
  await refiner.close();
  return requests;
}

/**
 * Sends events through the queued webhook in 1,000-event batches, in order, while `consumers`
 * deliver instances drain the queue; Refiner's requests, counted once the queue is empty.
 */
async function queuedReplay(
  events: Record<string, unknown>[],
  consumers: number,
  extra: Record<string, string> = {},
): Promise<number> {
  const refiner = await startRefinerEmulator({ apiKey: API_KEY });
  const queues = await startLocalQueues({ name: "day" });
  const table = await startLocalTable({ root: ROOT });
  const env = {
    ...queuedEnvironment(refiner, queues, table),
    REFINER_RATE_PER_MINUTE: "600000",
    // lambdaInstance leaves the variables in process.env: each run sets its own.
    REFINER_SKIP_UNCHANGED_MINUTES: "",
    REFINER_EVENT_ALLOW_LIST: "",
    ...extra,
  };
  const door = lambdaInstance(env);
  const poller = startPoller({
    client: queues.client,
    queueUrl: queues.queueUrl,
    handlers: Array.from({ length: consumers }, () => lambdaInstance(env).deliver),
  });
  for (let at = 0; at < events.length; at += 1000) {
    const result = await post(door, events.slice(at, at + 1000));
    if (result.statusCode !== 200)
      throw new Error(`a day batch was not accepted: ${result.statusCode}`);
  }
  const started = performance.now();
  while ((await queues.count(queues.queueUrl)) > 0 && performance.now() - started < 300_000) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await poller.stop();
  await queues.stop();
  await table.stop();
  const requests = refiner.requests.length;
  await refiner.close();
  return requests;
}

/** The day trace where skipping keeps the rule (queued, 4 consumers), and what the function costs. */
async function unchangedTrace(): Promise<void> {
  const { events, minimum } = dayTrace();
  const queued = await queuedReplay(events, 4);
  const every = await queuedReplay(events, 4, { REFINER_SKIP_UNCHANGED_MINUTES: "0" });
  rows.push([
    `day trace, queued with 4 consumers (${events.length} events): requests / fewest needed`,
    `${(queued / minimum).toFixed(3)} × (${queued} for ${minimum}; without skipping ${(every / minimum).toFixed(2)} ×)`,
    "≤ 1.05 ×",
    queued <= minimum * 1.05,
  ]);
  const fn = await replay(events, {});
  rows.push([
    "day trace, Segment function (it skips nothing: its memory is one worker's)",
    `${(fn / minimum).toFixed(2)} × the fewest (${fn} requests)`,
    "",
    true,
  ]);
}

/** The same day with only the events surveys target sent (eventAllowList), queued. */
async function surveyEventsTrace(): Promise<void> {
  const surveyEvents = new Set(["Viewed Pricing Page", "Trial Started"]);
  const { events, minimum } = dayTrace(surveyEvents);
  const chosen = await queuedReplay(events, 4, {
    REFINER_EVENT_ALLOW_LIST: [...surveyEvents].join(","),
  });
  const all = await queuedReplay(events, 4);
  rows.push([
    `day trace, only the events surveys use (eventAllowList of 2), queued: requests / fewest needed`,
    `${(chosen / minimum).toFixed(3)} × (${chosen} for ${minimum}; every event: ${all} requests, ${(all / chosen).toFixed(1)} × as many)`,
    "≤ 1.05 ×",
    chosen <= minimum * 1.05,
  ]);
}

/** `count` identifies, each with a trait key of `keyLength` capitals (cut to 255 when longer). */
function keyedIdentifies(count: number, keyLength: number) {
  return Array.from({ length: count }, (_, user) => ({
    type: "identify",
    userId: `user-${user}`,
    traits: { [`${"K".repeat(keyLength - 1)}${user}`]: true, plan: "pro" },
  }));
}

/**
 * What a stranger's input costs a door, against ordinary input in the same run: a batch of
 * 30,000-capital trait keys in the pasted script, and unauthenticated bodies at the webhook.
 */
async function hostile(): Promise<void> {
  const refiner = await startRefinerEmulator();
  const fn = loadSegmentFunction({ path: SEGMENT_FUNCTION });
  const settings = { apiKey: API_KEY, apiBaseUrl: refiner.url, skipUnchangedMinutes: "0" };
  const long = keyedIdentifies(10, 30_000);
  const short = keyedIdentifies(10, 30);
  const keySides = {
    long: () => fn.handlers.onBatch(long, settings),
    short: () => fn.handlers.onBatch(short, settings),
  };
  await interleave(keySides, "short", { rounds: 1, calls: 20 }); // warm-up
  const keys = await interleave(keySides, "short", { rounds: 11, calls: 40 });
  await refiner.close();
  const range = ({ low, high }: Ratio) => `rounds ${low.toFixed(2)}–${high.toFixed(2)}`;
  rows.push([
    "onBatch of 10 events, 30,000-character trait keys / 30-character keys",
    `${keys.long?.median.toFixed(2)} × (${keys.long ? range(keys.long) : ""}; ${keys.long?.microseconds.toFixed(0)} µs vs ${keys.short?.microseconds.toFixed(0)} µs)`,
    "≤ 2 ×",
    (keys.long?.median ?? Number.POSITIVE_INFINITY) <= 2,
  ]);

  const env = {
    REFINER_API_KEY: API_KEY,
    SEGMENT_WEBHOOK_TOKEN: "bench-token-0123456789abcdef0123456789",
    SEGMENT_SHARED_SECRET: "bench-secret",
  };
  const before = Object.fromEntries(Object.keys(env).map((name) => [name, process.env[name]]));
  const lambda = lambdaInstance(env);
  const unauthenticated = (body: string, headers: Record<string, string> = {}) =>
    functionUrlEvent({
      method: "POST",
      url: "/",
      headers: { "content-type": "application/json", ...headers },
      body: Buffer.from(body),
    });
  const big = "[".repeat(5 * 1024 * 1024);
  const events = {
    small: unauthenticated(`[${JSON.stringify({ type: "track", padding: "x".repeat(980) })}]`),
    big: unauthenticated(big),
    signed: unauthenticated(big, { "x-signature": "0".repeat(40) }),
  };
  const webhookSides = Object.fromEntries(
    Object.entries(events).map(([name, event]) => [
      name,
      async () => {
        const { statusCode } = await lambda.webhook(event);
        if (statusCode !== 401) throw new Error(`an unauthenticated body got ${statusCode}`);
      },
    ]),
  );
  const { small, big: bigSide, signed } = webhookSides;
  if (!small || !bigSide || !signed) throw new Error("a webhook side is missing");
  await interleave({ small, big: bigSide }, "small", { rounds: 1, calls: 2000 }); // warm-up
  const refused = await interleave({ small, big: bigSide }, "small", { rounds: 11, calls: 5000 });
  // A signature must be checked over every byte: fewer calls, the same baseline.
  const withSignature = await interleave({ small, signed }, "small", { rounds: 5, calls: 10 });
  for (const [name, value] of Object.entries(before)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  const bigRatio = refused.big;
  const signedRatio = withSignature.signed;
  rows.push([
    "webhook 401, unauthenticated 5 MB body / 1 KB body",
    `${bigRatio?.median.toFixed(2)} × (${bigRatio ? range(bigRatio) : ""}; ${bigRatio?.microseconds.toFixed(0)} µs vs ${refused.small?.microseconds.toFixed(0)} µs)`,
    "≤ 2 ×",
    (bigRatio?.median ?? Number.POSITIVE_INFINITY) <= 2,
  ]);
  rows.push([
    "  the same 5 MB with a wrong X-Signature (one HMAC and one scan of the body)",
    `${signedRatio?.median.toFixed(0)} × (${((signedRatio?.microseconds ?? 0) / 1000).toFixed(1)} ms)`,
    "",
    false,
  ]);
}

function sizes(): void {
  const segment = statSync(SEGMENT_FUNCTION).size;
  const lambda = statSync(LAMBDA_HANDLER).size;
  rows.push([
    "dist/segment-function.js (unminified)",
    `${(segment / 1024).toFixed(1)} KB (${segment} bytes)`,
    "≤ 40 KB",
    segment <= 40 * 1024,
  ]);
  rows.push([
    "dist/lambda/handler.js",
    `${(lambda / 1024).toFixed(1)} KB (${lambda} bytes)`,
    "≤ 60 KB",
    lambda <= 60 * 1024,
  ]);
}

/**
 * In the page, one round: `count` identifies through analytics-next and the plugin, one at a time,
 * each timed from `analytics.identify` to its `identifyUser` reaching `_refiner` (the stand-in
 * client); then 1,000 calls of the plugin's own identify hook with an analytics-next event (the
 * mapping and normalization, and the `_refiner` call), and 1,000 bare `_refiner("identifyUser", …)`
 * calls. The median identify, and the mean hook and bare call, in ms.
 */
const BROWSER_ROUND = `async (count) => {
  const client = window._refiner;
  let reached;
  window._refiner = (...args) => {
    client(...args);
    if (args[0] === "identifyUser") reached?.(performance.now());
  };
  const identifies = [];
  for (let i = 0; i < count; i++) {
    const called = new Promise((resolve) => { reached = resolve; });
    const started = performance.now();
    analytics.identify("u-" + i, { plan: "pro", visits: i });
    identifies.push((await called) - started);
  }
  reached = undefined;
  identifies.sort((a, b) => a - b);
  const mean = (call) => {
    const started = performance.now();
    for (let i = 0; i < 1000; i++) call(i);
    return (performance.now() - started) / 1000;
  };
  const plugin = analytics.instance.queue.plugins.find((p) => p.name === "Refiner");
  const event = (i) => ({ type: "identify", userId: "u-" + i, anonymousId: "a-1", messageId: "m-" + i,
    traits: { plan: "pro", visits: i, firstName: "Ann", address: { city: "Oslo" } },
    context: { library: { name: "analytics.js" } }, integrations: {} });
  const hook = mean((i) => plugin.identify({ event: event(i) }));
  const bare = mean((i) => window._refiner("identifyUser", { plan: "pro", visits: i, first_name: "Ann", address_city: "Oslo", id: "u-" + i }));
  window._refiner = client;
  return [identifies[Math.floor(count / 2)], hook, bare];
}`;

async function browserPlugin(): Promise<void> {
  const script = readFileSync(join(ROOT, "dist", "browser", "refiner.js"));
  rows.push([
    "dist/browser/refiner.js, minified / gzipped",
    `${(script.length / 1024).toFixed(1)} KB / ${(gzipSync(script).length / 1024).toFixed(1)} KB`,
    "≤ 10 KB minified",
    script.length <= 10 * 1024,
  ]);
  if (!existsSync(CHROMIUM_PATH)) {
    rows.push([
      `browser: skipped, ${CHROMIUM_PATH} is absent (apt-get install chromium)`,
      "",
      "",
      true,
    ]);
    return;
  }
  const [chromium, server] = await Promise.all([
    launchChromium(),
    startBrowserServer({ root: ROOT }),
  ]);
  try {
    const page = await chromium.context.newPage();
    await page.goto(`${server.origin}/test.html`);
    await page.evaluate(
      `startAnalytics({ projectId: "bench", scriptUrl: "${server.origin}/refiner-web-client.js" })`,
    );
    await page.waitForFunction("window.refinerWebClient !== undefined");
    const pipeline: number[] = [];
    const hook: number[] = [];
    const bare: number[] = [];
    for (let round = 0; round < 11; round++) {
      const [identify, own, call] = (await page.evaluate(`(${BROWSER_ROUND})(30)`)) as number[];
      pipeline.push(identify as number);
      hook.push(own as number);
      bare.push(call as number);
    }
    const over = (side: number[]) => side.map((ms, round) => ms / (bare[round] as number));
    const range = (ratios: number[]) => {
      const sorted = [...ratios].sort((a, b) => a - b);
      return `${median(ratios).toFixed(1)} × (${sorted[0]?.toFixed(1)}–${sorted.at(-1)?.toFixed(1)})`;
    };
    rows.push([
      "browser: analytics.identify → the _refiner call, against a bare _refiner call (Chromium)",
      `${range(over(pipeline))}, ${median(pipeline).toFixed(1)} ms`,
      "",
      true,
    ]);
    rows.push([
      "browser: the plugin's identify hook (mapping, traits, the call), against a bare _refiner call",
      `${range(over(hook))}, ${(median(hook) * 1000).toFixed(0)} µs`,
      "≤ 10 ×",
      median(over(hook)) <= 10,
    ]);
  } finally {
    await chromium.close();
    await server.close();
  }
}

async function main(): Promise<void> {
  console.log(`Benchmarks on node ${process.version}, ${new Date().toISOString()}\n`);
  // `npm run bench -- queued send` runs only those groups.
  const groups: Record<string, () => unknown> = {
    overhead: perEventOverhead,
    cold: coldStart,
    batch: batchThroughput,
    send: backfill,
    queued,
    unchanged: unchangedTrace,
    events: surveyEventsTrace,
    hostile,
    sizes,
    browser: browserPlugin,
  };
  const chosen = process.argv.slice(2);
  // The handlers' own lines (JSON logs, embedded metrics) go to a file, so that the figures stand
  // alone on the terminal.
  const linesFile = join(ROOT, "dist", "dev", "bench-lines.log");
  writeFileSync(linesFile, "");
  const streams = [process.stdout, process.stderr];
  const writes = streams.map((stream) => stream.write.bind(stream));
  streams.forEach((stream, at) => {
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (String(chunk).startsWith("{")) {
        appendFileSync(linesFile, String(chunk));
        return true;
      }
      return (writes[at] as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof stream.write;
  });
  for (const [name, run] of Object.entries(groups)) {
    if (chosen.length === 0 || chosen.includes(name)) await run();
  }
  streams.forEach((stream, at) => {
    stream.write = writes[at] as typeof stream.write;
  });
  console.log(`(the handlers' log and metric lines: ${relative(process.cwd(), linesFile)})\n`);
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
