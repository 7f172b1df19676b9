// The messageIds this Lambda instance has delivered, so that Segment's retries add nothing.
//
// Segment resends a whole webhook batch after any 5xx, and a direct invoke after a retryable error,
// for up to 4 hours. An event Refiner already took is then answered as delivered instead of being
// sent again. Best effort: the memory lives in one instance, and another instance may take the
// retry. Bounded: at most `maxIds` ids, the oldest forgotten first, each for at most `ttlMs`.

/** Segment retries for 4 hours; an id older than that cannot come back from a retry. */
export const DELIVERED_TTL_MS = 4 * 60 * 60 * 1000;
/** About 10 MB of ids and their times at Segment's 36-character messageIds. */
export const DELIVERED_MAX_IDS = 100_000;

export interface DeliveredIds {
  has(messageId: string, now?: number): boolean;
  add(messageId: string, now?: number): void;
  readonly size: number;
}

export function deliveredIds(maxIds = DELIVERED_MAX_IDS, ttlMs = DELIVERED_TTL_MS): DeliveredIds {
  // Insertion order is age order, since every entry lives equally long: the first key is the oldest.
  const expiries = new Map<string, number>();
  return {
    has(messageId, now = Date.now()) {
      const expiry = expiries.get(messageId);
      if (expiry === undefined) return false;
      if (expiry > now) return true;
      expiries.delete(messageId);
      return false;
    },
    add(messageId, now = Date.now()) {
      expiries.delete(messageId);
      expiries.set(messageId, now + ttlMs);
      for (const oldest of expiries.keys()) {
        if (expiries.size <= maxIds) break;
        expiries.delete(oldest);
      }
    },
    get size() {
      return expiries.size;
    },
  };
}
