// Queued delivery through the Lambda handlers built from source, the real SDK clients, the embedded SQS
// emulator (fauxqs), the table of delivered messageIds on dynalite and the Refiner emulator; the
// local poller plays Lambda's event source mapping.

import { randomUUID } from "node:crypto";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  it,
  onTestFinished,
  vi,
} from "vitest";
import { analyticsBatch, REALISTIC_SESSION } from "../local/batches.ts";
import {
  type LocalTable,
  localTableEnvironment,
  startLocalTable,
} from "../local/dynamodb-emulator.ts";
import { startPoller } from "../local/poller.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { type LocalQueues, localSqsEnvironment, startLocalQueues } from "../local/sqs-emulator.ts";
import { API_KEY, busiestWindow, trackCounts as countTracks } from "./support/fixtures.ts";
import { startHangingServer } from "./support/hanging.ts";
import {
  captureConsole,
  type LambdaHandlers,
  loadLambda,
  metricLines,
  stubEnvs,
  webhookPost,
} from "./support/lambda.ts";
import { size } from "./support/volume.ts";

const TOKEN = "wht_queue_7c2e9a41b58d3f06e1a4c9b2d7f3";
const auth = { authorization: `Bearer ${TOKEN}` };

let refiner: RefinerEmulator;
let queues: LocalQueues;
let table: LocalTable | undefined;
let proxy: Server;
let proxyUrl: string;
/** SQS calls by action, as the SDK made them (through the counting proxy). */
const calls = new Map<string, number>();
/** The VisibilityTimeout of each ChangeMessageVisibility call. */
const visibilities: number[] = [];
/** SendMessageBatch entries whose body contains this are refused as SQS refuses bad contents. */
let refusedMarker: string | undefined;

/**
 * Forwards to fauxqs and counts each call's X-Amz-Target. With `refusedMarker` set, it answers
 * for SQS that it refused the matching entries of a SendMessageBatch (a sender fault, as SQS
 * answers InvalidMessageContents), and forwards only the others.
 */
async function startCountingProxy(target: string): Promise<void> {
  const { port } = new URL(target);
  proxy = createServer(async (req, res) => {
    const action = String(req.headers["x-amz-target"] ?? "?")
      .split(".")
      .pop() as string;
    calls.set(action, (calls.get(action) ?? 0) + 1);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body = Buffer.concat(chunks);
    if (action === "ChangeMessageVisibility") {
      visibilities.push(
        (JSON.parse(body.toString()) as { VisibilityTimeout: number }).VisibilityTimeout,
      );
    }
    const refused: { Id: string }[] = [];
    if (action === "SendMessageBatch" && refusedMarker) {
      const input = JSON.parse(body.toString()) as {
        Entries: { Id: string; MessageBody: string }[];
      };
      const marker = refusedMarker;
      refused.push(...input.Entries.filter((entry) => entry.MessageBody.includes(marker)));
      input.Entries = input.Entries.filter((entry) => !entry.MessageBody.includes(marker));
      body = Buffer.from(JSON.stringify(input));
      if (input.Entries.length === 0) {
        res.writeHead(200, { "content-type": "application/x-amz-json-1.0" });
        res.end(JSON.stringify({ Successful: [], Failed: refused.map(refusal) }));
        return;
      }
    }
    const forward = httpRequest(
      {
        host: "127.0.0.1",
        port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, "content-length": String(body.length) },
      },
      async (answer) => {
        const parts: Buffer[] = [];
        for await (const part of answer) parts.push(part as Buffer);
        let text = Buffer.concat(parts).toString();
        if (refused.length) {
          const output = JSON.parse(text) as { Failed?: unknown[] };
          output.Failed = [...(output.Failed ?? []), ...refused.map(refusal)];
          text = JSON.stringify(output);
        }
        const headers = { ...answer.headers, "content-length": String(Buffer.byteLength(text)) };
        res.writeHead(answer.statusCode ?? 500, headers);
        res.end(text);
      },
    );
    forward.end(body);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
}

const refusal = ({ Id }: { Id: string }) => ({
  Id,
  SenderFault: true,
  Code: "InvalidMessageContents",
  Message: "Invalid characters found.",
});

beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
});
afterAll(async () => {
  await refiner.close();
});
let logged: unknown[][];
beforeEach(() => {
  refiner.reset();
  calls.clear();
  visibilities.length = 0;
  refusedMarker = undefined;
  logged = captureConsole();
});
afterEach(async () => {
  vi.useRealTimers();
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
  await queues?.stop();
  await table?.stop();
  table = undefined;
});

/**
 * A fresh queue pair and table, and a Lambda instance (cold start) configured for queued delivery.
 * The table is kept when `keepTable` is set: a later queue pair then plays the same stack after
 * SQS's 5-minute de-duplication window.
 */
async function queued(env: Record<string, string> = {}, maxReceiveCount = 30, keepTable = false) {
  if (!keepTable || !table) {
    await table?.stop();
    table = await startLocalTable();
  }
  queues = await startLocalQueues({ maxReceiveCount });
  await startCountingProxy(queues.endpoint);
  const all: Record<string, string> = {
    ...localSqsEnvironment(proxyUrl),
    ...localTableEnvironment(table),
    REFINER_API_KEY: API_KEY,
    REFINER_API_BASE_URL: refiner.url,
    SEGMENT_WEBHOOK_TOKEN: TOKEN,
    SEGMENT_SHARED_SECRET: "",
    REFINER_QUEUE_URL: queues.queueUrl,
    REFINER_RETRY_BACKOFF_SECONDS: "1",
    REFINER_RATE_PER_MINUTE: "60000",
    ...env,
  };
  stubEnvs(all);
  return loadLambda();
}

/**
 * Drains the queue with `consumers` instances until `done()`: however long a busy machine takes,
 * within the test's own timeout, after which the consumers stop too.
 */
async function drain(
  consumers: number,
  done: () => boolean | Promise<boolean>,
  env: Record<string, string> = {},
) {
  stubEnvs(env);
  const handlers = Array.from({ length: consumers }, () => loadLambda().deliver);
  const poller = startPoller({ client: queues.client, queueUrl: queues.queueUrl, handlers });
  let over = false;
  onTestFinished(() => {
    over = true;
    return poller.stop();
  });
  while (!over && !(await done())) await new Promise((resolve) => setTimeout(resolve, 50));
  await poller.stop();
}

/** Whether the queue holds nothing, visible or in flight. */
const emptied = async () => (await queues.count(queues.queueUrl)) === 0;

const trackCounts = () => countTracks(refiner.requests);

/** Tracks of `count` users, one each: `{userId: user + i, event: name + " " + i, messageId: id + i}`. */
function tracks(count: number, user: string, name: string, id: string) {
  return Array.from({ length: count }, (_, i) => ({
    type: "track",
    userId: `${user}${i}`,
    event: `${name} ${i}`,
    messageId: `${id}${i}`,
  }));
}

describe("accepting", () => {
  it("queues a 1,000-event, 1.2 MB batch in 100 SendMessageBatch calls or fewer, and answers 200", async () => {
    const lambda: LambdaHandlers = await queued();
    // The door's deadline (4.5 s, which holds its SQS calls too) on a clock that stands still: the
    // outcome must not depend on how busy this machine is.
    vi.useFakeTimers({ toFake: ["Date"] });
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

describe("an AWS endpoint that accepts and never answers", () => {
  /** 1,300 ms left, as Lambda would say: the door's deadline is 300 ms away, a second kept to answer. */
  const shortDeadline = { awsRequestId: "r-hang", getRemainingTimeInMillis: () => 1300 };
  /**
   * Direct, a Refiner request needs a second before the deadline to start: Lambda's usual 5.5 s
   * left, the door's whole 4.5 s, of which the lookup may take 0.5 s.
   */
  const directDeadline = { awsRequestId: "r-hang", getRemainingTimeInMillis: () => 5500 };
  const batch = JSON.stringify([
    { type: "track", userId: "u1", event: "Hung", messageId: "hung-1" },
    { type: "track", userId: "u2", event: "Hung", messageId: "hung-2" },
  ]);

  it("SQS: the queued webhook answers 503 at its deadline, and the segment door throws a RetryError", async () => {
    const hanging = await startHangingServer();
    try {
      const lambda = await queued({ AWS_ENDPOINT_URL_SQS: hanging.endpoint });
      const result = await lambda.webhook(webhookPost(batch, auth), shortDeadline);
      expect(result.statusCode).toBe(503);
      expect(JSON.parse(String(result.body)).results).toEqual([
        {
          status: 500,
          errormessage: expect.stringMatching(
            /^Not queued: SQS refused it \(SQS did not answer within \d+ ms\)\.$/,
          ),
        },
        {
          status: 500,
          errormessage: expect.stringMatching(
            /^Not queued: SQS refused it \(SQS did not answer within \d+ ms\)\.$/,
          ),
        },
      ]);
      await expect(
        lambda.segment(
          { type: "track", userId: "u3", event: "Hung", messageId: "hung-3" },
          shortDeadline,
        ),
      ).rejects.toMatchObject({ name: "RetryError" });
      expect(hanging.connections).toBeGreaterThanOrEqual(1);
      expect(await queues.count(queues.queueUrl)).toBe(0);
    } finally {
      await hanging.stop();
    }
  });

  it("DynamoDB: the doors give the lookup up and queue anyway, within the deadline, counting it", async () => {
    const hanging = await startHangingServer();
    try {
      const lambda = await queued({ AWS_ENDPOINT_URL_DYNAMODB: hanging.endpoint });
      // The door's clock stands still but for the lookup's half of its 300 ms, which passes once
      // the lookup reached the table: the queue has the other half however busy the machine is.
      vi.useFakeTimers({ toFake: ["Date"] });
      const start = Date.now();
      void hanging.connected.then(() => vi.setSystemTime(start + 150));
      const result = await lambda.webhook(webhookPost(batch, auth), shortDeadline);
      expect(result.statusCode).toBe(200);
      expect(await queues.count(queues.queueUrl)).toBe(2);
      expect(metricLines.at(-1)).toMatchObject({ DeliveredTableUnavailable: 1, Queued: 2 });
      expect(logged).toContainEqual([
        "warn",
        expect.objectContaining({
          message: "The table of delivered messageIds could not be read: delivering anyway",
          // Half of the time left at the most: the rest is the queue's.
          error: "DynamoDB did not answer within 150 ms",
        }),
      ]);
    } finally {
      await hanging.stop();
    }
  });

  it("DynamoDB, direct: the segment door gives the lookup and the record up, and delivers in time", async () => {
    const hanging = await startHangingServer();
    try {
      const lambda = await queued({
        AWS_ENDPOINT_URL_DYNAMODB: hanging.endpoint,
        REFINER_QUEUE_URL: "",
      });
      await expect(
        lambda.segment(
          { type: "track", userId: "u4", event: "Direct", messageId: "hung-4" },
          directDeadline,
        ),
      ).resolves.toEqual({ status: 200 });
      expect(refiner.requests.map((request) => request.path)).toEqual(["/track-event"]);
      expect(metricLines.at(-1)).toMatchObject({ DeliveredTableUnavailable: 2, Delivered: 1 });
    } finally {
      await hanging.stop();
    }
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
  });

  it("loses and duplicates nothing through a 429 storm: the messages come back after their delay", async () => {
    const lambda = await queued();
    const events = tracks(60, "u", "Storm", "s");
    await lambda.webhook(webhookPost(JSON.stringify(events), auth));
    // Refiner throttles its first 90 requests (150 at full size), more than there are events:
    // counted, not timed, so that a busy machine changes nothing.
    const THROTTLED = size(90, 150);
    let throttled = 0;
    refiner.respond(() => {
      if (throttled >= THROTTLED) return undefined;
      throttled += 1;
      return { status: 429, headers: { "retry-after": "2" } };
    });
    const stored = () => refiner.requests.slice(THROTTLED);
    await drain(2, () => stored().length >= 60);
    expect(throttled).toBe(THROTTLED);
    // What Refiner stored: every event once (the throttled requests were refused, not stored).
    expect(stored()).toHaveLength(60);
    expect(new Set(stored().map((request) => (request.body as { event: string }).event)).size).toBe(
      60,
    );
    expect(await queues.count(queues.queueUrl)).toBe(0);
  });

  const receives = size(1, 3);
  it(`moves a contact that always fails to the dead-letter queue after ${receives} receive(s), intact, and delivers the others`, async () => {
    const lambda = await queued({}, receives);
    const stuck = { type: "track", userId: "stuck", event: "Never Stored", messageId: "dead-1" };
    const others = tracks(20, "ok", "Fine", "ok-");
    await lambda.webhook(webhookPost(JSON.stringify([stuck, ...others]), auth));
    refiner.respond((request) =>
      (request.body as { id?: string }).id === "stuck" ? { status: 500 } : undefined,
    );
    await drain(2, async () => {
      const delivered = [...trackCounts().keys()].filter((key) => key.startsWith("ok")).length;
      return delivered === 20 && (await queues.count(queues.deadLetterUrl)) === 1;
    });
    const counts = trackCounts();
    expect([...counts.keys()].filter((key) => key.startsWith("ok"))).toHaveLength(20);
    expect(counts.get("stuck Never Stored")).toBe(receives); // received that often, then moved
    const { ReceiveMessageCommand } = await import("@aws-sdk/client-sqs");
    const { Messages } = await queues.client.send(
      new ReceiveMessageCommand({ QueueUrl: queues.deadLetterUrl, MaxNumberOfMessages: 10 }),
    );
    expect(Messages?.map((message) => JSON.parse(message.Body ?? ""))).toEqual([
      {
        refiner: 1,
        call: { call: "trackEvent", body: { event: "Never Stored", id: "stuck" } },
        events: [{ messageId: "dead-1", type: "track" }],
      },
    ]);
  });

  // Small: 200 events at 6,000 a minute over 1 s windows; full size: 150 at 600 a minute over 10 s
  // windows. In any window each consumer starts at most its half of the rate and a burst of a tenth
  // of a second's worth (at least 1), and at most the 8 requests it had open when the window began
  // arrive inside it: 126 and 118 at the most, however busy the machine. Unpaced, all the events
  // would arrive within a second.
  const pacing = size(
    { rate: 6000, events: 200, windowMs: 1000, most: 2 * (50 + 5 + 8) },
    { rate: 600, events: 150, windowMs: 10_000, most: 2 * (50 + 1 + 8) },
  );
  it(`keeps two consumers together under REFINER_RATE_PER_MINUTE (${pacing.rate} a minute)`, async () => {
    const lambda = await queued({
      REFINER_RATE_PER_MINUTE: String(pacing.rate),
      REFINER_CONSUMERS: "2",
    });
    const events = tracks(pacing.events, "r", "Paced", "p");
    await lambda.webhook(webhookPost(JSON.stringify(events), auth));
    await drain(2, () => trackCounts().size === pacing.events);
    expect(trackCounts().size).toBe(pacing.events);
    expect(busiestWindow(refiner.requests, pacing.windowMs)).toBeLessThanOrEqual(pacing.most);
  });
});

/** The identify requests Refiner received. */
const identifies = () => refiner.requests.filter((request) => request.path === "/identify-user");

describe("a refused key, a broken configuration", () => {
  it("keeps the events through a refused API key: each waits its back-off and is delivered once the key works", async () => {
    const lambda = await queued();
    const events = tracks(30, "k", "Kept", "key-");
    await lambda.webhook(webhookPost(JSON.stringify(events), auth));
    // The key is refused for the first 45 requests (every event once, and some twice), as while it
    // is rotated or mistyped; counted, not timed, so that a busy machine changes nothing.
    const REFUSALS = 45;
    let refused = 0;
    refiner.respond(() => {
      if (refused >= REFUSALS) return undefined;
      refused += 1;
      return { status: 401, body: { error: "API key does not look valid" } };
    });
    const stored = () => refiner.requests.slice(REFUSALS);
    await drain(2, () => stored().length === 30);
    expect(refused).toBe(REFUSALS);
    expect(new Set(stored().map((request) => (request.body as { event: string }).event)).size).toBe(
      30,
    );
    expect(stored()).toHaveLength(30);
    // Each refused event was set aside for REFINER_RETRY_BACKOFF_SECONDS (1 s), doubling.
    expect(visibilities.length).toBeGreaterThanOrEqual(refused);
    expect(visibilities.every((seconds) => seconds >= 1)).toBe(true);
    expect(await queues.count(queues.queueUrl)).toBe(0);
    expect(await queues.count(queues.deadLetterUrl)).toBe(0);
  });

  it("keeps every message while the consumer has no API key, each waiting its back-off", async () => {
    const lambda = await queued({ REFINER_RETRY_BACKOFF_SECONDS: "60" });
    const events = tracks(5, "m", "Misconfigured", "mis-");
    await lambda.webhook(webhookPost(JSON.stringify(events), auth));
    await drain(1, () => visibilities.length === 5, { REFINER_API_KEY: "" });
    // Received once and set aside for 60 s, not cycled toward the dead-letter queue.
    expect(visibilities).toEqual([60, 60, 60, 60, 60]);
    expect(await queues.count(queues.queueUrl)).toBe(5);
    expect(refiner.requests).toHaveLength(0);
    // Said once per cold start, not once per message.
    expect(logged).toContainEqual([
      "error",
      {
        message: "Refiner destination misconfigured: every event is answered as retryable",
        error:
          "REFINER_API_KEY is missing: set it to your Refiner API key (Refiner → Integrations → Segment, or the REST API key).",
      },
    ]);
  });
});

describe("coalescing before the queue", () => {
  it("queues a contact's identifies and group as one message: a realistic mix costs 0.70 requests an event", async () => {
    const lambda = await queued();
    const users = size(30, 100);
    const events = analyticsBatch({ users, seed: "mix", session: REALISTIC_SESSION });
    expect((await lambda.webhook(webhookPost(JSON.stringify(events), auth))).statusCode).toBe(200);
    expect(await queues.count(queues.queueUrl)).toBe(users * 7);
    await drain(2, () => trackCounts().size === users * 6 && identifies().length === users);
    expect(refiner.requests).toHaveLength(users * 7);
    expect(refiner.requests.length / events.length).toBeLessThanOrEqual(0.72);
    // One identify per contact, with its traits and its account. Users 0, 40, 80 share acct-mix-0:
    // its traits go with the last of them in the batch (lib/pipeline/plan.ts), the others name it.
    const bodyOf = (id: string) =>
      identifies().find((request) => (request.body as { id: string }).id === id)?.body;
    const accountTraits = { name: "Company 0", plan: "enterprise", employees: 120 };
    const lastOfAccount = Math.floor((users - 1) / 40) * 40;
    expect(bodyOf("user-mix-0")).toEqual({
      first_name: "Person0",
      last_name: "Example",
      plan: "pro",
      created_at: "2026-10-01T08:00:00.000Z",
      account: lastOfAccount === 0 ? { id: "acct-mix-0", ...accountTraits } : { id: "acct-mix-0" },
      id: "user-mix-0",
      email: "person0.mix@example.com",
    });
    expect((bodyOf(`user-mix-${lastOfAccount}`) as { account: unknown }).account).toEqual({
      id: "acct-mix-0",
      ...accountTraits,
    });
  });
});

describe("characters", () => {
  const CHAR_USERS = size(40, 200);
  it(`queues emoji, U+FFFE and U+FFFF in a ${CHAR_USERS * 5}-event batch, and Refiner receives the text unchanged`, async () => {
    const lambda = await queued();
    const events = analyticsBatch({ users: CHAR_USERS, seed: "chars" });
    // A quarter of the events carry an emoji; some identifies a character SQS refuses raw.
    events.forEach((event, index) => {
      if (index % 4 === 1 && event.type === "track") event.event = `${event.event} 🚀`;
      if (index % 4 === 1 && event.type === "page") event.name = `${event.name} 🎉`;
      if (event.type === "identify" && index % 20 === 0) {
        (event.traits as Record<string, unknown>).motto = "ship it \uffff\ufffe — ça va";
      }
    });
    const result = await lambda.webhook(webhookPost(JSON.stringify(events), auth));
    expect(result.statusCode).toBe(200);
    expect(await queues.count(queues.queueUrl)).toBe(CHAR_USERS * 5);
    await drain(
      2,
      () => trackCounts().size === CHAR_USERS * 4 && identifies().length === CHAR_USERS,
    );
    const names = [...trackCounts().keys()];
    expect(names.filter((name) => name.endsWith(" 🚀"))).toHaveLength(
      events.filter((event) => typeof event.event === "string" && event.event.endsWith(" 🚀"))
        .length,
    );
    expect(names.some((name) => name.includes("🎉 Page"))).toBe(true);
    const mottos = identifies().filter(
      (request) => (request.body as { motto?: string }).motto !== undefined,
    );
    expect(mottos.length).toBe(CHAR_USERS / 4); // every fourth user's identify
    for (const request of mottos) {
      expect((request.body as { motto: string }).motto).toBe("ship it \uffff\ufffe — ça va");
    }
  });

  it("rejects for good the one event SQS refuses as a sender fault, and queues the rest", async () => {
    const lambda = await queued();
    refusedMarker = "Refused By SQS";
    const events = [
      { type: "track", userId: "u1", event: "Fine", messageId: "f1" },
      { type: "track", userId: "u2", event: "Refused By SQS", messageId: "f2" },
      { type: "track", userId: "u3", event: "Also Fine", messageId: "f3" },
    ];
    const result = await lambda.webhook(webhookPost(JSON.stringify(events), auth));
    expect(result.statusCode).toBe(200);
    expect(JSON.parse(String(result.body))).toEqual({
      results: [
        { status: 200 },
        {
          status: 400,
          errormessage:
            "SQS refused the event for good, so it is not queued (InvalidMessageContents: Invalid characters found.).",
        },
        { status: 200 },
      ],
    });
    expect(await queues.count(queues.queueUrl)).toBe(2);
  });
});

describe("never twice", () => {
  it("sends nothing again when Segment resends a delivered batch after SQS's 5 minutes, on another instance", async () => {
    const first = await queued();
    const events = analyticsBatch({ users: 20, seed: "resend" });
    const body = JSON.stringify(events);
    const before = Date.now();
    expect((await first.webhook(webhookPost(body, auth))).statusCode).toBe(200);
    await drain(2, () => trackCounts().size === 80 && identifies().length === 20);
    const delivered = refiner.requests.length;
    expect(delivered).toBe(100);
    const items = await (table as LocalTable).items();
    // Beside them, what Refiner holds of each contact whose identify it took (`contact#…`).
    const ids = [...items.keys()].filter((key) => !key.startsWith("contact#"));
    expect(ids.sort()).toEqual(events.map((event) => event.messageId).sort());
    // Each kept 30 days from when it was written, between the batch's arrival and now (epoch
    // seconds), however long the drain took.
    const written = { from: Math.floor(before / 1000), to: Math.ceil(Date.now() / 1000) };
    for (const id of ids) {
      expect(items.get(id)).toBeGreaterThanOrEqual(written.from + 30 * 24 * 3600);
      expect(items.get(id)).toBeLessThanOrEqual(written.to + 30 * 24 * 3600);
    }
    // A contact's state is trusted for skipUnchangedMinutes (60) after Refiner took its identify.
    for (const [key, expiry] of items) {
      if (!key.startsWith("contact#")) continue;
      expect(expiry).toBeGreaterThanOrEqual(written.from + 3600);
      expect(expiry).toBeLessThanOrEqual(written.to + 3600);
    }

    // A queue with no memory of the first (SQS's window is over) and a new instance: the door finds
    // every messageId in the table and queues nothing.
    await queues.stop();
    const later = await queued({}, 30, true);
    const again = await later.webhook(webhookPost(body, auth));
    expect(again.statusCode).toBe(200);
    expect(JSON.parse(String(again.body)).results).toHaveLength(100);
    expect(await queues.count(queues.queueUrl)).toBe(0);
    expect(refiner.requests).toHaveLength(delivered);
  });

  it("delivers when the table cannot be reached, and logs and counts it", async () => {
    const lambda = await queued({ AWS_ENDPOINT_URL_DYNAMODB: "http://127.0.0.1:9" });
    const events = Array.from({ length: 12 }, (_, i) => ({
      type: "track",
      userId: `t${i % 3}`,
      event: `Untabled ${i}`,
      messageId: `tab-${i}`,
    }));
    const result = await lambda.webhook(webhookPost(JSON.stringify(events), auth));
    expect(result.statusCode).toBe(200);
    expect(metricLines).toEqual([
      expect.objectContaining({ Service: "local", DeliveredTableUnavailable: 1, Queued: 12 }),
    ]);
    const [line] = metricLines as { _aws: { CloudWatchMetrics: { Metrics: unknown[] }[] } }[];
    expect(line?._aws.CloudWatchMetrics[0]?.Metrics).toContainEqual({
      Name: "DeliveredTableUnavailable",
      Unit: "Count",
    });
    expect(logged).toContainEqual([
      "warn",
      expect.objectContaining({
        message: "The table of delivered messageIds could not be read: delivering anyway",
        table: "refiner-delivered",
      }),
    ]);
    await drain(1, () => trackCounts().size === 12);
    expect(refiner.requests).toHaveLength(12);
    expect(await queues.count(queues.queueUrl)).toBe(0);
  });

  it("skips, at the consumer, a message whose events the table holds", async () => {
    // Queued by a door that could not read the table, after another consumer delivered the events.
    const door = await queued({ AWS_ENDPOINT_URL_DYNAMODB: "http://127.0.0.1:9" });
    const events = Array.from({ length: 12 }, (_, i) => ({
      type: i % 4 ? "track" : "identify",
      userId: `c${i % 3}`,
      event: `Copied ${i}`,
      traits: { plan: "pro" },
      messageId: `copy-${i}`,
    }));
    const { BatchWriteItemCommand, DynamoDBClient } = await import("@aws-sdk/client-dynamodb");
    const dynamo = new DynamoDBClient({
      endpoint: (table as LocalTable).endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    });
    await dynamo.send(
      new BatchWriteItemCommand({
        RequestItems: {
          [(table as LocalTable).tableName]: events.map((event) => ({
            PutRequest: { Item: { messageId: { S: event.messageId }, expiresAt: { N: "1" } } },
          })),
        },
      }),
    );
    dynamo.destroy();
    expect((await door.webhook(webhookPost(JSON.stringify(events), auth))).statusCode).toBe(200);
    // Three identifies (one per contact) and nine tracks.
    expect(await queues.count(queues.queueUrl)).toBe(12);
    await drain(1, emptied, { AWS_ENDPOINT_URL_DYNAMODB: (table as LocalTable).endpoint });
    expect(await queues.count(queues.queueUrl)).toBe(0);
    expect(refiner.requests).toHaveLength(0);
  });
});
