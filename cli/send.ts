// `refiner-destination send`: replays Segment events from files into Refiner through the same
// mapping and batching as the destination function, within a rate limit, retrying what may
// succeed later and writing what cannot (and what still fails) to a failures file.

import { createWriteStream, statSync, type WriteStream } from "node:fs";
import { deliverBatch } from "../lib/destination.ts";
import type { Fetch } from "../lib/refiner.ts";
import { parseSettings, type SettingNames, type Settings } from "../lib/settings.ts";
import { startRefinerEmulator } from "../test/support/refiner-emulator.ts";
import { tokenBucket } from "./rate-limit.ts";
import { readEvents } from "./read-events.ts";

export interface SendOptions {
  files: string[];
  apiKey?: string;
  apiBaseUrl?: string;
  preserveTraitKeys?: string;
  /** Requests per minute. */
  rate: number;
  failures: string;
  dryRun: boolean;
  /** Tries per event, the first included. */
  attempts: number;
  /** The first wait before a retry; it doubles each time, and Retry-After can lengthen it. */
  backoffMs: number;
  /** Events sent (and coalesced) together. */
  batchSize: number;
  fetch: Fetch;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

const CLI_SETTINGS: SettingNames = {
  apiKey: "The API key (--api-key or REFINER_API_KEY)",
  apiBaseUrl: "--api-base-url (or REFINER_API_BASE_URL)",
  preserveTraitKeys: "REFINER_PRESERVE_TRAIT_KEYS",
};

/** Longest wait between two tries of the same events. */
const MAX_BACKOFF_MS = 5 * 60_000;

interface Stats {
  read: number;
  delivered: number;
  rejected: number;
  failed: number;
  unreadable: number;
  retrying: number;
  requests: number;
  bytesRead: number;
}

/** Returns the exit status: 0 only when every event was delivered. */
export async function send(options: SendOptions): Promise<number> {
  const { stdout, stderr } = options;
  const stats: Stats = {
    read: 0,
    delivered: 0,
    rejected: 0,
    failed: 0,
    unreadable: 0,
    retrying: 0,
    requests: 0,
    bytesRead: 0,
  };
  const reasons = new Map<string, number>();

  let settings: Settings;
  let closeEmulator = async () => {};
  if (options.dryRun) {
    const emulator = await startRefinerEmulator({
      onRequest: (request) =>
        stdout.write(
          `would send: ${request.method} ${request.path}${request.body === undefined ? "" : ` ${JSON.stringify(request.body)}`}\n`,
        ),
    });
    closeEmulator = () => emulator.close();
    settings = { apiKey: "dry-run", apiBaseUrl: emulator.url, preserveTraitKeys: false };
  } else {
    const parsed = parseSettings(
      {
        apiKey: options.apiKey,
        apiBaseUrl: options.apiBaseUrl,
        preserveTraitKeys: options.preserveTraitKeys,
      },
      CLI_SETTINGS,
    );
    if (!parsed.ok) {
      stderr.write(`refiner-destination: ${parsed.message}\n`);
      return 2;
    }
    settings = parsed.settings;
  }

  const limiter = tokenBucket(options.rate);
  const limitedFetch: Fetch = async (url, init) => {
    await limiter.take();
    stats.requests += 1;
    return options.fetch(url, init);
  };

  let failuresFile: WriteStream | undefined;
  const fail = (event: unknown, reason: string) => {
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    if (options.dryRun) return;
    failuresFile ??= createWriteStream(options.failures, { flags: "a" });
    failuresFile.write(`${JSON.stringify(event)}\n`);
  };

  const sendChunk = async (events: unknown[]) => {
    let pending = events;
    for (let attempt = 1; pending.length > 0; attempt++) {
      const outcomes = await deliverBatch(pending, settings, {
        fetch: limitedFetch,
        startedAt: Date.now(),
        // Time for the rate limit to let every request of the chunk through, and then some.
        budgetMs: 30_000 + (pending.length * 60_000) / options.rate,
      });
      const again: unknown[] = [];
      let waitMs = options.backoffMs * 2 ** (attempt - 1);
      outcomes.forEach((outcome, index) => {
        const event = pending[index];
        if (outcome.kind === "delivered") stats.delivered += 1;
        else if (outcome.kind === "rejected") {
          stats.rejected += 1;
          fail(event, outcome.message);
        } else if (attempt >= options.attempts) {
          stats.failed += 1;
          fail(event, `still failing after ${attempt} tries: ${outcome.message}`);
        } else {
          again.push(event);
          waitMs = Math.max(waitMs, (outcome.retryAfterSeconds ?? 0) * 1000);
        }
      });
      stats.retrying = again.length;
      if (again.length)
        await new Promise((resolve) => setTimeout(resolve, Math.min(waitMs, MAX_BACKOFF_MS)));
      stats.retrying = 0;
      pending = again;
    }
  };

  const started = Date.now();
  const totalBytes = knownSize(options.files);
  const progress =
    stderr.isTTY === true
      ? setInterval(() => stderr.write(`\r\x1b[K${progressLine(stats, started, totalBytes)}`), 250)
      : undefined;

  try {
    let bytesBefore = 0;
    for (const file of options.files) {
      let chunk: unknown[] = [];
      for await (const item of readEvents({
        name: file,
        onBytes: (bytes) => {
          stats.bytesRead = bytesBefore + bytes;
        },
      })) {
        if ("error" in item) {
          stats.unreadable += 1;
          stderr.write(`${file}:${item.line}: ${item.error}\n`);
          continue;
        }
        stats.read += 1;
        chunk.push(item.event);
        if (chunk.length >= options.batchSize) {
          await sendChunk(chunk);
          chunk = [];
        }
      }
      await sendChunk(chunk);
      bytesBefore = stats.bytesRead;
    }
  } catch (error) {
    stderr.write(`\nrefiner-destination: ${(error as Error).message}\n`);
    stats.unreadable += 1;
  } finally {
    if (progress) {
      clearInterval(progress);
      stderr.write("\r\x1b[K");
    }
    await new Promise<void>((resolve) => (failuresFile ? failuresFile.end(resolve) : resolve()));
    await closeEmulator();
  }

  stdout.write(summary(stats, started, reasons, options));
  return stats.delivered === stats.read && stats.unreadable === 0 ? 0 : 1;
}

function knownSize(files: string[]): number | undefined {
  let total = 0;
  for (const file of files) {
    if (file === "-") return undefined;
    try {
      total += statSync(file).size;
    } catch {
      return undefined;
    }
  }
  return total;
}

function progressLine(stats: Stats, started: number, totalBytes: number | undefined): string {
  const minutes = (Date.now() - started) / 60_000;
  const rate = minutes > 0 ? Math.round(stats.requests / minutes) : 0;
  let eta = "";
  if (totalBytes && stats.bytesRead > 0 && stats.bytesRead < totalBytes) {
    const seconds = ((Date.now() - started) / 1000) * (totalBytes / stats.bytesRead - 1);
    eta = ` · ETA ${duration(seconds)}`;
  }
  return `read ${stats.read} · sent ${stats.delivered} · rejected ${stats.rejected + stats.failed} · retrying ${stats.retrying} · ${rate} req/min${eta}`;
}

function summary(
  stats: Stats,
  started: number,
  reasons: Map<string, number>,
  options: SendOptions,
): string {
  const lines = [
    `${options.dryRun ? "Dry run" : "Done"} in ${duration((Date.now() - started) / 1000)}: read ${stats.read} events, delivered ${stats.delivered}, rejected ${stats.rejected}, still failing after ${options.attempts} tries ${stats.failed}, unreadable ${stats.unreadable}; ${stats.requests} requests to Refiner.`,
  ];
  const failures = stats.rejected + stats.failed;
  if (failures && !options.dryRun) {
    lines.push(
      `${failures} events appended to ${options.failures}; fix them, then send that file again.`,
    );
  }
  const top = [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 5);
  for (const [reason, count] of top) lines.push(`  ${count} × ${reason}`);
  return `${lines.join("\n")}\n`;
}

function duration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}
