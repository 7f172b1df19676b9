// Segment event → the Refiner call it becomes (MAPPING.md). Pure: no I/O, no clock.

import { invalid, type Outcome, unsupported } from "./outcome.ts";
import type { RefinerCall } from "./refiner.ts";
import { isPlainObject, normalizeTraits, type Traits } from "./traits.ts";

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

export type Mapped = { ok: true; call: RefinerCall } | { ok: false; outcome: Outcome };

export interface MappingOptions {
  preserveTraitKeys: boolean;
}

/** For `onBatch` and Lambda, where the event's own `type` says which call it is. */
export function eventType(
  event: unknown,
): { ok: true; type: EventType } | { ok: false; outcome: Outcome } {
  if (!isPlainObject(event)) return { ok: false, outcome: notAnObject(event) };
  const { type } = event;
  if (type === undefined || type === null || type === "") {
    return {
      ok: false,
      outcome: invalid(
        "The event has no type: expected identify, group, track, page, screen or delete.",
      ),
    };
  }
  if (typeof type === "string" && (EVENT_TYPES as readonly string[]).includes(type)) {
    return { ok: true, type: type as EventType };
  }
  return {
    ok: false,
    outcome: unsupported(`Refiner does not support ${describeType(type)} events.`),
  };
}

export function mapEvent(type: EventType, event: unknown, options: MappingOptions): Mapped {
  if (!isPlainObject(event)) return { ok: false, outcome: notAnObject(event) };
  switch (type) {
    case "identify":
      return mapIdentify(event, options);
    case "group":
      return mapGroup(event, options);
    case "track":
      return mapTrack(event);
    case "page":
    case "screen":
      return mapView(type, event);
    case "delete":
      return mapDelete(event);
    case "alias":
      return {
        ok: false,
        outcome: unsupported("Refiner cannot merge contacts, so alias events are not sent."),
      };
  }
}

function mapIdentify(event: Record<string, unknown>, options: MappingOptions): Mapped {
  const traits = objectAt(event, "traits");
  const who = contact(event, "identify", [traits.email, contextTraits(event).email]);
  if (!who.ok) return who;

  const { company, ...rest } = traits;
  const companyId = isPlainObject(company) ? identifier(company.id) : undefined;
  // A company with an id is the contact's account; without one it is just a nested trait.
  const body: Record<string, unknown> = normalizeTraits(companyId ? rest : traits, {
    preserveKeys: options.preserveTraitKeys,
    skip: ["id", "userId", "email"],
  });
  if (companyId && isPlainObject(company)) {
    body.account = account(companyId, company, options);
  }
  return { ok: true, call: { call: "identifyUser", body: withContact(body, who) } };
}

function mapGroup(event: Record<string, unknown>, options: MappingOptions): Mapped {
  // A group's traits.email belongs to the account, so only context.traits.email names the contact.
  const who = contact(event, "group", [contextTraits(event).email]);
  if (!who.ok) return who;
  const groupId = identifier(event.groupId);
  if (groupId === undefined) {
    return {
      ok: false,
      outcome: invalid("The group event has no groupId: Refiner needs it as the account id."),
    };
  }
  const body = { account: account(groupId, objectAt(event, "traits"), options) };
  return { ok: true, call: { call: "identifyUser", body: withContact(body, who) } };
}

function mapTrack(event: Record<string, unknown>): Mapped {
  const who = contact(event, "track", eventEmails(event));
  if (!who.ok) return who;
  const name = nonEmptyString(event.event);
  if (!name) {
    return {
      ok: false,
      outcome: invalid("The track event has no event name: set `event` to a non-empty string."),
    };
  }
  return { ok: true, call: { call: "trackEvent", body: withContact({ event: name }, who) } };
}

function mapView(type: "page" | "screen", event: Record<string, unknown>): Mapped {
  const who = contact(event, type, eventEmails(event));
  if (!who.ok) return who;
  return {
    ok: true,
    call: { call: "trackEvent", body: withContact({ event: viewName(type, event) }, who) },
  };
}

/** `Viewed {category} {name} Page`, `Viewed {name} Page`, `Viewed {category} Page`, `Loaded a Page`. */
export function viewName(type: "page" | "screen", event: Record<string, unknown>): string {
  const properties = objectAt(event, "properties");
  const name = nonEmptyString(event.name) ?? nonEmptyString(properties.name);
  const category = nonEmptyString(event.category) ?? nonEmptyString(properties.category);
  const noun = type === "page" ? "Page" : "Screen";
  const words = [category, name].filter(Boolean);
  return words.length ? `Viewed ${words.join(" ")} ${noun}` : `Loaded a ${noun}`;
}

function mapDelete(event: Record<string, unknown>): Mapped {
  const who = contact(event, "delete", [
    contextTraits(event).email,
    objectAt(event, "traits").email,
  ]);
  if (!who.ok) return who;
  const query = who.id !== undefined ? { id: who.id } : { email: who.email as string };
  return { ok: true, call: { call: "deleteContact", query } };
}

interface Contact {
  ok: true;
  id?: string;
  email?: string;
}

/** Who the contact is: `userId`, else an email. `anonymousId` is never used (see MAPPING.md). */
function contact(
  event: Record<string, unknown>,
  type: string,
  emails: unknown[],
): Contact | { ok: false; outcome: Outcome } {
  const { userId } = event;
  if (
    userId !== undefined &&
    userId !== null &&
    identifier(userId) === undefined &&
    userId !== ""
  ) {
    return {
      ok: false,
      outcome: invalid(`The ${type} event's userId must be a string or a number.`),
    };
  }
  const id = identifier(userId);
  const email = emails.map(nonEmptyString).find(Boolean);
  if (id === undefined && email === undefined) {
    return {
      ok: false,
      outcome: invalid(
        `This ${type} event needs a userId or an email (${emailSources(type)}); Refiner cannot use an anonymousId alone.`,
      ),
    };
  }
  return { ok: true, id, email };
}

function emailSources(type: string): string {
  if (type === "identify") return "traits.email or context.traits.email";
  if (type === "group") return "context.traits.email";
  if (type === "delete") return "context.traits.email or traits.email";
  return "context.traits.email or properties.email";
}

/** `id` and `email` go last, so no trait can overwrite them. */
function withContact(body: Record<string, unknown>, who: Contact): Record<string, unknown> {
  const out = Object.fromEntries(
    Object.entries(body).filter(([key]) => key !== "id" && key !== "email"),
  );
  if (who.id !== undefined) out.id = who.id;
  if (who.email !== undefined) out.email = who.email;
  return out;
}

function account(id: string, traits: Record<string, unknown>, options: MappingOptions): Traits {
  const normalized = normalizeTraits(traits, {
    preserveKeys: options.preserveTraitKeys,
    skip: ["id"],
  });
  delete normalized.id;
  return { ...normalized, id };
}

function eventEmails(event: Record<string, unknown>): unknown[] {
  return [contextTraits(event).email, objectAt(event, "properties").email];
}

function contextTraits(event: Record<string, unknown>): Record<string, unknown> {
  return objectAt(objectAt(event, "context"), "traits");
}

function objectAt(object: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = Object.hasOwn(object, key) ? object[key] : undefined;
  return isPlainObject(value) ? value : {};
}

/** A userId, groupId or company id: a non-empty string, or a number as its string. */
function identifier(value: unknown): string | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return nonEmptyString(value);
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function notAnObject(event: unknown): Outcome {
  const what = event === null ? "null" : Array.isArray(event) ? "an array" : typeof event;
  return invalid(`The event must be a JSON object, not ${what}.`);
}

function describeType(type: unknown): string {
  return typeof type === "string" ? `"${type.slice(0, 50)}"` : `${typeof type}-typed`;
}
