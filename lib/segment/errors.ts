// Segment's error classes (lib/runtimes/doors.ts says which one an Outcome becomes). Segment decides
// retry-or-discard by the class an event's handler throws, and it only recognises its own classes,
// so inside Segment we must throw those. Segment provides them to the pasted script as free names;
// Lambda, the CLI and tests get look-alikes with the same names and the same `new X(message)`
// shape. The destination throws these three and no other (docs/mapping.md, "Outcomes").

export type SegmentErrorClass = new (message?: string) => Error;

// Free names resolved from the scope Segment runs the script in (a global or a wrapper argument).
// `typeof` on an undeclared name is safe, so this also works where they do not exist.
declare const RetryError: unknown;
declare const ValidationError: unknown;
declare const EventNotSupported: unknown;

/** Segment's class when the runtime provides it (`false` when it does not), else a look-alike. */
function orLookAlike(provided: unknown, name: string): SegmentErrorClass {
  if (typeof provided === "function") return provided as SegmentErrorClass;
  const lookAlike = class extends Error {
    override name = name;
  };
  Object.defineProperty(lookAlike, "name", { value: name });
  return lookAlike;
}

export const SegmentErrors = {
  RetryError: orLookAlike(typeof RetryError === "function" && RetryError, "RetryError"),
  ValidationError: orLookAlike(
    typeof ValidationError === "function" && ValidationError,
    "ValidationError",
  ),
  EventNotSupported: orLookAlike(
    typeof EventNotSupported === "function" && EventNotSupported,
    "EventNotSupported",
  ),
};
