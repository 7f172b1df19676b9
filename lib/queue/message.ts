// What one SQS message carries: one Refiner request, planned at the door (a contact's identifies and
// groups already merged), and the events it delivers. The consumer sends it as it is, so the queue
// costs no more Refiner requests than direct delivery.
//
// The body is JSON with every character outside ASCII written as a \uXXXX escape. SQS refuses
// U+FFFE and U+FFFF in a message, and fauxqs everything above U+FFFF, while JSON.stringify leaves
// them raw; escaped, any event is accepted, and JSON.parse gives back the same text.

import { invalid, type Unsent } from "../outcome.ts";
import { ENDPOINTS, type RefinerCall } from "../refiner/client.ts";
import { eventType } from "../segment/event.ts";
import { isOutcome, mapEvent } from "../segment/mapping.ts";
import { isPlainObject } from "../segment/traits.ts";
import type { Settings } from "../settings.ts";

/** An event a message delivers, for de-duplication and logs: never its traits. */
export interface QueuedEvent {
  messageId?: string;
  type: string;
}

export interface QueuedMessage {
  /** The format's version. A body without it is one Segment event, as the first version queued. */
  refiner: 1;
  call: RefinerCall;
  events: QueuedEvent[];
  /**
   * A request too large for one message goes in several, each with some of its traits (part 1 of
   * `parts`, 2 of …), in order in the contact's group. Absent: the whole request.
   */
  part?: number;
  parts?: number;
}

export function encodeMessage(message: QueuedMessage): string {
  return asciiJson(JSON.stringify(message));
}

/** JSON text with every character outside ASCII written as a \uXXXX escape. */
export function asciiJson(json: string): string {
  return json.replace(
    /[\u0080-\uffff]/g,
    (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A message's request and events, or why it can never be delivered. */
export function decodeMessage(
  body: string,
  settings: Settings,
): Omit<QueuedMessage, "refiner"> | Unsent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return invalid("The message body is not JSON.");
  }
  if (isPlainObject(parsed) && parsed.refiner === 1) {
    const { call, events, part, parts } = parsed;
    if (!isRefinerCall(call) || !Array.isArray(events)) {
      return invalid("The message holds no Refiner request the destination knows.");
    }
    const split =
      typeof part === "number" && typeof parts === "number" && part >= 1 && part <= parts
        ? { part, parts }
        : {};
    return { call, events: events as QueuedEvent[], ...split };
  }
  // Queued by the first version: one Segment event, mapped here.
  const type = eventType(parsed);
  const call = typeof type === "string" ? mapEvent(type, parsed, settings) : type;
  if (isOutcome(call)) return call;
  const { messageId } = parsed as { messageId?: unknown };
  return {
    call,
    events: [{ type: String(type), ...(typeof messageId === "string" ? { messageId } : {}) }],
  };
}

function isRefinerCall(value: unknown): value is RefinerCall {
  if (
    !isPlainObject(value) ||
    typeof value.call !== "string" ||
    !Object.hasOwn(ENDPOINTS, value.call)
  ) {
    return false;
  }
  return value.call === "deleteContact" ? isPlainObject(value.query) : isPlainObject(value.body);
}
