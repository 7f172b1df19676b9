// Segment events → as few Refiner requests as keep the data right. Pure: no I/O, no clock.
//
// The rule (docs/architecture.md): Refiner ends exactly as if each event had been sent alone, in
// arrival order. Every step here keeps it:
// - A contact's identify and group calls merge, in arrival order (a later trait wins), into one
//   `POST /identify-user` for as long as they name the same account or none. A call for another
//   account starts a new request, in order, so every account gets its traits and the contact ends
//   on the last one.
// - An account trait that a later request of the batch writes again (any contact's) is left out of
//   the earlier ones: only its last value can remain in Refiner, and the requests that carry an
//   account's traits then never overlap, whichever lands first (the queue's consumers run at once).
// - Events that repeat a `messageId` (Segment delivers at least once) are sent once. An event
//   without one is never merged with another by id.
// - Contacts are identified before their events are tracked. A delete splits the events into
//   phases, so what came before it is sent before it, and what came after, after.

import type { Failure, Outcome } from "../outcome.ts";
import type { AccountBody, IdentifyBody, RefinerCall, Who } from "../refiner/client.ts";
import { type EventType, eventType } from "../segment/event.ts";
import { isOutcome, type MappingOptions, mapEvent } from "../segment/mapping.ts";
import type { KeyNotice } from "../segment/traits.ts";
import { isPlainObject } from "../segment/traits.ts";
import type { Settings } from "../settings.ts";

/** One Refiner request and the input positions of the events it delivers. */
export interface PlannedRequest {
  call: RefinerCall;
  events: number[];
}

/** One contact's identifies and groups that merge into one request: one account, or none. */
interface Run {
  account: string | undefined;
  items: { body: IdentifyBody; index: number }[];
}

/**
 * What a batch becomes, before anything is sent: requests in phases (each phase is sent after the
 * one before it), what became of the events that map to no request (a failure, or left out by the
 * settings), and the events that repeat an earlier one's messageId, which share its outcome.
 */
export interface BatchPlan {
  phases: PlannedRequest[][];
  answered: Map<number, Outcome>;
  copies: [copy: number, original: number][];
}

/** Which call an event is: its own `type`, unless the door knows better (Segment's `onTrack`). */
export type TypeOf = (event: unknown) => EventType | Failure;

/**
 * `known`: what became of some events already (their messageId was delivered before): they are
 * answered so and not planned. `notice` hears of trait keys the mapping drops or merges.
 */
export function planBatch(
  events: readonly unknown[],
  settings: Settings,
  typeOf: TypeOf = eventType,
  known: ReadonlyMap<number, Outcome> = new Map(),
  notice?: KeyNotice,
): BatchPlan {
  const answered = new Map<number, Outcome>(known);
  const firstWithId = new Map<string, number>();
  const copies: [copy: number, original: number][] = [];
  const phases: PlannedRequest[][] = [];
  const options: MappingOptions = notice ? { ...settings, notice } : settings;
  let runs = new Map<string, Run[]>();
  let tracked: PlannedRequest[] = [];

  const accounts: AccountWrites[] = [];
  const closePhase = () => {
    const merged = [...runs.values()].flat().map((run) => mergeRun(run, accounts));
    if (merged.length) phases.push(merged);
    if (tracked.length) phases.push(tracked);
    runs = new Map();
    tracked = [];
  };

  events.forEach((event, index) => {
    if (known.has(index)) return;
    const id = messageIdOf(event);
    const original = id === undefined ? undefined : firstWithId.get(id);
    if (original !== undefined) {
      copies.push([index, original]);
      return;
    }
    if (id !== undefined) firstWithId.set(id, index);

    const type = typeOf(event);
    const call = typeof type === "string" ? mapEvent(type, event, options) : type;
    if (isOutcome(call)) {
      answered.set(index, call);
      return;
    }
    if (call.call === "identifyUser") {
      addToRun(runs, contactOf(call), call.body, index);
    } else if (call.call === "deleteContact") {
      closePhase();
      phases.push([{ call, events: [index] }]);
    } else {
      tracked.push({ call, events: [index] });
    }
  });
  closePhase();
  leaveOutOverwritten(accounts);
  return { phases, answered, copies };
}

/** The contact's current run takes the call, unless the call names another account. */
function addToRun(
  runs: Map<string, Run[]>,
  contact: string,
  body: IdentifyBody,
  index: number,
): void {
  const list = runs.get(contact) ?? [];
  runs.set(contact, list);
  const account = body.account?.id;
  const last = list.at(-1);
  if (last && (account === undefined || last.account === undefined || last.account === account)) {
    last.items.push({ body, index });
    last.account ??= account;
  } else {
    list.push({ account, items: [{ body, index }] });
  }
}

/** Whom a request is about: the same userId, or the same email when there is no userId. */
export function contactOf(call: RefinerCall): string {
  const who: Who = call.call === "deleteContact" ? call.query : call.body;
  return who.id !== undefined ? `id:${who.id}` : `email:${who.email}`;
}

/** A request's account, and the input position of the event that gave it each trait. */
interface AccountWrites {
  account: AccountBody;
  at: Map<string, number>;
}

/**
 * One identify for a run: traits in arrival order (later wins), and the run's account with every
 * trait its calls gave it. Sent alone one after another, the same calls leave Refiner the same.
 */
function mergeRun({ items }: Run, accounts: AccountWrites[]): PlannedRequest {
  const body: IdentifyBody = {};
  let account: AccountBody | undefined;
  const at = new Map<string, number>();
  let who: Who = {};
  for (const { body: each, index } of items) {
    const { account: itsAccount, id, email, ...traits } = each;
    Object.assign(body, traits);
    if (itsAccount) {
      account = account ? Object.assign(account, itsAccount) : { ...itsAccount };
      for (const key of Object.keys(itsAccount)) at.set(key, index);
    }
    who = {
      ...who,
      ...(id === undefined ? {} : { id }),
      ...(email === undefined ? {} : { email }),
    };
  }
  // The account, then the contact, last: no trait can take their place.
  if (account) {
    body.account = account;
    accounts.push({ account, at });
  }
  if (who.id !== undefined) body.id = who.id;
  if (who.email !== undefined) body.email = who.email;
  return {
    call: { call: "identifyUser", body },
    events: items.map((item) => item.index),
  };
}

/**
 * Each account trait stays only in the request of the plan whose event wrote it last (in arrival
 * order); the others keep the account's id, so that their contact still joins it.
 */
function leaveOutOverwritten(accounts: readonly AccountWrites[]): void {
  if (accounts.length < 2) return;
  const latest = new Map<string, number>();
  const slot = (account: AccountBody, key: string) => `${account.id}\n${key}`;
  for (const { account, at } of accounts) {
    for (const [key, index] of at) {
      if ((latest.get(slot(account, key)) ?? -1) < index) latest.set(slot(account, key), index);
    }
  }
  for (const { account, at } of accounts) {
    for (const [key, index] of at) {
      if (key !== "id" && latest.get(slot(account, key)) !== index) delete account[key];
    }
  }
}

export function messageIdOf(event: unknown): string | undefined {
  if (!isPlainObject(event)) return undefined;
  const { messageId } = event;
  return typeof messageId === "string" && messageId !== "" ? messageId : undefined;
}
