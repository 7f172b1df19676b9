// Segment's error classes. Segment decides retry-or-discard by the class an event's handler throws,
// and it only recognises its own classes, so inside Segment we must throw those. Segment provides
// them to the pasted script as free names; Lambda, the CLI and tests get look-alikes with the same
// names and the same `new X(message)` shape.

export type SegmentErrorClass = new (message?: string) => Error;

// Free names resolved from the scope Segment runs the script in (a global or a wrapper argument).
// `typeof` on an undeclared name is safe, so this also works where they do not exist.
declare const RetryError: SegmentErrorClass | undefined;
declare const ValidationError: SegmentErrorClass | undefined;
declare const EventNotSupported: SegmentErrorClass | undefined;
declare const InvalidEventPayload: SegmentErrorClass | undefined;

function lookAlike(name: string): SegmentErrorClass {
  const cls = class extends Error {
    constructor(message?: string) {
      super(message);
      this.name = name;
    }
  };
  Object.defineProperty(cls, "name", { value: name });
  return cls;
}

function provided(cls: unknown): SegmentErrorClass | undefined {
  return typeof cls === "function" ? (cls as SegmentErrorClass) : undefined;
}

export const SegmentErrors = {
  RetryError:
    provided(typeof RetryError === "undefined" ? undefined : RetryError) ?? lookAlike("RetryError"),
  ValidationError:
    provided(typeof ValidationError === "undefined" ? undefined : ValidationError) ??
    lookAlike("ValidationError"),
  EventNotSupported:
    provided(typeof EventNotSupported === "undefined" ? undefined : EventNotSupported) ??
    lookAlike("EventNotSupported"),
  InvalidEventPayload:
    provided(typeof InvalidEventPayload === "undefined" ? undefined : InvalidEventPayload) ??
    lookAlike("InvalidEventPayload"),
} as const;
