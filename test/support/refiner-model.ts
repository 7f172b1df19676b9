// A model of what Refiner holds, folded from the requests it receives, for the differential test
// (test/differential.test.ts): each contact's traits, email and account, each account's traits,
// how often each contact did each event, and the contacts deleted and not seen since.
//
// The reference feeds it each Segment event alone, in arrival order, one request per event, as
// the mapping makes it; the doors under test are judged by what the emulator received.

import { planBatch } from "../../lib/pipeline/plan.ts";
import type { RefinerCall } from "../../lib/refiner/client.ts";
import type { Settings } from "../../lib/settings.ts";
import type { RecordedRequest } from "../../local/refiner-emulator.ts";

export interface RefinerState {
  contacts: Record<string, { traits: Record<string, unknown>; email?: string; account?: string }>;
  accounts: Record<string, Record<string, unknown>>;
  /** `contact event` → how many times. */
  counts: Record<string, number>;
  deleted: string[];
}

type Operation =
  | { op: "identify"; body: Record<string, unknown> }
  | { op: "track"; body: Record<string, unknown> }
  | { op: "delete"; contact: string };

const keyOf = (who: { id?: unknown; email?: unknown }) =>
  who.id !== undefined ? `id:${String(who.id)}` : `email:${String(who.email)}`;

/** The state after these operations, in order, from nothing. */
export function fold(operations: readonly Operation[]): RefinerState {
  const contacts: RefinerState["contacts"] = {};
  const accounts: RefinerState["accounts"] = {};
  const counts: Record<string, number> = {};
  const deleted = new Set<string>();
  for (const operation of operations) {
    if (operation.op === "delete") {
      delete contacts[operation.contact];
      for (const key of Object.keys(counts)) {
        if (key.startsWith(`${operation.contact} `)) delete counts[key];
      }
      deleted.add(operation.contact);
      continue;
    }
    const contact = keyOf(operation.body);
    deleted.delete(contact);
    if (operation.op === "track") {
      const key = `${contact} ${String(operation.body.event)}`;
      counts[key] = (counts[key] ?? 0) + 1;
      continue;
    }
    const { id, email, account, ...traits } = operation.body;
    const held = contacts[contact] ?? { traits: {} };
    contacts[contact] = held;
    Object.assign(held.traits, traits);
    if (typeof email === "string") held.email = email;
    if (account && typeof account === "object") {
      const { id: accountId, ...accountTraits } = account as Record<string, unknown>;
      held.account = String(accountId);
      accounts[String(accountId)] = { ...accounts[String(accountId)], ...accountTraits };
    }
  }
  return { contacts, accounts, counts, deleted: [...deleted].sort() };
}

/** What the emulator received, as operations. */
export function received(requests: readonly RecordedRequest[]): Operation[] {
  return requests.map((request) => {
    if (request.method === "DELETE") {
      const query = new URLSearchParams(request.path.split("?")[1] ?? "");
      const id = query.get("id");
      return { op: "delete", contact: keyOf(id === null ? { email: query.get("email") } : { id }) };
    }
    const body = request.body as Record<string, unknown>;
    return request.path === "/track-event" ? { op: "track", body } : { op: "identify", body };
  });
}

/**
 * The reference: each event alone, in arrival order, as the mapping makes its one request; an event
 * whose messageId arrived before is the same event again, and changes nothing.
 */
export function reference(events: readonly unknown[], settings: Settings): RefinerState {
  const seen = new Set<string>();
  const operations: Operation[] = [];
  for (const event of events) {
    const messageId = (event as { messageId?: unknown }).messageId;
    if (typeof messageId === "string") {
      if (seen.has(messageId)) continue;
      seen.add(messageId);
    }
    const [request] = planBatch([event], settings).phases.flat();
    if (request) operations.push(operationOf(request.call));
  }
  return fold(operations);
}

function operationOf(call: RefinerCall): Operation {
  if (call.call === "deleteContact") return { op: "delete", contact: keyOf(call.query) };
  return { op: call.call === "trackEvent" ? "track" : "identify", body: { ...call.body } };
}
