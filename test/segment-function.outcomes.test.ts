// Every outcome row of docs/mapping.md, and the settings checks, through the built bundle in the
// Segment-style loader: what Refiner (or the network) did → which Segment error, which onBatch item.

import { Agent, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import nodeFetch from "node-fetch";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type RefinerEmulator,
  type Reply,
  startRefinerEmulator,
} from "../local/refiner-emulator.ts";
import {
  loadSegmentFunction,
  RetryError,
  type SegmentFunction,
  settle,
  ValidationError,
} from "../local/segment-runtime.ts";
import { API_KEY, loadEvent } from "./support/fixtures.ts";

let refiner: RefinerEmulator;
let fn: SegmentFunction;
let settings: Record<string, unknown>;

beforeAll(async () => {
  refiner = await startRefinerEmulator();
  settings = { apiKey: API_KEY, apiBaseUrl: refiner.url };
});
// A worker of its own for each test: they send the same sample events, which one worker would
// rightly send once.
beforeEach(() => {
  fn = loadSegmentFunction();
});
afterAll(() => refiner.close());
beforeEach(() => refiner.reset());

const track = () => loadEvent("track");

async function trackWith(reply: Reply, withSettings = settings) {
  refiner.queue(reply);
  return settle(fn.handlers.onTrack(track(), withSettings));
}

async function batchItemFor(reply: Reply) {
  refiner.queue(reply);
  const [item] = (await fn.handlers.onBatch([track()], settings)) as unknown[];
  return item;
}

describe("Refiner's answers", () => {
  it.each([200, 201, 202, 204])("resolves on %i", async (status) => {
    const { error } = await trackWith({
      status,
      body: status === 204 ? undefined : { message: "ok" },
    });
    expect(error).toBeUndefined();
    await expect(batchItemFor({ status })).resolves.toEqual({ status: 200 });
  });

  it.each([
    [400, { error: "Missing event name" }, "Missing event name"],
    [404, { message: "Not found" }, "Not found"],
    [409, { error: "Conflict on contact" }, "Conflict on contact"],
    [413, "Payload Too Large", "Payload Too Large"],
    [422, { message: "The id must be a string." }, "The id must be a string."],
    [501, { error: "Not implemented" }, "Not implemented"],
    [418, "I'm a teapot", "I'm a teapot"],
  ])("rejects %i with Refiner's own text as a ValidationError", async (status, body, text) => {
    const { error } = await trackWith({ status, body });
    expect(error).toBeInstanceOf(ValidationError);
    expect(error?.message).toBe(`Refiner rejected POST /track-event with ${status}: ${text}`);
    await expect(batchItemFor({ status, body })).resolves.toEqual({
      status: 400,
      errormessage: `Refiner rejected POST /track-event with ${status}: ${text}`,
    });
  });

  it.each([
    [401, { error: "No API key found in headers" }],
    [401, { error: "API key does not look valid" }],
    [403, { error: "Forbidden" }],
    [404, { message: "API key not valid or does not exist" }],
  ])("rejects %i %j as a bad API key", async (status, body) => {
    const { error } = await trackWith({ status, body });
    expect(error).toBeInstanceOf(ValidationError);
    expect(error?.message).toMatch(
      /^Refiner rejected the API key \(\d{3}: .+\)\. Check the apiKey setting/,
    );
    await expect(batchItemFor({ status, body })).resolves.toEqual({
      status: 401,
      errormessage: expect.stringContaining("Refiner rejected the API key"),
    });
  });

  it("retries a 429 and keeps Retry-After in the message", async () => {
    const reply = {
      status: 429,
      body: { message: "Too Many Attempts." },
      headers: { "Retry-After": "30" },
    };
    const { error } = await trackWith(reply);
    expect(error).toBeInstanceOf(RetryError);
    expect(error?.message).toBe(
      "Refiner answered 429 to POST /track-event: Too Many Attempts.; Retry-After: 30",
    );
    await expect(batchItemFor(reply)).resolves.toEqual({
      status: 429,
      errormessage: error?.message,
    });
  });

  it.each([408, 500, 502, 503, 504])("retries %i", async (status) => {
    const { error } = await trackWith({ status, body: "upstream trouble" });
    expect(error).toBeInstanceOf(RetryError);
    expect(error?.message).toBe(
      `Refiner answered ${status} to POST /track-event: upstream trouble`,
    );
    await expect(batchItemFor({ status })).resolves.toEqual({
      status: 500,
      errormessage: `Refiner answered ${status} to POST /track-event`,
    });
  });

  it("does not follow a redirect, and names apiBaseUrl", async () => {
    const { error } = await trackWith({
      status: 307,
      headers: { location: "https://elsewhere.example/v1" },
    });
    expect(error).toBeInstanceOf(ValidationError);
    expect(error?.message).toContain("apiBaseUrl");
    expect(refiner.requests).toHaveLength(1);
  });

  it("keeps an echoed API key out of the message", async () => {
    const { error } = await trackWith({
      status: 400,
      body: { error: `Key ${API_KEY} is not allowed here` },
    });
    expect(error).toBeInstanceOf(ValidationError);
    expect(error?.message).not.toContain(API_KEY);
    expect(error?.message).toContain("Key [redacted] is not allowed here");

    refiner.queue({ status: 503, body: `bad ${API_KEY}` });
    const [item] = (await fn.handlers.onBatch([track()], settings)) as { errormessage: string }[];
    expect(item?.errormessage).not.toContain(API_KEY);
  });

  it("keeps messages under 500 characters whatever Refiner sends", async () => {
    const { error } = await trackWith({ status: 400, body: `<html>${"x".repeat(50_000)}</html>` });
    expect(error).toBeInstanceOf(ValidationError);
    expect(error?.message.length).toBeLessThanOrEqual(500);
  });
});

describe("network failures", () => {
  it("retries a refused connection", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));

    const { error } = await settle(
      fn.handlers.onTrack(track(), { apiKey: API_KEY, apiBaseUrl: `http://127.0.0.1:${port}/v1` }),
    );
    expect(error).toBeInstanceOf(RetryError);
    expect(error?.message).toContain("Refiner could not be reached for POST /track-event");
    expect(error?.message).toContain("ECONNREFUSED");
  });

  it("retries a DNS failure", async () => {
    // node-fetch's real resolution path, with a resolver that knows no host (no network needed).
    const agent = new Agent({
      lookup: (hostname, _options, callback) =>
        callback(
          Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" }),
          "",
          4,
        ),
    });
    const { handlers } = loadSegmentFunction({
      fetch: (url, init) => nodeFetch(url, { ...init, agent }),
    });
    const { error } = await settle(
      handlers.onTrack(track(), { apiKey: API_KEY, apiBaseUrl: "http://localhost:9/v1" }),
    );
    expect(error).toBeInstanceOf(RetryError);
    expect(error?.message).toContain("ENOTFOUND");
  });

  it("retries a connection dropped before the answer", async () => {
    const { error } = await trackWith({ drop: true });
    expect(error).toBeInstanceOf(RetryError);
    expect(error?.message).toContain("Refiner could not be reached for POST /track-event");
    await expect(batchItemFor({ drop: true })).resolves.toEqual({
      status: 500,
      errormessage: expect.any(String),
    });
  });
});

describe("settings", () => {
  it.each([
    [{ apiBaseUrl: "http://127.0.0.1:1/v1" }, "apiKey"],
    [{ apiKey: "   ", apiBaseUrl: "http://127.0.0.1:1/v1" }, "apiKey"],
    [{ apiKey: API_KEY, apiBaseUrl: "http://api.refiner.io/v1" }, "apiBaseUrl"],
    [{ apiKey: API_KEY, apiBaseUrl: "ftp://127.0.0.1/v1" }, "apiBaseUrl"],
    [{ apiKey: API_KEY, apiBaseUrl: "not a url" }, "apiBaseUrl"],
    [{ apiKey: API_KEY, apiBaseUrl: "https://user:pw@api.refiner.io/v1" }, "apiBaseUrl"],
    [{ apiKey: API_KEY, apiBaseUrl: 42 }, "apiBaseUrl"],
    // The API key goes to the host: Refiner's, unless allowAnyApiHost says otherwise.
    [{ apiKey: API_KEY, apiBaseUrl: "https://proxy.example.test/v1" }, "apiBaseUrl"],
    [{ apiKey: API_KEY, apiBaseUrl: "https://api.refiner.io.evil.example/v1" }, "apiBaseUrl"],
    [{ apiKey: API_KEY, apiBaseUrl: "https://evil.example\\@api.refiner.io/v1" }, "apiBaseUrl"],
    [{ apiKey: API_KEY, apiBaseUrl: "https://notrefiner.io/v1" }, "apiBaseUrl"],
    [
      { apiKey: API_KEY, apiBaseUrl: "http://proxy.example.test/v1", allowAnyApiHost: true },
      "apiBaseUrl",
    ],
    [
      { apiKey: API_KEY, apiBaseUrl: "https://u:pw@proxy.example.test/v1", allowAnyApiHost: true },
      "apiBaseUrl",
    ],
    [{ apiKey: API_KEY, allowAnyApiHost: "yes" }, "allowAnyApiHost"],
    [{ apiKey: API_KEY, preserveTraitKeys: "sometimes" }, "preserveTraitKeys"],
  ])("rejects %j, naming %s, and sends nothing", async (bad, name) => {
    const { error } = await settle(fn.handlers.onTrack(track(), bad));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error?.message).toContain(name);
    expect(error?.message).not.toContain(API_KEY);
    expect(error?.message).not.toContain("pw@");
    expect(refiner.requests).toHaveLength(0);
  });

  it("names the rule when the host is not Refiner's, and the setting that lifts it", async () => {
    const { error } = await settle(
      fn.handlers.onTrack(track(), {
        apiKey: API_KEY,
        apiBaseUrl: "https://evil.example\\@api.refiner.io/v1",
      }),
    );
    expect(error?.message).toBe(
      "The apiBaseUrl setting must name a host under refiner.io (or 127.0.0.1, localhost or [::1]), since the API key goes to that host. The allowAnyApiHost setting set to true allows another https:// host.",
    );
  });

  it("sends to another https host only with allowAnyApiHost, and to any host under refiner.io", async () => {
    // A fetch that records where each request was meant to go, and hands it to the emulator.
    const meant: string[] = [];
    const { handlers } = loadSegmentFunction({
      fetch: (url, init) => {
        meant.push(String(url));
        return nodeFetch(String(url).replace(/^https:\/\/[^/]+\/v1/, refiner.url), init);
      },
    });
    await handlers.onTrack(track(), {
      apiKey: API_KEY,
      apiBaseUrl: "https://refiner-proxy.example.test/v1",
      allowAnyApiHost: true,
    });
    // Another event (another messageId): one worker rightly sends the same one once.
    await handlers.onTrack(
      { ...track(), messageId: "another-track" },
      { apiKey: API_KEY, apiBaseUrl: "https://eu.api.refiner.io/v1" },
    );
    expect(meant).toEqual([
      "https://refiner-proxy.example.test/v1/track-event",
      "https://eu.api.refiner.io/v1/track-event",
    ]);
    expect(refiner.requests).toHaveLength(2);
  });

  it("gives every batch item the settings error", async () => {
    const items = await fn.handlers.onBatch([track(), loadEvent("identify")], {});
    expect(items).toEqual([
      { status: 400, errormessage: expect.stringContaining("apiKey") },
      { status: 400, errormessage: expect.stringContaining("apiKey") },
    ]);
  });

  it("accepts localhost and a trailing slash, and the string forms of preserveTraitKeys", async () => {
    const port = new URL(refiner.url).port;
    await fn.handlers.onIdentify(
      { userId: "u1", traits: { firstName: "Ann" } },
      {
        apiKey: ` ${API_KEY} `,
        apiBaseUrl: `http://localhost:${port}/v1/`,
        preserveTraitKeys: "true",
      },
    );
    expect(refiner.requests).toHaveLength(1);
    expect(refiner.requests[0]?.path).toBe("/identify-user");
    expect(refiner.requests[0]?.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(refiner.requests[0]?.body).toStrictEqual({ firstName: "Ann", id: "u1" });
  });
});
