// Which messageIds Refiner already has, so that no event reaches it twice. Segment resends a whole
// webhook batch for up to 4 hours, SQS de-duplicates for 5 minutes only, and a message the consumer
// delivered can come back if its deletion was lost.
//
// Two layers: this instance's own memory (recent-ids.ts), and on AWS a DynamoDB table that every
// instance shares (REFINER_DELIVERED_TABLE), whose items expire by TTL. Only what Refiner took is
// recorded. When the table cannot be reached, events are delivered anyway: a duplicate is better
// than a loss. That is logged and counted by the caller's `unavailable`.

import { ALREADY_DELIVERED, type Outcome } from "../outcome.ts";
import { beforeDeadline } from "./deadline.ts";
import { messageIdOf } from "./plan.ts";
import { RECENT_TTL_MS, type RecentIds, recentIds } from "./recent-ids.ts";

export interface IdempotencyStore {
  /** The ids among `ids` that were delivered before. Never rejects. */
  find(ids: readonly string[]): Promise<Set<string>>;
  /** Remembers that these were delivered. Never rejects. */
  record(ids: readonly string[]): Promise<void>;
  /**
   * The same memory for one call of a door, whose table calls give up in time for `deadline`
   * (epoch ms): a lookup after half the time left, so that delivery keeps the rest, and a write at
   * the deadline; either after TABLE_WAIT_MS at the most. Given up counts as unavailable.
   */
  until(deadline: number): IdempotencyStore;
}

/** The longest a door waits on the table: DynamoDB answers in milliseconds when it answers. */
export const TABLE_WAIT_MS = 500;

/** The shared table; both calls reject when DynamoDB cannot be reached. */
export interface IdempotencyTable {
  find(ids: readonly string[]): Promise<Set<string>>;
  record(ids: readonly string[]): Promise<void>;
}

/** What the caller does when the table fails: log it and count it. */
export type Unavailable = (action: "find" | "record", error: unknown) => void;

export function idempotencyStore(
  table: IdempotencyTable | undefined,
  unavailable: Unavailable,
  memory: RecentIds = recentIds(),
): IdempotencyStore {
  return {
    until: (deadline) =>
      idempotencyStore(table && tableUntil(table, deadline), unavailable, memory),
    async find(ids) {
      const found = new Set(ids.filter((id) => memory.has(id)));
      const unknown = [...new Set(ids.filter((id) => !found.has(id)))];
      if (!table || unknown.length === 0) return found;
      try {
        for (const id of await table.find(unknown)) {
          found.add(id);
          memory.add(id);
        }
      } catch (error) {
        unavailable("find", error);
      }
      return found;
    },
    async record(ids) {
      for (const id of ids) memory.add(id);
      if (!table || ids.length === 0) return;
      try {
        await table.record(ids);
      } catch (error) {
        unavailable("record", error);
      }
    },
  };
}

/** Segment's `cache` global in the function runtime: process-local, best effort (docs/mapping.md). */
export interface SegmentCache {
  load(key: string, ttlMs: number, fn: () => Promise<unknown>): Promise<unknown>;
  delete(key: string): unknown;
}

/**
 * The delivered messageIds in Segment's `cache`, for the pasted function: a batch Segment sends
 * again to the same worker sends nothing twice. Each worker has its own cache, so a copy that
 * reaches another worker is sent again (docs/mapping.md says what that means).
 */
export function segmentCacheStore(cache: SegmentCache): IdempotencyStore {
  const key = (id: string) => `refiner-delivered:${id}`;
  const ids: IdempotencyStore = {
    // The cache is in the worker's own memory: nothing to wait for.
    until: () => ids,
    async find(ids) {
      const found = new Set<string>();
      for (const id of new Set(ids)) {
        try {
          // `load` stores what the function returns: nothing, for a millisecond.
          if ((await cache.load(key(id), 1, async () => undefined)) === true) found.add(id);
        } catch {
          // A cache that fails knows nothing: the event is sent.
        }
      }
      return found;
    },
    async record(ids) {
      for (const id of ids) {
        try {
          // `load` would return the "nothing" that `find` may have just stored: replace it.
          await cache.delete(key(id));
          await cache.load(key(id), RECENT_TTL_MS, async () => true);
        } catch {
          // Not remembered: a resend would be sent again, as without a cache.
        }
      }
    },
  };
  return ids;
}

function tableUntil(table: IdempotencyTable, deadline: number): IdempotencyTable {
  /** The deadline of a call starting now that may take `share` of the time left. */
  const by = (share: number) => {
    const now = Date.now();
    return now + Math.min(TABLE_WAIT_MS, (deadline - now) * share);
  };
  return {
    find: (ids) => beforeDeadline(by(0.5), "DynamoDB", () => table.find(ids)),
    record: (ids) => beforeDeadline(by(1), "DynamoDB", () => table.record(ids)),
  };
}

/** Each event's messageId, and the positions of those Refiner already took. */
export async function deliveredBefore(
  events: readonly unknown[],
  delivered: IdempotencyStore,
): Promise<{ ids: (string | undefined)[]; known: Map<number, Outcome> }> {
  const ids = events.map(messageIdOf);
  const done = await delivered.find(ids.filter((id) => id !== undefined));
  const known = new Map<number, Outcome>();
  ids.forEach((id, index) => {
    if (id !== undefined && done.has(id)) known.set(index, ALREADY_DELIVERED);
  });
  return { ids, known };
}
