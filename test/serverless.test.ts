// serverless.yml, through the `serverless` command of the dev dependency osls, offline and without
// AWS credentials: `npm run package` and `serverless invoke local`.

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { API_KEY } from "./support/fixtures.ts";
import { zipEntries } from "./support/zip.ts";

const run = promisify(execFile);
const QUEUE_URL = { Ref: "EventsQueue" };
const ROOT = join(import.meta.dirname, "..");

/** The environment of a machine with no AWS account and none of the destination's variables. */
function cleanEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(AWS_|REFINER_|SEGMENT_|ALLOW_)/.test(name)),
  );
  return { ...env, HOME: mkdtempSync(join(tmpdir(), "sls-home-")), ...extra };
}

describe("npm run package", () => {
  const out = mkdtempSync(join(tmpdir(), "sls-package-"));
  let template: {
    Resources: Record<
      string,
      { Type: string; Properties: Record<string, unknown>; Condition?: string }
    >;
  };
  afterAll(() => rmSync(out, { recursive: true, force: true }));
  const properties = (name: string) => {
    const resource = template.Resources[name];
    if (!resource) throw new Error(`no ${name} in the template`);
    return resource.Properties;
  };

  beforeAll(async () => {
    await run("npm", ["run", "package", "--", "--package", out], {
      cwd: ROOT,
      env: cleanEnvironment(),
    });
    template = JSON.parse(
      readFileSync(join(out, "cloudformation-template-update-stack.json"), "utf8"),
    );
  }, 60_000);

  it("declares both functions on nodejs22.x with a timeout just over Segment's 5 s and JSON logs", () => {
    for (const name of ["SegmentLambdaFunction", "WebhookLambdaFunction"]) {
      const fn = properties(name);
      expect(fn.Runtime).toBe("nodejs22.x");
      expect(fn.Timeout).toBeGreaterThan(5);
      expect(fn.Timeout).toBeLessThanOrEqual(10);
      expect(fn.LoggingConfig).toEqual(expect.objectContaining({ LogFormat: "JSON" }));
    }
    expect(template.Resources.SegmentLambdaFunction?.Properties.Handler).toBe(
      "dist/lambda/handler.segment",
    );
    expect(template.Resources.WebhookLambdaFunction?.Properties.Handler).toBe(
      "dist/lambda/handler.webhook",
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

  it("keeps secrets out of the package: CloudFormation resolves them from SSM at deploy time", () => {
    const text = readFileSync(join(out, "cloudformation-template-update-stack.json"), "utf8");
    expect(text).not.toContain("resolved-at-deploy");
    const variables = (name: string) =>
      (properties(name).Environment as { Variables: Record<string, string> }).Variables;
    expect(variables("WebhookLambdaFunction")).toEqual({
      REFINER_API_KEY: "{{resolve:ssm:/refiner-destination/dev/api-key}}",
      REFINER_API_BASE_URL: "",
      REFINER_PRESERVE_TRAIT_KEYS: "false",
      REFINER_SKIP_UNCHANGED_MINUTES: "60",
      SEGMENT_SHARED_SECRET: "{{resolve:ssm:/refiner-destination/dev/segment-shared-secret}}",
      SEGMENT_WEBHOOK_TOKEN: "{{resolve:ssm:/refiner-destination/dev/segment-webhook-token}}",
      ALLOW_UNSIGNED_WEBHOOKS: "false",
      ALLOW_FIRST_EVENT_SIGNATURE: "false",
      REFINER_QUEUE_URL: QUEUE_URL,
      REFINER_DELIVERED_TABLE: "refiner-segment-destination-dev-delivered",
    });
    // `segment` gets only what it reads: no webhook secret.
    expect(variables("SegmentLambdaFunction")).toEqual({
      REFINER_API_KEY: "{{resolve:ssm:/refiner-destination/dev/api-key}}",
      REFINER_API_BASE_URL: "",
      REFINER_PRESERVE_TRAIT_KEYS: "false",
      REFINER_SKIP_UNCHANGED_MINUTES: "60",
      REFINER_QUEUE_URL: QUEUE_URL,
      REFINER_DELIVERED_TABLE: "refiner-segment-destination-dev-delivered",
    });
    expect(variables("DeliverLambdaFunction")).toEqual({
      REFINER_API_KEY: "{{resolve:ssm:/refiner-destination/dev/api-key}}",
      REFINER_API_BASE_URL: "",
      REFINER_PRESERVE_TRAIT_KEYS: "false",
      REFINER_SKIP_UNCHANGED_MINUTES: "60",
      REFINER_QUEUE_URL: QUEUE_URL,
      REFINER_DELIVERED_TABLE: "refiner-segment-destination-dev-delivered",
      REFINER_CONSUMERS: "2",
      REFINER_RATE_PER_MINUTE: "3600",
    });
  });

  it("declares the FIFO queue and its dead-letter queue, 14 days each, 30 receives before it", () => {
    expect(properties("EventsQueue")).toEqual({
      QueueName: "refiner-segment-destination-dev-events.fifo",
      FifoQueue: true,
      DeduplicationScope: "messageGroup",
      FifoThroughputLimit: "perMessageGroupId",
      MessageRetentionPeriod: 1209600,
      VisibilityTimeout: 360,
      RedrivePolicy: {
        deadLetterTargetArn: { "Fn::GetAtt": ["DeadLetterQueue", "Arn"] },
        maxReceiveCount: 30,
      },
    });
    expect(properties("DeadLetterQueue")).toEqual({
      QueueName: "refiner-segment-destination-dev-dead-letters.fifo",
      FifoQueue: true,
      MessageRetentionPeriod: 1209600,
    });
    expect(properties("DeliverLambdaFunction").Timeout).toBe(60);
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

  it("declares the table of delivered messageIds on demand, with a TTL, kept when the stack goes", () => {
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

  it("gives the doors only SendMessage, the consumer only what draining needs, and both the table", () => {
    const statements = (role: string) =>
      (
        properties(role).Policies as {
          PolicyDocument: { Statement: { Action: unknown; Resource: unknown }[] };
        }[]
      ).flatMap((policy) => policy.PolicyDocument.Statement);
    const queueArn = { "Fn::GetAtt": ["EventsQueue", "Arn"] };
    const table = {
      Effect: "Allow",
      Action: ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"],
      Resource: { "Fn::GetAtt": ["DeliveredTable", "Arn"] },
    };
    expect(statements("ProducerRole")).toEqual([
      { Effect: "Allow", Action: "sqs:SendMessage", Resource: queueArn },
      table,
    ]);
    expect(statements("ConsumerRole")).toEqual([
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
      table,
    ]);
    for (const role of ["ProducerRole", "ConsumerRole"]) {
      expect(properties(role).ManagedPolicyArns).toEqual([
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
      ]);
    }
    expect(properties("SegmentLambdaFunction").Role).toEqual({
      "Fn::GetAtt": ["ProducerRole", "Arn"],
    });
    expect(properties("WebhookLambdaFunction").Role).toEqual({
      "Fn::GetAtt": ["ProducerRole", "Arn"],
    });
    expect(properties("DeliverLambdaFunction").Role).toEqual({
      "Fn::GetAtt": ["ConsumerRole", "Arn"],
    });
    expect(template.Resources.IamRoleLambdaExecution).toBeUndefined();
  });

  it("raises an alarm for any dead letter and for a message waiting over an hour", () => {
    expect(properties("DeadLettersAlarm")).toEqual(
      expect.objectContaining({
        Namespace: "AWS/SQS",
        MetricName: "ApproximateNumberOfMessagesVisible",
        Dimensions: [
          { Name: "QueueName", Value: { "Fn::GetAtt": ["DeadLetterQueue", "QueueName"] } },
        ],
        Threshold: 0,
        ComparisonOperator: "GreaterThanThreshold",
      }),
    );
    expect(properties("OldestMessageAlarm")).toEqual(
      expect.objectContaining({
        MetricName: "ApproximateAgeOfOldestMessage",
        Dimensions: [{ Name: "QueueName", Value: { "Fn::GetAtt": ["EventsQueue", "QueueName"] } }],
        Threshold: 3600,
        ComparisonOperator: "GreaterThanThreshold",
      }),
    );
    // Without --param alarmEmail, the topic is not created; with it, it mails that address.
    expect(template.Resources.AlarmTopic).toEqual(
      expect.objectContaining({ Condition: "NotifyByEmail" }),
    );
  });

  it("ships only the Lambda bundle, under 200 KB", () => {
    const zip = join(out, "refiner-segment-destination.zip");
    expect(statSync(zip).size).toBeLessThan(200 * 1024);
    expect(zipEntries(readFileSync(zip))).toEqual(["dist/lambda/handler.js"]);
  });
});

describe("serverless invoke local", () => {
  let refiner: RefinerEmulator;
  beforeAll(async () => {
    refiner = await startRefinerEmulator({ apiKey: API_KEY });
  });
  afterAll(() => refiner.close());

  it("runs the segment function on events/identify.json", async () => {
    const { stdout } = await run(
      "npx",
      [
        "serverless",
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
      {
        cwd: ROOT,
        env: cleanEnvironment({
          REFINER_API_KEY: API_KEY,
          REFINER_API_BASE_URL: refiner.url,
        }),
      },
    );
    // First the embedded metrics: no table can be reached here, and the event is delivered anyway.
    const [metrics, ...result] = stdout.slice(stdout.indexOf("{")).split("\n");
    expect(JSON.parse(String(metrics))).toEqual(
      expect.objectContaining({
        Function: "refiner-segment-destination-dev-segment",
        DeliveredTableUnavailable: 2,
      }),
    );
    expect(JSON.parse(result.join("\n"))).toEqual({ status: 200 });
    expect(refiner.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /identify-user"]);
  }, 60_000);
});
