// What Refiner already has: per contact, a hash of the last identify or group body it took. An
// identify sent again with the same body changes nothing in Refiner, and Segment recommends one on
// every page load, so within `skipUnchangedMinutes` such a request is not sent and its events count
// as delivered. Only a 2xx records a body; a delete of the contact forgets it.
//
// The memory is best effort and bounded: Segment's `cache` in the function (process-local, emptied
// at any time), else a map of at most MAX_CONTACTS contacts, the oldest forgotten first. Forgetting
// only costs a request.

import { boundedMap } from "./bounded-map.ts";

/** One contact's delivered bodies: by account id ("" for none), the body's hash and its expiry. */
export type Remembered = Record<string, { hash: string; until: number }>;

export interface SentMemory {
  load(contact: string): Promise<Remembered | undefined>;
  store(contact: string, remembered: Remembered, ttlMs: number): Promise<void>;
  forget(contact: string): Promise<void>;
}

/** About 40 MB at the most, whatever the traffic. */
export const MAX_CONTACTS = 100_000;

/** A bounded map (bounded-map.ts): at most `maxContacts` are held. */
export function mapMemory(maxContacts = MAX_CONTACTS): SentMemory {
  const contacts = boundedMap<Remembered>(maxContacts);
  return {
    load: async (contact) => contacts.get(contact),
    store: async (contact, remembered) => contacts.set(contact, remembered),
    forget: async (contact) => contacts.delete(contact),
  };
}

/** Segment's `cache` global in the function runtime (docs/architecture.md). */
export interface SegmentCache {
  load(key: string, ttlMs: number, fn: () => Promise<unknown>): Promise<unknown>;
  delete(key: string): unknown;
}

export function segmentCacheMemory(cache: SegmentCache): SentMemory {
  return {
    async load(contact) {
      // `load` stores what the function returns: nothing, until a store replaces it.
      const value = await cache.load(contact, 1, async () => undefined);
      return value && typeof value === "object" ? (value as Remembered) : undefined;
    },
    async store(contact, remembered, ttlMs) {
      await cache.delete(contact);
      await cache.load(contact, ttlMs, async () => remembered);
    },
    async forget(contact) {
      await cache.delete(contact);
    },
  };
}

/** JSON with its keys sorted, so that the same body always reads the same. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonical(item)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * A 106-bit hash (two 53-bit cyrb53 halves) in hex. No crypto module in Segment's runtime is needed;
 * it only tells bodies apart and keys destinations, never protects anything.
 */
export function hash(text: string): string {
  return `${cyrb53(text, 0x9e3779b9).toString(16)}${cyrb53(text, 0x85ebca6b).toString(16)}`;
}

function cyrb53(text: string, seed: number): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ code, 2654435761);
    h2 = Math.imul(h2 ^ code, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}
