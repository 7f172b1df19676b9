// What an operator of the deployed stack relies on, through the handlers built from lib/ as handler.ts
// builds them, and at the end through the built dist/lambda/handler.js itself: the secrets read from the stage's Secrets Manager secret (a loopback stand-in of its protocol), log
// lines that carry the request id and never traits, embedded metrics, and deadlines taken from the
// time Lambda says is left.

import { spawn } from "node:child_process";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { type LocalSecrets, startLocalSecrets } from "../local/secrets-emulator.ts";
import { API_KEY, loadEvent } from "./support/fixtures.ts";
import { startHangingServer } from "./support/hanging.ts";
import {
  captureConsole,
  LAMBDA_HANDLER,
  type LambdaHandlers,
  loadLambda,
  loadLambdaBundle,
  metricLines,
  stubEnvs,
  webhookPost,
} from "./support/lambda.ts";
import { settle } from "./support/segment-function.ts";

const SECRET_ID = "refiner-destination/test";
const TOKEN = "wht_from_the_secret_5d1c9e0b7a4f2c8e1d6b3a9f";

let refiner: RefinerEmulator;
let secrets: LocalSecrets;
let logged: unknown[][];

beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
  secrets = await startLocalSecrets();
});
afterAll(async () => {
  await refiner.close();
  await secrets.stop();
});
beforeEach(() => {
  refiner.reset();
  secrets.secrets.clear();
  secrets.calls.length = 0;
  secrets.failWith = undefined;
  secrets.hangs = false;
  secrets.onCall = undefined;
  logged = captureConsole();
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** A cold start as deployed: no secret in the environment, only the secret's id. */
function deployed(env: Record<string, string> = {}): LambdaHandlers {
  const all: Record<string, string> = {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
    AWS_LAMBDA_FUNCTION_NAME: "refiner-segment-destination-test-segment",
    REFINER_SECRET_ID: SECRET_ID,
    REFINER_API_KEY: "",
    REFINER_API_BASE_URL: refiner.url,
    SEGMENT_SHARED_SECRET: "",
    SEGMENT_WEBHOOK_TOKEN: "",
    ...env,
  };
  stubEnvs(all);
  return loadLambda();
}

const context = (awsRequestId: string, left = 5900) => ({
  awsRequestId,
  getRemainingTimeInMillis: () => left,
});

describe("secrets from Secrets Manager", () => {
  it("reads the API key from the stage's secret on the first invocation, and not on every one", async () => {
    secrets.secrets.set(SECRET_ID, JSON.stringify({ REFINER_API_KEY: API_KEY }));
    const lambda = deployed();
    expect(secrets.calls).toEqual([]); // nothing at the cold start itself
    await expect(lambda.segment(loadEvent("track"), context("r1"))).resolves.toEqual({
      status: 200,
    });
    await expect(lambda.segment(loadEvent("page"), context("r2"))).resolves.toEqual({
      status: 200,
    });
    expect(secrets.calls).toEqual(["GetSecretValue"]);
    expect(refiner.requests.map((request) => request.headers.authorization)).toEqual([
      `Bearer ${API_KEY}`,
      `Bearer ${API_KEY}`,
    ]);
  });

  it("takes a rotated key within 5 minutes, without a new deploy", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    secrets.secrets.set(SECRET_ID, JSON.stringify({ REFINER_API_KEY: "rfk_old_key_11" }));
    const lambda = deployed();
    // The emulator refuses the old key; direct, that is a permanent rejection.
    await expect(lambda.segment(loadEvent("track"), context("r1"))).resolves.toMatchObject({
      status: 401,
    });
    secrets.secrets.set(SECRET_ID, JSON.stringify({ REFINER_API_KEY: API_KEY }));
    vi.setSystemTime(Date.now() + 5 * 60 * 1000 + 1);
    await expect(lambda.segment(loadEvent("track"), context("r2"))).resolves.toEqual({
      status: 200,
    });
    expect(secrets.calls).toEqual(["GetSecretValue", "GetSecretValue"]);
  });

  it("takes the webhook's token from the secret", async () => {
    secrets.secrets.set(
      SECRET_ID,
      JSON.stringify({ REFINER_API_KEY: API_KEY, SEGMENT_WEBHOOK_TOKEN: TOKEN }),
    );
    const lambda = deployed();
    const body = JSON.stringify([loadEvent("track")]);
    const ok = await lambda.webhook(webhookPost(body, { authorization: `Bearer ${TOKEN}` }));
    expect(ok.statusCode).toBe(200);
    const refused = await lambda.webhook(webhookPost(body, { authorization: "Bearer wht_other" }));
    expect(refused.statusCode).toBe(401);
  });

  it("answers as retryable while the secret cannot be read, naming it, and counts it", async () => {
    secrets.failWith = "AccessDeniedException";
    const lambda = deployed();
    const { error } = await settle(lambda.segment(loadEvent("track"), context("r-denied")));
    expect(error?.constructor.name).toBe("RetryError");
    expect(error?.message).toBe(
      `The secret ${SECRET_ID} could not be read (AccessDeniedException: refused by the local stand-in). Check that it exists (refiner-destination secret) and that the function's role may read it.`,
    );
    expect(logged).toContainEqual([
      "error",
      expect.objectContaining({
        requestId: "r-denied",
        message: expect.stringContaining("AccessDeniedException"),
      }),
    ]);
    expect(metricLines).toContainEqual(expect.objectContaining({ Misconfigured: 1 }));
    // The webhook's caller is not known before the secret is read: its 503 names nothing internal,
    // and the log has the cause under the request id.
    const answer = await lambda.webhook(
      webhookPost(JSON.stringify(loadEvent("track"))),
      context("r-webhook"),
    );
    expect(answer.statusCode).toBe(503);
    expect(JSON.parse(String(answer.body))).toEqual({
      error:
        "This endpoint is not ready to take events yet; its operator finds why in the function's log.",
    });
    expect(String(answer.body)).not.toMatch(/AccessDenied|refiner-destination|arn:/);
    expect(logged).toContainEqual([
      "error",
      {
        requestId: "r-webhook",
        message: `Webhook answered 503 until it is configured: The secret ${SECRET_ID} could not be read (AccessDeniedException: refused by the local stand-in). Check that it exists (refiner-destination secret) and that the function's role may read it.`,
      },
    ]);
    expect(metricLines.at(-1)).toMatchObject({ Misconfigured: 1 });
    expect(refiner.requests).toHaveLength(0);

    // Read again on the next invocation once it can be.
    secrets.failWith = undefined;
    secrets.secrets.set(SECRET_ID, JSON.stringify({ REFINER_API_KEY: API_KEY }));
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() + 6000);
    await expect(lambda.segment(loadEvent("track"), context("r-later"))).resolves.toEqual({
      status: 200,
    });
  });

  it("takes only the secret variables from the secret, and names the other keys once, without their values", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    secrets.secrets.set(
      SECRET_ID,
      JSON.stringify({
        REFINER_API_KEY: API_KEY,
        SEGMENT_WEBHOOK_TOKEN: TOKEN,
        ALLOW_UNSIGNED_WEBHOOKS: "true",
        REFINER_API_BASE_URL: "http://127.0.0.1:9/v1-from-the-secret",
        REFINER_QUEUE_URL: "http://127.0.0.1:9/000000000000/from-the-secret.fifo",
      }),
    );
    const lambda = deployed();
    const body = JSON.stringify([loadEvent("track")]);
    // Unsigned is still refused; signed goes to the deployed base URL, directly (no queue).
    expect((await lambda.webhook(webhookPost(body), context("r1"))).statusCode).toBe(401);
    const ok = await lambda.webhook(
      webhookPost(body, { authorization: `Bearer ${TOKEN}` }),
      context("r2"),
    );
    expect(ok.statusCode).toBe(200);
    expect(refiner.requests.map((request) => request.path)).toEqual(["/track-event"]);
    const told = logged.filter(([, line]) =>
      String((line as { message?: unknown }).message).includes("not secret variables"),
    );
    expect(told).toEqual([
      [
        "warn",
        expect.objectContaining({
          message: `The secret ${SECRET_ID} has keys that are not secret variables: ignored`,
          keys: ["ALLOW_UNSIGNED_WEBHOOKS", "REFINER_API_BASE_URL", "REFINER_QUEUE_URL"],
        }),
      ],
    ]);
    expect(JSON.stringify(logged)).not.toContain("from-the-secret");
    // Read again 5 minutes on: still ignored, not said again.
    vi.setSystemTime(Date.now() + 5 * 60 * 1000 + 1);
    await lambda.webhook(webhookPost(body), context("r3"));
    expect(secrets.calls).toEqual(["GetSecretValue", "GetSecretValue"]);
    expect(
      logged.filter(([, line]) => JSON.stringify(line).includes("not secret variables")),
    ).toHaveLength(1);
  });

  it("answers every webhook 503 while the token is shorter than 32 characters, logs and counts it; the other doors go on", async () => {
    const short = "wht_31_characters_long_01234567";
    expect(short).toHaveLength(31);
    secrets.secrets.set(
      SECRET_ID,
      JSON.stringify({ REFINER_API_KEY: API_KEY, SEGMENT_WEBHOOK_TOKEN: short }),
    );
    const lambda = deployed();
    const body = JSON.stringify([loadEvent("track"), loadEvent("page")]);
    const answer = await lambda.webhook(
      webhookPost(body, { authorization: `Bearer ${short}` }),
      context("r-short"),
    );
    expect(answer.statusCode).toBe(503);
    const error =
      'SEGMENT_WEBHOOK_TOKEN is shorter than 32 characters, so it could be guessed: make a new one with `refiner-destination secret --rotate` (docs/lambda.md, "Rotating the secret and the token"). Until then every webhook request is answered 503, which Segment retries.';
    expect(JSON.parse(String(answer.body))).toEqual({ error });
    expect(metricLines.at(-1)).toMatchObject({ Misconfigured: 2 });
    expect(logged).toContainEqual([
      "error",
      expect.objectContaining({
        message: "Webhook misconfigured: every request is answered 503",
        error,
      }),
    ]);
    expect(JSON.stringify(logged)).not.toContain(short);
    // A wrong token is still a 401, and the direct door, which takes no token, delivers.
    const wrong = await lambda.webhook(webhookPost(body, { authorization: "Bearer wht_other" }));
    expect(wrong.statusCode).toBe(401);
    await expect(lambda.segment(loadEvent("identify"), context("r-segment"))).resolves.toEqual({
      status: 200,
    });
    expect(refiner.requests.map((request) => request.path)).toEqual(["/identify-user"]);
  });

  it("accepts a 32-character token, and a shorter previous one while the rotation lasts, with a warning", async () => {
    const current = "wht_32_characters_long_012345678";
    const previous = "wht_short_previous";
    expect(current).toHaveLength(32);
    secrets.secrets.set(
      SECRET_ID,
      JSON.stringify({
        REFINER_API_KEY: API_KEY,
        SEGMENT_WEBHOOK_TOKEN: current,
        SEGMENT_WEBHOOK_TOKEN_PREVIOUS: previous,
      }),
    );
    const lambda = deployed();
    const body = JSON.stringify([loadEvent("track")]);
    for (const token of [current, previous]) {
      const answer = await lambda.webhook(webhookPost(body, { authorization: `Bearer ${token}` }));
      expect(answer.statusCode).toBe(200);
    }
    expect(logged).toContainEqual([
      "warn",
      expect.objectContaining({
        message:
          "SEGMENT_WEBHOOK_TOKEN_PREVIOUS is shorter than 32 characters: it is accepted only while the rotation lasts. End it once Segment sends the new token.",
      }),
    ]);
  });

  it("answers as retryable within the deadline when Secrets Manager never answers", async () => {
    const hanging = await startHangingServer();
    try {
      const lambda = deployed({ AWS_ENDPOINT_URL_SECRETS_MANAGER: hanging.endpoint });
      // 1,300 ms left: the door's budget is 300 ms, a second being kept to answer. The clock
      // stands still until the read reached Secrets Manager, then reaches the deadline: the read
      // is given up by it, with all of the 300 ms, however long the start took.
      vi.useFakeTimers({ toFake: ["Date"] });
      const start = Date.now();
      void hanging.connected.then(() => vi.setSystemTime(start + 300));
      const { error } = await settle(lambda.segment(loadEvent("track"), context("r-hang", 1300)));
      expect(error?.constructor.name).toBe("RetryError");
      expect(error?.message).toBe(
        "The secret refiner-destination/test could not be read (TimeoutError: Secrets Manager did not answer within 300 ms). Check that it exists (refiner-destination secret) and that the function's role may read it.",
      );
      expect(hanging.connections).toBe(1);
      expect(refiner.requests).toHaveLength(0);
    } finally {
      await hanging.stop();
    }
  });

  it("keeps what it read, and delivers, when a later read of the secret never answers", async () => {
    // A clock that stands still: 5 minutes on, and a second later once the read reached Secrets
    // Manager, when the read is given up (a real wait of that second) and the event still goes.
    vi.useFakeTimers({ toFake: ["Date"] });
    secrets.secrets.set(SECRET_ID, JSON.stringify({ REFINER_API_KEY: API_KEY }));
    const lambda = deployed();
    await expect(lambda.segment(loadEvent("track"), context("r1"))).resolves.toEqual({
      status: 200,
    });
    secrets.hangs = true;
    const later = Date.now() + 5 * 60 * 1000 + 1;
    vi.setSystemTime(later);
    secrets.onCall = () => vi.setSystemTime(later + 1000);
    await expect(lambda.segment(loadEvent("page"), context("r2"))).resolves.toEqual({
      status: 200,
    });
    expect(secrets.calls).toEqual(["GetSecretValue", "GetSecretValue"]);
    expect(refiner.requests).toHaveLength(2);
    expect(logged).toContainEqual([
      "error",
      expect.objectContaining({
        requestId: "r2",
        message: expect.stringContaining(
          "could not be read (TimeoutError: Secrets Manager did not answer within 1000 ms)",
        ),
      }),
    ]);
  });

  it("reads no secret where REFINER_API_KEY is in the environment (npm start, invoke local)", async () => {
    const lambda = deployed({ REFINER_API_KEY: API_KEY });
    await expect(lambda.segment(loadEvent("track"))).resolves.toEqual({ status: 200 });
    expect(secrets.calls).toEqual([]);
  });
});

describe("logs and metrics", () => {
  it("writes JSON lines with the request id, messageId and type, and never the event's traits", async () => {
    const lambda = deployed({ REFINER_API_KEY: API_KEY });
    refiner.queue({ status: 422, body: { error: "bad trait" } });
    const identify = loadEvent("identify");
    const result = await lambda.segment(identify, context("req-7f3a"));
    expect(result).toEqual({ status: 400, error: expect.stringContaining("bad trait") });
    expect(logged).toEqual([
      [
        "error",
        {
          requestId: "req-7f3a",
          message: "Event rejected for Refiner",
          outcome: "invalid",
          error: "Refiner rejected POST /identify-user with 422: bad trait",
          type: "identify",
          messageId: identify.messageId,
        },
      ],
    ]);
    expect(JSON.stringify(logged)).not.toContain("john.doe@example.com");
    expect(JSON.stringify(logged)).not.toContain("San Francisco");
  });

  it("prints embedded metrics for each invocation: what became of each event, and Refiner's latency", async () => {
    const lambda = deployed({ REFINER_API_KEY: API_KEY });
    refiner.queue({ status: 201 }, { status: 422 }, { status: 429 });
    await lambda.segment(
      [
        { type: "track", userId: "m1", event: "One", messageId: "m-1" },
        { type: "track", userId: "m2", event: "Two", messageId: "m-2" },
        { type: "track", anonymousId: "a", event: "Nobody" },
      ],
      context("req-m"),
    );
    await lambda.segment([{ type: "track", userId: "m3", event: "Three" }], context("req-n"));
    expect(metricLines).toHaveLength(2);
    const [first, second] = metricLines as Record<string, unknown>[];
    expect(first).toEqual({
      _aws: {
        Timestamp: expect.any(Number),
        CloudWatchMetrics: [
          {
            Namespace: "RefinerDestination",
            Dimensions: [["Service"]],
            Metrics: [
              { Name: "Delivered", Unit: "Count" },
              { Name: "Rejected", Unit: "Count" },
              { Name: "RejectedInvalid", Unit: "Count" },
              { Name: "RejectedNoContact", Unit: "Count" },
              { Name: "RefinerLatency", Unit: "Milliseconds" },
            ],
          },
        ],
      },
      Service: "refiner-segment-destination-test",
      Delivered: 1,
      Rejected: 2,
      RejectedInvalid: 1,
      RejectedNoContact: 1,
      RefinerLatency: [expect.any(Number), expect.any(Number)],
    });
    expect(second).toMatchObject({
      Retried: 1,
      Throttled: 1,
      RefinerLatency: [expect.any(Number)],
    });
  });
});

describe("deadlines from the runtime", () => {
  it("starts no request when Lambda says too little time is left, and answers as retryable", async () => {
    const lambda = deployed({ REFINER_API_KEY: API_KEY });
    const { error } = await settle(lambda.segment(loadEvent("track"), context("short", 1500)));
    expect(error?.constructor.name).toBe("RetryError");
    expect(error?.message).toContain("too little time was left");
    expect(refiner.requests).toHaveLength(0);
    await expect(lambda.segment(loadEvent("track"), context("long", 5900))).resolves.toEqual({
      status: 200,
    });
  });
});

describe("the built bundle", () => {
  it("exports the handlers serverless.yml names, which read the secret and deliver", async () => {
    secrets.secrets.set(SECRET_ID, JSON.stringify({ REFINER_API_KEY: API_KEY }));
    stubEnvs({
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
      REFINER_SECRET_ID: SECRET_ID,
      REFINER_API_KEY: "",
      REFINER_API_BASE_URL: refiner.url,
    });
    const bundle = loadLambdaBundle();
    expect(
      [bundle.segment, bundle.webhook, bundle.deliver].map((handler) => typeof handler),
    ).toEqual(["function", "function", "function"]);
    await expect(bundle.segment(loadEvent("track"), context("bundle"))).resolves.toEqual({
      status: 200,
    });
    expect(refiner.requests.map(({ method, path }) => `${method} ${path}`)).toEqual([
      "POST /track-event",
    ]);
    expect(refiner.requests[0]?.headers.authorization).toBe(`Bearer ${API_KEY}`);
  });

  // Stack traces. The bundle is minified; with NODE_OPTIONS=--enable-source-maps, as serverless.yml sets it, a
  // stack trace names the lib/ file and function. A getRemainingTimeInMillis that throws makes one
  // from inside the bundle.
  const script = `
    const lambda = require(${JSON.stringify(LAMBDA_HANDLER)});
    const context = { awsRequestId: "trace", getRemainingTimeInMillis() { throw new Error("boom"); } };
    lambda.segment({}, context).catch((error) => process.stdout.write(error.stack));
  `;
  const trace = (options: string[]) =>
    new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [...options, "-e", script], {
        env: { ...process.env, REFINER_API_KEY: API_KEY },
      });
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
      });
      child.on("error", reject);
      child.on("close", () => resolve(out));
    });

  it("names lib/ files in a stack trace with the source map on, as deployed, and only itself without it", async () => {
    const mapped = await trace(["--enable-source-maps"]);
    expect(mapped).toContain("Error: boom");
    expect(mapped).toMatch(/at budget \(.*lib\/runtimes\/lambda\.ts:\d+:\d+\)/);
    const bare = await trace([]);
    expect(bare).toContain("Error: boom");
    expect(bare).not.toContain("lib/runtimes/lambda.ts");
    expect(bare).toContain("dist/lambda/handler.js");
  });
});
