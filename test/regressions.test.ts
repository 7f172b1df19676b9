// Ordinary inputs that once left Refiner wrong or missing data while every event was answered 200,
// each with the exact requests Refiner must receive now. (The skip that one instance's memory made
// wrong for another's is in test/unchanged.test.ts.)

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type LocalTable,
  localTableEnvironment,
  startLocalTable,
} from "../local/dynamodb-emulator.ts";
import { type Poller, startPoller } from "../local/poller.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import { type LocalQueues, localSqsEnvironment, startLocalQueues } from "../local/sqs-emulator.ts";
import { API_KEY } from "./support/fixtures.ts";
import {
  captureConsole,
  type LambdaHandlers,
  loadLambda,
  stubEnvs,
  webhookPost,
} from "./support/lambda.ts";
import { loadSegmentFunction } from "./support/segment-function.ts";

const TOKEN = "wht_regressions_0b6e4f1c9a2d7358e1";
const auth = { authorization: `Bearer ${TOKEN}` };

let refiner: RefinerEmulator;
beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
});
afterAll(() => refiner.close());
beforeEach(() => {
  refiner.reset();
  captureConsole();
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

const TWO_ACCOUNTS = [
  {
    type: "group",
    messageId: "g-a",
    userId: "multi",
    groupId: "acctA",
    traits: { name: "Alpha Inc", plan: "gold" },
  },
  {
    type: "group",
    messageId: "g-b",
    userId: "multi",
    groupId: "acctB",
    traits: { name: "Beta LLC" },
  },
];
const BOTH_ACCOUNTS = [
  {
    method: "POST",
    path: "/identify-user",
    body: { account: { name: "Alpha Inc", plan: "gold", id: "acctA" }, id: "multi" },
  },
  {
    method: "POST",
    path: "/identify-user",
    body: { account: { name: "Beta LLC", id: "acctB" }, id: "multi" },
  },
];
const requests = () => refiner.requests.map(({ method, path, body }) => ({ method, path, body }));

describe("the queued webhook, as npm start runs it", () => {
  let table: LocalTable;
  let queues: LocalQueues;
  let poller: Poller;
  let lambda: LambdaHandlers;
  beforeEach(async () => {
    [table, queues] = await Promise.all([startLocalTable(), startLocalQueues()]);
    stubEnvs({
      ...localTableEnvironment(table),
      ...localSqsEnvironment(queues.endpoint),
      REFINER_QUEUE_URL: queues.queueUrl,
      REFINER_API_KEY: API_KEY,
      REFINER_API_BASE_URL: refiner.url,
      SEGMENT_WEBHOOK_TOKEN: TOKEN,
      SEGMENT_SHARED_SECRET: "",
      REFINER_RATE_PER_MINUTE: "600000",
    });
    lambda = loadLambda();
    poller = startPoller({
      client: queues.client,
      queueUrl: queues.queueUrl,
      handlers: [loadLambda().deliver, loadLambda().deliver],
    });
  });
  afterEach(async () => {
    await poller.stop();
    await Promise.all([table.stop(), queues.stop()]);
  });

  /** Posts the batch, expects 200, and waits until the queue holds nothing. */
  async function post(events: unknown[]) {
    const answer = await lambda.webhook(webhookPost(JSON.stringify(events), auth));
    expect(answer.statusCode).toBe(200);
    while ((await queues.count(queues.queueUrl)) > 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it("gives each of a contact's two accounts its traits, and leaves the contact on the last", async () => {
    await post(TWO_ACCOUNTS);
    expect(requests()).toEqual(BOTH_ACCOUNTS);
  });

  it("delivers three identical tracks without a messageId three times", async () => {
    const clicked = { type: "track", userId: "nomsg", event: "Clicked" };
    await post([clicked, clicked, clicked]);
    const track = { method: "POST", path: "/track-event", body: { event: "Clicked", id: "nomsg" } };
    expect(requests()).toEqual([track, track, track]);
  });

  it("takes 1,100 small identifies of one user, over SQS's 1 MiB together, in parts of one request", async () => {
    const events = Array.from({ length: 1100 }, (_, i) => ({
      type: "identify",
      userId: "big",
      messageId: `big-${i}`,
      traits: { [`trait_${i}`]: "x".repeat(1000) },
    }));
    const answer = await lambda.webhook(webhookPost(JSON.stringify(events), auth));
    expect(answer.statusCode).toBe(200);
    const { results } = JSON.parse(String(answer.body)) as { results: { status: number }[] };
    expect(results).toEqual(events.map(() => ({ status: 200 })));
    while ((await queues.count(queues.queueUrl)) > 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Two parts, in order, each under 1 MiB: together every trait, once.
    expect(refiner.requests.map(({ method, path }) => `${method} ${path}`)).toEqual([
      "POST /identify-user",
      "POST /identify-user",
    ]);
    const sent = refiner.requests.flatMap(({ body }) =>
      Object.keys(body as object).filter((key) => key !== "id"),
    );
    expect(sent).toEqual(events.map((_, i) => `trait_${i}`));
    for (const { body } of refiner.requests) {
      expect((body as { id: string }).id).toBe("big");
      expect(JSON.stringify(body).length).toBeLessThan(1024 * 1024);
    }
    // Segment's resend of the whole batch adds nothing once both parts went.
    await lambda.webhook(webhookPost(JSON.stringify(events), auth));
    expect(await queues.count(queues.queueUrl)).toBe(0);
    expect(refiner.requests).toHaveLength(2);
  }, 60_000);

  it("refuses alone an event too large for a message by itself, and queues the rest", async () => {
    const huge = {
      type: "identify",
      userId: "huge",
      messageId: "huge-1",
      traits: { notes: "x".repeat(1024 * 1024) },
    };
    const track = { type: "track", userId: "huge", event: "Clicked", messageId: "huge-2" };
    const answer = await lambda.webhook(webhookPost(JSON.stringify([huge, track]), auth));
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(String(answer.body))).toEqual({
      results: [
        {
          status: 400,
          errormessage: "The event is larger than SQS's 1048576 bytes a message, even alone.",
        },
        { status: 200 },
      ],
    });
    while ((await queues.count(queues.queueUrl)) > 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(requests()).toEqual([
      { method: "POST", path: "/track-event", body: { event: "Clicked", id: "huge" } },
    ]);
  });
});

describe("the Segment function", () => {
  it("gives each of a contact's two accounts in one onBatch its traits", async () => {
    const fn = loadSegmentFunction({ cache: true });
    const items = await fn.handlers.onBatch(TWO_ACCOUNTS, {
      apiKey: API_KEY,
      apiBaseUrl: refiner.url,
    });
    expect(items).toEqual([{ status: 200 }, { status: 200 }]);
    expect(requests()).toEqual(BOTH_ACCOUNTS);
  });

  it("rejects a userId of only white space, saying so", async () => {
    const fn = loadSegmentFunction();
    const items = await fn.handlers.onBatch(
      [{ type: "identify", userId: "   ", traits: { plan: "trial" } }],
      { apiKey: API_KEY, apiBaseUrl: refiner.url },
    );
    expect(items).toEqual([
      {
        status: 400,
        errormessage:
          "The identify event's userId is only white space: send the user's id, or an email.",
      },
    ]);
    expect(refiner.requests).toHaveLength(0);
  });

  it("names a trait key that normalizes to nothing, and two that normalize to one, once each", async () => {
    const fn = loadSegmentFunction();
    const settings = { apiKey: API_KEY, apiBaseUrl: refiner.url };
    for (let i = 0; i < 2; i++) {
      await fn.handlers.onIdentify(
        {
          type: "identify",
          userId: "keys",
          messageId: `keys-${i}`,
          traits: { "🚀": 1, "First Name": "Ann", firstName: "Bea" },
        },
        settings,
      );
    }
    expect(refiner.requests.map((request) => request.body)).toEqual([
      { first_name: "Bea", id: "keys" },
      { first_name: "Bea", id: "keys" },
    ]);
    // What the function wrote with console, which Segment shows beside a failed event.
    expect(fn.logs).toEqual([
      "warn: A trait key has no letter or digit, so it is left out (docs/mapping.md, trait keys): 🚀",
      "warn: Two trait keys of one event normalize to the same name, so one value is sent (docs/mapping.md, trait keys): firstName",
    ]);
  });
});
