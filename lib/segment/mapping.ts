// Segment event → the Refiner call it becomes (docs/mapping.md). Pure: no I/O, no clock.
// Every function returns either the call or the Failure that says what to fix.

import { type Failure, FILTERED, invalid, type Unsent, unsupported } from "../delivery/outcome.ts";
import type { AccountBody, IdentifyBody, RefinerCall, Who } from "../refiner/client.ts";
import type { Settings } from "../settings.ts";
import { isPlainObject, normalizeTraits } from "./traits.ts";

/**
 * Every Segment call type the destination answers, declared once: the Segment function gets an
 * `on<Type>` handler for each (handler.ts, build.mjs), and `send --types` takes them.
 */
export const EVENT_TYPES = [
  "identify",
  "group",
  "track",
  "page",
  "screen",
  "alias",
  "delete",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export type SegmentHandlerName = `on${Capitalize<EventType>}`;

/** The call types Refiner receives something for (alias is answered, never sent). */
export const SENT_TYPES = EVENT_TYPES.filter((type) => type !== "alias");

/** The Segment function's single-event handlers: `onIdentify` → identify, … */
export const SEGMENT_HANDLERS = Object.fromEntries(
  EVENT_TYPES.map((type) => [`on${type[0]?.toUpperCase()}${type.slice(1)}`, type]),
) as Record<SegmentHandlerName, EventType>;

type Event = Record<string, unknown>;

/** The settings the mapping reads. */
export type MappingOptions = Pick<
  Settings,
  | "preserveTraitKeys"
  | "traitMapping"
  | "accountTraitMapping"
  | "traitAllowList"
  | "traitDenyList"
  | "eventAllowList"
  | "sendPageViews"
>;

/** Whether a result is what became of the event (a failure, or filtered) rather than a call. */
export function isOutcome<T extends object>(result: T | Unsent): result is Unsent {
  return "kind" in result;
}

/** For `onBatch` and Lambda, where the event's own `type` says which call it is. */
export function eventType(event: unknown): EventType | Failure {
  if (!isPlainObject(event)) return notAnObject(event);
  const { type } = event;
  if (type === undefined || type === null || type === "") {
    return invalid(
      `The event has no type: expected ${SENT_TYPES.slice(0, -1).join(", ")} or ${SENT_TYPES.at(-1)}.`,
    );
  }
  return (
    EVENT_TYPES.find((known) => known === type) ??
    unsupported(`Refiner does not support ${describe(type)} events.`)
  );
}

export function mapEvent(
  type: EventType,
  event: unknown,
  options: MappingOptions,
): RefinerCall | Unsent {
  if (!isPlainObject(event)) return notAnObject(event);
  if (type === "alias")
    return unsupported("Refiner cannot merge contacts, so alias events are not sent.");

  const who = contact(event, type);
  if (isOutcome(who)) return who;
  switch (type) {
    case "identify":
      return identifyCall(event, who, options);
    case "group": {
      const groupId = identifier(event.groupId);
      if (groupId === undefined) {
        return invalid("The group event has no groupId: Refiner needs it as the account id.");
      }
      const body: IdentifyBody = { account: account(groupId, objectAt(event, "traits"), options) };
      return { call: "identifyUser", body: withContact(body, who) };
    }
    case "track": {
      const name = nonEmptyString(event.event);
      if (!name)
        return invalid("The track event has no event name: set `event` to a non-empty string.");
      return trackCall(name, who, options);
    }
    case "page":
    case "screen":
      if (!options.sendPageViews) return FILTERED;
      return trackCall(viewName(type, event), who, options);
    case "delete":
      return {
        call: "deleteContact",
        query: who.id !== undefined ? { id: who.id } : { email: who.email ?? "" },
      };
  }
}

/** Top-level identify traits that are not traits: the contact's own ids. */
const SKIP = ["id", "userId", "email"];
const SKIP_WITH_COMPANY = [...SKIP, "company"];
const RESERVED = ["id", "email", "account"];
/** An account's own key: its id is the groupId or company id, never a trait. */
const ACCOUNT_KEYS = ["id"];

/** A track, page or screen as the event Refiner records, unless the event allow list leaves it out. */
function trackCall(name: string, who: Contact, options: MappingOptions): RefinerCall | Unsent {
  if (options.eventAllowList && !options.eventAllowList.has(name)) return FILTERED;
  return { call: "trackEvent", body: withContact({ event: name }, who) };
}

function identifyCall(event: Event, who: Contact, options: MappingOptions): RefinerCall {
  const traits = objectAt(event, "traits");
  const company = objectAt(traits, "company");
  const companyId = identifier(company.id);
  // An Engage audience or computed trait arrives as an identify trait under its own key, which
  // passes the allow list: turning one on must not silently stop audiences.
  const computationKey = nonEmptyString(
    objectAt(objectAt(event, "context"), "personas").computation_key,
  );
  // A company with an id is the contact's account; without one it is just a nested trait.
  const body: IdentifyBody = normalizeTraits(traits, {
    preserveKeys: options.preserveTraitKeys,
    skip: companyId ? SKIP_WITH_COMPANY : SKIP,
    // Refiner reads `account` as the account object: a plain `account` trait would be taken for it.
    reserved: RESERVED,
    selection: {
      rename: options.traitMapping,
      allow: options.traitAllowList,
      deny: options.traitDenyList,
      ...(computationKey ? { alwaysAllow: [computationKey] } : {}),
    },
  });
  if (companyId) body.account = account(companyId, company, options);
  return { call: "identifyUser", body: withContact(body, who) };
}

/** `Viewed {category} {name} Page`, `Viewed {name} Page`, `Viewed {category} Page`, `Loaded a Page`. */
function viewName(type: "page" | "screen", event: Event): string {
  const properties = objectAt(event, "properties");
  const name = nonEmptyString(event.name) ?? nonEmptyString(properties.name);
  const category = nonEmptyString(event.category) ?? nonEmptyString(properties.category);
  const noun = type === "page" ? "Page" : "Screen";
  const words = [category, name].filter(Boolean);
  return words.length ? `Viewed ${words.join(" ")} ${noun}` : `Loaded a ${noun}`;
}

interface Contact {
  id?: string;
  email?: string;
}

/** Where each call's email may come from, first non-empty wins (docs/mapping.md, "Who the contact is"). */
const EMAIL_SOURCES: Record<Exclude<EventType, "alias">, [object: string, key: string][]> = {
  identify: [
    ["traits", "email"],
    ["context.traits", "email"],
  ],
  // A group's traits.email belongs to the account.
  group: [["context.traits", "email"]],
  track: [
    ["context.traits", "email"],
    ["properties", "email"],
  ],
  page: [
    ["context.traits", "email"],
    ["properties", "email"],
  ],
  screen: [
    ["context.traits", "email"],
    ["properties", "email"],
  ],
  delete: [
    ["context.traits", "email"],
    ["traits", "email"],
  ],
};

/** Who the contact is: `userId`, else an email. `anonymousId` is never used (see docs/mapping.md). */
function contact(event: Event, type: Exclude<EventType, "alias">): Contact | Failure {
  const { userId } = event;
  const id = identifier(userId);
  if (id === undefined && userId !== undefined && userId !== null && userId !== "") {
    return invalid(`The ${type} event's userId must be a string or a number.`);
  }
  const sources = EMAIL_SOURCES[type];
  let email: string | undefined;
  for (const [path, key] of sources) {
    const holder =
      path === "context.traits"
        ? objectAt(objectAt(event, "context"), "traits")
        : objectAt(event, path);
    email ??= nonEmptyString(holder[key]);
  }
  if (id === undefined && email === undefined) {
    const where = sources.map(([path, key]) => `${path}.${key}`).join(" or ");
    return {
      kind: "rejected",
      reason: "no-contact",
      message: `This ${type} event needs a userId or an email (${where}); Refiner cannot use an anonymousId alone.`,
    };
  }
  return { id, email };
}

/**
 * Adds `id` and `email` last to a body built for this call. Bodies hold no such trait (see
 * `reserved`), so none can overwrite them. (No copy with object spread: in Node 20 that took
 * 0.67 µs, 25× Object.assign, and this runs for every event.)
 */
function withContact<Body extends object>(body: Body, who: Contact): Body & Who {
  const contact: Body & Who = body;
  if (who.id !== undefined) contact.id = who.id;
  if (who.email !== undefined) contact.email = who.email;
  return contact;
}

/** An account: its id, and its traits as the account trait mapping and the lists choose them. */
function account(id: string, traits: Event, options: MappingOptions): AccountBody {
  const normalized = normalizeTraits(traits, {
    preserveKeys: options.preserveTraitKeys,
    skip: ACCOUNT_KEYS,
    reserved: ACCOUNT_KEYS,
    selection: {
      rename: options.accountTraitMapping,
      allow: options.traitAllowList,
      deny: options.traitDenyList,
    },
  });
  // Written last, like a contact's id: no trait can take its place.
  return Object.assign(normalized, { id });
}

/** What objectAt gives for a missing object: one shared, frozen empty object, read only. */
const NONE: Event = Object.freeze({});

function objectAt(object: Event, key: string): Event {
  const value = Object.hasOwn(object, key) ? object[key] : undefined;
  return isPlainObject(value) ? value : NONE;
}

/** A userId, groupId or company id: a non-empty string, or a number as its string. */
function identifier(value: unknown): string | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return nonEmptyString(value);
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function notAnObject(event: unknown): Failure {
  const what = event === null ? "null" : Array.isArray(event) ? "an array" : typeof event;
  return invalid(`The event must be a JSON object, not ${what}.`);
}

function describe(type: unknown): string {
  return typeof type === "string" ? `"${type.slice(0, 50)}"` : `${typeof type}-typed`;
}
