// `refiner-destination send`, run as the built command against the emulator: a gzipped NDJSON
// archive replayed with retries, a rate limit and a failures file that can be sent again.

import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { splitValues } from "../cli/read-events.ts";
import { MAX_IN_FLIGHT } from "../lib/batch.ts";
import { API_KEY } from "./support/fixtures.ts";
import {
  type RecordedRequest,
  type RefinerEmulator,
  startRefinerEmulator,
} from "./support/refiner-emulator.ts";

const ROOT = join(import.meta.dirname, "..");
const CLI = join(ROOT, "dist", "cli", "refiner-destination.js");
const run = promisify(execFile);

function environment(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("REFINER_")),
  );
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      env: environment(),
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const USERS = 40;
const at = (minute: number, second: number) =>
  new Date(Date.UTC(2026, 5, 1, 10, minute, second)).toISOString();

/** An archive of a few hundred events: per user two identifies, a group, two tracks and a page. */
function archive(): { events: Record<string, unknown>[]; invalid: Record<string, unknown>[] } {
  const events: Record<string, unknown>[] = [];
  const invalid: Record<string, unknown>[] = [];
  for (let user = 0; user < USERS; user++) {
    const userId = `user-${user}`;
    const id = (n: number) => `m-${user}-${n}`;
    events.push(
      {
        type: "identify",
        userId,
        messageId: id(1),
        timestamp: at(0, user),
        traits: { plan: "trial", seats: 1 },
      },
      {
        type: "group",
        userId,
        messageId: id(2),
        timestamp: at(1, user),
        groupId: `acct-${user % 5}`,
        traits: { name: `Account ${user % 5}` },
      },
      { type: "track", userId, messageId: id(3), timestamp: at(2, user), event: `Report ${user}` },
      {
        type: "identify",
        userId,
        messageId: id(4),
        timestamp: at(3, user),
        traits: { plan: "pro" },
      },
      { type: "page", userId, messageId: id(5), timestamp: at(4, user), name: `Pricing ${user}` },
      { type: "track", userId, messageId: id(6), timestamp: at(5, user), event: `Upgrade ${user}` },
    );
    if (user % 4 === 0) {
      const bad = {
        type: "track",
        anonymousId: `anon-${user}`,
        messageId: `bad-${user}`,
        event: "Anonymous",
      };
      invalid.push(bad);
      events.push(bad);
    }
  }
  return { events, invalid };
}

const ndjson = (events: unknown[]) =>
  `${events.map((event) => JSON.stringify(event)).join("\n")}\n`;

describe("send", () => {
  const dir = mkdtempSync(join(tmpdir(), "refiner-send-"));
  const { events, invalid } = archive();
  const file = join(dir, "segment-archive.ndjson.gz");
  const failures = join(dir, "failures.ndjson");
  let refiner: RefinerEmulator;
  let first: Awaited<ReturnType<typeof cli>>;
  let firstRequests: RecordedRequest[];
  const RATE = 6000; // per minute: 100 a second

  beforeAll(async () => {
    writeFileSync(file, gzipSync(ndjson(events)));
    refiner = await startRefinerEmulator({ apiKey: API_KEY });
    // Refiner fails some requests once (503), and user-7's always, until the second run.
    const failedOnce = new Set<string>();
    refiner.respond((request) => {
      const body = request.body as { id?: string; event?: string };
      if (body.id === "user-7") return { status: 503, body: { message: "Service Unavailable" } };
      const key = `${request.path} ${JSON.stringify(body)}`;
      if (body.event?.startsWith("Report") && !failedOnce.has(key)) {
        failedOnce.add(key);
        return { status: 503 };
      }
      return undefined;
    });
    first = await cli([
      "send",
      file,
      "--api-key",
      API_KEY,
      "--api-base-url",
      refiner.url,
      "--rate",
      String(RATE),
      "--attempts",
      "3",
      "--backoff",
      "20",
      "--failures",
      failures,
    ]);
    firstRequests = [...refiner.requests];
  }, 60_000);
  afterAll(() => refiner.close());

  const answered = (requests: RecordedRequest[]) =>
    requests.filter((request) => (request.body as { id?: string }).id !== "user-7");

  it("delivers every valid event, retrying what failed once", () => {
    const names = new Set(
      answered(firstRequests).map((request) => (request.body as { event?: string }).event),
    );
    for (let user = 0; user < USERS; user++) {
      if (user === 7) continue;
      for (const name of [`Report ${user}`, `Upgrade ${user}`, `Viewed Pricing ${user} Page`]) {
        expect(names.has(name), name).toBe(true);
      }
    }
    expect(first.stdout).toMatch(
      /read 250 events, delivered 234, rejected 10, still failing after 3 tries 6/,
    );
  });

  it("coalesces each user's identifies and group, the latest traits winning", () => {
    const identifies = answered(firstRequests).filter(
      (request) => request.path === "/identify-user",
    );
    for (let user = 0; user < USERS; user++) {
      if (user === 7) continue;
      const mine = identifies.filter(
        (request) => (request.body as { id: string }).id === `user-${user}`,
      );
      const last = mine.at(-1)?.body as Record<string, unknown>;
      expect(last.plan, `user-${user}`).toBe("pro");
      expect(last.account).toEqual({ name: `Account ${user % 5}`, id: `acct-${user % 5}` });
    }
  });

  it("appends rejected and still-failing events, whole, to the failures file, and exits non-zero", () => {
    expect(first.code).toBe(1);
    const written = readFileSync(failures, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    const stuck = events.filter((event) => event.userId === "user-7");
    expect(written).toHaveLength(invalid.length + stuck.length);
    expect(written).toEqual(expect.arrayContaining([...invalid, ...stuck]));
    expect(first.stdout).toContain(`16 events appended to ${failures}`);
  });

  it("keeps to the rate limit in every second", () => {
    const times = firstRequests.map((request) => request.at).sort((a, b) => a - b);
    const capacity = RATE / 600; // the bucket's burst
    let most = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while ((times[j] as number) <= (times[i] as number) - 1000) j += 1;
      most = Math.max(most, i - j + 1);
    }
    // The bucket starts at most RATE/60 requests a second after a burst of `capacity`; up to 8
    // more may have started just before the window and arrive inside it.
    expect(most).toBeLessThanOrEqual(RATE / 60 + capacity + MAX_IN_FLIGHT);
    expect(firstRequests.length).toBeGreaterThan(150);
  });

  it("sends the failures file again: what was stuck gets through, what is invalid stays", async () => {
    refiner.reset(); // Refiner has recovered
    const again = join(dir, "failures-again.ndjson");
    const second = await cli([
      "send",
      failures,
      "--api-key",
      API_KEY,
      "--api-base-url",
      refiner.url,
      "--failures",
      again,
    ]);
    expect(second.stdout).toMatch(/read 16 events, delivered 6, rejected 10/);
    expect(second.code).toBe(1);
    expect(
      refiner.requests.every((request) => (request.body as { id?: string }).id === "user-7"),
    ).toBe(true);
    const left = readFileSync(again, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(left).toEqual(invalid);
  });
});

describe("send, small cases", () => {
  it("dry-runs the sample events with no account, printing each request", async () => {
    const samples = ["identify", "group", "track", "page", "screen"].map((name) =>
      join(ROOT, "events", `${name}.json`),
    );
    const result = await cli(["send", ...samples, "--dry-run"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('would send: POST /identify-user {"first_name":"John"');
    expect(result.stdout).toContain(
      'would send: POST /track-event {"event":"Login Button Clicked","id":"userId123"}',
    );
    expect(result.stdout).toMatch(/Dry run in .*: read 5 events, delivered 5/);
  });

  it("reads standard input and refuses a missing API key clearly", async () => {
    const noKey = await cli(["send", "-"]);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain("--api-key or REFINER_API_KEY");

    const refiner = await startRefinerEmulator({ apiKey: API_KEY });
    const child = spawn(
      process.execPath,
      [CLI, "send", "-", "--api-key", API_KEY, "--api-base-url", refiner.url],
      {
        env: environment(),
      },
    );
    let stdout = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stdin.end(ndjson([{ type: "track", userId: "u1", event: "From stdin" }]));
    const code = await new Promise((resolve) => child.on("close", resolve));
    await refiner.close();
    expect(code).toBe(0);
    expect(stdout).toContain("read 1 events, delivered 1");
    expect(refiner.requests.map((r) => r.body)).toEqual([{ event: "From stdin", id: "u1" }]);
  });

  it("rejects bad options with the usage", async () => {
    const result = await cli(["send", "x.json", "--rate", "0"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--rate must be a positive number");
  });
});

describe("reading events", () => {
  async function values(text: string, chunkSize: number) {
    const chunks = async function* () {
      for (let i = 0; i < text.length; i += chunkSize) yield text.slice(i, i + chunkSize);
    };
    const items = [];
    for await (const item of splitValues(chunks())) items.push(item);
    return items;
  }

  it.each([1, 3, 64])(
    "splits NDJSON, arrays and multi-line objects in %i-character chunks",
    async (size) => {
      expect(await values('{"a":1}\n{"b":"x}{"}\n', size)).toEqual([
        { event: { a: 1 }, line: 1 },
        { event: { b: "x}{" }, line: 2 },
      ]);
      expect(await values('[\n {"a":[1,2]},\n {"b":"\\"]"}\n]\n', size)).toEqual([
        { event: { a: [1, 2] }, line: 2 },
        { event: { b: '"]' }, line: 3 },
      ]);
      expect(await values('{\n  "type": "identify",\n  "userId": "u1"\n}\n', size)).toEqual([
        { event: { type: "identify", userId: "u1" }, line: 1 },
      ]);
    },
  );

  it("reports what is not JSON, with its line, and goes on", async () => {
    const items = await values('{"a":1}\n{"b":nope}\n42\n{"c":3}', 7);
    expect(items).toEqual([
      { event: { a: 1 }, line: 1 },
      { error: expect.stringContaining("not valid JSON"), line: 2 },
      { event: 42, line: 3 },
      { event: { c: 3 }, line: 4 },
    ]);
  });

  it("reports an unterminated value at the end", async () => {
    expect(await values('{"a":1}\n{"b":', 4)).toEqual([
      { event: { a: 1 }, line: 1 },
      { error: "the input ends in the middle of a value", line: 2 },
    ]);
  });
});
