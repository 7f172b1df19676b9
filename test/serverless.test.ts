// serverless.yml, through the `serverless` command of the dev dependency osls, offline and without
// AWS credentials: `npm run package` in both modes, cfn-lint on what it builds, the guard that keeps
// secrets out, and `serverless invoke local`.

import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAMBDA_VARIABLES, SECRET_VARIABLES } from "../lib/runtimes/variables.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { CACHE, cachedRun, keyOf } from "./support/cached-run.ts";
import { API_KEY } from "./support/fixtures.ts";
import { zipEntries } from "./support/zip.ts";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..");

/**
 * The `serverless` command of osls, run by node itself: through npx, each run also paid for npm's
 * start-up and its update check.
 */
function serverless(args: string[], env: NodeJS.ProcessEnv) {
  return run(process.execPath, [join(ROOT, "node_modules/osls/bin/serverless.js"), ...args], {
    cwd: ROOT,
    env,
  });
}

/**
 * A HOME of the tests' own, kept between runs: osls compiles its configuration validator (about 3 s
 * of CPU) into ~/.serverless once, and the later runs read it from there.
 */
const HOME = join(CACHE, "serverless-home");
mkdirSync(HOME, { recursive: true });

/**
 * What a packaging reads. The packagings, the guard's refusal and cfn-lint's findings are kept by
 * test/support/cached-run.ts until one of these, or the arguments, changes.
 */
const PACKAGE_INPUTS = [
  "serverless.yml",
  "deploy/guard.cjs",
  "package.json",
  "dist/lambda/handler.js",
  "dist/lambda/handler.js.map",
  "node_modules/osls/package.json",
];

/** The environment of a machine with no AWS account and none of the destination's variables. */
function cleanEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(AWS_|REFINER_|SEGMENT_|ALLOW_)/.test(name)),
  );
  return { ...env, HOME, ...extra };
}

interface Resource {
  Type: string;
  Properties: Record<string, unknown>;
  Condition?: string;
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
}
interface Template {
  Resources: Record<string, Resource>;
}

/** `npm run package` with these `--param`s into a fresh folder: the template and the folder. */
async function packaged(
  params: string[] = [],
): Promise<{ template: Template; out: string; said: string }> {
  const args = ["package", ...params.flatMap((p) => ["--param", p])];
  const { dir: out, value: said } = await cachedRun(
    "package",
    keyOf(PACKAGE_INPUTS, args),
    async (dir) => {
      const { stdout, stderr } = await serverless([...args, "--package", dir], cleanEnvironment());
      return `${stdout}${stderr}`;
    },
  );
  const text = readFileSync(join(out, "cloudformation-template-update-stack.json"), "utf8");
  return { template: JSON.parse(text), out, said };
}

function properties(template: Template, name: string): Record<string, unknown> {
  const resource = template.Resources[name];
  if (!resource) throw new Error(`no ${name} in the template`);
  return resource.Properties;
}

const variables = (template: Template, fn: string) =>
  (properties(template, fn).Environment as { Variables: Record<string, unknown> }).Variables;

const TABLE_STATEMENT = {
  Effect: "Allow",
  Action: ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"],
  Resource: { "Fn::GetAtt": ["DeliveredTable", "Arn"] },
};
const SECRET_STATEMENT = {
  Effect: "Allow",
  Action: "secretsmanager:GetSecretValue",
  Resource: {
    "Fn::Sub":
      // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation's own Fn::Sub syntax
      "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:refiner-destination/dev-??????",
  },
};
const statements = (template: Template, role: string) =>
  (
    properties(template, role).Policies as {
      PolicyDocument: { Statement: unknown[] };
    }[]
  ).flatMap((policy) => policy.PolicyDocument.Statement);

/**
 * cfn-lint's findings on templates, but W3005 (a DependsOn osls writes beside a GetAtt) and W8003
 * (conditions that the deploy's parameters make constant).
 */
async function cfnLint(templates: string[]): Promise<string[]> {
  let version: string;
  try {
    version = execFileSync("cfn-lint", ["--version"], { encoding: "utf8" });
  } catch {
    throw new Error(
      "cfn-lint is not installed, so the packaged templates cannot be checked: pip install cfn-lint==1.51.0",
    );
  }
  const key = keyOf([], [version, ...templates.map((path) => readFileSync(path, "utf8"))]);
  const { value: output } = await cachedRun("cfn-lint", key, () =>
    run("cfn-lint", ["--format", "parseable", ...templates]).then(
      ({ stdout }) => stdout,
      // cfn-lint exits non-zero when it finds anything; what it found is on standard output.
      (error: { stdout?: string }) => String(error.stdout ?? ""),
    ),
  );
  return output
    .split("\n")
    .filter(Boolean)
    .filter((line) => !/:(W3005|W8003):/.test(line));
}

/** `serverless package` with secret variables set: what the guard answers (it should fail). */
async function refusedPackage(canary: string): Promise<{ said: string; written: string[] }> {
  const key = keyOf(PACKAGE_INPUTS, ["refused", canary]);
  const { value } = await cachedRun("refused", key, async (out) => {
    const said = await serverless(
      ["package", "--package", out],
      cleanEnvironment({ REFINER_API_KEY: canary, SEGMENT_WEBHOOK_TOKEN: "wht_canary" }),
    ).then(
      () => "it packaged",
      (error: { stdout: string; stderr: string }) => `${error.stdout}${error.stderr}`,
    );
    return { said, written: readdirSync(out) };
  });
  return value;
}

/** `serverless invoke local` of `segment` on the sample identify, with this shell's variables. */
function invokeLocally(refinerUrl: string) {
  return serverless(
    [
      "invoke",
      "local",
      "--function",
      "segment",
      "--path",
      "events/identify.json",
      // Direct delivery: no queue exists on this machine.
      "--param",
      "queued=false",
    ],
    cleanEnvironment({ REFINER_API_KEY: API_KEY, REFINER_API_BASE_URL: refinerUrl }),
  );
}

// Every `serverless` run takes seconds, mostly starting up. The first packaging compiles the
// validator into HOME; then the rest start at once: the direct packaging (after the first: two
// packagings in one service folder trip over each other), the refused one and `invoke local`
// beside it, and cfn-lint once both templates exist.
const CANARY = "rfk_canary_7f3a9c2e1b";
let refiner: RefinerEmulator;
let both: Promise<[Awaited<ReturnType<typeof packaged>>, Awaited<ReturnType<typeof packaged>>]>;
let linted: Promise<string[]>;
let refused: ReturnType<typeof refusedPackage>;
let invoked: Promise<{ stdout: string; requests: string[] }>;
beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
  // Queued with two External IDs for Segment's role; direct without one.
  const queued = packaged(["segmentExternalId=src_4Tb9XhQ2,ws_8kLmN3pQ"]);
  both = queued.then(async (first) => [first, await packaged(["queued=false"])]);
  const compiled = queued.then(
    () => undefined,
    () => undefined,
  );
  linted = both.then(([queued, direct]) =>
    cfnLint(
      [queued.out, direct.out].map((folder) =>
        join(folder, "cloudformation-template-update-stack.json"),
      ),
    ),
  );
  refused = compiled.then(() => refusedPackage(CANARY));
  // Kept with the requests the emulator took, until the bundle, the event or the emulator changes.
  const invokeKey = keyOf(
    [...PACKAGE_INPUTS, "events/identify.json", "local/refiner-emulator.ts"],
    ["invoke local segment"],
  );
  invoked = compiled
    .then(() =>
      cachedRun("invoke", invokeKey, async () => {
        const { stdout } = await invokeLocally(refiner.url);
        return { stdout, requests: refiner.requests.map((r) => `${r.method} ${r.path}`) };
      }),
    )
    .then(({ value }) => value);
  // Handled here too, so that no rejection goes unseen while a test waits on another.
  for (const promise of [both, linted, refused, invoked]) promise.catch(() => {});
});
afterAll(async () => {
  await refiner.close();
});

describe("npm run package, queued (the default)", () => {
  let template: Template;
  let out: string;
  let said: string;
  beforeAll(async () => {
    ({ template, out, said } = (await both)[0]);
  }, 180_000);

  it("declares the three functions on nodejs22.x with JSON logs, the doors just over Segment's 5 s", () => {
    for (const name of ["SegmentLambdaFunction", "WebhookLambdaFunction"]) {
      const fn = properties(template, name);
      expect(fn.Runtime).toBe("nodejs22.x");
      expect(fn.Timeout).toBe(6);
      expect(fn.LoggingConfig).toEqual(expect.objectContaining({ LogFormat: "JSON" }));
      expect(fn.ReservedConcurrentExecutions).toBe(10);
    }
    expect(properties(template, "SegmentLambdaFunction").Handler).toBe(
      "dist/lambda/handler.segment",
    );
    expect(properties(template, "WebhookLambdaFunction").Handler).toBe(
      "dist/lambda/handler.webhook",
    );
    expect(properties(template, "DeliverLambdaFunction").Timeout).toBe(60);
    expect(properties(template, "DeliverLambdaFunction").ReservedConcurrentExecutions).toBe(
      undefined,
    );
  });

  it("gives webhook a public Function URL", () => {
    const url = Object.values(template.Resources).find(
      (resource) => resource.Type === "AWS::Lambda::Url",
    );
    expect(url?.Properties).toEqual(
      expect.objectContaining({ AuthType: "NONE", TargetFunctionArn: expect.anything() }),
    );
  });

  it("gives each function exactly its variables of lib/runtimes/variables.ts, and no secret", () => {
    const expected = (fn: "segment" | "webhook" | "deliver") =>
      Object.fromEntries(
        LAMBDA_VARIABLES.filter((v) => v.functions.includes(fn) && !v.secret).map((v) => [
          v.name,
          v.name === "REFINER_QUEUE_URL"
            ? { Ref: "EventsQueue" }
            : v.default.replace("<stage>", "dev"),
        ]),
      );
    expect(variables(template, "SegmentLambdaFunction")).toEqual(expected("segment"));
    expect(variables(template, "WebhookLambdaFunction")).toEqual(expected("webhook"));
    expect(variables(template, "DeliverLambdaFunction")).toEqual(expected("deliver"));
    // Spot checks against literal values, so that the table itself is checked too.
    expect(variables(template, "DeliverLambdaFunction")).toMatchObject({
      REFINER_SECRET_ID: "refiner-destination/dev",
      REFINER_DELIVERED_TABLE: "refiner-segment-destination-dev-delivered",
      REFINER_RETRY_BACKOFF_SECONDS: "30",
      REFINER_RATE_PER_MINUTE: "3600",
    });
    expect(Object.keys(variables(template, "WebhookLambdaFunction"))).not.toContain(
      "REFINER_API_KEY",
    );
  });

  it("declares the FIFO queue and its dead-letter queue, 14 days each, kept with the stack", () => {
    expect(template.Resources.EventsQueue).toEqual({
      Type: "AWS::SQS::Queue",
      DeletionPolicy: "Retain",
      UpdateReplacePolicy: "Retain",
      Properties: {
        QueueName: "refiner-segment-destination-dev-events.fifo",
        FifoQueue: true,
        DeduplicationScope: "messageGroup",
        FifoThroughputLimit: "perMessageGroupId",
        MessageRetentionPeriod: 1209600,
        VisibilityTimeout: 360,
        SqsManagedSseEnabled: true,
        RedrivePolicy: {
          deadLetterTargetArn: { "Fn::GetAtt": ["DeadLetterQueue", "Arn"] },
          maxReceiveCount: 30,
        },
      },
    });
    expect(template.Resources.DeadLetterQueue).toEqual({
      Type: "AWS::SQS::Queue",
      DeletionPolicy: "Retain",
      UpdateReplacePolicy: "Retain",
      Properties: {
        QueueName: "refiner-segment-destination-dev-dead-letters.fifo",
        FifoQueue: true,
        MessageRetentionPeriod: 1209600,
        SqsManagedSseEnabled: true,
        // Only the events queue may move its failures here.
        RedriveAllowPolicy: {
          redrivePermission: "byQueue",
          sourceQueueArns: [
            {
              "Fn::Sub":
                // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation's own Fn::Sub syntax
                "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:refiner-segment-destination-dev-events.fifo",
            },
          ],
        },
      },
    });
  });

  it("denies every request to either queue that does not use TLS", () => {
    expect(template.Resources.QueuesTlsOnlyPolicy).toEqual({
      Type: "AWS::SQS::QueuePolicy",
      Properties: {
        Queues: [{ Ref: "EventsQueue" }, { Ref: "DeadLetterQueue" }],
        PolicyDocument: {
          Version: "2012-10-17",
          Statement: [
            {
              Sid: "TlsOnly",
              Effect: "Deny",
              Principal: "*",
              Action: "sqs:*",
              Resource: [
                { "Fn::GetAtt": ["EventsQueue", "Arn"] },
                { "Fn::GetAtt": ["DeadLetterQueue", "Arn"] },
              ],
              Condition: { Bool: { "aws:SecureTransport": "false" } },
            },
          ],
        },
      },
    });
  });

  it("lets Segment's AWS account assume the invoke role only with the given External IDs", () => {
    const role = template.Resources.SegmentInvokeRole;
    expect(role?.Condition).toBe("CreateSegmentRole");
    expect(role?.Properties.AssumeRolePolicyDocument).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { AWS: "arn:aws:iam::595280932656:root" },
          Action: "sts:AssumeRole",
          Condition: {
            StringEquals: {
              "sts:ExternalId": { "Fn::Split": [",", "src_4Tb9XhQ2,ws_8kLmN3pQ"] },
            },
          },
        },
      ],
    });
    expect(statements(template, "SegmentInvokeRole")).toEqual([
      {
        Effect: "Allow",
        Action: "lambda:InvokeFunction",
        Resource: { "Fn::GetAtt": ["SegmentLambdaFunction", "Arn"] },
      },
    ]);
    // Created when the parameter is given (its value here), and said when it is not (below).
    expect((template as unknown as { Conditions: unknown }).Conditions).toMatchObject({
      CreateSegmentRole: { "Fn::Not": [{ "Fn::Equals": ["src_4Tb9XhQ2,ws_8kLmN3pQ", ""] }] },
    });
    expect(said).not.toContain("segmentExternalId");
  });

  it("declares the table of delivered messageIds on demand, with a TTL, kept with the stack", () => {
    expect(template.Resources.DeliveredTable).toEqual({
      Type: "AWS::DynamoDB::Table",
      DeletionPolicy: "Retain",
      UpdateReplacePolicy: "Retain",
      Properties: {
        TableName: "refiner-segment-destination-dev-delivered",
        BillingMode: "PAY_PER_REQUEST",
        AttributeDefinitions: [{ AttributeName: "messageId", AttributeType: "S" }],
        KeySchema: [{ AttributeName: "messageId", KeyType: "HASH" }],
        TimeToLiveSpecification: { AttributeName: "expiresAt", Enabled: true },
      },
    });
  });

  it("drains the queue with batches of 10, at most 2 consumers, reporting batch item failures", () => {
    const mapping = Object.values(template.Resources).find(
      (resource) => resource.Type === "AWS::Lambda::EventSourceMapping",
    );
    expect(mapping?.Properties).toEqual({
      BatchSize: 10,
      EventSourceArn: { "Fn::GetAtt": ["EventsQueue", "Arn"] },
      FunctionName: { "Fn::GetAtt": ["DeliverLambdaFunction", "Arn"] },
      Enabled: true,
      FunctionResponseTypes: ["ReportBatchItemFailures"],
      ScalingConfig: { MaximumConcurrency: 2 },
    });
  });

  it("gives the doors the secret, the table and SendMessage; the consumer what draining needs", () => {
    const queueArn = { "Fn::GetAtt": ["EventsQueue", "Arn"] };
    expect(statements(template, "ProducerRole")).toEqual([TABLE_STATEMENT, SECRET_STATEMENT]);
    expect(properties(template, "ProducerQueuePolicy")).toEqual({
      PolicyName: "send-to-the-events-queue",
      Roles: [{ Ref: "ProducerRole" }],
      PolicyDocument: {
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Action: "sqs:SendMessage", Resource: queueArn }],
      },
    });
    expect(statements(template, "ConsumerRole")).toEqual([
      {
        Effect: "Allow",
        Action: [
          "sqs:ReceiveMessage",
          "sqs:DeleteMessage",
          "sqs:ChangeMessageVisibility",
          "sqs:GetQueueAttributes",
        ],
        Resource: queueArn,
      },
      TABLE_STATEMENT,
      SECRET_STATEMENT,
    ]);
    for (const role of ["ProducerRole", "ConsumerRole"]) {
      expect(properties(template, role).ManagedPolicyArns).toEqual([
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
      ]);
    }
    expect(properties(template, "DeliverLambdaFunction").Role).toEqual({
      "Fn::GetAtt": ["ConsumerRole", "Arn"],
    });
    expect(template.Resources.IamRoleLambdaExecution).toBeUndefined();
  });

  it("has every alarm tell the topic when it fires and when it is over", () => {
    const alarms = Object.entries(template.Resources).filter(
      ([, resource]) => resource.Type === "AWS::CloudWatch::Alarm",
    );
    expect(alarms.map(([name]) => name).sort()).toEqual([
      "ApiKeyRefusedAlarm",
      "BacklogAlarm",
      "DeadLettersAlarm",
      "DeliverErrorsAlarm",
      "DeliverThrottlesAlarm",
      "MisconfiguredAlarm",
      "OldestMessageAlarm",
      "RejectionRateAlarm",
      "SegmentErrorsAlarm",
      "SegmentThrottlesAlarm",
      "WebhookErrorsAlarm",
      "WebhookThrottlesAlarm",
      "WebhookUrl5xxAlarm",
    ]);
    for (const [, alarm] of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: "AlarmTopic" }]);
      expect(alarm.Properties.OKActions).toEqual([{ Ref: "AlarmTopic" }]);
      expect(alarm.Properties.AlarmDescription).toEqual(expect.any(String));
    }
    // The topic always exists; the email subscription only with --param alarmEmail, and without
    // it the package says that nobody will be told.
    expect(template.Resources.AlarmTopic?.Condition).toBeUndefined();
    expect(template.Resources.AlarmEmail?.Condition).toBe("NotifyByEmail");
    expect(said).toContain("No --param alarmEmail");
    expect(said).toContain("nobody will be told when delivery fails");
  });

  it("watches the backlog by messages ready, which one failing contact cannot hold", () => {
    expect(properties(template, "BacklogAlarm")).toMatchObject({
      Namespace: "AWS/SQS",
      MetricName: "ApproximateNumberOfMessagesVisible",
      Dimensions: [{ Name: "QueueName", Value: { "Fn::GetAtt": ["EventsQueue", "QueueName"] } }],
      Statistic: "Minimum",
      EvaluationPeriods: 3,
      Threshold: 1000,
    });
    // The age alarm sees what the backlog alarm does not: one event held back for a day.
    expect(properties(template, "OldestMessageAlarm")).toMatchObject({
      Namespace: "AWS/SQS",
      MetricName: "ApproximateAgeOfOldestMessage",
      Dimensions: [{ Name: "QueueName", Value: { "Fn::GetAtt": ["EventsQueue", "QueueName"] } }],
      Statistic: "Maximum",
      Threshold: 86400,
      ComparisonOperator: "GreaterThanThreshold",
      AlarmActions: [{ Ref: "AlarmTopic" }],
    });
    expect(properties(template, "ApiKeyRefusedAlarm")).toMatchObject({
      Namespace: "RefinerDestination",
      MetricName: "ApiKeyRefused",
      Dimensions: [{ Name: "Service", Value: "refiner-segment-destination-dev" }],
      Threshold: 0,
    });
  });

  it("has a dashboard of the destination's metrics, the queues and the functions", () => {
    const body = JSON.stringify(properties(template, "Dashboard").DashboardBody);
    for (const metric of [
      "Delivered",
      "Queued",
      "SkippedUnchanged",
      "RejectedApiKey",
      "Retried",
      "Throttled",
      "RefinerLatency",
      "ApproximateAgeOfOldestMessage",
      "Duration",
      "Errors",
    ]) {
      expect(body).toContain(`\\"${metric}\\"`);
    }
  });

  it("passes cfn-lint with no error and no warning but W3005 and W8003, in both modes", async () => {
    expect(await linted).toEqual([]);
  }, 180_000);

  it("ships only the Lambda bundle, under 200 KB", () => {
    const zip = join(out, "refiner-segment-destination.zip");
    expect(statSync(zip).size).toBeLessThan(200 * 1024);
    expect(zipEntries(readFileSync(zip))).toEqual([
      "dist/lambda/handler.js",
      "dist/lambda/handler.js.map",
    ]);
  });
});

describe("npm run package, direct (--param queued=false)", () => {
  let template: Template;
  let said: string;
  beforeAll(async () => {
    ({ template, said } = (await both)[1]);
  }, 180_000);

  it("says that no role for Segment's AWS Lambda destination is made without segmentExternalId", () => {
    expect(said).toContain("No --param segmentExternalId: no role is created");
    expect(said).toContain("--param segmentExternalId=<the External ID its settings show>");
  });

  it("deploys no queue, no consumer, no event source mapping and no queue alarm", () => {
    const types = Object.values(template.Resources).map((resource) => resource.Type);
    expect(types).not.toContain("AWS::SQS::Queue");
    expect(types).not.toContain("AWS::Lambda::EventSourceMapping");
    for (const name of [
      "DeliverLambdaFunction",
      "ConsumerRole",
      "ProducerQueuePolicy",
      "DeadLettersAlarm",
      "BacklogAlarm",
      "DeliverErrorsAlarm",
    ]) {
      expect(template.Resources[name], name).toBeUndefined();
    }
    expect(variables(template, "WebhookLambdaFunction").REFINER_QUEUE_URL).toBe("");
    expect(statements(template, "ProducerRole")).toEqual([TABLE_STATEMENT, SECRET_STATEMENT]);
    expect(template.Resources.DeliveredTable?.DeletionPolicy).toBe("Retain");
  });
});

describe("the guard (deploy/guard.cjs)", () => {
  it("refuses to package while a secret variable is set, naming it and the step to use", async () => {
    const { said, written } = await refused;
    expect(said).toContain("REFINER_API_KEY, SEGMENT_WEBHOOK_TOKEN are set in this environment");
    expect(said).toContain("npx refiner-destination secret --stage dev");
    expect(said).not.toContain(CANARY);
    expect(written).toEqual([]);
  }, 180_000);

  it("refuses each secret variable of lib/runtimes/variables.ts, which are these", () => {
    expect(SECRET_VARIABLES).toEqual([
      "REFINER_API_KEY",
      "SEGMENT_SHARED_SECRET",
      "SEGMENT_WEBHOOK_TOKEN",
      "SEGMENT_SHARED_SECRET_PREVIOUS",
      "SEGMENT_WEBHOOK_TOKEN_PREVIOUS",
    ]);
    for (const name of SECRET_VARIABLES) {
      const { refused } = guardCheck({ [name]: "canary" }, { segmentExternalId: "src_1" });
      expect(refused, name).toContain(`${name} is set in this environment.`);
    }
  });
});

/**
 * The guard's checks run on a stand-in of the serverless instance (what it reads of one), with this
 * environment: each would otherwise cost a packaging run.
 */
function guardCheck(
  env: Record<string, string>,
  custom: Record<string, string>,
  param: string[] = [],
): { refused?: string; warned: string[] } {
  type GuardClass = new (
    serverless: unknown,
    options: unknown,
    utils: { log: { warning(text: string): void } },
  ) => { check(): void };
  const Guard: GuardClass = createRequire(import.meta.url)("../deploy/guard.cjs");
  const warned: string[] = [];
  const serverless = {
    classes: { Error },
    service: { provider: { stage: "prod" }, custom: { alarmEmail: "ops@example.com", ...custom } },
  };
  const saved = { ...process.env };
  for (const name of Object.keys(process.env)) {
    if (/^(AWS_|REFINER_|SEGMENT_|ALLOW_)/.test(name)) delete process.env[name];
  }
  Object.assign(process.env, env);
  try {
    new Guard(serverless, { param }, { log: { warning: (text) => warned.push(text) } }).check();
    return { warned };
  } catch (error) {
    return { refused: (error as Error).message, warned };
  } finally {
    for (const name of Object.keys(process.env)) delete process.env[name];
    Object.assign(process.env, saved);
  }
}

describe("the guard's checks of the deploy's values", () => {
  const WITH_ROLE = { segmentExternalId: "src_4Tb9XhQ2" };

  it("refuses an API base URL with credentials, without echoing it", () => {
    for (const url of [
      "https://user:hunter2pw@api.refiner.io/v1",
      "https://evil.example\\@api.refiner.io/v1",
      "https://hunter2pw@api.refiner.io",
    ]) {
      const { refused } = guardCheck({ REFINER_API_BASE_URL: url }, WITH_ROLE);
      expect(refused, url).toContain("REFINER_API_BASE_URL holds credentials");
      expect(refused).not.toContain("hunter2pw");
      expect(refused).not.toContain("evil.example");
    }
    expect(guardCheck({ REFINER_API_BASE_URL: "https://api.refiner.io/v1" }, WITH_ROLE)).toEqual({
      warned: [],
    });
  });

  it("refuses the old segmentWorkspaceId parameter, and External IDs with spaces", () => {
    expect(guardCheck({}, WITH_ROLE, ["segmentWorkspaceId=ws_1"]).refused).toContain(
      "--param segmentWorkspaceId is no longer read: give --param segmentExternalId=",
    );
    for (const ids of ["src_1, src_2", "src_1,,src_2", "src_1,"]) {
      expect(guardCheck({}, { segmentExternalId: ids }).refused, ids).toBe(
        "--param segmentExternalId takes External IDs separated by commas, with no spaces and none empty.",
      );
    }
    expect(guardCheck({}, { segmentExternalId: "src_1,ws_2" })).toEqual({ warned: [] });
  });

  it("says that no role is made without segmentExternalId, and that SEGMENT_WORKSPACE_ID is not read", () => {
    const { refused, warned } = guardCheck(
      { SEGMENT_WORKSPACE_ID: "ws_1" },
      { segmentExternalId: "" },
    );
    expect(refused).toBeUndefined();
    expect(warned).toEqual([
      "No --param segmentExternalId: no role is created for Segment's AWS Lambda destination (SEGMENT_WORKSPACE_ID is set, but the stack does not read it). To use that destination, deploy with --param segmentExternalId=<the External ID its settings show> (docs/lambda.md).",
    ]);
  });
});

describe("serverless invoke local", () => {
  it("runs the segment function on events/identify.json with the variables of this shell", async () => {
    const { stdout, requests } = await invoked;
    // JSON log and metric lines, then the result. No table can be reached here, and the event is
    // delivered anyway.
    const lines = stdout.split("\n").filter((line) => line.startsWith("{") && line.endsWith("}"));
    const metrics = lines.map((line) => JSON.parse(line)).find((line) => "_aws" in line);
    expect(metrics).toEqual(
      expect.objectContaining({
        Service: "refiner-segment-destination-dev",
        Delivered: 1,
        DeliveredTableUnavailable: 2,
      }),
    );
    const result = stdout.slice(stdout.lastIndexOf("\n{\n") + 1);
    expect(JSON.parse(result)).toEqual({ status: 200 });
    expect(requests).toEqual(["POST /identify-user"]);
  }, 180_000);
});
