// Segment events → as few Refiner requests as keep the data right. Pure: no I/O, no clock.
//
// - All identify and group calls for one contact become one `POST /identify-user`, with traits
//   applied in timestamp order (later wins) and the account of the latest group. Sending them one
//   by one, concurrently, could let yesterday's traits land last.
// - Events that repeat a `messageId` (Segment delivers at least once) are sent once.
// - Contacts are identified before their events are tracked. A delete splits the events into
//   phases, so what came before it is sent before it, and what came after, after.

import type { AccountBody, IdentifyBody, RefinerCall, Who } from "../refiner/client.ts";
import { type EventType, eventType } from "../segment/event.ts";
import { isOutcome, mapEvent } from "../segment/mapping.ts";
import { isPlainObject } from "../segment/traits.ts";
import type { Settings } from "../settings.ts";
import type { Failure, Outcome } from "./outcome.ts";

/** One Refiner request and the input positions of the events it delivers. */
export interface PlannedRequest {
  call: RefinerCall;
  events: number[];
}

interface Identify {
  body: IdentifyBody;
  timestamp: number;
  index: number;
}

/**
 * What a batch becomes, before anything is sent: requests in phases (each phase is sent after the
 * one before it), what became of the events that map to no request (a failure, or left out by the
 * settings), and the events that repeat an
 * earlier one's messageId, which share its outcome.
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
 * answered so and not planned.
 */
export function planBatch(
  events: readonly unknown[],
  settings: Settings,
  typeOf: TypeOf = eventType,
  known: ReadonlyMap<number, Outcome> = new Map(),
): BatchPlan {
  const answered = new Map<number, Outcome>(known);
  const firstWithId = new Map<string, number>();
  const copies: [copy: number, original: number][] = [];
  const phases: PlannedRequest[][] = [];
  let identifies = new Map<string, Identify[]>();
  let tracked: PlannedRequest[] = [];

  const closePhase = () => {
    const merged = [...identifies.values()].map(mergeIdentifies);
    if (merged.length) phases.push(merged);
    if (tracked.length) phases.push(tracked);
    identifies = new Map();
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
    const call = typeof type === "string" ? mapEvent(type, event, settings) : type;
    if (isOutcome(call)) {
      answered.set(index, call);
      return;
    }
    if (call.call === "identifyUser") {
      const key = contactOf(call);
      const list = identifies.get(key) ?? [];
      list.push({ body: call.body, timestamp: timestampOf(event), index });
      identifies.set(key, list);
    } else if (call.call === "deleteContact") {
      closePhase();
      phases.push([{ call, events: [index] }]);
    } else {
      tracked.push({ call, events: [index] });
    }
  });
  closePhase();
  return { phases, answered, copies };
}

/** Whom a request is about: the same userId, or the same email when there is no userId. */
export function contactOf(call: RefinerCall): string {
  const who: Who = call.call === "deleteContact" ? call.query : call.body;
  return who.id !== undefined ? `id:${who.id}` : `email:${who.email}`;
}

/**
 * One identify for a contact: traits in timestamp order (later wins), and the latest account, with
 * the traits earlier calls gave that same account (an identify's `company` after a group).
 */
function mergeIdentifies(list: Identify[]): PlannedRequest {
  const ordered = [...list].sort((a, b) => a.timestamp - b.timestamp || a.index - b.index);
  const body: IdentifyBody = {};
  let account: AccountBody | undefined;
  let who: Who = {};
  for (const { body: each } of ordered) {
    const { account: itsAccount, id, email, ...traits } = each;
    Object.assign(body, traits);
    if (itsAccount) account = mergeAccount(account, itsAccount);
    who = {
      ...who,
      ...(id === undefined ? {} : { id }),
      ...(email === undefined ? {} : { email }),
    };
  }
  // The account, then the contact, last: no trait can take their place.
  if (account) body.account = account;
  if (who.id !== undefined) body.id = who.id;
  if (who.email !== undefined) body.email = who.email;
  return {
    call: { call: "identifyUser", body },
    events: list.map((item) => item.index),
  };
}

/** The later account, keeping the earlier one's traits when both are the same account. */
function mergeAccount(earlier: AccountBody | undefined, later: AccountBody): AccountBody {
  return earlier?.id === later.id ? { ...earlier, ...later } : later;
}

export function messageIdOf(event: unknown): string | undefined {
  if (!isPlainObject(event)) return undefined;
  const { messageId } = event;
  return typeof messageId === "string" && messageId !== "" ? messageId : undefined;
}

/** Events without a usable timestamp sort first, keeping their input order. */
function timestampOf(event: unknown): number {
  const value = isPlainObject(event) ? event.timestamp : undefined;
  const time =
    typeof value === "string" || typeof value === "number" ? new Date(value).getTime() : Number.NaN;
  return Number.isNaN(time) ? Number.NEGATIVE_INFINITY : time;
}
