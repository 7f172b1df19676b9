// A bounded memory of recent messageIds. The Lambda keeps those it delivered, so that Segment's
// retries add nothing; the CLI keeps those it has read, so that a duplicate is sent once per run.
//
// Segment resends a whole webhook batch after any 5xx, and a direct invoke after a retryable error,
// for up to 4 hours. An event Refiner already took is then answered as delivered instead of being
// sent again. Best effort: the memory lives in one instance, and another instance may take the
// retry. Bounded: at most `maxIds` ids (bounded-map.ts), each for at most `ttlMs`.

import { boundedMap } from "./bounded-map.ts";

/** Segment retries for 4 hours; a delivered id older than that cannot come back from a retry. */
export const RECENT_TTL_MS = 4 * 60 * 60 * 1000;
/** About 10 MB of ids and their times at Segment's 36-character messageIds. */
export const RECENT_MAX_IDS = 100_000;

export interface RecentIds {
  has(messageId: string, now?: number): boolean;
  add(messageId: string, now?: number): void;
  /** Ids held, at most maxIds. */
  readonly size: number;
}

export function recentIds(maxIds = RECENT_MAX_IDS, ttlMs = RECENT_TTL_MS): RecentIds {
  /** Each id's expiry. */
  const ids = boundedMap<number>(maxIds);
  return {
    has(messageId, now = Date.now()) {
      const expiry = ids.get(messageId);
      return expiry !== undefined && expiry > now;
    },
    add(messageId, now = Date.now()) {
      ids.set(messageId, now + ttlMs);
    },
    get size() {
      return ids.size;
    },
  };
}
