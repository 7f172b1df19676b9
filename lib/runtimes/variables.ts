// Every environment variable the Lambda functions read, declared once: which functions read it,
// its default, whether it is a secret, where serverless.yml takes it from, and what it means.
// lib/runtimes/lambda.ts reads them by these names only (`read` in lambda-config.ts takes a
// VariableName), and `npm run generate` writes from this table each function's environment in
// serverless.yml, docs/lambda.md's table and deploy/guard.cjs's list of secrets.
//
// Secrets never appear in serverless.yml: on AWS they are keys of the stage's Secrets Manager
// secret (REFINER_SECRET_ID), read by the function itself; locally they are plain variables.

import { SETTING_TEXTS, SETTINGS } from "../settings.ts";

export type LambdaFunction = "segment" | "webhook" | "deliver";

/** The functions serverless.yml deploys (`deliver` only when queued). */
export const LAMBDA_FUNCTIONS: readonly LambdaFunction[] = ["segment", "webhook", "deliver"];
const ALL = LAMBDA_FUNCTIONS;
const WEBHOOK: readonly LambdaFunction[] = ["webhook"];
const DELIVER: readonly LambdaFunction[] = ["deliver"];

export interface LambdaVariable {
  name: string;
  functions: readonly LambdaFunction[];
  /** What serverless.yml sets when nothing else is given; "" for nothing. */
  default: string;
  /** A key of the Secrets Manager secret, never a template value. */
  secret: boolean;
  /**
   * Where serverless.yml takes the value (a serverless variable, without `${}`): the deploy's
   * environment (`env:`, with the default when it has none), a `--param` (`param:`) or the stack's
   * own configuration (`self:`). None: the default itself.
   */
  from?: `${"env" | "param" | "self"}:${string}`;
  meaning: string;
}

/** The variables of the Lambda forms alone; the settings' follow from SETTINGS. */
const OWN_VARIABLES = [
  {
    name: "REFINER_SECRET_ID",
    functions: ALL,
    default: "refiner-destination/<stage>",
    secret: false,
    from: "self:custom.secretId",
  },
  {
    name: "REFINER_QUEUE_URL",
    functions: ALL,
    default: "",
    secret: false,
    from: "self:custom.queueUrl",
  },
  {
    name: "REFINER_DELIVERED_TABLE",
    functions: ALL,
    default: "refiner-segment-destination-<stage>-delivered",
    secret: false,
    from: "self:custom.deliveredTable",
  },
  { name: "NODE_OPTIONS", functions: ALL, default: "--enable-source-maps", secret: false },
  {
    name: "REFINER_CONSUMERS",
    functions: DELIVER,
    default: "2",
    secret: false,
    from: "param:consumers",
  },
  {
    name: "REFINER_RATE_PER_MINUTE",
    functions: DELIVER,
    default: "3600",
    secret: false,
    from: "param:ratePerMinute",
  },
  {
    name: "REFINER_RETRY_BACKOFF_SECONDS",
    functions: DELIVER,
    default: "30",
    secret: false,
    from: "param:retryBackoffSeconds",
  },
  { name: "SEGMENT_SHARED_SECRET", functions: WEBHOOK, default: "", secret: true },
  { name: "SEGMENT_WEBHOOK_TOKEN", functions: WEBHOOK, default: "", secret: true },
  { name: "SEGMENT_SHARED_SECRET_PREVIOUS", functions: WEBHOOK, default: "", secret: true },
  { name: "SEGMENT_WEBHOOK_TOKEN_PREVIOUS", functions: WEBHOOK, default: "", secret: true },
  { name: "ALLOW_UNSIGNED_WEBHOOKS", functions: WEBHOOK, default: "false", secret: false },
  {
    name: "ALLOW_FIRST_EVENT_SIGNATURE",
    functions: WEBHOOK,
    default: "false",
    secret: false,
    from: "param:allowFirstEventSignature",
  },
] as const satisfies readonly Omit<LambdaVariable, "meaning">[];

type OwnVariableName = (typeof OWN_VARIABLES)[number]["name"];

/**
 * What each of them means. Kept apart from OWN_VARIABLES, which the Lambda bundle carries for the
 * names of the secrets, as SETTING_TEXTS is from SETTINGS; the compiler asks for every variable.
 */
const VARIABLE_MEANINGS: Record<OwnVariableName, string> = {
  REFINER_SECRET_ID:
    "The Secrets Manager secret whose keys are the secret variables (refiner-destination secret). Read on the first invocation and every 5 minutes after, unless REFINER_API_KEY is set in the environment.",
  REFINER_QUEUE_URL: "Queued mode: the events queue. Empty in direct mode.",
  REFINER_DELIVERED_TABLE: "The DynamoDB table of delivered messageIds; empty for none.",
  NODE_OPTIONS:
    "Read by Node itself: source maps on, so that a stack trace in the log names the lib/ files and lines of the minified bundle.",
  REFINER_CONSUMERS: "How many consumers drain the queue at once (2 to 1,000).",
  REFINER_RATE_PER_MINUTE: "Refiner requests a minute the consumers share.",
  REFINER_RETRY_BACKOFF_SECONDS: "A retryable message's first wait, doubled at each receive.",
  SEGMENT_SHARED_SECRET: "The Webhooks destination's shared secret (X-Signature).",
  SEGMENT_WEBHOOK_TOKEN:
    "A random token Segment sends with every request; it authenticates whole batches.",
  SEGMENT_SHARED_SECRET_PREVIOUS:
    "While the shared secret rotates, the old one, accepted beside the new.",
  SEGMENT_WEBHOOK_TOKEN_PREVIOUS: "While the token rotates, the old one, accepted beside the new.",
  ALLOW_UNSIGNED_WEBHOOKS:
    "`true` accepts unauthenticated requests: only for local testing, never deployed.",
  ALLOW_FIRST_EVENT_SIGNATURE: "`true` lets a batch in on its first event's signature alone.",
};

/** Every variable: the settings' (SETTINGS), then the Lambda forms' own. */
export const LAMBDA_VARIABLES: readonly LambdaVariable[] = /* @__PURE__ */ lambdaVariables();

function lambdaVariables(): LambdaVariable[] {
  return [
    ...SETTINGS.map(
      (setting): LambdaVariable => ({
        name: setting.env,
        functions: ALL,
        default: setting.default,
        secret: setting.sensitive,
        from: `env:${setting.env}`,
        meaning: SETTING_TEXTS[setting.name].description,
      }),
    ),
    ...OWN_VARIABLES.map((variable) => ({
      ...variable,
      meaning: VARIABLE_MEANINGS[variable.name],
    })),
  ];
}

export type VariableName = (typeof SETTINGS)[number]["env"] | OwnVariableName;

/** A variable of the Lambda forms' own, as a number: its declared default (above). */
export function declaredNumber(name: OwnVariableName): number {
  return Number(OWN_VARIABLES.find((variable) => variable.name === name)?.default);
}

/** The names of the secret variables: the keys the functions take from the stage's secret. */
export const SECRET_VARIABLES: readonly VariableName[] = /* @__PURE__ */ secretVariables();

function secretVariables(): VariableName[] {
  return [
    ...SETTINGS.filter((setting) => setting.sensitive).map((setting) => setting.env),
    ...OWN_VARIABLES.filter((variable) => variable.secret).map((variable) => variable.name),
  ];
}
