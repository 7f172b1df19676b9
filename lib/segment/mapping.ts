// A validated Segment event → the Refiner call it becomes (docs/mapping.md), or Filtered where the
// settings leave it out. Pure: no I/O, no clock. What can be wrong with an event is found before,
// by validateEvent (lib/segment/event.ts): here every event has what its call needs.

import { FILTERED, type Filtered, type Unsent } from "../outcome.ts";
import type { AccountBody, IdentifyBody, RefinerCall, Who } from "../refiner/client.ts";
import type { SelectionSettings } from "../settings.ts";
import {
  type Contact,
  type EventType,
  type Fields,
  identifier,
  objectAt,
  type SegmentEvent,
  validateEvent,
} from "./event.ts";
import { isPlainObject, type KeyNotice, normalizeTraits } from "./traits.ts";

/** The settings the mapping reads, and who hears of trait keys it drops or merges. */
export type MappingOptions = SelectionSettings & { notice?: KeyNotice | undefined };

/** Whether a result is what became of the event (a failure, or filtered) rather than a call. */
export function isOutcome<T extends object>(result: T | Unsent): result is Unsent {
  return "kind" in result;
}

/** The Refiner call for an event as the call `type`, or what became of it instead. */
export function mapEvent(
  type: EventType,
  event: unknown,
  options: MappingOptions,
): RefinerCall | Unsent {
  if (takenByWebClient(type, event)) return FILTERED;
  const valid = validateEvent(type, event);
  return isOutcome(valid) ? valid : refinerCall(valid, options);
}

/**
 * Where the browser plugin (lib/browser/) marks an event Refiner's web client took:
 * `context.refiner.webClient` is `true` (docs/browser.md). Only tracks, pages and screens are
 * skipped for it; identifies and groups go both ways, as Refiner takes them again unchanged.
 */
export const WEB_CLIENT_MARK = { context: "refiner", key: "webClient" } as const;

/** A track, page or screen that Refiner's web client already took: sent again, it would count twice. */
export function takenByWebClient(type: EventType, event: unknown): boolean {
  return (
    (type === "track" || type === "page" || type === "screen") &&
    isPlainObject(event) &&
    objectAt(objectAt(event, "context"), WEB_CLIENT_MARK.context)[WEB_CLIENT_MARK.key] === true
  );
}

/** A validated event's Refiner call; Filtered where the settings leave it out. */
export function refinerCall(event: SegmentEvent, options: MappingOptions): RefinerCall | Filtered {
  const { who } = event;
  switch (event.type) {
    case "identify":
      return identifyCall(event, options);
    case "group": {
      const body: IdentifyBody = { account: account(event.groupId, event.traits, options) };
      return { call: "identifyUser", body: withContact(body, who) };
    }
    case "track":
      return trackCall(event.event, who, options);
    case "page":
    case "screen":
      if (!options.sendPageViews) return FILTERED;
      return trackCall(viewName(event), who, options);
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
function trackCall(name: string, who: Contact, options: MappingOptions): RefinerCall | Filtered {
  if (options.eventAllowList && !options.eventAllowList.has(name)) return FILTERED;
  return { call: "trackEvent", body: withContact({ event: name }, who) };
}

function identifyCall(
  { who, traits, computationKey }: Extract<SegmentEvent, { type: "identify" }>,
  options: MappingOptions,
): RefinerCall {
  const company = objectAt(traits, "company");
  const companyId = identifier(company.id);
  // A company with an id is the contact's account; without one it is just a nested trait.
  const body: IdentifyBody = normalizeTraits(traits, {
    preserveKeys: options.preserveTraitKeys,
    notice: options.notice,
    skip: companyId ? SKIP_WITH_COMPANY : SKIP,
    // Refiner reads `account` as the account object: a plain `account` trait would be taken for it.
    reserved: RESERVED,
    selection: {
      rename: options.traitMapping,
      allow: options.traitAllowList,
      deny: options.traitDenyList,
      // An Engage audience or computed trait arrives as an identify trait under its own key, which
      // passes the allow list: turning one on must not silently stop audiences.
      ...(computationKey ? { alwaysAllow: [computationKey] } : {}),
    },
  });
  if (companyId) body.account = account(companyId, company, options);
  return { call: "identifyUser", body: withContact(body, who) };
}

/** `Viewed {category} {name} Page`, `Viewed {name} Page`, `Viewed {category} Page`, `Loaded a Page`. */
function viewName({ type, name, category }: Extract<SegmentEvent, { type: "page" | "screen" }>) {
  const noun = type === "page" ? "Page" : "Screen";
  const words = [category, name].filter(Boolean);
  return words.length ? `Viewed ${words.join(" ")} ${noun}` : `Loaded a ${noun}`;
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
function account(id: string, traits: Fields, options: MappingOptions): AccountBody {
  const normalized = normalizeTraits(traits, {
    preserveKeys: options.preserveTraitKeys,
    notice: options.notice,
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
