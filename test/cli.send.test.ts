// `refiner-destination send`, run as the built command against the emulator. Each case ends with
// every deliverable event in Refiner exactly once, and the right counts, files and exit status.

import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { constants, gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type RecordedRequest,
  type RefinerEmulator,
  startRefinerEmulator,
} from "../local/refiner-emulator.ts";
import { CLI } from "./support/cli.ts";
import { type Finished, startNode } from "./support/command.ts";
import { API_KEY, busiestWindow, trackCounts } from "./support/fixtures.ts";
import { size } from "./support/volume.ts";

let refiner: RefinerEmulator;
let dir: string;

beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
});
afterAll(() => refiner.close());
beforeEach(() => {
  refiner.reset();
  dir = mkdtempSync(join(tmpdir(), "refiner-send-"));
});

type Run = Finished;

function environment(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("REFINER_")),
  );
}

/** Starts the CLI in the test's own folder, where its default output files go. */
function start(args: string[], nodeArgs: string[] = [], env: Record<string, string> = {}) {
  return startNode(CLI, args, { nodeArgs, cwd: dir, env: { ...environment(), ...env } });
}

/** `send FILES…` against the emulator, fast: the rate limit is not what these cases test. */
function send(files: string[], extra: string[] = []): Promise<Run> {
  const args = ["send", ...files, "--api-key", API_KEY, "--api-base-url", refiner.url];
  return start([...args, "--rate", "600000", "--backoff", "10", ...extra]).done;
}

function file(name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const ndjson = (events: unknown[]) =>
  `${events.map((event) => JSON.stringify(event)).join("\n")}\n`;
const track = (userId: string, event: string, extra: Record<string, unknown> = {}) => ({
  type: "track",
  userId,
  event,
  messageId: `m-${userId}-${event}`,
  ...extra,
});

/** How often Refiner received each track, as "userId event". */
const tracks = (requests: RecordedRequest[] = refiner.requests) => trackCounts(requests);

function lines(path: string): Record<string, unknown>[] {
  return readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
}

describe("reading", () => {
  it("loses only the bad line of an NDJSON file", async () => {
    const input = file(
      "bad-line.ndjson",
      [
        JSON.stringify(track("a", "E1")),
        '{"type":"track", broken',
        JSON.stringify(track("b", "E2")),
      ].join("\n"),
    );
    const run = await send([input]);
    expect([...tracks()]).toEqual([
      ["a E1", 1],
      ["b E2", 1],
    ]);
    expect(run.stderr).toContain('bad-line.ndjson:line 2: not valid JSON: {"type":"track", broken');
    expect(run.stdout).toContain(
      "read 2 events; delivered 2, skipped 0, rejected 0, undelivered 0, unreadable 1.",
    );
    expect(run.code).toBe(1);
  });

  it("sends what a truncated .gz held, names it, and goes on with the next file", async () => {
    const events = Array.from({ length: 300 }, (_, i) => track(`u${i}`, "Archived"));
    const whole = gzipSync(ndjson(events));
    const truncated = file("cut.ndjson.gz", whole.subarray(0, Math.floor(whole.length * 0.6)));
    // What gunzip can still give of it: every complete line is an event that must arrive.
    const readable = gunzipSync(readFileSync(truncated), { finishFlush: constants.Z_SYNC_FLUSH })
      .toString("utf8")
      .split("\n")
      .slice(0, -1).length;
    const good = file("good.ndjson", ndjson([track("after", "Next File")]));

    const run = await send([truncated, good]);
    expect(readable).toBeGreaterThan(50);
    const sent = tracks();
    expect(sent.size).toBe(readable + 1);
    expect(sent.get("after Next File")).toBe(1);
    expect([...sent.values()].every((count) => count === 1)).toBe(true);
    expect(run.stderr).toContain(
      "cut.ndjson.gz: could not be read to its end: unexpected end of file",
    );
    expect(run.stdout).toMatch(/Not read to the end: .*cut\.ndjson\.gz \(unexpected end of file/);
    expect(run.code).toBe(1);
  });

  it("names a missing file among good ones and reads the others", async () => {
    const one = file("one.ndjson", ndjson([track("a", "One")]));
    const two = file("two.ndjson", ndjson([track("b", "Two")]));
    const run = await send([one, join(dir, "missing.ndjson"), two]);
    expect([...tracks().keys()].sort()).toEqual(["a One", "b Two"]);
    expect(run.stderr).toMatch(/missing\.ndjson: could not be read: ENOENT: no such file/);
    expect(run.stderr).not.toContain("to its end");
    expect(run.code).toBe(1);
  });

  it.each([
    ["a one-line array", (value: unknown) => JSON.stringify(value)],
    ["a pretty-printed array", (value: unknown) => JSON.stringify(value, null, 2)],
  ])("skips an element over 1 MiB in %s and reads what follows", async (_, format) => {
    const input = file(
      "big.json",
      format([
        track("a", "Before"),
        { ...track("b", "Huge"), properties: { blob: "x".repeat(2 * 1024 * 1024) } },
        track("c", "After"),
      ]),
    );
    const run = await send([input]);
    expect([...tracks().keys()].sort()).toEqual(["a Before", "c After"]);
    expect(run.stderr).toMatch(
      /big\.json:line \d+, byte \d+ \(value 2\): a value larger than 1048576 bytes/,
    );
    expect(run.stderr).not.toContain("not valid JSON");
    expect(run.stdout).toContain("unreadable 1.");
  });

  it("escapes control characters from the input before printing them", async () => {
    const input = file(
      "escape.ndjson",
      `${JSON.stringify(track("a", "Fine"))}\n{"type": "track", "event": "\u001b[31mred\u0007\n`,
    );
    const run = await send([input]);
    expect(run.stderr).toContain("\\u001b[31mred\\u0007");
    expect(run.stderr).not.toContain("\u001b[31m");
  });
});

describe("outcomes", () => {
  it("refuses the failures file (or another output) as an input, before sending anything", async () => {
    const failures = file("refiner-failures.ndjson", ndjson([track("a", "Again")]));
    const run = await send([failures]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("is this run's --failures file");
    expect(refiner.requests).toHaveLength(0);
    expect(readFileSync(failures, "utf8")).toBe(ndjson([track("a", "Again")]));

    const other = file("mine.ndjson", ndjson([track("a", "Again")]));
    expect((await send([other], ["--rejected", other])).code).toBe(2);
    expect(refiner.requests).toHaveLength(0);
  });

  it("skips anonymous page views, aliases and unknown types: exit 0, nothing written", async () => {
    const events = [
      ...Array.from({ length: 50 }, (_, i) => ({
        type: "page",
        anonymousId: `anon-${i}`,
        name: "Home",
        messageId: `p-${i}`,
      })),
      { type: "alias", userId: "u1", previousId: "anon-1" },
      { type: "refund", userId: "u1" },
    ];
    const run = await send([file("anonymous.ndjson", ndjson(events))]);
    expect(run.code).toBe(0);
    expect(refiner.requests).toHaveLength(0);
    expect(run.stdout).toContain("skipped 50: no userId and no email");
    expect(run.stdout).toContain("skipped 1: alias (Refiner cannot merge contacts)");
    expect(run.stdout).toContain("skipped 1: type Refiner does not take");
    for (const output of [
      "refiner-failures.ndjson",
      "refiner-rejected.ndjson",
      "refiner-send.checkpoint.json",
    ]) {
      expect(existsSync(join(dir, output)), output).toBe(false);
    }
  });

  it("writes invalid events and Refiner's permanent 4xx to the rejected file", async () => {
    refiner.respond((request) =>
      (request.body as { event?: string }).event === "Refused"
        ? { status: 422, body: { message: "bad event" } }
        : undefined,
    );
    const events = [track("a", "Fine"), track("b", "Refused"), { type: "track", userId: "c" }];
    const run = await send([file("mixed.ndjson", ndjson(events))]);
    expect(run.code).toBe(1);
    expect(lines(join(dir, "refiner-rejected.ndjson"))).toEqual(
      expect.arrayContaining([events[1], events[2]]),
    );
    expect(lines(join(dir, "refiner-rejected.ndjson"))).toHaveLength(2);
    expect(existsSync(join(dir, "refiner-failures.ndjson"))).toBe(false);
  });

  it("sends only --types identify,group", async () => {
    const events = [
      { type: "identify", userId: "a", traits: { plan: "pro" }, messageId: "i1" },
      { type: "group", userId: "a", groupId: "g1", messageId: "g1" },
      track("a", "Not Wanted"),
      { type: "page", userId: "a", name: "Home", messageId: "p1" },
    ];
    const run = await send([file("types.ndjson", ndjson(events))], ["--types", "identify,group"]);
    expect(run.code).toBe(0);
    expect(refiner.requests.map((request) => request.body)).toEqual([
      { plan: "pro", account: { id: "g1" }, id: "a" },
    ]);
    expect(run.stdout).toContain("skipped 2: type not in --types");
  });
});

describe("order and stalls", () => {
  it("never puts older traits over newer ones when the failures file is replayed", async () => {
    // plan: old fails for good; plan: new comes a window later and must not overtake it.
    const filler = Array.from({ length: 100 }, (_, i) => track(`f${i % 50}`, `Filler ${i}`));
    const events = [
      {
        type: "identify",
        userId: "x",
        traits: { plan: "old" },
        messageId: "old",
        timestamp: "2026-01-01T00:00:00Z",
      },
      ...filler,
      {
        type: "identify",
        userId: "x",
        traits: { plan: "new" },
        messageId: "new",
        timestamp: "2026-01-02T00:00:00Z",
      },
    ];
    refiner.respond((request) =>
      (request.body as { id?: string }).id === "x" ? { status: 503 } : undefined,
    );
    const first = await send(
      [file("plans.ndjson", ndjson(events))],
      ["--attempts", "2", "--window", "100"],
    );
    expect(first.code).toBe(1);
    const failures = join(dir, "refiner-failures.ndjson");
    expect(lines(failures).map((event) => event.messageId)).toEqual(["old", "new"]);
    expect(
      refiner.requests.filter((request) => (request.body as { id?: string }).id === "x"),
    ).toHaveLength(2); // old, twice; new never

    refiner.reset(); // Refiner has recovered
    const replay = await send([failures], ["--failures", join(dir, "again.ndjson")]);
    expect(replay.code).toBe(0);
    expect(refiner.requests.map((request) => request.body)).toEqual([{ plan: "new", id: "x" }]);
  });

  // The stuck contact's first try fails and its retry waits a back-off longer than any test: the
  // others must all be delivered meanwhile (the run is then stopped with Ctrl-C, so nothing waits
  // on the clock), and the resumed run, with a short back-off, parks it. Small: 20 contacts and 2
  // tries; full: 100 contacts and 3 tries.
  const stall = size({ contacts: 20, attempts: 2 }, { contacts: 100, attempts: 3 });
  it("parks a contact that always fails, while the others go on without waiting for it", async () => {
    const { contacts, attempts } = stall;
    const events = Array.from({ length: contacts * 10 }, (_, i) =>
      track(`u${i % contacts}`, `Step ${Math.floor(i / contacts)}`),
    );
    refiner.respond((request) =>
      (request.body as { id?: string }).id === "u7" ? { status: 500 } : undefined,
    );
    const stuckOnes = () =>
      refiner.requests.filter((request) => (request.body as { id?: string }).id === "u7");
    const others = () =>
      refiner.requests.filter((request) => (request.body as { id?: string }).id !== "u7");
    const input = file("stuck.ndjson", ndjson(events));
    const args = ["send", input, "--api-key", API_KEY, "--api-base-url", refiner.url];
    const waiting = start([
      ...args,
      "--rate",
      "600000",
      "--attempts",
      String(attempts),
      "--backoff",
      "600000",
    ]);
    while (others().length < (contacts - 1) * 10) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    waiting.child.kill("SIGINT");
    const first = await waiting.done;
    expect(first.code).toBe(130);
    // Everyone else was delivered while the stuck contact waited for its second try.
    expect(stuckOnes()).toHaveLength(1);
    expect(tracks(others()).size).toBe((contacts - 1) * 10);
    expect([...tracks(others()).values()].every((count) => count === 1)).toBe(true);

    const run = await send([input], ["--attempts", String(attempts)]);
    expect(run.code).toBe(1);
    // Its first event, tried `attempts` times more; the rest never sent.
    expect(stuckOnes()).toHaveLength(1 + attempts);
    expect(
      stuckOnes().every((request) => (request.body as { event?: string }).event === "Step 0"),
    ).toBe(true);
    expect(others()).toHaveLength((contacts - 1) * 10);
    expect(lines(join(dir, "refiner-failures.ndjson")).map((event) => event.event)).toEqual(
      Array.from({ length: 10 }, (_, step) => `Step ${step}`),
    );
    expect(run.stdout).toContain(
      `delivered ${(contacts - 1) * 10}, skipped 0, rejected 0, undelivered 10`,
    );
  });
});

describe("resume", () => {
  // 20 rounds of every contact (1,000 at full size): each identified 18 times (coalesced) and with
  // 2 tracks. Small, a run makes about 180 requests, and is stopped after the first 12 (2,000 at
  // full size).
  const CONTACTS = size(60, 1000);
  const UNDER_WAY = size(CONTACTS / 5, 2 * CONTACTS);
  const archive = () =>
    file(
      "archive.ndjson.gz",
      gzipSync(
        ndjson(
          Array.from({ length: 20 * CONTACTS }, (_, i) => {
            const user = `u${i % CONTACTS}`;
            const round = Math.floor(i / CONTACTS);
            return round % 10 === 9
              ? track(user, `Event ${round}`)
              : { type: "identify", userId: user, traits: { round }, messageId: `i-${i}` };
          }),
        ),
      ),
    );

  async function interruptThenResume(signal: NodeJS.Signals) {
    const input = archive();
    const args = [
      "send",
      input,
      "--api-key",
      API_KEY,
      "--api-base-url",
      refiner.url,
      "--rate",
      "60000",
    ];
    const { child, done } = start(args);
    // Stopped by the emulator as it takes the request that shows the run well under way, rather
    // than by a test that may notice it only once a fast run is over.
    refiner.respond(() => {
      if (refiner.requests.length === UNDER_WAY) child.kill(signal);
      return undefined;
    });
    const first = await done;
    refiner.respond(() => undefined);
    const sentFirst = refiner.requests.length;
    const second = await start(args).done;
    return { first, second, sentFirst };
  }

  it("after Ctrl-C, saves its place, and a rerun sends no event twice and loses none", async () => {
    const { first, second, sentFirst } = await interruptThenResume("SIGINT");
    expect(first.code).toBe(130);
    expect(first.stdout).toMatch(/Interrupted in .*: settled \d+ events so far; delivered \d+/);
    expect(first.stdout).toContain("run the same command again to resume");
    expect(sentFirst).toBeGreaterThan(CONTACTS / 10);
    // Stopped part way: the rerun had requests left to make.
    expect(refiner.requests.length).toBeGreaterThan(sentFirst);
    expect(second.stderr).toMatch(
      /Resuming from refiner-send\.checkpoint\.json: \d+ events already settled/,
    );
    expect(second.code).toBe(0);
    const sent = tracks();
    expect(sent.size).toBe(2 * CONTACTS);
    expect([...sent].filter(([, count]) => count > 1)).toEqual([]);
    // Every contact ends at its latest traits.
    const last = new Map<unknown, unknown>();
    for (const request of refiner.requests) {
      const body = request.body as { id: string; round?: number };
      if (request.path === "/identify-user") last.set(body.id, body.round);
    }
    expect(last.size).toBe(CONTACTS);
    expect([...last.values()].every((round) => round === 18)).toBe(true);
    expect(existsSync(join(dir, "refiner-send.checkpoint.json"))).toBe(false);
  });

  it("after SIGKILL, a rerun loses none and sends again at most what was in flight", async () => {
    const { first, second } = await interruptThenResume("SIGKILL");
    expect(first.signal).toBe("SIGKILL");
    expect(second.code).toBe(0);
    const sent = tracks();
    expect(sent.size).toBe(2 * CONTACTS);
    const twice = [...sent].filter(([, count]) => count > 1);
    expect(twice.length).toBeLessThanOrEqual(8);
  });
});

describe("dry run and usage", () => {
  const DRY_EVENTS = size(20_000, 200_000);
  it(`dry-runs ${DRY_EVENTS} events in flat memory, printing a sample and sending nothing`, async () => {
    const events = Array.from({ length: DRY_EVENTS }, (_, i) =>
      i % 4 === 0
        ? {
            type: "identify",
            userId: `u${i % 5000}`,
            traits: { plan: i % 8 ? "trial" : "pro" },
            messageId: `m${i}`,
          }
        : track(`u${i % 5000}`, `Event ${i}`),
    );
    const input = file("large.ndjson.gz", gzipSync(ndjson(events)));
    const rss = file(
      "rss.cjs",
      'process.on("exit", () => process.stderr.write("peak RSS " + process.resourceUsage().maxRSS + " KB\\n"));',
    );
    const { done } = start(["send", input, "--dry-run", "--show", "3"], ["--require", rss]);
    const run = await done;
    const peak = Number(run.stderr.match(/peak RSS (\d+) KB/)?.[1]);
    process.stdout.write(
      `dry run of ${DRY_EVENTS} events: peak RSS ${Math.round(peak / 1024)} MB\n`,
    );
    expect(run.code).toBe(0);
    expect(peak).toBeLessThan(300 * 1024);
    expect(run.stdout.match(/^would send: /gm)).toHaveLength(3);
    expect(run.stdout).toContain(`: read ${DRY_EVENTS} events; would deliver ${DRY_EVENTS},`);
    expect(run.stdout).toMatch(/\d+ requests it would make/);
    expect(refiner.requests).toHaveLength(0);
  });

  it("counts the traits an archive would create after the settings, and warns over Refiner's 1,000", async () => {
    // 1,200 users, each with a trait of its own beside two common ones.
    const events = Array.from({ length: 1200 }, (_, i) => ({
      type: "identify",
      userId: `c${i}`,
      traits: { plan: "trial", [`survey_${i}`]: true, company: { id: "acct", name: "Acme" } },
      messageId: `census-${i}`,
    }));
    events.push({
      type: "identify",
      userId: "c0",
      traits: { plan: "pro", seats: 3 } as never,
      messageId: "census-last",
    });
    const input = file("census.ndjson", ndjson(events));
    const all = await start(["send", input, "--dry-run", "--show", "0"]).done;
    expect(all.code).toBe(0);
    expect(all.stdout).toContain(
      "Traits Refiner would create, after the settings: 1202 user traits, 1 account traits.",
    );
    expect(all.stdout).toContain(
      "  most frequent user traits, by requests: plan (1200), seats (1), survey_0 (1),",
    );
    // The account's name goes with the last of the 1,200 requests that name it: Refiner would keep
    // only that one's value (lib/pipeline/plan.ts), and the others still join the account.
    expect(all.stdout).toContain("  most frequent account traits, by requests: name (1)");
    expect(all.stdout).toContain(
      "Warning: that is over the 1000 distinct traits Refiner keeps per environment",
    );

    const chosen = await start(["send", input, "--dry-run", "--show", "0"], [], {
      // The allow list covers account traits too: the account keeps only its id.
      REFINER_TRAIT_ALLOW_LIST: "plan,seats",
    }).done;
    expect(chosen.code).toBe(0);
    expect(chosen.stdout).toContain(
      "Traits Refiner would create, after the settings: 2 user traits, 0 account traits.",
    );
    expect(chosen.stdout).not.toContain("Warning");
  });

  it("sends as the settings' variables choose, and counts what they leave out as skipped", async () => {
    const input = file(
      "chosen.ndjson",
      ndjson([
        { type: "identify", userId: "s1", traits: { plan: "pro", ssn: "1-2-3" }, messageId: "k1" },
        track("s1", "Trial Started"),
        track("s1", "Clicked Logo"),
        { type: "page", userId: "s1", name: "Pricing", messageId: "k4" },
      ]),
    );
    const run = await start(
      ["send", input, "--api-key", API_KEY, "--api-base-url", refiner.url],
      [],
      {
        REFINER_TRAIT_DENY_LIST: "ssn",
        REFINER_EVENT_ALLOW_LIST: "Trial Started",
        REFINER_SEND_PAGE_VIEWS: "false",
      },
    ).done;
    expect(run.code).toBe(0);
    expect(refiner.requests.map((request) => request.body)).toEqual([
      { plan: "pro", id: "s1" },
      { event: "Trial Started", id: "s1" },
    ]);
    expect(run.stdout).toContain("  skipped 2: left out by the settings");
    const bad = await start(["send", input, "--api-key", API_KEY], [], {
      REFINER_EVENT_ALLOW_LIST: '["unclosed',
    }).done;
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("REFINER_EVENT_ALLOW_LIST must be a list of names");
  });

  it("prints usage for --help and send --help, and refuses bad options", async () => {
    for (const args of [["--help"], ["send", "--help"]]) {
      const run = await start(args).done;
      expect(run.code).toBe(0);
      expect(run.stdout).toContain("refiner-destination send FILE... [options]");
    }
    const bad = await start(["send", "x.json", "--rate", "0", "--types", "identify,refund"]).done;
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--rate must be a positive number");
    expect(bad.stderr).toContain("--types takes a comma-separated list");
  });

  it("reads standard input, says it cannot resume it, and refuses a missing API key", async () => {
    const noKey = await start(["send", "-"]).done;
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain("--api-key or REFINER_API_KEY");

    const { child, done } = start([
      "send",
      "-",
      "--api-key",
      API_KEY,
      "--api-base-url",
      refiner.url,
    ]);
    child.stdin?.end(ndjson([{ type: "track", userId: "u1", event: "From stdin" }]));
    const run = await done;
    expect(run.code).toBe(0);
    expect(run.stderr).toContain("Standard input cannot be resumed");
    expect(refiner.requests.map((request) => request.body)).toEqual([
      { event: "From stdin", id: "u1" },
    ]);
  });
});

describe("requests", () => {
  it("keeps to --rate in every second, and sends one identify per contact and window", async () => {
    const at = (minute: number) => new Date(Date.UTC(2026, 5, 1, 10, minute)).toISOString();
    const events = Array.from({ length: 100 }, (_, user) => [
      {
        type: "identify",
        userId: `u${user}`,
        traits: { plan: "trial", seats: 1 },
        timestamp: at(1),
        messageId: `a${user}`,
      },
      track(`u${user}`, "Report"),
      {
        type: "group",
        userId: `u${user}`,
        groupId: `g${user % 5}`,
        timestamp: at(2),
        messageId: `b${user}`,
      },
      {
        type: "identify",
        userId: `u${user}`,
        traits: { plan: "pro" },
        timestamp: at(3),
        messageId: `c${user}`,
      },
    ]).flat();
    const input = file("rate.ndjson", ndjson(events));
    const rate = size(6000, 3000); // a minute: 100 or 50 a second
    const run = await start([
      "send",
      input,
      "--api-key",
      API_KEY,
      "--api-base-url",
      refiner.url,
      "--rate",
      String(rate),
    ]).done;
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("200 requests to Refiner (0.50 per event)");
    const identifies = refiner.requests.filter((request) => request.path === "/identify-user");
    expect(identifies).toHaveLength(100);
    expect(identifies[0]?.body).toEqual(
      expect.objectContaining({ plan: "pro", seats: 1, account: { id: expect.any(String) } }),
    );
    const most = busiestWindow(refiner.requests, 1000);
    // rate / 60 a second after a burst of at most a tenth of a second's worth.
    // Up to 8 more may have left just before a window and arrive inside it.
    expect(most).toBeLessThanOrEqual(rate / 60 + rate / 600 + 8);
  });
});
