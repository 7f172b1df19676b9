// Which messageIds Refiner already has, so that no event reaches it twice. Segment resends a whole
// webhook batch for up to 4 hours, SQS de-duplicates for 5 minutes only, and a message the consumer
// delivered can come back if its deletion was lost.
//
// Two layers: this instance's own memory (recent-ids.ts), and on AWS a DynamoDB table that every
// instance shares (REFINER_DELIVERED_TABLE), whose items expire by TTL. Only what Refiner took is
// recorded. When the table cannot be reached, events are delivered anyway: a duplicate is better
// than a loss. That is logged and counted by the caller's `unavailable`.

import { ALREADY_DELIVERED, type Outcome } from "./outcome.ts";
import { messageIdOf } from "./plan.ts";
import { type RecentIds, recentIds } from "./recent-ids.ts";

export interface DeliveredIds {
  /** The ids among `ids` that were delivered before. Never rejects. */
  find(ids: readonly string[]): Promise<Set<string>>;
  /** Remembers that these were delivered. Never rejects. */
  record(ids: readonly string[]): Promise<void>;
}

/** The shared table; both calls reject when DynamoDB cannot be reached. */
export interface DeliveredTable {
  find(ids: readonly string[]): Promise<Set<string>>;
  record(ids: readonly string[]): Promise<void>;
}

/** What the caller does when the table fails: log it and count it. */
export type Unavailable = (action: "find" | "record", error: unknown) => void;

export function deliveredIds(
  table: DeliveredTable | undefined,
  unavailable: Unavailable,
  memory: RecentIds = recentIds(),
): DeliveredIds {
  return {
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

/** Each event's messageId, and the positions of those Refiner already took. */
export async function deliveredBefore(
  events: readonly unknown[],
  delivered: DeliveredIds,
): Promise<{ ids: (string | undefined)[]; known: Map<number, Outcome> }> {
  const ids = events.map(messageIdOf);
  const done = await delivered.find(ids.filter((id) => id !== undefined));
  const known = new Map<number, Outcome>();
  ids.forEach((id, index) => {
    if (id !== undefined && done.has(id)) known.set(index, ALREADY_DELIVERED);
  });
  return { ids, known };
}
