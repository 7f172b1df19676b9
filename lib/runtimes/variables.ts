// Every environment variable the Lambda functions read, declared once: which functions read it,
// its default, whether it is a secret, and what it means. lib/runtimes/lambda.ts reads them by these
// names only (`read` in lambda-config.ts takes a VariableName), serverless.yml gives each function the ones listed for it (a test compares
// the packaged templates), and docs/lambda.md's table is this table (a test compares it too).
//
// Secrets never appear in serverless.yml: on AWS they are keys of the stage's Secrets Manager
// secret (REFINER_SECRET_ID), read by the function itself; locally they are plain variables.

import { SETTING_TEXTS, SETTINGS } from "../settings.ts";

export type LambdaFunction = "segment" | "webhook" | "deliver";

const ALL: readonly LambdaFunction[] = ["segment", "webhook", "deliver"];
const WEBHOOK: readonly LambdaFunction[] = ["webhook"];
const DELIVER: readonly LambdaFunction[] = ["deliver"];

export interface LambdaVariable {
  name: string;
  functions: readonly LambdaFunction[];
  /** What serverless.yml sets when nothing else is given; "" for nothing. */
  default: string;
  /** A key of the Secrets Manager secret, never a template value. */
  secret: boolean;
  /** Who sets it: you (a deploy variable), the stack itself, or a `--param`. */
  setBy: "you" | "the stack" | "--param";
  meaning: string;
}

/** The variables of the Lambda forms alone; the settings' follow from SETTINGS. */
const OWN_VARIABLES = [
  {
    name: "REFINER_SECRET_ID",
    functions: ALL,
    default: "refiner-destination/<stage>",
    secret: false,
    setBy: "the stack",
    meaning:
      "The Secrets Manager secret whose keys are the secret variables (refiner-destination secret). Read on the first invocation and every 5 minutes after, unless REFINER_API_KEY is set in the environment.",
  },
  {
    name: "REFINER_QUEUE_URL",
    functions: ALL,
    default: "",
    secret: false,
    setBy: "the stack",
    meaning: "Queued mode: the events queue. Empty in direct mode.",
  },
  {
    name: "REFINER_DELIVERED_TABLE",
    functions: ALL,
    default: "refiner-segment-destination-<stage>-delivered",
    secret: false,
    setBy: "the stack",
    meaning: "The DynamoDB table of delivered messageIds; empty for none.",
  },
  {
    name: "NODE_OPTIONS",
    functions: ALL,
    default: "--enable-source-maps",
    secret: false,
    setBy: "the stack",
    meaning:
      "Read by Node itself: source maps on, so that a stack trace in the log names the lib/ files and lines of the minified bundle.",
  },
  {
    name: "REFINER_CONSUMERS",
    functions: DELIVER,
    default: "2",
    secret: false,
    setBy: "--param",
    meaning: "`--param consumers`: how many consumers drain the queue at once (2 to 1,000).",
  },
  {
    name: "REFINER_RATE_PER_MINUTE",
    functions: DELIVER,
    default: "3600",
    secret: false,
    setBy: "--param",
    meaning: "`--param ratePerMinute`: Refiner requests a minute the consumers share.",
  },
  {
    name: "REFINER_RETRY_BACKOFF_SECONDS",
    functions: DELIVER,
    default: "30",
    secret: false,
    setBy: "--param",
    meaning:
      "`--param retryBackoffSeconds`: a retryable message's first wait, doubled at each receive.",
  },
  {
    name: "SEGMENT_SHARED_SECRET",
    functions: WEBHOOK,
    default: "",
    secret: true,
    setBy: "you",
    meaning: "The Webhooks destination's shared secret (X-Signature).",
  },
  {
    name: "SEGMENT_WEBHOOK_TOKEN",
    functions: WEBHOOK,
    default: "",
    secret: true,
    setBy: "you",
    meaning: "A random token Segment sends with every request; it authenticates whole batches.",
  },
  {
    name: "SEGMENT_SHARED_SECRET_PREVIOUS",
    functions: WEBHOOK,
    default: "",
    secret: true,
    setBy: "you",
    meaning: "While the shared secret rotates, the old one, accepted beside the new.",
  },
  {
    name: "SEGMENT_WEBHOOK_TOKEN_PREVIOUS",
    functions: WEBHOOK,
    default: "",
    secret: true,
    setBy: "you",
    meaning: "While the token rotates, the old one, accepted beside the new.",
  },
  {
    name: "ALLOW_UNSIGNED_WEBHOOKS",
    functions: WEBHOOK,
    default: "false",
    secret: false,
    setBy: "the stack",
    meaning: "`true` accepts unauthenticated requests: only for local testing, never deployed.",
  },
  {
    name: "ALLOW_FIRST_EVENT_SIGNATURE",
    functions: WEBHOOK,
    default: "false",
    secret: false,
    setBy: "--param",
    meaning:
      "`--param allowFirstEventSignature=true` lets a batch in on its first event's signature alone.",
  },
] as const satisfies readonly LambdaVariable[];

export const LAMBDA_VARIABLES: readonly LambdaVariable[] = [
  ...SETTINGS.map(
    (setting): LambdaVariable => ({
      name: setting.env,
      functions: ALL,
      default: setting.default,
      secret: setting.sensitive,
      setBy: "you",
      meaning: SETTING_TEXTS[setting.name].description,
    }),
  ),
  ...OWN_VARIABLES,
];

export type VariableName =
  | (typeof SETTINGS)[number]["env"]
  | (typeof OWN_VARIABLES)[number]["name"];

/** A declared variable's value: only declared names compile. */
export function read(
  env: Record<string, string | undefined>,
  name: VariableName,
): string | undefined {
  return env[name];
}

/** The names of the secret variables: keys of the stage's secret. */
export const SECRET_VARIABLES = LAMBDA_VARIABLES.filter((variable) => variable.secret).map(
  (variable) => variable.name,
);
