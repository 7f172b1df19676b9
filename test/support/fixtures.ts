import { readFileSync } from "node:fs";
import { expect } from "vitest";
import type { RecordedRequest, RefinerEmulator } from "../../local/refiner-emulator.ts";

export const API_KEY = "rfk_test_3b9d2c7e41a84f0c9e6d5b2a1f8c7e3d";

export function loadEvent(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`../../events/${name}.json`, import.meta.url), "utf8"));
}

/** What the seed identify (events/identify.json) becomes. */
export const SEED_IDENTIFY_REQUEST = {
  method: "POST",
  path: "/identify-user",
  body: {
    first_name: "John",
    last_name: "Doe",
    plan: "trial",
    created_at: "2026-10-28T16:02:11.000Z",
    address_city: "San Francisco",
    address_country: "US",
    id: "userId123",
    email: "john.doe@example.com",
  },
};

/** What the seed group (events/group.json, the documented Initech example) becomes. */
export const SEED_GROUP_REQUEST = {
  method: "POST",
  path: "/identify-user",
  body: {
    account: {
      name: "Initech",
      industry: "Technology",
      employees: 329,
      plan: "enterprise",
      total_billed: 830,
      id: "0e8c78ea9d97a7b8185e8632",
    },
    id: "userId123",
  },
};

/** The single request Refiner received, checked to the header: method, path, auth and JSON body. */
export function onlyRequest(emulator: RefinerEmulator): RecordedRequest {
  expect(emulator.requests).toHaveLength(1);
  return emulator.requests[0] as RecordedRequest;
}

export function expectRefinerRequest(
  request: RecordedRequest,
  expected: { method: string; path: string; body?: unknown },
): void {
  expect(request.method).toBe(expected.method);
  expect(request.path).toBe(expected.path);
  expect(request.headers.authorization).toBe(`Bearer ${API_KEY}`);
  expect(request.headers.accept).toBe("application/json");
  if (expected.body === undefined) {
    expect(request.body).toBeUndefined();
    expect(request.headers["content-type"]).toBeUndefined();
  } else {
    expect(request.headers["content-type"]).toBe("application/json");
    expect(request.body).toStrictEqual(expected.body);
  }
}

/** How often Refiner received each track, page or screen event, as "userId event". */
export function trackCounts(requests: readonly RecordedRequest[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const request of requests) {
    if (request.path !== "/track-event") continue;
    const { id, event } = request.body as { id: string; event: string };
    counts.set(`${id} ${event}`, (counts.get(`${id} ${event}`) ?? 0) + 1);
  }
  return counts;
}

/** The most requests that arrived within any window of `ms` (open at its start). */
export function busiestWindow(requests: readonly RecordedRequest[], ms: number): number {
  const times = requests.map((request) => request.at).sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while ((times[j] as number) <= (times[i] as number) - ms) j += 1;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

/**
 * Refiner answers 201, the first answers only once `count` requests are open: so many are open at
 * once however slowly a busy machine sends them, and the client's own limit shows in
 * `maxInFlight`.
 */
export function answerOnceOpen(refiner: RefinerEmulator, count: number): void {
  let opened = () => {};
  const open = new Promise<void>((resolve) => {
    opened = resolve;
  });
  refiner.respond(() => {
    if (refiner.requests.length === count) opened();
    return { status: 201, until: open };
  });
}
