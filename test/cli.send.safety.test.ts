// `refiner-destination send`, run as the built command against the emulator, where an operator's
// run could lose, repeat or hang: a JSON array with a syntax error, a resume after the input was
// touched or changed, two runs on one checkpoint, a Refiner that stops answering, a refused key.
// Counts are of requests Refiner answered 2xx (the emulator records a request that it then leaves
// hanging, but nothing of it was taken). Each test runs the CLI several times, so each may take up
// to a minute on a busy machine; none waits on the clock but the short --timeout of 1.5 s.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type RecordedRequest,
  type RefinerEmulator,
  startRefinerEmulator,
} from "../local/refiner-emulator.ts";
import { CLI } from "./support/cli.ts";
import { type Finished, startNode } from "./support/command.ts";
import { API_KEY } from "./support/fixtures.ts";

let refiner: RefinerEmulator;
let dir: string;
/** Tracks Refiner answered 2xx, as "userId event". */
let taken: string[];

beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
});
afterAll(() => refiner.close());
beforeEach(() => {
  refiner.reset();
  taken = [];
  answerAll();
  dir = mkdtempSync(join(tmpdir(), "refiner-safety-"));
});

/** Refiner answers every request (201), and what it takes is counted. */
function answerAll(): void {
  refiner.respond((request) => {
    takeIt(request);
    return undefined;
  });
}

function takeIt(request: RecordedRequest): void {
  const body = request.body as { id?: string; event?: string };
  if (request.path === "/track-event") taken.push(`${body.id} ${body.event}`);
}

type Run = Finished;

function start(args: string[], variables: Record<string, string> = {}) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("REFINER_")),
  );
  return startNode(CLI, args, { cwd: dir, env: { ...env, ...variables } });
}

const sendArgs = (files: string[], extra: string[] = []) => [
  "send",
  ...files,
  "--api-key",
  API_KEY,
  "--api-base-url",
  refiner.url,
  "--backoff",
  "10",
  ...extra,
];

const send = (files: string[], extra: string[] = ["--rate", "600000"]) =>
  start(sendArgs(files, extra)).done;

const track = (userId: string, event: string) => ({
  type: "track",
  userId,
  event,
  messageId: `m-${userId}-${event}`,
});

/** `contacts` contacts with `each` tracks apiece, interleaved as an archive would have them. */
function tracks(contacts: number, each: number) {
  return Array.from({ length: contacts * each }, (_, i) =>
    track(`u${i % contacts}`, `Step ${Math.floor(i / contacts)}`),
  );
}

const ndjson = (events: unknown[]) => `${events.map((e) => JSON.stringify(e)).join("\n")}\n`;

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/** How many times Refiner took each of these events: every one must be exactly 1. */
function timesTaken(events: { userId: string; event: string }[]): Map<string, number> {
  const counts = new Map(events.map((event) => [`${event.userId} ${event.event}`, 0]));
  for (const key of taken) counts.set(key, (counts.get(key) ?? 0) + 1);
  return counts;
}

async function until(condition: () => boolean): Promise<void> {
  // Waits on the emulator's progress, whatever the machine's speed.
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe("a JSON array with a syntax error", () => {
  it("sends every valid event before the error, and names the file and line", async () => {
    const events = tracks(20, 10); // 200 events, about 21 KB
    const text = JSON.stringify(events, null, 2).replace(/\n\]$/, ",\n  {broken\n]\n");
    const input = file("export.json", text);
    const run = await send([input]);
    expect([...timesTaken(events).values()].filter((count) => count !== 1)).toEqual([]);
    expect(taken).toHaveLength(200);
    // The broken value starts on the line after the 200 events' 1,200 lines and the "[".
    expect(run.stderr).toContain(
      "export.json:line 1202, byte 21005 (value 201): not valid JSON: {broken",
    );
    expect(run.stdout).toContain("read 200 events; delivered 200,");
    expect(run.stdout).toContain("unreadable 1.");
    expect(run.code).toBe(1);
  }, 60_000);

  it("reads on after a bad element of a one-line array", async () => {
    const input = file(
      "line.json",
      `[${JSON.stringify(track("a", "One"))},{"type":"track" oops},${JSON.stringify(track("b", "Two"))}]`,
    );
    const run = await send([input]);
    expect(taken.sort()).toEqual(["a One", "b Two"]);
    expect(run.stderr).toContain('line.json:line 1, byte 68 (value 2): not valid JSON: {"type"');
    expect(run.code).toBe(1);
  }, 60_000);
});

describe("resume", () => {
  const EVENTS = tracks(15, 10);

  /**
   * A run stopped by Ctrl-C as Refiner takes its `after`-th request: sent by the emulator's own
   * handler, so that the run, which its rate keeps from finishing in the meantime, is stopped there
   * however late this test would notice.
   */
  async function interrupted(input: string, after: number): Promise<Run> {
    const { child, done } = start(sendArgs([input], ["--rate", "3000"]));
    refiner.respond((request) => {
      takeIt(request);
      if (taken.length === after) child.kill("SIGINT");
      return undefined;
    });
    const run = await done;
    answerAll();
    return run;
  }

  it("after Ctrl-C and a touch of the input, resumes: each contact's events taken exactly once", async () => {
    const input = file("archive.ndjson", ndjson(EVENTS));
    const first = await interrupted(input, 20);
    expect(first.code).toBe(130);
    const takenFirst = taken.length;
    expect(takenFirst).toBeLessThan(150);
    // Touched, as a copy or a new download of the same file would be.
    const later = new Date(Date.now() + 60_000);
    utimesSync(input, later, later);

    const second = await send([input]);
    expect(second.stderr).toContain(
      `Resuming from refiner-send.checkpoint.json: ${takenFirst} events already settled`,
    );
    expect(second.code).toBe(0);
    expect(refiner.requests.length).toBe(150);
    const counts = timesTaken(EVENTS);
    for (let contact = 0; contact < 15; contact++) {
      const mine = [...counts].filter(([key]) => key.startsWith(`u${contact} `));
      expect(mine.map(([, count]) => count)).toEqual(Array(10).fill(1));
    }
    expect(existsSync(join(dir, "refiner-send.checkpoint.json"))).toBe(false);
  }, 60_000);

  it("refuses a checkpoint whose input changed in what was read, until --restart", async () => {
    const input = file("archive.ndjson", ndjson(EVENTS));
    await interrupted(input, 20);
    const takenFirst = taken.length;
    const edited = [track("u0", "Edited"), ...EVENTS.slice(1)];
    writeFileSync(input, ndjson(edited));

    const refused = await send([input]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      `refiner-destination send: what was read of ${input} has changed since refiner-send.checkpoint.json was saved`,
    );
    expect(refused.stderr).toContain("Run the same command with --restart");
    expect(taken).toHaveLength(takenFirst);

    const restarted = await send([input], ["--rate", "600000", "--restart"]);
    expect(restarted.code).toBe(0);
    expect(taken).toHaveLength(takenFirst + 150);
  }, 60_000);

  it("refuses a checkpoint of other inputs rather than sending them again", async () => {
    const input = file("archive.ndjson", ndjson(EVENTS));
    await interrupted(input, 20);
    const other = file("other.ndjson", ndjson([track("z", "Other")]));
    const refused = await send([other]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      `refiner-send.checkpoint.json belongs to a run over other inputs (${input})`,
    );
    expect(taken).not.toContain("z Other");
  }, 60_000);
});

describe("the lock beside the checkpoint", () => {
  it("refuses a second run on the same checkpoint at once, and the first delivers each event once", async () => {
    const events = tracks(10, 10);
    const input = file("archive.ndjson", ndjson(events));
    // Past its first 5, the first run's answers wait until the second run is over, so that the
    // second starts while the first is under way however long it takes to start; its --timeout
    // outlasts the test.
    let secondOver = () => {};
    const over = new Promise<void>((resolve) => {
      secondOver = resolve;
    });
    refiner.respond((request) => {
      takeIt(request);
      return taken.length > 5 ? { status: 201, body: { message: "ok" }, until: over } : undefined;
    });
    const first = start(sendArgs([input], ["--rate", "600000", "--timeout", "120"]));
    await until(() => taken.length >= 5);
    const second = await send([input]);
    secondOver();
    expect(second.code).toBe(2);
    expect(second.stderr).toContain(
      `refiner-destination send: another run is using refiner-send.checkpoint.json (pid ${first.child.pid} on ${hostname()}`,
    );
    expect(second.stderr).toContain("give this one its own --checkpoint FILE");
    const run = await first.done;
    expect(run.code).toBe(0);
    expect([...timesTaken(events).values()].filter((count) => count !== 1)).toEqual([]);
    expect(existsSync(join(dir, "refiner-send.checkpoint.json.lock"))).toBe(false);
  }, 60_000);

  it("takes over a lock left by a run that is gone", async () => {
    const gone = spawn(process.execPath, ["-e", ""]);
    await new Promise((resolve) => gone.on("close", resolve));
    file(
      "refiner-send.checkpoint.json.lock",
      JSON.stringify({ pid: gone.pid, host: hostname(), since: "2026-01-01T00:00:00.000Z" }),
    );
    const input = file("one.ndjson", ndjson([track("a", "After A Crash")]));
    const run = await send([input]);
    expect(run.code).toBe(0);
    expect(taken).toEqual(["a After A Crash"]);
  }, 60_000);

  it("leaves a lock from another host to the user", async () => {
    file(
      "refiner-send.checkpoint.json.lock",
      JSON.stringify({ pid: 4242, host: "other-host", since: "2026-01-01T00:00:00.000Z" }),
    );
    const run = await send([file("one.ndjson", ndjson([track("a", "Held")]))]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      `another run is using refiner-send.checkpoint.json (pid 4242 on other-host, since 2026-01-01T00:00:00.000Z). Wait for it to end, or give this one its own --checkpoint FILE. If no such run is left, delete refiner-send.checkpoint.json.lock.`,
    );
    expect(refiner.requests).toHaveLength(0);
  }, 60_000);
});

describe("a Refiner that does not answer", () => {
  it("stops after --unanswered requests in a row time out, and the rerun sends each event exactly once", async () => {
    const events = tracks(20, 5);
    const input = file("archive.ndjson", ndjson(events));
    // Refiner takes 10 requests, then accepts every connection and never answers.
    refiner.respond((request) => {
      if (taken.length >= 10) return { hang: true };
      takeIt(request);
      return undefined;
    });
    // A short limit (1.5 s) stands for the default 10 s.
    const first = await send(
      [input],
      ["--rate", "600000", "--timeout", "1.5", "--unanswered", "3"],
    );
    expect(first.code).toBe(1);
    expect(first.stderr).toContain(
      "refiner-destination send: stopped: Refiner is not answering: 3 requests in a row got no answer",
    );
    expect(first.stderr).toContain(
      "Refiner is not answering; run the same command again to resume.",
    );
    expect(first.stdout).toMatch(
      /^Stopped \(Refiner is not answering\) in .*: settled 10 events so far/,
    );
    expect(existsSync(join(dir, "refiner-failures.ndjson"))).toBe(false);
    expect(taken).toHaveLength(10);

    answerAll();
    const second = await send([input]);
    expect(second.code).toBe(0);
    expect(second.stderr).toContain(
      "Resuming from refiner-send.checkpoint.json: 10 events already settled",
    );
    expect([...timesTaken(events).values()].filter((count) => count !== 1)).toEqual([]);
    expect(taken).toHaveLength(100);
  }, 60_000);

  it("stops when no connection can be made", async () => {
    // A port that was free a moment ago: connections to it are refused.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    const input = file("archive.ndjson", ndjson(tracks(5, 2)));
    const run = await start([
      "send",
      input,
      "--api-key",
      API_KEY,
      "--api-base-url",
      `http://127.0.0.1:${port}/v1`,
      "--backoff",
      "10",
    ]).done;
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      "stopped: Refiner is not answering: 3 requests in a row got no answer",
    );
    expect(existsSync(join(dir, "refiner-failures.ndjson"))).toBe(false);
    expect(existsSync(join(dir, "refiner-send.checkpoint.json"))).toBe(true);
  }, 60_000);
});

describe("what a run says", () => {
  it("says a refused key stopped it, naming REFINER_API_KEY and --api-key, not a Segment setting", async () => {
    const input = file("archive.ndjson", ndjson(tracks(3, 2)));
    const run = await start([
      "send",
      input,
      "--api-key",
      "rfk_wrong_key",
      "--api-base-url",
      refiner.url,
    ]).done;
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      "refiner-destination send: stopped: Refiner refused the API key (REFINER_API_KEY or --api-key): Refiner rejected the API key (404: API key not valid or does not exist)",
    );
    expect(run.stderr).toContain("fix the key and run the same command again to resume");
    expect(run.stderr).not.toContain("apiKey setting");
    expect(run.stderr).not.toContain("rfk_wrong_key");
    expect(run.stdout).toMatch(
      /^Stopped \(Refiner refused the API key \(REFINER_API_KEY or --api-key\)\) in .*: settled 0 events so far/,
    );
    expect(run.stdout).not.toContain("Done");
    expect(readFileSync(join(dir, "refiner-send.checkpoint.json"), "utf8")).toContain(
      '"version":2',
    );
  }, 60_000);

  it("prints, beside each trait of the census, the spelling the lists take, and a list of those works", async () => {
    const input = file(
      "census.ndjson",
      ndjson([
        {
          type: "identify",
          userId: "c1",
          traits: { firstName: "Ada", address: { postalCode: "75001" }, plan: "pro" },
          messageId: "census-1",
        },
      ]),
    );
    const all = await start(["send", input, "--dry-run", "--show", "0"]).done;
    expect(all.stdout).toContain(
      "  most frequent user traits, by requests: address_postal_code (1; in the lists: address.postalCode), first_name (1; in the lists: firstName), plan (1)\n",
    );
    // Copied from the census into the allow list, as a user would.
    const spellings = [...all.stdout.matchAll(/in the lists: ([^)]+)\)/g)].map((match) => match[1]);
    expect(spellings).toEqual(["address.postalCode", "firstName"]);
    const chosen = await start(["send", input, "--dry-run", "--show", "1"], {
      REFINER_TRAIT_ALLOW_LIST: spellings.join(","),
    }).done;
    expect(chosen.stdout).toContain(
      'would send: POST /identify-user {"first_name":"Ada","address_postal_code":"75001","id":"c1"}\n',
    );
    expect(chosen.stdout).toContain("2 user traits, 0 account traits.");
  }, 60_000);
});
