// `refiner-destination send`: replays Segment events from files into Refiner through the same
// mapping and coalescing as the destination, within a rate limit, resumable.
//
// Each event ends in one of four places: delivered; skipped (Refiner cannot take it, and that is no
// error: no userId and no email, alias, an unsupported type, a duplicate, a type not asked for);
// rejected (invalid, or refused by Refiner for good: written whole to the rejected file); or
// undelivered (still failing after the last try: written whole to the failures file, to send again).
// Once one of a contact's events is undelivered, the contact's later events follow it into the
// failures file, in order, so replaying that file never puts older traits over newer ones.

import { appendFileSync, realpathSync } from "node:fs";
import { resolve } from "node:path";
import { DELIVERED, describe, type Outcome, retry } from "../lib/outcome.ts";
import { sendPlan } from "../lib/pipeline/forward.ts";
import { tokenBucket } from "../lib/pipeline/pace.ts";
import { contactOf, messageIdOf, type PlannedRequest, planBatch } from "../lib/pipeline/plan.ts";
import { recentIds } from "../lib/pipeline/recent-ids.ts";
import { ENDPOINTS, type Fetch, pathOf, type RefinerCall } from "../lib/refiner/client.ts";
import { answerOf, classOf } from "../lib/runtimes/doors.ts";
import { keyNotices } from "../lib/runtimes/log.ts";
import { eventType, SENT_TYPES } from "../lib/segment/event.ts";
import {
  LAMBDA_ENVIRONMENT,
  parseSettings,
  type SettingNames,
  type Settings,
} from "../lib/settings.ts";
import { TraitCensus } from "./census.ts";
import {
  CheckpointMismatch,
  emptyTotals,
  type InputId,
  inputId,
  loadCheckpoint,
  PrefixHash,
  type Resumed,
  removeCheckpoint,
  Settled,
  saveCheckpoint,
  type Totals,
} from "./checkpoint.ts";
import { ContactQueues, type Job } from "./contact-queues.ts";
import { type Lock, lockCheckpoint } from "./lock.ts";
import { readEvents } from "./read-events.ts";

/** What `--types` takes: every call type Refiner receives something for. */
export const SENDABLE_TYPES = SENT_TYPES;

export interface SendOptions {
  files: string[];
  /** The settings as given (the environment's, with --api-key and --api-base-url over them). */
  settings: Record<string, unknown>;
  /** Requests per minute. */
  rate: number;
  failures: string;
  rejected: string;
  checkpoint: string;
  /** Ignore the checkpoint and start over. */
  restart: boolean;
  dryRun: boolean;
  /** Requests a dry run prints. */
  show: number;
  /** Events a contact's identifies and groups are coalesced over. */
  window: number;
  types: readonly string[];
  /** Tries per request, the first included. */
  attempts: number;
  /** The first wait before a retry; it doubles each time, and Retry-After can lengthen it. */
  backoffMs: number;
  /** How long a request waits for Refiner's answer (over LAST_START_MS). */
  timeoutMs: number;
  /** Requests in a row without an answer (timeout, no connection) that stop the run. */
  unanswered: number;
  fetch: Fetch;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Aborted on Ctrl-C: stop reading, let requests in flight finish, keep the checkpoint. */
  signal?: AbortSignal;
}

/** The two settings with flags of their own; the others are read from their variables. */
const CLI_SETTINGS: SettingNames = (setting) =>
  setting === "apiKey"
    ? "The API key (--api-key or REFINER_API_KEY)"
    : setting === "apiBaseUrl"
      ? "--api-base-url (or REFINER_API_BASE_URL)"
      : LAMBDA_ENVIRONMENT(setting);

/** A contact's identifies and groups within this many events (or WINDOW_MS) become one request. */
export const WINDOW_EVENTS = 10_000;
/** How many events are read ahead of what is settled: memory stays flat. */
const READ_AHEAD = WINDOW_EVENTS;
const WINDOW_MS = 60_000;
const IN_FLIGHT = 8;
const MAX_BACKOFF_MS = 5 * 60_000;
/**
 * A request's own limit, in seconds (--timeout): no 5 s limit here, but a Refiner that takes
 * connections and never answers must not hold a run for hours.
 */
export const TIMEOUT_SECONDS = 10;
/**
 * Requests in a row that got no answer at all before the run stops (--unanswered): with 8 in
 * flight and the default timeout, a Refiner that stopped answering stops the run in about 10 s, and
 * within a minute whatever the retries' back-off.
 */
export const UNANSWERED = 3;
/** What the run says when Refiner stopped answering. */
const NOT_ANSWERING = "Refiner is not answering; run the same command again to resume.";
/** How long Ctrl-C lets requests in flight finish. */
const GRACE_MS = 10_000;
/** messageIds remembered to drop duplicates across the run: about 20 MB. */
const SEEN_IDS = 200_000;

interface Item {
  event: unknown;
  input: number;
  index: number;
  /** Order of reading, across inputs. */
  seq: number;
}

/** Returns the exit status: 0, 1 (something was not delivered or not read), 2 (usage) or 130. */
export async function send(options: SendOptions): Promise<number> {
  const run = prepare(options);
  if (typeof run === "number") return run;
  try {
    const ledger = openLedger(run);
    const queues = contactQueues(run, ledger);
    const planner = windowPlanner(run, ledger, queues);
    const started = Date.now();
    const progress = progressMeter(run.totals, options.files, () => queues.pending);
    run.terminal.progress(() => progress.line());
    const incomplete = await readInputs(run, ledger, planner, progress);
    if (!run.halt.signal.aborted) await planner.flush();
    if (!run.halt.signal.aborted) await Promise.race([queues.drainTo(0), run.halted]);
    await queues.stop(run.halt.signal.aborted ? GRACE_MS : 0);
    run.terminal.progress(undefined);
    return report(run, ledger, incomplete, started);
  } finally {
    run.lock?.release();
  }
}

interface Fatal {
  /** What stopped the run, for its summary. */
  why: string;
  /** What Refiner answered, or did not. */
  detail: string;
  /** What to do. */
  next: string;
}

/** What one run keeps: its options and settings, its progress, and how it stops. */
interface Run {
  options: SendOptions;
  settings: Settings;
  terminal: ReturnType<typeof terminalOutput>;
  log(line: string): void;
  /** Only files can be read again, and a dry run keeps no checkpoint. */
  resumable: boolean;
  /** Held while the run may write the checkpoint. */
  lock: Lock | undefined;
  inputs: InputId[];
  /** Each input's bytes read so far, hashed: the checkpoint's proof of what it was read from. */
  hashes: PrefixHash[];
  settled: Settled[];
  /** Contacts with an undelivered event: their later events go to the failures file. */
  parked: Set<string>;
  totals: Totals;
  /** Stops the run: Ctrl-C, or an API key Refiner refuses (every request would fail alike). */
  halt: AbortController;
  halted: Promise<void>;
  /** Why the run stopped itself, when it did: every further request would fail alike. */
  fatal: Fatal | undefined;
  census: TraitCensus;
}

/** The options and settings checked, and the checkpoint read: the run, or the exit status. */
function prepare(options: SendOptions): Run | number {
  const { stderr } = options;
  const problem = checkOptions(options);
  if (problem) return usage(stderr, problem);
  // A dry run needs no key: it sends nothing.
  const given = options.dryRun ? { ...options.settings, apiKey: "dry-run" } : options.settings;
  const parsed = parseSettings(given, CLI_SETTINGS);
  if (!parsed.ok) return usage(stderr, parsed.message);

  const terminal = terminalOutput(stderr);
  const log = (line: string) => terminal.line(line);
  const resumable = !options.dryRun && options.files.every((file) => file !== "-");
  // A file that cannot be opened is named when it is read, with the others read all the same.
  const inputs = options.files.map((file) => inputId(file) ?? { path: resolve(file), size: 0 });
  const opened = resumable
    ? openCheckpoint(options, inputs)
    : { lock: undefined, resumed: undefined };
  if (typeof opened === "string") return usage(stderr, opened);
  const { lock, resumed } = opened;
  if (resumed) {
    const done = settledCount(resumed.totals) + resumed.totals.unreadable;
    log(
      `Resuming from ${options.checkpoint}: ${done} events already settled (--restart to start over).`,
    );
  } else if (!resumable && !options.dryRun) {
    log("Standard input cannot be resumed: an interrupted run sends it from the start again.");
  }

  const halt = new AbortController();
  options.signal?.addEventListener("abort", () => {
    log("Interrupted: letting requests in flight finish (up to 10 s), then saving the checkpoint.");
    halt.abort();
  });
  if (options.signal?.aborted) halt.abort();
  return {
    options,
    settings: parsed.settings,
    terminal,
    log,
    resumable,
    lock,
    inputs,
    hashes: inputs.map((_, i) => new PrefixHash(resumed?.prefixes[i])),
    settled: resumed?.settled ?? options.files.map(() => new Settled()),
    parked: resumed?.parked ?? new Set<string>(),
    totals: resumed?.totals ?? emptyTotals(),
    halt,
    halted: new Promise<void>((resolve) =>
      halt.signal.addEventListener("abort", () => resolve(), { once: true }),
    ),
    fatal: undefined,
    census: new TraitCensus(parsed.settings),
  };
}

/**
 * The lock taken and the checkpoint read (unless --restart), or why the run must not start: another
 * run holds the checkpoint, or it was saved for other inputs or for content that has changed.
 */
function openCheckpoint(
  options: SendOptions,
  inputs: InputId[],
): { lock: Lock; resumed?: Resumed } | string {
  let lock: Lock | string;
  try {
    lock = lockCheckpoint(options.checkpoint);
  } catch (error) {
    return `the checkpoint's lock cannot be written beside ${options.checkpoint} (${describe(error)}): give --checkpoint a file in a folder you can write to.`;
  }
  if (typeof lock === "string") return lock;
  if (options.restart) return { lock };
  try {
    return { lock, resumed: loadCheckpoint(options.checkpoint, inputs) };
  } catch (error) {
    lock.release();
    if (!(error instanceof CheckpointMismatch)) throw error;
    return `${error.message}, so resuming from it could send events twice or leave some out. Nothing was sent. Run the same command with --restart to send everything from the start, or give --checkpoint another file.`;
  }
}

/** Where each event ends: counted, written to its file, and settled in the checkpoint. */
interface Ledger {
  settle(item: Item): void;
  skip(item: Item, reason: string): void;
  reject(items: Item[]): void;
  giveUp(items: Item[]): void;
  save(): void;
}

function openLedger(run: Run): Ledger {
  const { options, totals } = run;
  const settle = (item: Item) => run.settled[item.input]?.add(item.index);
  const write = (file: string, items: Item[]) => {
    if (options.dryRun || items.length === 0) return;
    appendFileSync(file, items.map((item) => `${JSON.stringify(item.event)}\n`).join(""));
  };
  return {
    settle,
    skip(item, reason) {
      totals.skipped[reason] = (totals.skipped[reason] ?? 0) + 1;
      settle(item);
    },
    reject(items) {
      write(options.rejected, items);
      totals.rejected += items.length;
      for (const item of items) settle(item);
    },
    giveUp(items) {
      write(options.failures, items);
      totals.undelivered += items.length;
      for (const item of items) settle(item);
    },
    save() {
      if (run.resumable) {
        const prefixes = run.hashes.map((hash) => hash.prefix());
        saveCheckpoint(options.checkpoint, run.inputs, prefixes, run.settled, run.parked, totals);
      }
    },
  };
}

/** One queue per contact (contact-queues.ts): each request sent, paced, and its outcome settled. */
function contactQueues(run: Run, ledger: Ledger): ContactQueues<Item> {
  const { options, totals } = run;
  const limiter = tokenBucket(options.rate);
  // Nothing is skipped as unchanged: live traffic may change a contact while a backfill runs, and
  // the window's coalescing already merges most repeats (lib/pipeline/unchanged.ts).
  let shown = 0;
  const dryRun = (job: Job<Item>): Outcome => {
    run.census.add(
      job.request.call,
      job.items.map((item) => item.event),
    );
    if (shown < options.show) {
      shown += 1;
      options.stdout.write(`would send: ${describeCall(job.request.call)}\n`);
    }
    return DELIVERED;
  };
  const answers = answerWatch(run);
  return new ContactQueues<Item>(
    {
      send: async (job) => {
        if (options.dryRun) {
          totals.requests += 1;
          return dryRun(job);
        }
        await limiter.take();
        // Stopping: what has not started stays unsettled, for the rerun.
        if (run.halt.signal.aborted) return retry("Not sent: the run is stopping.");
        totals.requests += 1;
        const watched = answers.watch(options.fetch);
        // The request as the window planned it: its events were mapped once, there. The budget is
        // the request's own limit: no request starts with less than LAST_START_MS of it left.
        const [outcome] = await sendPlan(
          { phases: [[{ call: job.request.call, events: [0] }]], answered: new Map(), copies: [] },
          1,
          run.settings,
          { fetch: watched.fetch, startedAt: Date.now(), budgetMs: options.timeoutMs },
        );
        watched.done(outcome);
        return outcome ?? DELIVERED;
      },
      settle: (job, outcome) => {
        if (outcome.kind === "done") {
          totals.delivered += job.items.length;
          for (const item of job.items) ledger.settle(item);
        } else if (answerOf(outcome).send === "halt") {
          // Every request would fail alike: stop, and keep these events for the rerun. Refiner's
          // reason is kept; the lib's advice names the Segment setting, not the CLI's.
          run.fatal ??= {
            why: "Refiner refused the API key (REFINER_API_KEY or --api-key)",
            detail: outcome.message.replace(/\s*Check the apiKey setting.*$/s, ""),
            next: "Nothing more was sent; fix the key and run the same command again to resume.",
          };
          run.halt.abort();
        } else {
          if (outcome.kind === "rejected")
            run.log(`rejected ${describeEvents(job.items)}: ${outcome.message}`);
          ledger.reject(job.items);
        }
        ledger.save();
      },
      park: (contact, items, outcome) => {
        // Once the run is stopping (Ctrl-C, a refused key, Refiner not answering), nothing is given
        // up: these events stay unsettled in the checkpoint, and the rerun sends them.
        if (run.halt.signal.aborted) return;
        run.parked.add(contact);
        const why = outcome.kind === "done" ? "" : outcome.message;
        run.log(`undelivered ${describeEvents(items)}: ${printable(why)}`);
        ledger.giveUp(items.sort((a, b) => a.seq - b.seq));
        ledger.save();
      },
    },
    {
      inFlight: IN_FLIGHT,
      attempts: options.attempts,
      backoffMs: options.backoffMs,
      maxBackoffMs: MAX_BACKOFF_MS,
    },
  );
}

/**
 * The circuit breaker: counts requests in a row that got no answer at all (a timeout, a refused or
 * dropped connection); at `--unanswered` of them the run stops as for a refused key, keeping the
 * checkpoint, since every request would wait its whole limit for nothing. Any answer from Refiner,
 * an error status included, starts the count again.
 */
function answerWatch(run: Run) {
  let inARow = 0;
  return {
    watch(fetch: Fetch) {
      let answered = false;
      return {
        fetch: (async (...args: Parameters<Fetch>) => {
          const response = await fetch(...args);
          answered = true;
          return response;
        }) as Fetch,
        done(outcome: Outcome | undefined) {
          if (answered || outcome?.kind !== "retry") {
            inARow = 0;
            return;
          }
          inARow += 1;
          if (inARow >= run.options.unanswered && !run.halt.signal.aborted) {
            run.fatal ??= {
              why: "Refiner is not answering",
              detail: `${inARow} requests in a row got no answer; the last: ${outcome.message}`,
              next: `Nothing more was sent. ${NOT_ANSWERING}`,
            };
            run.halt.abort();
          }
        },
      };
    },
  };
}

/**
 * The window: events are gathered, then planned together (a contact's identifies and groups
 * become one request), and their requests queued per contact. Reading waits while the queues hold
 * a window's worth, so memory stays flat.
 */
function windowPlanner(run: Run, ledger: Ledger, queues: ContactQueues<Item>) {
  // A trait key the mapping drops or merges is named once per run (docs/mapping.md).
  const notice = keyNotices((message, key) => run.log(`${message}: ${key}`));
  let window: Item[] = [];
  let windowStarted = Date.now();
  const enqueue = (request: PlannedRequest, items: Item[]) => {
    const mine = request.events
      .flatMap((position) => items[position] ?? [])
      .sort((a, b) => a.seq - b.seq);
    const contact = contactOf(request.call);
    if (run.parked.has(contact)) ledger.giveUp(mine);
    else queues.add({ contact, request, items: mine, tries: 0 } satisfies Job<Item>);
  };
  const flush = async () => {
    const items = window;
    window = [];
    windowStarted = Date.now();
    if (items.length === 0) return;
    const plan = planBatch(
      items.map((item) => item.event),
      run.settings,
      undefined,
      undefined,
      notice,
    );
    const rejected: Item[] = [];
    for (const [position, outcome] of plan.answered) {
      const item = items[position];
      if (!item) continue;
      const reason = skipReason(item.event, outcome);
      if (reason) ledger.skip(item, reason);
      else if (outcome.kind === "rejected" || outcome.kind === "retry") {
        run.log(`rejected ${describeEvents([item])}: ${printable(outcome.message)}`);
        rejected.push(item);
      }
    }
    ledger.reject(rejected);
    for (const [copy] of plan.copies) {
      const item = items[copy];
      if (item) ledger.skip(item, "duplicate messageId");
    }
    for (const request of plan.phases.flat()) enqueue(request, items);
    ledger.save();
    await Promise.race([queues.drainTo(READ_AHEAD), run.halted]);
  };
  return {
    flush,
    async add(item: Item) {
      window.push(item);
      const full = window.length >= run.options.window || Date.now() - windowStarted >= WINDOW_MS;
      if (full) await flush();
    },
  };
}

/** Reads every input not read to its end, each event either skipped here or given to the planner. */
async function readInputs(
  run: Run,
  ledger: Ledger,
  planner: ReturnType<typeof windowPlanner>,
  progress: ReturnType<typeof progressMeter>,
): Promise<string[]> {
  const { options, totals, halt } = run;
  const types = new Set(options.types);
  const seen = recentIds(SEEN_IDS, Number.POSITIVE_INFINITY);
  const incomplete: string[] = [];
  let seq = 0;
  for (const [input, file] of options.files.entries()) {
    const state = run.settled[input];
    if (halt.signal.aborted) break;
    if (!state || state.done) continue;
    const name = printable(file);
    const hash = run.hashes[input] as PrefixHash;
    let count = 0;
    let bytes = 0;
    try {
      for await (const item of readEvents({
        name: file,
        onChunk: (chunk) => {
          bytes += chunk.length;
          hash.update(chunk);
          progress.bytes(input, bytes);
        },
      })) {
        count = item.index + 1;
        if (halt.signal.aborted) break;
        if (state.has(item.index)) continue;
        if ("error" in item) {
          totals.unreadable += 1;
          run.log(`${name}:${item.where}: ${printable(item.error)}`);
          state.add(item.index);
          continue;
        }
        const entry: Item = { event: item.event, input, index: item.index, seq: seq++ };
        const type = eventType(item.event);
        const id = messageIdOf(item.event);
        if (typeof type === "string" && type !== "alias" && !types.has(type)) {
          ledger.skip(entry, "type not in --types");
        } else if (id !== undefined && seen.has(id)) {
          ledger.skip(entry, "duplicate messageId");
        } else {
          if (id !== undefined) seen.add(id);
          await planner.add(entry);
        }
      }
      if (!halt.signal.aborted) state.total = count;
    } catch (error) {
      const reason = printable(describe(error));
      incomplete.push(`${name} (${reason})`);
      run.log(
        bytes === 0
          ? `${name}: could not be read: ${reason}`
          : `${name}: could not be read to its end: ${reason}; what was read from it is sent.`,
      );
    }
  }
  return incomplete;
}

/** The checkpoint kept or removed, the summary printed, and the exit status. */
function report(run: Run, ledger: Ledger, incomplete: string[], started: number): number {
  const { options, totals, fatal } = run;
  const wasInterrupted = run.halt.signal.aborted && fatal === undefined;
  if (wasInterrupted || fatal) ledger.save();
  else if (run.resumable) removeCheckpoint(options.checkpoint);
  const ending = options.dryRun
    ? "Dry run"
    : fatal
      ? `Stopped (${fatal.why})`
      : wasInterrupted
        ? "Interrupted"
        : "Done";
  options.stdout.write(summary(totals, started, incomplete, options, ending));
  if (options.dryRun) options.stdout.write(run.census.report());
  if (fatal) {
    options.stderr.write(
      `refiner-destination send: stopped: ${fatal.why}: ${printable(fatal.detail)}\n${fatal.next}\n`,
    );
    return 1;
  }
  if (wasInterrupted) return 130;
  const clean =
    incomplete.length === 0 &&
    totals.unreadable === 0 &&
    totals.rejected === 0 &&
    totals.undelivered === 0;
  return clean ? 0 : 1;
}

function usage(stderr: NodeJS.WritableStream, message: string): number {
  stderr.write(`refiner-destination send: ${message}\n`);
  return 2;
}

/** Inputs that are outputs of the run would feed on themselves. */
function checkOptions(options: SendOptions): string | undefined {
  const real = (path: string) => {
    try {
      return realpathSync(path);
    } catch {
      return resolve(path);
    }
  };
  const outputs = new Map(
    [
      [options.failures, "--failures"],
      [options.rejected, "--rejected"],
      [options.checkpoint, "--checkpoint"],
    ].map(([path, name]) => [real(path as string), name as string]),
  );
  for (const file of options.files) {
    if (file === "-") continue;
    const output = outputs.get(real(file));
    if (output) {
      return `${printable(file)} is this run's ${output} file, so it cannot be an input too. Send it under another name, or give ${output} another file.`;
    }
  }
  return undefined;
}

/** Why an event that maps to no request is skipped rather than rejected, or undefined. */
/** Why an event is skipped, when `send`'s column of the table says so (lib/runtimes/doors.ts). */
function skipReason(event: unknown, outcome: Outcome): string | undefined {
  if (answerOf(outcome).send !== "skipped") return undefined;
  const outcomeClass = classOf(outcome);
  if (outcomeClass === "filtered") return "left out by the settings";
  if (outcomeClass === "no-contact") return "no userId and no email";
  return eventType(event) === "alias"
    ? "alias (Refiner cannot merge contacts)"
    : "type Refiner does not take";
}

function describeCall(call: RefinerCall): string {
  const request = `${ENDPOINTS[call.call].method} ${pathOf(call)}`;
  return "body" in call ? `${request} ${JSON.stringify(call.body)}` : request;
}

function describeEvents(items: Item[]): string {
  const ids = items
    .slice(0, 3)
    .map((item) => messageIdOf(item.event) ?? `#${item.index + 1}`)
    .join(", ");
  const more = items.length > 3 ? ` and ${items.length - 3} more` : "";
  return printable(`${items.length === 1 ? "event" : `${items.length} events`} ${ids}${more}`);
}

/** Text from an input, safe for a terminal: control characters are shown escaped. */
export function printable(text: string): string {
  return text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters escaped
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Lines go above the progress line, which is redrawn under them; no progress off a terminal. */
function terminalOutput(stderr: NodeJS.WritableStream & { isTTY?: boolean }) {
  let draw: (() => string) | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  const redraw = () => {
    if (draw) stderr.write(`\r\x1b[K${draw()}`);
  };
  return {
    line(text: string) {
      if (draw) stderr.write("\r\x1b[K");
      stderr.write(`${text}\n`);
      redraw();
    },
    progress(next: (() => string) | undefined) {
      if (stderr.isTTY !== true) return;
      clearInterval(timer);
      if (draw && !next) stderr.write("\r\x1b[K");
      draw = next;
      if (draw) timer = setInterval(redraw, 250);
    },
  };
}

/** Progress: the rate over the last 10 s, and an ETA from the bytes read. */
function progressMeter(totals: Totals, files: string[], pending: () => number) {
  const sizes = files.map((file) => (file === "-" ? undefined : inputId(file)?.size));
  const total = sizes.every((size) => size !== undefined)
    ? sizes.reduce((sum: number, size) => sum + (size as number), 0)
    : undefined;
  const read = files.map(() => 0);
  const samples: { at: number; requests: number; bytes: number }[] = [];
  const bytesRead = () => read.reduce((sum, bytes) => sum + bytes, 0);
  return {
    bytes(input: number, bytes: number) {
      read[input] = bytes;
    },
    line(): string {
      const now = Date.now();
      const sample = { at: now, requests: totals.requests, bytes: bytesRead() };
      samples.push(sample);
      while (samples.length > 2 && (samples[1] as typeof sample).at <= now - 10_000)
        samples.shift();
      const first = samples[0] as typeof sample;
      const seconds = (now - first.at) / 1000;
      const perMinute =
        seconds > 0 ? Math.round(((sample.requests - first.requests) / seconds) * 60) : 0;
      const bytesPerSecond = seconds > 0 ? (sample.bytes - first.bytes) / seconds : 0;
      let eta = "";
      if (total && bytesPerSecond > 0 && sample.bytes < total) {
        eta = ` · ETA ${duration((total - sample.bytes) / bytesPerSecond)}`;
      }
      return `settled ${settledCount(totals)} · delivered ${totals.delivered} · queued ${pending()} · undelivered ${totals.undelivered} · ${perMinute} req/min${eta}`;
    },
  };
}

function summary(
  totals: Totals,
  started: number,
  incomplete: string[],
  options: SendOptions,
  ending: string,
): string {
  const skipped = Object.values(totals.skipped).reduce((sum, count) => sum + count, 0);
  const read = settledCount(totals);
  const perEvent = read ? (totals.requests / read).toFixed(2) : "0";
  const interrupted = ending !== "Done" && ending !== "Dry run";
  // A run stopped part way has read more than it settled; what it settled is what counts.
  const counted = interrupted ? `settled ${read} events so far` : `read ${read} events`;
  const delivered = options.dryRun ? "would deliver" : "delivered";
  const requests = options.dryRun ? "requests it would make" : "requests to Refiner";
  const lines = [
    `${ending} in ${duration((Date.now() - started) / 1000)}: ${counted}; ${delivered} ${totals.delivered}, skipped ${skipped}, rejected ${totals.rejected}, undelivered ${totals.undelivered}, unreadable ${totals.unreadable}. ${totals.requests} ${requests} (${perEvent} per event).`,
  ];
  for (const [reason, count] of Object.entries(totals.skipped)) {
    lines.push(`  skipped ${count}: ${reason}`);
  }
  if (totals.rejected && !options.dryRun) {
    lines.push(`Rejected events are in ${options.rejected}: fix them before sending them again.`);
  }
  if (totals.undelivered && !options.dryRun) {
    lines.push(`Undelivered events are in ${options.failures}: send that file again later.`);
  }
  if (incomplete.length) lines.push(`Not read to the end: ${incomplete.join(", ")}.`);
  if (interrupted && options.files.includes("-")) {
    lines.push("Standard input cannot be resumed: a rerun sends it from the start again.");
  } else if (interrupted) {
    lines.push(`Progress is saved in ${options.checkpoint}: run the same command again to resume.`);
  }
  return `${lines.join("\n")}\n`;
}

/** Events read and settled: delivered, skipped, rejected or undelivered. */
function settledCount(totals: Totals): number {
  const skipped = Object.values(totals.skipped).reduce((sum, count) => sum + count, 0);
  return totals.delivered + skipped + totals.rejected + totals.undelivered;
}

function duration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}
