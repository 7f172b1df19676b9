// A Segment event as it arrives is `unknown`: any JSON, or none. validateEvent() is the one place
// that reads it, and what comes out is a SegmentEvent: the call it is, whom it is about, and what
// that call needs, typed (docs/mapping.md, "Who the contact is" and "Each call"). Pure: no I/O, no
// clock. lib/segment/mapping.ts turns a SegmentEvent into the Refiner call.

import { type Failure, invalid, unsupported } from "../outcome.ts";
import { isPlainObject } from "./traits.ts";

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
export const SENT_TYPES = /* @__PURE__ */ EVENT_TYPES.filter((type) => type !== "alias");

/** The Segment function's single-event handlers: `onIdentify` → identify, … */
export const SEGMENT_HANDLERS = /* @__PURE__ */ Object.fromEntries(
  /* @__PURE__ */ EVENT_TYPES.map((type) => [`on${type[0]?.toUpperCase()}${type.slice(1)}`, type]),
) as Record<SegmentHandlerName, EventType>;

/** An object of the event's (traits, properties), its values not yet checked. */
export type Fields = Readonly<Record<string, unknown>>;

/** Whom an event is about: its userId, else an email; at least one of them. */
export interface Contact {
  id?: string;
  email?: string;
}

/** An event once validated: a call Refiner can take, with whom it is about. */
export type SegmentEvent =
  | {
      type: "identify";
      who: Contact;
      traits: Fields;
      /** An Engage audience's or computed trait's own key (context.personas.computation_key). */
      computationKey: string | undefined;
    }
  | { type: "group"; who: Contact; groupId: string; traits: Fields }
  | { type: "track"; who: Contact; event: string }
  /** Its name and category: the event's own, else its properties'. */
  | { type: "page" | "screen"; who: Contact; name?: string; category?: string }
  | { type: "delete"; who: Contact };

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

/**
 * The event as the call `type` (a handler's, or its own), or the Failure that says what to fix.
 * `visitor`: whom the event is about when the caller knows it itself (Refiner's web client, for the
 * browser plugin's tracks), instead of the event's userId or email.
 */
export function validateEvent(
  type: EventType,
  event: unknown,
  visitor?: Contact,
): SegmentEvent | Failure {
  if (!isPlainObject(event)) return notAnObject(event);
  if (type === "alias") {
    return unsupported("Refiner cannot merge contacts, so alias events are not sent.");
  }
  const who = visitor ?? contact(event, type);
  if ("kind" in who) return who;
  switch (type) {
    case "identify":
      return {
        type,
        who,
        traits: objectAt(event, "traits"),
        computationKey: nonEmptyString(
          objectAt(objectAt(event, "context"), "personas").computation_key,
        ),
      };
    case "group": {
      const groupId = identifier(event.groupId);
      if (groupId === undefined) {
        return invalid("The group event has no groupId: Refiner needs it as the account id.");
      }
      return { type, who, groupId, traits: objectAt(event, "traits") };
    }
    case "track": {
      const name = nonEmptyString(event.event);
      if (!name) {
        return invalid("The track event has no event name: set `event` to a non-empty string.");
      }
      return { type, who, event: name };
    }
    case "page":
    case "screen": {
      const properties = objectAt(event, "properties");
      return {
        type,
        who,
        name: nonEmptyString(event.name) ?? nonEmptyString(properties.name),
        category: nonEmptyString(event.category) ?? nonEmptyString(properties.category),
      };
    }
    case "delete":
      return { type, who };
  }
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
function contact(event: Fields, type: Exclude<EventType, "alias">): Contact | Failure {
  const { userId } = event;
  const id = identifier(userId);
  if (typeof userId === "string" && userId !== "" && id === undefined) {
    return {
      kind: "rejected",
      reason: "no-contact",
      message: `The ${type} event's userId is only white space: send the user's id, or an email.`,
    };
  }
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

/** What objectAt gives for a missing object: one shared, frozen empty object, read only. */
const NONE: Fields = Object.freeze({});

/** The object at `key`; anything else there (absent, text, a list) counts as no object. */
export function objectAt(object: Fields, key: string): Fields {
  const value = Object.hasOwn(object, key) ? object[key] : undefined;
  return isPlainObject(value) ? value : NONE;
}

/**
 * A userId, groupId or company id: a string with something other than white space in it (sent as
 * written), or a number as its string.
 */
export function identifier(value: unknown): string | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return typeof value === "string" && value.trim() !== "" ? value : undefined;
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
