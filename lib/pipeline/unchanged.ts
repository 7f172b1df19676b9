// What Refiner already has of a contact, so that an identify that changes nothing is not sent.
// Segment recommends an identify on every page load, and most repeat what Refiner has.
//
// The state is what Refiner holds, not the last body sent: each trait's value (hashed), the
// contact's email and the account it is on, as the requests Refiner took left them. An identify
// is skipped only when every trait it carries already has that value there, it names the same
// account (or none), and it carries no account traits: an account's traits are shared with the
// account's other contacts, whose requests may be in flight at the same moment elsewhere.
//
// Skipping keeps the rule (docs/architecture.md) only where every instance sees the same state and
// a contact's requests are ordered: on AWS, the queue's consumer (one message of a contact at a
// time, FIFO by contact) with the state in the DynamoDB table. Anywhere else (Segment's per-worker
// `cache`, one Lambda instance's memory, one `send` run) another instance may change the contact
// meanwhile, and a skip there would leave Refiner wrong; so nothing else skips.

import type { IdentifyBody, TraitValue } from "../refiner/client.ts";
import { boundedMap } from "./bounded-map.ts";

/** What Refiner holds of one contact, as far as the destination's own requests say. */
export interface ContactState {
  /** Each trait's value, hashed (traits are personal data). */
  traits: Record<string, string>;
  email?: string;
  account?: string;
  /** Until when (epoch ms) the state may be trusted: skipUnchangedMinutes after the last change. */
  until: number;
}

/** Where the states live. Never rejects: a memory that fails answers "unknown", which only costs a request. */
export interface SentMemory {
  load(contact: string): Promise<ContactState | undefined>;
  store(contact: string, state: ContactState): Promise<void>;
  forget(contact: string): Promise<void>;
}

/** A bounded map (bounded-map.ts) of at most `maxContacts`, for the pipeline's tests. */
export function mapMemory(maxContacts = 100_000): SentMemory {
  const contacts = boundedMap<ContactState>(maxContacts);
  return {
    load: async (contact) => contacts.get(contact),
    store: async (contact, state) => contacts.set(contact, state),
    forget: async (contact) => contacts.delete(contact),
  };
}

/** Whether sending `body` would change nothing in Refiner, given the contact's state at `now`. */
export function isUnchanged(
  body: IdentifyBody,
  state: ContactState | undefined,
  now: number,
): boolean {
  if (!state || state.until <= now) return false;
  const { account, id, email, ...traits } = body;
  if (account && (account.id !== state.account || Object.keys(account).length > 1)) return false;
  if (email !== undefined && email !== state.email) return false;
  return Object.entries(traits).every(
    ([key, value]) => value !== undefined && state.traits[key] === valueHash(value),
  );
}

/** The contact's state once Refiner took `body`. */
export function afterDelivery(
  body: IdentifyBody,
  state: ContactState | undefined,
  until: number,
): ContactState {
  const { account, id, email, ...traits } = body;
  const next: ContactState = { traits: { ...state?.traits }, until };
  for (const [key, value] of Object.entries(traits)) {
    if (value !== undefined && typeof value !== "object") next.traits[key] = valueHash(value);
  }
  const knownEmail = email ?? state?.email;
  const knownAccount = account?.id ?? state?.account;
  if (knownEmail !== undefined) next.email = knownEmail;
  if (knownAccount !== undefined) next.account = knownAccount;
  return next;
}

function valueHash(value: TraitValue | object): string {
  return hash(`${typeof value}:${String(value)}`);
}

/**
 * A 106-bit hash (two 53-bit cyrb53 halves) in hex. No crypto module in Segment's runtime is needed;
 * it only tells values apart and keys destinations, never protects anything.
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
