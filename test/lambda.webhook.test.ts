// The Function URL Lambda handler (Segment's "Webhooks (Actions)" destination), through the built
// dist/lambda/handler.js with realistic Function URL events, against the Refiner emulator.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { API_KEY, expectRefinerRequest, loadEvent, onlyRequest } from "./support/fixtures.ts";
import {
  captureConsole,
  type LambdaHandlers,
  loadLambda,
  sign,
  webhookPost,
} from "./support/lambda.ts";
import {
  type RefinerEmulator,
  type Reply,
  startRefinerEmulator,
} from "./support/refiner-emulator.ts";

const SECRET = "whsec_segment_shared_8f3a2b1c9d";

let refiner: RefinerEmulator;
let lambda: LambdaHandlers;

beforeAll(async () => {
  refiner = await startRefinerEmulator({ apiKey: API_KEY });
  lambda = loadLambda();
});
afterAll(() => refiner.close());
beforeEach(() => {
  refiner.reset();
  vi.stubEnv("REFINER_API_KEY", API_KEY);
  vi.stubEnv("REFINER_API_BASE_URL", refiner.url);
  vi.stubEnv("SEGMENT_SHARED_SECRET", SECRET);
  vi.stubEnv("ALLOW_UNSIGNED_WEBHOOKS", "");
  captureConsole();
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

/** POSTs `body` signed as Segment signs it, and returns status and parsed JSON answer. */
async function post(
  body: string,
  headers: Record<string, string> = { "x-signature": sign(SECRET, body) },
) {
  const result = await lambda.webhook(webhookPost(body, headers));
  return {
    status: result.statusCode,
    headers: result.headers,
    body: JSON.parse(String(result.body)),
  };
}

const identify = JSON.stringify(loadEvent("identify"));

describe("signatures", () => {
  it("forwards a single event signed over its body", async () => {
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

  it("accepts a batch signed as Segment signs batches: over its first event only", async () => {
    const events = [loadEvent("identify"), loadEvent("track"), loadEvent("page")];
    const answer = await post(JSON.stringify(events), {
      "x-signature": sign(SECRET, JSON.stringify(events[0])),
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ results: [{ status: 200 }, { status: 200 }, { status: 200 }] });
    expect(refiner.requests.map((r) => r.path)).toEqual([
      "/identify-user",
      "/track-event",
      "/track-event",
    ]);
  });

  it("coalesces a batch's identify and group for one contact into one request", async () => {
    const events = [loadEvent("identify"), loadEvent("group")];
    const answer = await post(JSON.stringify(events), {
      "x-signature": sign(SECRET, JSON.stringify(events[0])),
    });
    expect(answer.body).toEqual({ results: [{ status: 200 }, { status: 200 }] });
    expect(onlyRequest(refiner).body).toEqual(
      expect.objectContaining({
        plan: "trial",
        account: expect.objectContaining({ id: "0e8c78ea9d97a7b8185e8632" }),
      }),
    );
  });

  it("accepts a batch signed over its whole body", async () => {
    const body = JSON.stringify([loadEvent("track")]);
    expect((await post(body)).status).toBe(200);
  });

  it("refuses a batch whose signature matches neither the body nor the first event", async () => {
    const events = [loadEvent("identify"), loadEvent("track")];
    const answer = await post(JSON.stringify(events), {
      "x-signature": sign(SECRET, JSON.stringify(events[1])),
    });
    expect(answer.status).toBe(401);
    expect(refiner.requests).toHaveLength(0);
  });

  it("refuses everything when no secret is set, unless unsigned webhooks are allowed", async () => {
    vi.stubEnv("SEGMENT_SHARED_SECRET", "");
    const refused = await post(identify, {});
    expect(refused.status).toBe(500);
    expect(refused.body.error).toContain("SEGMENT_SHARED_SECRET");
    expect(refiner.requests).toHaveLength(0);

    vi.stubEnv("ALLOW_UNSIGNED_WEBHOOKS", "true");
    expect((await post(identify, {})).status).toBe(200);
    expect(refiner.requests).toHaveLength(1);
  });
});

describe("requests", () => {
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

  it("answers 413 to a body over 1 MiB", async () => {
    const big = JSON.stringify({ ...loadEvent("identify"), padding: "x".repeat(1024 * 1024) });
    const answer = await post(big);
    expect(answer.status).toBe(413);
    expect(refiner.requests).toHaveLength(0);
  });

  it.each(["GET", "PUT", "DELETE", "OPTIONS"])("answers 405 to %s", async (method) => {
    const result = await lambda.webhook(
      webhookPost(identify, { "x-signature": sign(SECRET, identify) }, method),
    );
    expect(result.statusCode).toBe(405);
    expect(result.headers).toEqual({ "content-type": "application/json", allow: "POST" });
    expect(refiner.requests).toHaveLength(0);
  });
});

describe("outcomes (MAPPING.md, webhook column)", () => {
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
    const events = [loadEvent("identify"), loadEvent("track"), loadEvent("page")];
    const answer = await post(JSON.stringify(events), {
      "x-signature": sign(SECRET, JSON.stringify(events[0])),
    });
    expect(answer.status).toBe(503);
    expect(answer.body.results).toEqual([
      { status: 200 },
      { status: 500, errormessage: expect.stringContaining("503") },
      { status: 400, errormessage: expect.stringContaining("422") },
    ]);
  });

  it("answers a batch with a throttled item with 429", async () => {
    refiner.queue({ status: 503 }, { status: 429 });
    const body = JSON.stringify([loadEvent("identify"), loadEvent("track")]);
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

  it("answers a bad REFINER_API_KEY setting with 400 naming it", async () => {
    vi.stubEnv("REFINER_API_KEY", "");
    const answer = await post(identify);
    expect(answer).toEqual({
      status: 400,
      headers: { "content-type": "application/json" },
      body: { status: 400, error: expect.stringContaining("REFINER_API_KEY") },
    });
  });
});
