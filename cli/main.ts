// The `refiner-destination` command: `send` (backfill) and `deploy-segment`.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { boundedFetch, type Fetch } from "../lib/refiner.ts";
import { DEFAULT_SEGMENT_API_URL, deploySegmentFunction } from "./deploy-segment.ts";
import { send } from "./send.ts";

const USAGE = `Usage:
  refiner-destination send FILE... [--api-key K] [--api-base-url URL] [--rate N]
                                   [--failures FILE] [--attempts N] [--dry-run]
      Replays Segment events into Refiner. FILE is a JSON object, a JSON array or NDJSON
      (a Segment archive), optionally gzipped; "-" reads standard input.
      --api-key         Refiner API key (default: $REFINER_API_KEY)
      --api-base-url    default: $REFINER_API_BASE_URL or https://api.refiner.io/v1
      --rate            requests per minute (default 3600; Refiner allows 4000 per key)
      --failures        where rejected and still-failing events are appended as NDJSON
                        (default refiner-failures.ndjson); send it again once fixed
      --attempts        tries per event before it counts as failed (default 5)
      --backoff         first wait before a retry, in ms; doubles each time (default 1000)
      --dry-run         send to an embedded Refiner emulator and print each request
      Exits 0 only when every event was delivered.

  refiner-destination deploy-segment [--display-name NAME]
      Creates or updates the destination function (dist/segment-function.js) in a Segment
      workspace. Needs SEGMENT_TOKEN; SEGMENT_API_URL for EU workspaces
      (https://eu1.api.segmentapis.com). Default name: "Refiner".
`;

const nodeFetch = fetch as unknown as Fetch;
// Node's fetch has no `size` option: answers to `send` are read through boundedFetch.
const refinerFetch = boundedFetch(nodeFetch);

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "send") return sendCommand(rest);
  if (command === "deploy-segment") return deployCommand(rest);
  const help =
    command === undefined || command === "--help" || command === "-h" || command === "help";
  (help ? process.stdout : process.stderr).write(USAGE);
  return help ? 0 : 2;
}

async function sendCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      "api-key": { type: "string" },
      "api-base-url": { type: "string" },
      rate: { type: "string", default: "3600" },
      failures: { type: "string", default: "refiner-failures.ndjson" },
      attempts: { type: "string", default: "5" },
      backoff: { type: "string", default: "1000" },
      "dry-run": { type: "boolean", default: false },
    },
  });
  const rate = Number(values.rate);
  const attempts = Number(values.attempts);
  const backoffMs = Number(values.backoff);
  const problems = [
    positionals.length === 0 && "name at least one FILE, or - for standard input",
    !(rate > 0) && "--rate must be a positive number of requests per minute",
    !(Number.isInteger(attempts) && attempts >= 1) &&
      "--attempts must be a whole number of at least 1",
    !(backoffMs >= 0) && "--backoff must be a number of milliseconds",
  ].filter(Boolean);
  if (problems.length) {
    process.stderr.write(`refiner-destination send: ${problems.join("; ")}\n\n${USAGE}`);
    return 2;
  }
  return send({
    files: positionals,
    apiKey: values["api-key"] ?? process.env.REFINER_API_KEY,
    apiBaseUrl: values["api-base-url"] ?? process.env.REFINER_API_BASE_URL,
    preserveTraitKeys: process.env.REFINER_PRESERVE_TRAIT_KEYS,
    rate,
    failures: values.failures,
    dryRun: values["dry-run"],
    attempts,
    backoffMs,
    batchSize: 100,
    fetch: refinerFetch,
    stdout: process.stdout,
    stderr: process.stderr,
  });
}

async function deployCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { "display-name": { type: "string", default: "Refiner" } },
  });
  const token = process.env.SEGMENT_TOKEN;
  if (!token) {
    process.stderr.write(
      "refiner-destination deploy-segment: set SEGMENT_TOKEN to a Segment Public API token (Settings → Workspace settings → Access Management → Tokens).\n",
    );
    return 2;
  }
  const path = join(__dirname, "..", "segment-function.js");
  const code = readFileSync(path, "utf8");
  const apiUrl = process.env.SEGMENT_API_URL || DEFAULT_SEGMENT_API_URL;
  try {
    const result = await deploySegmentFunction({
      token,
      apiUrl,
      displayName: values["display-name"],
      code,
      fetch: nodeFetch,
    });
    const what =
      result.action === "unchanged"
        ? "unchanged: code and settings already match"
        : `${result.action}: ${result.changed.join(" and ")}`;
    process.stdout.write(`Segment function "${values["display-name"]}" (${result.id}) ${what}.\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`refiner-destination deploy-segment: ${(error as Error).message}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    process.stderr.write(`refiner-destination: ${(error as Error)?.message ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
