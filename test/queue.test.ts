// Queued delivery through the built dist/lambda/handler.js, the real SDK client, the embedded SQS
// emulator (fauxqs) and the Refiner emulator; the local poller plays Lambda's event source mapping.

import { randomUUID } from "node:crypto";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { analyticsBatch } from "../local/batches.ts";
import { startPoller } from "../local/poller.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { type LocalQueues, localSqsEnvironment, startLocalQueues } from "../local/sqs-emulator.ts";
import { API_KEY, busiestWindow, trackCounts as countTracks } from "./support/fixtures.ts";
import { captureConsole, type LambdaHandlers, loadLambda, webhookPost } from "./support/lambda.ts";

const TOKEN = "wht_queue_7c2e9a41b58d3f06";
const auth = { authorization: `Bearer ${TOKEN}` };

let refiner: RefinerEmulator;
let queues: LocalQueues;
let proxy: Server;
let proxyUrl: string;
/** SQS calls by action, as the SDK made them (through the counting proxy). */
const calls = new Map<string, number>();

/** Forwards to fauxqs and counts each call's X-Amz-Target. */
async function startCountingProxy(target: string): Promise<void> {
  const { port } = new URL(target);
  proxy = createServer((req, res) => {
    const action = String(req.headers["x-amz-target"] ?? "?")
      .split(".")
      .pop() as string;
    calls.set(action, (calls.get(action) ?? 0) + 1);
    const forward = httpRequest(
      { host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 500, answer.headers);
        answer.pipe(res);
      },
    );
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
});
afterAll(async () => {
  await refiner.close();
});
beforeEach(() => {
  refiner.reset();
  calls.clear();
  captureConsole();
});
afterEach(async () => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
  await queues?.stop();
});

/** A fresh queue pair, and a Lambda instance (cold start) configured for queued delivery. */
async function queued(env: Record<string, string> = {}, maxReceiveCount = 30) {
  queues = await startLocalQueues({ maxReceiveCount });
  await startCountingProxy(queues.endpoint);
  const all: Record<string, string> = {
    ...localSqsEnvironment(proxyUrl),
    REFINER_API_KEY: API_KEY,
    REFINER_API_BASE_URL: refiner.url,
    SEGMENT_WEBHOOK_TOKEN: TOKEN,
    SEGMENT_SHARED_SECRET: "",
    REFINER_QUEUE_URL: queues.queueUrl,
    REFINER_RETRY_BACKOFF_SECONDS: "1",
    REFINER_RATE_PER_MINUTE: "60000",
    ...env,
  };
  for (const [name, value] of Object.entries(all)) vi.stubEnv(name, value);
  return loadLambda();
}

/** Drains the queue with `consumers` instances until Refiner has `until` requests or time is up. */
async function drain(consumers: number, done: () => boolean, limitMs = 20_000) {
  const handlers = Array.from({ length: consumers }, () => loadLambda().deliver);
  const poller = startPoller({ client: queues.client, queueUrl: queues.queueUrl, handlers });
  const started = Date.now();
  while (!done() && Date.now() - started < limitMs) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await poller.stop();
}

const trackCounts = () => countTracks(refiner.requests);

describe("accepting", () => {
  it("queues a 1,000-event, 1.2 MB batch in 100 SendMessageBatch calls or fewer, and answers 200", async () => {
    const lambda: LambdaHandlers = await queued();
    const body = JSON.stringify(analyticsBatch({ users: 200 }));
    const result = await lambda.webhook(webhookPost(body, auth));
    expect(result.statusCode).toBe(200);
    expect(await queues.count(queues.queueUrl)).toBe(1000);
    expect(calls.get("SendMessageBatch")).toBeLessThanOrEqual(100);
    expect(refiner.requests).toHaveLength(0);

    // Segment's resend of the same batch within 5 minutes adds nothing.
    const again = await lambda.webhook(webhookPost(body, auth));
    expect(again.statusCode).toBe(200);
    expect(await queues.count(queues.queueUrl)).toBe(1000);
  });

  it("answers what can never be delivered as rejected, and queues only the rest", async () => {
    const lambda = await queued();
    const result = await lambda.segment([
      { type: "track", userId: "u1", event: "Queued", messageId: "q1" },
      { type: "track", anonymousId: "a1", event: "Anonymous" },
      { type: "alias", userId: "u1", previousId: "a1" },
    ]);
    expect(result).toEqual([
      { status: 200 },
      { status: 400, errormessage: expect.stringContaining("needs a userId or an email") },
      { status: 400, errormessage: expect.stringContaining("alias") },
    ]);
    expect(await queues.count(queues.queueUrl)).toBe(1);
    await expect(
      lambda.segment({ type: "track", userId: "u2", event: "One", messageId: "q2" }),
    ).resolves.toEqual({ status: 200 });
    expect(await queues.count(queues.queueUrl)).toBe(2);
  });

  it("answers 503 / throws RetryError when SQS cannot be reached, so Segment keeps the events", async () => {
    const lambda = await queued({ AWS_ENDPOINT_URL_SQS: "http://127.0.0.1:9" });
    const result = await lambda.webhook(
      webhookPost(
        JSON.stringify([{ type: "track", userId: "u1", event: "E", messageId: "x" }]),
        auth,
      ),
    );
    expect(result.statusCode).toBe(503);
    await expect(
      lambda.segment({ type: "track", userId: "u1", event: "E", messageId: "y" }),
    ).rejects.toMatchObject({ name: "RetryError" });
  });
});

describe("draining", () => {
  it("delivers every event once at 80 ms a request, each contact ending at its latest traits", async () => {
    const lambda = await queued();
    const events = analyticsBatch({ users: 40 });
    // The latest identify of each user changes its plan: the drain must end there.
    for (const event of events) {
      if (event.type === "identify") {
        event.traits = { ...(event.traits as object), plan: "first" };
        events.push({
          ...event,
          messageId: `${event.messageId}-later`,
          timestamp: "2026-12-01T00:00:00.000Z",
          traits: { plan: "latest" },
        });
      }
      if (events.length > 400) break;
    }
    expect((await lambda.webhook(webhookPost(JSON.stringify(events), auth))).statusCode).toBe(200);
    refiner.respond(() => ({
      status: 201,
      body: { message: "ok", contact_uuid: randomUUID() },
      delayMs: 80,
    }));
    const latest = () =>
      refiner.requests.filter((request) => (request.body as { plan?: string }).plan === "latest")
        .length;
    await drain(2, () => trackCounts().size === 160 && latest() === 40);
    const counts = trackCounts();
    expect(counts.size).toBe(160);
    expect([...counts].filter(([, count]) => count > 1)).toEqual([]);
    const plans = new Map<unknown, unknown>();
    for (const request of refiner.requests) {
      const body = request.body as { id: string; plan?: string };
      if (request.path === "/identify-user") plans.set(body.id, body.plan);
    }
    expect(plans.size).toBe(40);
    expect([...plans.values()].every((plan) => plan === "latest")).toBe(true);
    expect(await queues.count(queues.queueUrl)).toBe(0);
  }, 30_000);

  it("loses and duplicates nothing through a 429 storm: the messages come back after their delay", async () => {
    const lambda = await queued();
    const events = Array.from({ length: 60 }, (_, i) => ({
      type: "track",
      userId: `u${i}`,
      event: `Storm ${i}`,
      messageId: `s${i}`,
    }));
    await lambda.webhook(webhookPost(JSON.stringify(events), auth));
    const stormUntil = Date.now() + 5000;
    let throttled = 0;
    refiner.respond(() => {
      if (Date.now() < stormUntil) {
        throttled += 1;
        return { status: 429, headers: { "retry-after": "2" } };
      }
      return undefined;
    });
    const storedEvents = () =>
      new Set(
        refiner.requests
          .filter((request) => request.at >= stormUntil)
          .map((request) => (request.body as { event: string }).event),
      );
    await drain(2, () => storedEvents().size === 60);
    expect(throttled).toBeGreaterThan(0);
    // What Refiner stored: every event once (the throttled requests were refused, not stored).
    const stored = refiner.requests.filter((request) => request.at >= stormUntil);
    expect(stored).toHaveLength(60);
    expect(new Set(stored.map((request) => (request.body as { event: string }).event)).size).toBe(
      60,
    );
    expect(await queues.count(queues.queueUrl)).toBe(0);
  }, 30_000);

  it("moves a contact that always fails to the dead-letter queue, intact, and delivers the others", async () => {
    const lambda = await queued({}, 3);
    const stuck = { type: "track", userId: "stuck", event: "Never Stored", messageId: "dead-1" };
    const others = Array.from({ length: 20 }, (_, i) => ({
      type: "track",
      userId: `ok${i}`,
      event: `Fine ${i}`,
      messageId: `ok-${i}`,
    }));
    await lambda.webhook(webhookPost(JSON.stringify([stuck, ...others]), auth));
    refiner.respond((request) =>
      (request.body as { id?: string }).id === "stuck" ? { status: 500 } : undefined,
    );
    let dead = 0;
    await drain(2, () => {
      void queues.count(queues.deadLetterUrl).then((count) => {
        dead = count;
      });
      const delivered = [...trackCounts().keys()].filter((key) => key.startsWith("ok")).length;
      return dead === 1 && delivered === 20;
    });
    const counts = trackCounts();
    expect([...counts.keys()].filter((key) => key.startsWith("ok"))).toHaveLength(20);
    expect(counts.get("stuck Never Stored")).toBe(3); // received 3 times, then moved
    const { ReceiveMessageCommand } = await import("@aws-sdk/client-sqs");
    const { Messages } = await queues.client.send(
      new ReceiveMessageCommand({ QueueUrl: queues.deadLetterUrl, MaxNumberOfMessages: 10 }),
    );
    expect(Messages?.map((message) => JSON.parse(message.Body ?? ""))).toEqual([stuck]);
  }, 30_000);

  it("keeps two consumers together under REFINER_RATE_PER_MINUTE", async () => {
    const lambda = await queued({ REFINER_RATE_PER_MINUTE: "600", REFINER_CONSUMERS: "2" });
    const events = Array.from({ length: 110 }, (_, i) => ({
      type: "track",
      userId: `r${i}`,
      event: `Paced ${i}`,
      messageId: `p${i}`,
    }));
    await lambda.webhook(webhookPost(JSON.stringify(events), auth));
    await drain(2, () => trackCounts().size === 110, 25_000);
    expect(trackCounts().size).toBe(110);
    const most = busiestWindow(refiner.requests, 10_000);
    process.stdout.write(`most requests in a 10 s window at 600 a minute, 2 consumers: ${most}\n`);
    expect(most).toBeLessThanOrEqual(110);
  }, 40_000);
});
