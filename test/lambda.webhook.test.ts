// The Function URL Lambda handler (Segment's "Webhooks (Actions)" destination), built from source
// as handler.ts builds it, with realistic Function URL events, against the Refiner emulator.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type RefinerEmulator,
  type Reply,
  startRefinerEmulator,
} from "../local/refiner-emulator.ts";
import {
  API_KEY,
  expectRefinerRequest,
  loadEvent,
  onlyRequest,
  SEED_IDENTIFY_REQUEST,
} from "./support/fixtures.ts";
import {
  captureConsole,
  type LambdaHandlers,
  loadLambda,
  sign,
  stubEnvs,
  webhookPost,
} from "./support/lambda.ts";

const SECRET = "whsec_segment_shared_8f3a2b1c9d";
const TOKEN = "wht_4d1f9c2a7b8e3f6a0c5d9e2b7a4f1c8e";

let refiner: RefinerEmulator;
let lambda: LambdaHandlers;
let logged: unknown[][];

beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
});
afterAll(() => refiner.close());
beforeEach(() => {
  refiner.reset();
  vi.stubEnv("REFINER_API_KEY", API_KEY);
  vi.stubEnv("REFINER_API_BASE_URL", refiner.url);
  vi.stubEnv("SEGMENT_SHARED_SECRET", SECRET);
  vi.stubEnv("SEGMENT_WEBHOOK_TOKEN", "");
  vi.stubEnv("ALLOW_UNSIGNED_WEBHOOKS", "");
  vi.stubEnv("ALLOW_FIRST_EVENT_SIGNATURE", "");
  logged = captureConsole();
  lambda = loadLambda();
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

/** A cold start with these variables set on top of the test's environment. */
function coldStart(env: Record<string, string>) {
  stubEnvs(env);
  lambda = loadLambda();
}

/** POSTs `body` (signed whole by default) and returns the status and the parsed JSON answer. */
async function post(
  body: string,
  headers: Record<string, string> = { "x-signature": sign(SECRET, body) },
  url = "/",
) {
  const result = await lambda.webhook(webhookPost(body, headers, { url }));
  return {
    status: result.statusCode,
    headers: result.headers,
    body: JSON.parse(String(result.body)),
  };
}

const identify = JSON.stringify(loadEvent("identify"));
const sample = [loadEvent("identify"), loadEvent("track"), loadEvent("page")];
const sampleBatch = JSON.stringify(sample);
/** How Segment signs a batch: over its first event only. */
const firstEventSignature = { "x-signature": sign(SECRET, JSON.stringify(sample[0])) };

describe("authentication", () => {
  it("forwards a single event signed over its body, with no token configured", async () => {
    const answer = await post(identify);
    expect(answer).toEqual({
      status: 200,
      headers: { "content-type": "application/json" },
      body: { status: 200 },
    });
    expectRefinerRequest(onlyRequest(refiner), {
      method: "POST",
      path: "/identify-user",
      body: expect.objectContaining({ id: "userId123", email: "john.doe@example.com" }),
    });
  });

  it.each([
    ["a wrong signature", { "x-signature": sign("another secret", identify) }],
    ["a signature of another body", { "x-signature": sign(SECRET, `${identify} `) }],
    ["no signature", {}],
    ["an empty signature", { "x-signature": "" }],
    ["a signature of the wrong length", { "x-signature": "abc" }],
  ])("answers 401 to %s and forwards nothing", async (_, headers) => {
    const answer = await post(identify, headers);
    expect(answer.status).toBe(401);
    expect(answer.body.error).toContain("X-Signature");
    expect(refiner.requests).toHaveLength(0);
  });

  it("accepts the header in any case and the hex digest in upper case", async () => {
    const answer = await post(identify, { "X-Signature": sign(SECRET, identify).toUpperCase() });
    expect(answer.status).toBe(200);
  });

  it("accepts a batch signed over its whole body", async () => {
    const body = JSON.stringify([loadEvent("track")]);
    expect((await post(body)).status).toBe(200);
  });

  it.each([
    ["the header Authorization: Bearer", { authorization: `Bearer ${TOKEN}` }, "/"],
    ["the URL's token parameter", {}, `/?token=${TOKEN}`],
    ["the token and a first-event signature", { ...firstEventSignature }, `/?token=${TOKEN}`],
  ])("accepts a batch authenticated by %s", async (_, headers, url) => {
    coldStart({ SEGMENT_WEBHOOK_TOKEN: TOKEN });
    const answer = await post(sampleBatch, headers, url);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ results: [{ status: 200 }, { status: 200 }, { status: 200 }] });
    expect(refiner.requests.map((r) => r.path)).toEqual([
      "/identify-user",
      "/track-event",
      "/track-event",
    ]);
  });

  it("accepts the previous secret and token while they rotate, and nothing else", async () => {
    const OLD_SECRET = "whsec_segment_shared_previous_11aa";
    const OLD_TOKEN = "wht_previous_0b9c8d7e6f5a4b3c";
    coldStart({
      SEGMENT_WEBHOOK_TOKEN: TOKEN,
      SEGMENT_SHARED_SECRET_PREVIOUS: OLD_SECRET,
      SEGMENT_WEBHOOK_TOKEN_PREVIOUS: OLD_TOKEN,
    });
    expect((await post(identify, { "x-signature": sign(OLD_SECRET, identify) })).status).toBe(200);
    expect((await post(identify, { "x-signature": sign(SECRET, identify) })).status).toBe(200);
    expect((await post(sampleBatch, { authorization: `Bearer ${OLD_TOKEN}` })).status).toBe(200);
    expect((await post(sampleBatch, {}, `/?token=${TOKEN}`)).status).toBe(200);
    expect((await post(identify, { "x-signature": sign("whsec_other", identify) })).status).toBe(
      401,
    );
    expect((await post(sampleBatch, { authorization: "Bearer wht_other" })).status).toBe(401);
    // The identify once, then the batch's track and page: what was delivered is not sent again.
    expect(refiner.requests.map((request) => request.path)).toEqual([
      "/identify-user",
      "/track-event",
      "/track-event",
    ]);
    expect(JSON.stringify(logged)).not.toContain(OLD_TOKEN);
  });

  it("accepts the token alone when no shared secret is set", async () => {
    coldStart({ SEGMENT_SHARED_SECRET: "", SEGMENT_WEBHOOK_TOKEN: TOKEN });
    expect((await post(identify, { authorization: `bearer ${TOKEN}` })).status).toBe(200);
    expect((await post(identify, {})).status).toBe(401);
    expect(refiner.requests).toHaveLength(1);
  });

  describe("a forged tail: a validly signed first event with events appended", () => {
    const forged = JSON.stringify([
      sample[0],
      { type: "identify", userId: "victim", traits: { email: "attacker@example.net" } },
      { type: "delete", userId: "another-victim" },
    ]);

    it("gets 503 without a token configured, logs the fix and sends nothing", async () => {
      const answer = await post(forged, firstEventSignature);
      expect(answer.status).toBe(503);
      expect(answer.body.error).toContain("SEGMENT_WEBHOOK_TOKEN");
      expect(answer.body.error).toContain("?token=");
      expect(answer.body.error).toContain("turn batching off");
      expect(refiner.requests).toHaveLength(0);
      expect(logged).toEqual([["error", { message: answer.body.error }]]);
    });

    it("gets 503 with a token configured that the request lacks, and sends nothing", async () => {
      coldStart({ SEGMENT_WEBHOOK_TOKEN: TOKEN });
      expect((await post(forged, firstEventSignature)).status).toBe(503);
      expect(refiner.requests).toHaveLength(0);
      expect(JSON.stringify(logged)).not.toContain(TOKEN);
    });

    it("gets 401 with a wrong token and no valid signature, and sends nothing", async () => {
      coldStart({ SEGMENT_WEBHOOK_TOKEN: TOKEN });
      const wrong = { authorization: `Bearer ${TOKEN.slice(0, -1)}0` };
      const answer = await post(forged, wrong, "/?token=short");
      expect(answer.status).toBe(401);
      expect(answer.body.error).toContain("token");
      expect(refiner.requests).toHaveLength(0);
    });

    it("gets 503 with a wrong token and a valid first-event signature: it comes from Segment", async () => {
      coldStart({ SEGMENT_WEBHOOK_TOKEN: TOKEN });
      expect((await post(forged, firstEventSignature, "/?token=stale")).status).toBe(503);
      expect(refiner.requests).toHaveLength(0);
    });

    it("is accepted with ALLOW_FIRST_EVENT_SIGNATURE=true", async () => {
      coldStart({ ALLOW_FIRST_EVENT_SIGNATURE: "true" });
      const answer = await post(forged, firstEventSignature);
      expect(answer.status).toBe(200);
      expect(refiner.requests.map((r) => `${r.method} ${r.path}`).sort()).toEqual([
        "DELETE /contact?id=another-victim",
        "POST /identify-user",
        "POST /identify-user",
      ]);
    });
  });

  it("refuses a batch whose signature matches neither the body nor the first event", async () => {
    const answer = await post(sampleBatch, {
      "x-signature": sign(SECRET, JSON.stringify(sample[1])),
    });
    expect(answer.status).toBe(401);
    expect(refiner.requests).toHaveLength(0);
  });

  it("answers 503 when neither secret nor token is set, unless unsigned webhooks are allowed", async () => {
    coldStart({ SEGMENT_SHARED_SECRET: "" });
    const refused = await post(identify, {});
    expect(refused.status).toBe(503);
    // Said to the operator's log only: the caller is not known.
    expect(refused.body).toEqual({
      error:
        "This endpoint is not ready to take events yet; its operator finds why in the function's log.",
    });
    expect(logged).toEqual([
      [
        "error",
        {
          message:
            "Webhook answered 503 until it is configured: neither SEGMENT_SHARED_SECRET nor SEGMENT_WEBHOOK_TOKEN is set. Set them (ALLOW_UNSIGNED_WEBHOOKS=true only for local testing).",
        },
      ],
    ]);
    expect(refiner.requests).toHaveLength(0);

    coldStart({ ALLOW_UNSIGNED_WEBHOOKS: "true" });
    expect((await post(identify, {})).status).toBe(200);
    expect(refiner.requests).toHaveLength(1);
  });

  it("keeps the token and the secret out of answers and logs, even when Refiner echoes them", async () => {
    coldStart({ SEGMENT_WEBHOOK_TOKEN: TOKEN });
    refiner.queue(
      { status: 422, body: { error: `bad ${TOKEN} ${SECRET}` } },
      { status: 500, body: `echo ${TOKEN}` },
    );
    const answer = await post(sampleBatch, { authorization: `Bearer ${TOKEN}` });
    expect(answer.status).toBe(503);
    const everything = JSON.stringify([answer, logged]);
    expect(everything).toContain("[redacted]");
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain(SECRET);
  });
});

describe("requests", () => {
  it("coalesces a batch's identify and group for one contact into one request", async () => {
    const answer = await post(JSON.stringify([loadEvent("identify"), loadEvent("group")]));
    expect(answer.body).toEqual({ results: [{ status: 200 }, { status: 200 }] });
    expect(onlyRequest(refiner).body).toEqual(
      expect.objectContaining({
        plan: "trial",
        account: expect.objectContaining({ id: "0e8c78ea9d97a7b8185e8632" }),
      }),
    );
  });

  it("accepts a base64-encoded body, checking the signature over the decoded bytes", async () => {
    const event = webhookPost(identify, { "x-signature": sign(SECRET, identify) });
    const encoded = {
      ...event,
      body: Buffer.from(identify).toString("base64"),
      isBase64Encoded: true,
    };
    const result = await lambda.webhook(encoded);
    expect(result.statusCode).toBe(200);
    expect(onlyRequest(refiner).body).toEqual(expect.objectContaining({ id: "userId123" }));
  });

  it("answers 400 to a signed body that is not JSON", async () => {
    const answer = await post("type=identify&userId=1");
    expect(answer).toEqual({
      status: 400,
      headers: { "content-type": "application/json" },
      body: { error: "The body is not JSON." },
    });
    expect(refiner.requests).toHaveLength(0);
  });

  it("answers 413 to a body over 6 MB, before any work", async () => {
    coldStart({ SEGMENT_WEBHOOK_TOKEN: TOKEN });
    const big = JSON.stringify({ ...loadEvent("identify"), padding: "x".repeat(6 * 1024 * 1024) });
    const answer = await post(big, { authorization: `Bearer ${TOKEN}` });
    expect(answer).toEqual({
      status: 413,
      headers: { "content-type": "application/json" },
      body: { error: "The body is larger than 6291456 bytes." },
    });
    expect(refiner.requests).toHaveLength(0);
  });

  it("answers 413 to more than 4,000 events, Segment's largest batch", async () => {
    coldStart({ SEGMENT_WEBHOOK_TOKEN: TOKEN });
    const track = loadEvent("track");
    const events = Array.from({ length: 4001 }, (_, i) => ({ ...track, messageId: `m-${i}` }));
    const answer = await post(JSON.stringify(events), { authorization: `Bearer ${TOKEN}` });
    expect(answer.status).toBe(413);
    expect(answer.body.error).toBe("The batch has 4001 events; Segment sends at most 4000.");
    expect(refiner.requests).toHaveLength(0);
  });

  it.each(["GET", "DELETE", "OPTIONS", "HEAD"])("answers 405 to %s", async (method) => {
    const result = await lambda.webhook(
      webhookPost(identify, { "x-signature": sign(SECRET, identify) }, { method }),
    );
    expect(result.statusCode).toBe(405);
    expect(result.headers).toEqual({
      "content-type": "application/json",
      allow: "POST, PUT, PATCH",
    });
    expect(refiner.requests).toHaveLength(0);
  });

  // Segment's Webhooks (Actions) mapping offers POST, PUT and PATCH, and drops a 405.
  it.each(["PUT", "PATCH"])("takes %s like POST", async (method) => {
    const result = await lambda.webhook(
      webhookPost(identify, { "x-signature": sign(SECRET, identify) }, { method }),
    );
    expect(result.statusCode).toBe(200);
    expectRefinerRequest(onlyRequest(refiner), SEED_IDENTIFY_REQUEST);
  });

  it.each<[string, unknown]>([
    ["null", null],
    ["an empty object", {}],
    ["an event without requestContext.http", { body: identify, headers: {} }],
    [
      "a non-string X-Signature",
      { ...webhookPost(identify), headers: { "x-signature": ["a", "b"] } },
    ],
    ["a non-string Authorization", { ...webhookPost(identify), headers: { authorization: 42 } }],
    ["a non-string body", { ...webhookPost(identify), body: { type: "identify" } }],
  ])("answers 400 to %s, without throwing", async (_, event) => {
    const result = await lambda.webhook(event as Parameters<LambdaHandlers["webhook"]>[0]);
    expect(result.statusCode).toBe(400);
    expect(JSON.parse(String(result.body))).toEqual({ error: expect.any(String) });
    expect(refiner.requests).toHaveLength(0);
  });
});

describe("outcomes (docs/mapping.md, webhook column)", () => {
  it.each<[string, Reply | undefined, unknown, number]>([
    ["2xx", { status: 201 }, loadEvent("track"), 200],
    ["a bad event", undefined, { type: "track", event: "X" }, 400],
    ["an unsupported type", undefined, { type: "alias", userId: "u1" }, 400],
    ["Refiner's 422", { status: 422, body: { message: "bad" } }, loadEvent("track"), 400],
    ["Refiner's 501", { status: 501 }, loadEvent("track"), 400],
    [
      "Refiner's 401",
      { status: 401, body: { error: "No API key found in headers" } },
      loadEvent("track"),
      400,
    ],
    [
      "a 404 about the key",
      { status: 404, body: { message: "API key not valid or does not exist" } },
      loadEvent("track"),
      400,
    ],
    ["Refiner's 429", { status: 429, headers: { "retry-after": "12" } }, loadEvent("track"), 429],
    ["Refiner's 408", { status: 408 }, loadEvent("track"), 503],
    ["Refiner's 423", { status: 423 }, loadEvent("track"), 503],
    ["Refiner's 500", { status: 500 }, loadEvent("track"), 503],
    ["a dropped connection", { drop: true }, loadEvent("track"), 503],
  ])("answers %s with %i", async (_, reply, event, status) => {
    if (reply) refiner.queue(reply);
    const answer = await post(JSON.stringify(event));
    expect(answer.status).toBe(status);
    if (status !== 200) expect(answer.body).toEqual({ status, error: expect.any(String) });
  });

  it("keeps Retry-After in a 429's error", async () => {
    refiner.queue({ status: 429, headers: { "retry-after": "12" } });
    const answer = await post(JSON.stringify(loadEvent("track")));
    expect(answer.body.error).toContain("Retry-After: 12");
  });

  it("answers a batch with any retryable item with 503, so Segment sends it again", async () => {
    refiner.respond((request) => {
      const { event } = request.body as { event?: string };
      if (event === "Login Button Clicked") return { status: 503 };
      if (event === "Viewed Docs Pricing Page") return { status: 422 };
      return undefined;
    });
    // The page belongs to another contact: the track's retry does not hold it back.
    const events = [sample[0], sample[1], { ...sample[2], userId: "another-user" }];
    const answer = await post(JSON.stringify(events));
    expect(answer.status).toBe(503);
    expect(answer.body.results).toEqual([
      { status: 200 },
      { status: 500, errormessage: expect.stringContaining("503") },
      { status: 400, errormessage: expect.stringContaining("422") },
    ]);
  });

  it("answers a batch with a throttled item with 429", async () => {
    refiner.queue({ status: 503 }, { status: 429 });
    const other = { ...loadEvent("track"), userId: "another-user" };
    const body = JSON.stringify([loadEvent("identify"), other]);
    expect((await post(body)).status).toBe(429);
  });

  it("answers 200 to a batch whose failures are all permanent, and 400 when every item failed", async () => {
    const mixed = JSON.stringify([loadEvent("identify"), { type: "alias", userId: "u1" }]);
    const mixedAnswer = await post(mixed);
    expect(mixedAnswer.status).toBe(200);
    expect(mixedAnswer.body.results).toEqual([
      { status: 200 },
      { status: 400, errormessage: expect.any(String) },
    ]);

    const allBad = JSON.stringify([{ type: "alias", userId: "u1" }, { type: "track" }]);
    expect((await post(allBad)).status).toBe(400);
  });

  it.each([
    ["REFINER_API_KEY", "", "REFINER_API_KEY is missing"],
    [
      "REFINER_API_BASE_URL",
      "ftp://refiner.example",
      "REFINER_API_BASE_URL must be an https:// URL",
    ],
  ])("answers a bad %s with 503 naming it, and sends nothing", async (name, value, text) => {
    coldStart({ [name]: value });
    for (const body of [identify, sampleBatch]) {
      const answer = await post(body);
      expect(answer).toEqual({
        status: 503,
        headers: { "content-type": "application/json" },
        body: { error: expect.stringContaining(text) },
      });
    }
    expect(refiner.requests).toHaveLength(0);
    // One line for the cold start, none per request.
    expect(logged).toEqual([
      ["error", expect.objectContaining({ error: expect.stringContaining(text) })],
    ]);
  });
});
