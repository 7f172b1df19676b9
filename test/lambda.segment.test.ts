// The direct-invoke Lambda handler (Segment's "AWS Lambda" destination), built from source
// as handler.ts builds it, with Node's own fetch, against the Refiner emulator.

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { localTableEnvironment, startLocalTable } from "../local/dynamodb-emulator.ts";
import { type RefinerEmulator, startRefinerEmulator } from "../local/refiner-emulator.ts";
import {
  API_KEY,
  expectRefinerRequest,
  loadEvent,
  onlyRequest,
  SEED_GROUP_REQUEST,
} from "./support/fixtures.ts";
import { captureConsole, type LambdaHandlers, loadLambda, stubEnvs } from "./support/lambda.ts";
import { settle } from "./support/segment-function.ts";

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
  vi.stubEnv("REFINER_PRESERVE_TRAIT_KEYS", "");
  logged = captureConsole();
  lambda = loadLambda();
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe("segment (direct invoke)", () => {
  it.each([
    ["identify", "POST", "/identify-user"],
    ["group", "POST", "/identify-user"],
    ["track", "POST", "/track-event"],
    ["page", "POST", "/track-event"],
    ["screen", "POST", "/track-event"],
    ["delete", "DELETE", "/contact?id=userId123"],
  ])("forwards the sample %s event and returns {status: 200}", async (name, method, path) => {
    await expect(lambda.segment(loadEvent(name))).resolves.toEqual({ status: 200 });
    expect(onlyRequest(refiner).method).toBe(method);
    expect(onlyRequest(refiner).path).toBe(path);
  });

  it("sends exactly what the Segment function sends", async () => {
    await lambda.segment(loadEvent("group"));
    expectRefinerRequest(onlyRequest(refiner), SEED_GROUP_REQUEST);
  });

  it("honours REFINER_PRESERVE_TRAIT_KEYS", async () => {
    vi.stubEnv("REFINER_PRESERVE_TRAIT_KEYS", "true");
    lambda = loadLambda();
    await lambda.segment({ type: "identify", userId: "u1", traits: { firstName: "Ann" } });
    expect(onlyRequest(refiner).body).toStrictEqual({ firstName: "Ann", id: "u1" });
  });

  it("returns and logs a bad event instead of throwing, and sends nothing", async () => {
    const result = await lambda.segment({
      type: "track",
      event: "X",
      anonymousId: "a1",
      messageId: "m-1",
    });
    expect(result).toEqual({
      status: 400,
      error: expect.stringContaining("needs a userId or an email"),
    });
    expect(refiner.requests).toHaveLength(0);
    expect(logged).toEqual([
      [
        "error",
        expect.objectContaining({
          outcome: "no-contact",
          type: "track",
          messageId: "m-1",
          error: expect.any(String),
        }),
      ],
    ]);
  });

  it.each([
    [{ type: "alias", userId: "u1", previousId: "a" }, 400, "alias"],
    [{ type: "refund", userId: "u1" }, 400, '"refund"'],
    [{ userId: "u1" }, 400, "has no type"],
    ["not an event", 400, "must be a JSON object"],
  ])("returns %j as {status: %i}", async (event, status, text) => {
    const result = await lambda.segment(event);
    expect(result).toEqual({ status, error: expect.stringContaining(text) });
  });

  it.each([
    [
      { status: 422, body: { message: "Invalid trait" } },
      400,
      "Refiner rejected POST /track-event with 422: Invalid trait",
    ],
    [
      { status: 401, body: { error: "API key does not look valid" } },
      401,
      "Refiner rejected the API key",
    ],
    [
      { status: 404, body: { message: "API key not valid or does not exist" } },
      401,
      "Refiner rejected the API key",
    ],
  ])("returns a permanent rejection %j as {status: %i}", async (reply, status, text) => {
    refiner.queue(reply);
    await expect(lambda.segment(loadEvent("track"))).resolves.toEqual({
      status,
      error: expect.stringContaining(text),
    });
  });

  it.each([
    [{ status: 429, headers: { "retry-after": "60" } }, "Retry-After: 60"],
    [{ status: 503 }, "Refiner answered 503"],
    [{ status: 408 }, "Refiner answered 408"],
    [{ drop: true } as const, "Refiner could not be reached"],
  ])("throws a RetryError for %j", async (reply, text) => {
    refiner.queue(reply);
    const { error } = await settle(lambda.segment(loadEvent("track")));
    expect(error?.name).toBe("RetryError");
    expect(error?.constructor.name).toBe("RetryError");
    expect(error?.message).toContain(text);
    expect(logged[0]?.[0]).toBe("warn");
  });

  it("throws a RetryError when Refiner refuses the connection, naming the cause", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    vi.stubEnv("REFINER_API_BASE_URL", `http://127.0.0.1:${port}/v1`);
    lambda = loadLambda();

    const { error } = await settle(lambda.segment(loadEvent("identify")));
    expect(error?.name).toBe("RetryError");
    expect(error?.message).toContain("ECONNREFUSED");
  });

  it("gives up on a Refiner that never answers at the deadline Lambda's time left sets", async () => {
    refiner.queue({ hang: true });
    // 2.6 s left: 1 s is kept to answer, so the request is given up 1.6 s after the start. The
    // clock stands still meanwhile, so that the limit is exact however long the start took; the
    // timer that gives up is real.
    vi.useFakeTimers({ toFake: ["Date"] });
    const context = { awsRequestId: "hang", getRemainingTimeInMillis: () => 2600 };
    const { error } = await settle(lambda.segment(loadEvent("identify"), context));
    expect(error?.name).toBe("RetryError");
    expect(error?.message).toBe(
      "Refiner could not be reached for POST /identify-user: no complete answer within 1600 ms",
    );
  });

  it("answers an array per event, like onBatch", async () => {
    refiner.respond((request) => (request.path === "/track-event" ? { status: 503 } : undefined));
    const result = await lambda.segment([
      loadEvent("identify"),
      { type: "alias", userId: "u1" },
      loadEvent("track"),
    ]);
    expect(result).toEqual([
      { status: 200 },
      { status: 400, errormessage: expect.stringContaining("alias") },
      { status: 500, errormessage: expect.stringContaining("503") },
    ]);
  });

  it("coalesces an array's identify and group for one contact into one request", async () => {
    const result = await lambda.segment([
      loadEvent("group"),
      loadEvent("identify"),
      loadEvent("track"),
    ]);
    expect(result).toEqual([{ status: 200 }, { status: 200 }, { status: 200 }]);
    expect(refiner.requests.map((r) => r.path)).toEqual(["/identify-user", "/track-event"]);
    expect(refiner.requests[0]?.body).toEqual(
      expect.objectContaining({
        first_name: "John",
        account: expect.objectContaining({ name: "Initech" }),
      }),
    );
  });

  it("throws a RetryError naming REFINER_API_KEY when it is not set, logged once per cold start", async () => {
    vi.stubEnv("REFINER_API_KEY", "");
    lambda = loadLambda();
    const first = await settle(lambda.segment(loadEvent("identify")));
    const second = await settle(lambda.segment(loadEvent("track")));
    for (const { error } of [first, second]) {
      expect(error?.constructor.name).toBe("RetryError");
      expect(error?.message).toBe(
        "REFINER_API_KEY is missing: set it to your Refiner API key (Refiner → Integrations → Segment, or the REST API key).",
      );
    }
    expect(refiner.requests).toHaveLength(0);
    expect(logged).toEqual([
      [
        "error",
        {
          message: "Refiner destination misconfigured: every event is answered as retryable",
          error: expect.stringContaining("REFINER_API_KEY is missing"),
        },
      ],
    ]);
  });

  it("answers an array with retryable items while REFINER_API_KEY is missing", async () => {
    vi.stubEnv("REFINER_API_KEY", "");
    lambda = loadLambda();
    const result = await lambda.segment([loadEvent("identify"), loadEvent("track")]);
    expect(result).toEqual([
      { status: 500, errormessage: expect.stringContaining("REFINER_API_KEY is missing") },
      { status: 500, errormessage: expect.stringContaining("REFINER_API_KEY is missing") },
    ]);
    expect(refiner.requests).toHaveLength(0);
  });

  it("throws a RetryError naming an insecure REFINER_API_BASE_URL", async () => {
    vi.stubEnv("REFINER_API_BASE_URL", "http://api.refiner.io/v1");
    lambda = loadLambda();
    const { error } = await settle(lambda.segment(loadEvent("identify")));
    expect(error?.constructor.name).toBe("RetryError");
    expect(error?.message).toContain("REFINER_API_BASE_URL must be an https:// URL");
  });

  it("throws a RetryError when REFINER_API_BASE_URL's host is not Refiner's, unless REFINER_ALLOW_ANY_API_HOST", async () => {
    vi.stubEnv("REFINER_API_BASE_URL", "https://evil.example\\@api.refiner.io/v1");
    lambda = loadLambda();
    const { error } = await settle(lambda.segment(loadEvent("identify")));
    expect(error?.constructor.name).toBe("RetryError");
    expect(error?.message).toBe(
      "REFINER_API_BASE_URL must name a host under refiner.io (or 127.0.0.1, localhost or [::1]), since the API key goes to that host. REFINER_ALLOW_ANY_API_HOST set to true allows another https:// host.",
    );
    // With the opt-in, credentials in the URL are still refused.
    vi.stubEnv("REFINER_ALLOW_ANY_API_HOST", "true");
    vi.stubEnv("REFINER_API_BASE_URL", "https://user:pw@proxy.example.test/v1");
    lambda = loadLambda();
    const refused = await settle(lambda.segment(loadEvent("identify")));
    expect(refused.error?.message).toContain(
      "REFINER_API_BASE_URL must be an https:// URL without credentials",
    );
    expect(refiner.requests).toHaveLength(0);
  });

  it("does not send an event again that this instance delivered, and sends it after a failure", async () => {
    await expect(lambda.segment(loadEvent("track"))).resolves.toEqual({ status: 200 });
    await expect(lambda.segment(loadEvent("track"))).resolves.toEqual({ status: 200 });
    expect(refiner.requests).toHaveLength(1);

    // Only a 2xx marks an event delivered: a retried failure is sent again.
    refiner.queue({ status: 503 });
    const { error } = await settle(lambda.segment(loadEvent("page")));
    expect(error?.constructor.name).toBe("RetryError");
    await expect(lambda.segment(loadEvent("page"))).resolves.toEqual({ status: 200 });
    expect(refiner.requests.map((r) => r.path)).toEqual([
      "/track-event",
      "/track-event",
      "/track-event",
    ]);

    // A new instance has its own memory.
    lambda = loadLambda();
    await lambda.segment(loadEvent("track"));
    expect(refiner.requests).toHaveLength(4);
  });

  it("with the table of delivered messageIds, sends nothing again on another instance", async () => {
    const table = await startLocalTable();
    try {
      stubEnvs(localTableEnvironment(table));
      lambda = loadLambda();
      refiner.queue({ status: 503 });
      const { error } = await settle(lambda.segment(loadEvent("track")));
      expect(error?.constructor.name).toBe("RetryError");
      expect((await table.items()).size).toBe(0);
      await expect(lambda.segment(loadEvent("track"))).resolves.toEqual({ status: 200 });
      expect([...(await table.items()).keys()]).toEqual([loadEvent("track").messageId]);

      lambda = loadLambda();
      await expect(lambda.segment(loadEvent("track"))).resolves.toEqual({ status: 200 });
      expect(refiner.requests).toHaveLength(2);
    } finally {
      await table.stop();
    }
  });

  it("keeps an echoed API key out of results, errors and logs", async () => {
    refiner.queue(
      { status: 400, body: { error: `bad key ${API_KEY}` } },
      { status: 500, body: `key=${API_KEY}` },
    );
    const rejected = await lambda.segment(loadEvent("track"));
    const { error } = await settle(lambda.segment(loadEvent("track")));
    expect(JSON.stringify(rejected)).not.toContain(API_KEY);
    expect(error?.message).not.toContain(API_KEY);
    expect(error?.message).toContain("[redacted]");
    expect(logged).toHaveLength(2);
    expect(JSON.stringify(logged)).not.toContain(API_KEY);
  });
});
