// The `refiner-destination` command: `send` (backfill), `deploy-segment` and `secret`.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { boundedFetch, type Fetch } from "../lib/refiner/client.ts";
import { settingsFromEnvironment } from "../lib/settings.ts";
import { DEFAULT_SEGMENT_API_URL, deploySegmentFunction } from "./deploy-segment.ts";
import { askLines, askTerminal } from "./prompt.ts";
import { awsProblem, secretsManagerStore, updateSecret } from "./secret.ts";
import { SENDABLE_TYPES, send, TIMEOUT_SECONDS, UNANSWERED, WINDOW_EVENTS } from "./send.ts";

const SEND_USAGE = `Usage:
  refiner-destination send FILE... [options]
      Replays Segment events into Refiner, resumably. FILE is NDJSON (a Segment archive), a JSON
      array or a JSON object, optionally gzipped; "-" reads standard input (not resumable).
      --api-key K        Refiner API key (default: $REFINER_API_KEY)
      --api-base-url U   default: $REFINER_API_BASE_URL or https://api.refiner.io/v1
      --types LIST       only these, comma-separated: ${SENDABLE_TYPES.join(",")} (default: all)
      --rate N           requests per minute (default 3600; Refiner allows 4000 per key)
      --attempts N       tries per request before its events count as undelivered (default 5)
      --backoff MS       first wait before a retry; doubles each time (default 1000)
      --failures FILE    undelivered events, to send again later (default refiner-failures.ndjson)
      --rejected FILE    events Refiner cannot take as they are (default refiner-rejected.ndjson)
      --checkpoint FILE  progress, for resuming (default refiner-send.checkpoint.json)
      --restart          ignore the checkpoint and start over
      --dry-run          send nothing: count the requests and print a sample
      --show N           requests a dry run prints (default 10)
      --window N         a contact's identifies and groups within N events become one request
                         (default ${WINDOW_EVENTS}, at most a minute of reading)
      --timeout S        seconds a request waits for Refiner's answer (default ${TIMEOUT_SECONDS},
                         more than 1)
      --unanswered N     stop, keeping the checkpoint, after N requests in a row got no answer
                         (a timeout or no connection; default ${UNANSWERED})
      Exits 0 when every input was read whole and every event delivered or skipped; 1 when
      something was rejected, undelivered or unreadable, or the run stopped (a refused key,
      Refiner not answering: run the same command again to resume); 2 on usage errors, a
      checkpoint another run holds or one that does not match the inputs; 130 after Ctrl-C.
`;

const DEPLOY_USAGE = `Usage:
  refiner-destination deploy-segment [--display-name NAME]
      Creates or updates the destination function (dist/segment-function.js) in a Segment
      workspace. Needs SEGMENT_TOKEN; SEGMENT_API_URL for EU workspaces
      (https://eu1.api.segmentapis.com). Default name: "Refiner".
`;

const SECRET_USAGE = `Usage:
  refiner-destination secret --stage STAGE [--rotate | --end-rotation]
      Creates or updates the stage's secret in AWS Secrets Manager (refiner-destination/STAGE),
      which the deployed functions read: asks for the Refiner API key and the Webhooks shared
      secret (hidden as you type on a terminal, else one line each from standard input), and
      makes the webhook token. An empty answer keeps a value. --rotate makes a new token and keeps
      the old values beside the new ones until --end-rotation (a second --rotate waits for it).
      Uses the AWS credentials and region of this shell.
`;

const USAGE = [SEND_USAGE, DEPLOY_USAGE, SECRET_USAGE]
  .map((usage) => usage.replace("Usage:\n", ""))
  .join("\n")
  .replace(/^/, "Usage:\n");

const nodeFetch = fetch as unknown as Fetch;
// Node's fetch has no `size` option: answers to `send` are read through boundedFetch.
const refinerFetch = boundedFetch(nodeFetch);

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "send") return sendCommand(rest);
  if (command === "deploy-segment") return deployCommand(rest);
  if (command === "secret") return secretCommand(rest);
  const help =
    command === undefined || command === "--help" || command === "-h" || command === "help";
  if (!help) process.stderr.write(`refiner-destination: unknown command '${command}'\n\n`);
  (help ? process.stdout : process.stderr).write(USAGE);
  return help ? 0 : 2;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * The subcommand's options, or its exit status: `--help` prints its usage (0); an unknown option or
 * a missing value, one line saying so and the usage line (2), never a stack trace.
 */
function parseCommand<O extends Options>(name: string, usage: string, args: string[], options: O) {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(usage);
    return 0;
  }
  try {
    return parseArgs({ args, options, allowPositionals: name === "send", strict: true });
  } catch (error) {
    // Node's message goes on about positionals after "--": its first sentence says it all.
    const message = String((error as Error).message)
      .split(/(?<=\.) /)[0]
      ?.replace(/\.$/, "");
    const line = usage.split("\n")[1]?.trim();
    process.stderr.write(
      `refiner-destination ${name}: ${message}.\nUsage: ${line}\n(refiner-destination ${name} --help lists every option.)\n`,
    );
    return 2;
  }
}

const SEND_OPTIONS = {
  "api-key": { type: "string" },
  "api-base-url": { type: "string" },
  types: { type: "string" },
  rate: { type: "string", default: "3600" },
  failures: { type: "string", default: "refiner-failures.ndjson" },
  rejected: { type: "string", default: "refiner-rejected.ndjson" },
  checkpoint: { type: "string", default: "refiner-send.checkpoint.json" },
  restart: { type: "boolean", default: false },
  attempts: { type: "string", default: "5" },
  backoff: { type: "string", default: "1000" },
  "dry-run": { type: "boolean", default: false },
  show: { type: "string", default: "10" },
  window: { type: "string", default: String(WINDOW_EVENTS) },
  timeout: { type: "string", default: String(TIMEOUT_SECONDS) },
  unanswered: { type: "string", default: String(UNANSWERED) },
} as const satisfies Options;

async function sendCommand(args: string[]): Promise<number> {
  const parsed = parseCommand("send", SEND_USAGE, args, SEND_OPTIONS);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  const rate = Number(values.rate);
  const attempts = Number(values.attempts);
  const backoffMs = Number(values.backoff);
  const show = Number(values.show);
  const window = Number(values.window);
  const timeoutMs = Number(values.timeout) * 1000;
  const unanswered = Number(values.unanswered);
  const types =
    values.types === undefined
      ? [...SENDABLE_TYPES]
      : values.types.split(",").map((type) => type.trim());
  const unknown = types.filter((type) => !(SENDABLE_TYPES as readonly string[]).includes(type));
  const problems = [
    positionals.length === 0 && "name at least one FILE, or - for standard input",
    !(rate > 0) && "--rate must be a positive number of requests per minute",
    !(Number.isInteger(attempts) && attempts >= 1) &&
      "--attempts must be a whole number of at least 1",
    !(backoffMs >= 0) && "--backoff must be a number of milliseconds",
    !(Number.isInteger(show) && show >= 0) && "--show must be a whole number",
    !(Number.isInteger(window) && window >= 1 && window <= WINDOW_EVENTS) &&
      `--window must be a whole number from 1 to ${WINDOW_EVENTS}`,
    !(timeoutMs > 1000) && "--timeout must be a number of seconds over 1",
    !(Number.isInteger(unanswered) && unanswered >= 1) &&
      "--unanswered must be a whole number of at least 1",
    (unknown.length > 0 || types.length === 0) &&
      `--types takes a comma-separated list of ${SENDABLE_TYPES.join(", ")}`,
  ].filter(Boolean);
  if (problems.length) {
    process.stderr.write(`refiner-destination send: ${problems.join("; ")}\n\n${SEND_USAGE}`);
    return 2;
  }
  // Ctrl-C stops reading and lets what is in flight finish; a second one ends at once.
  const interrupt = new AbortController();
  const onSignal = () => {
    if (interrupt.signal.aborted) process.exit(130);
    interrupt.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return send({
    files: positionals,
    // Every setting from its variable (docs/mapping.md, "Settings"); two have flags as well.
    settings: {
      ...settingsFromEnvironment(process.env),
      ...(values["api-key"] === undefined ? {} : { apiKey: values["api-key"] }),
      ...(values["api-base-url"] === undefined ? {} : { apiBaseUrl: values["api-base-url"] }),
    },
    rate,
    failures: values.failures,
    rejected: values.rejected,
    checkpoint: values.checkpoint,
    restart: values.restart,
    dryRun: values["dry-run"],
    show,
    window,
    types,
    attempts,
    backoffMs,
    timeoutMs,
    unanswered,
    fetch: refinerFetch,
    stdout: process.stdout,
    stderr: process.stderr,
    signal: interrupt.signal,
  });
}

async function deployCommand(args: string[]): Promise<number> {
  const parsed = parseCommand("deploy-segment", DEPLOY_USAGE, args, {
    "display-name": { type: "string", default: "Refiner" },
  });
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
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

async function secretCommand(args: string[]): Promise<number> {
  const parsed = parseCommand("secret", SECRET_USAGE, args, {
    stage: { type: "string" },
    rotate: { type: "boolean", default: false },
    "end-rotation": { type: "boolean", default: false },
  });
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  if (!values.stage || (values.rotate && values["end-rotation"])) {
    process.stderr.write(
      "refiner-destination secret: give --stage STAGE (the one you deploy), and at most one of --rotate and --end-rotation.\n",
    );
    return 2;
  }
  // The SDK warns, over seven lines, of Node versions it will drop; this command has nothing to do
  // with that, and the warning would bury its own line.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  // On a terminal the answers are read without echo; otherwise one line each from standard input.
  // The questions go to standard error.
  const ask = process.stdin.isTTY
    ? askTerminal(process.stdin, process.stderr)
    : askLines(process.stdin, process.stderr);
  try {
    return await updateSecret({
      stage: values.stage,
      rotate: Boolean(values.rotate),
      endRotation: Boolean(values["end-rotation"]),
      store: secretsManagerStore(process.env),
      ask,
      say: (line) => process.stdout.write(`${line}\n`),
    });
  } catch (error) {
    const problem = awsProblem(error);
    process.stderr.write(`refiner-destination secret: ${problem}\n`);
    return 1;
  } finally {
    ask.close();
  }
}

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
    // Idle keep-alive sockets and an interrupted input must not hold the command open.
    setTimeout(() => process.exit(), 200).unref();
  },
  (error: unknown) => {
    // Every failure the command foresees ends in a message and an exit status above; this is a
    // fault of the command itself, so its stack goes with it, for the report.
    const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`refiner-destination: unexpected error, please report it:\n${stack}\n`);
    process.exitCode = 1;
  },
);
