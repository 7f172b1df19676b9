// What each outcome does at each door, in one table (docs/architecture.md, "Outcomes at the doors").
// decide.ts says what became of an event; this says how every door answers it. The doors read
// their column here and do nothing else with an Outcome.

import type { Failure, Outcome } from "../outcome.ts";
import { SegmentErrors } from "../segment/errors.ts";

/** What became of an event, as the doors tell the cases apart. */
export type OutcomeClass =
  | "done"
  | "filtered"
  | "invalid"
  | "no-contact"
  | "unsupported"
  | "api-key"
  | "throttled"
  | "retry"
  | "until-fixed";

export interface DoorAnswers {
  /** The Segment function's single handlers: resolve, or throw this class of Segment's. */
  function: "resolve" | "RetryError" | "ValidationError" | "EventNotSupported";
  /** An `onBatch` item's status, and a Lambda array item's. */
  batchItem: 200 | 400 | 401 | 429 | 500;
  /** Lambda `segment`, one event: return this status, or throw a RetryError. */
  lambda: 200 | 400 | 401 | "throw";
  /** Lambda `webhook`, one event: the HTTP status Segment receives. */
  webhook: 200 | 400 | 429 | 503;
  /** The queue consumer `deliver`: delete the message, or keep it with the growing back-off. */
  deliver: "delete" | "back-off";
  /** `send`: where the event's line goes. */
  send: "delivered" | "skipped" | "rejected" | "retried" | "halt";
}

function row(
  fn: DoorAnswers["function"],
  batchItem: DoorAnswers["batchItem"],
  lambda: DoorAnswers["lambda"],
  webhook: DoorAnswers["webhook"],
  deliver: DoorAnswers["deliver"],
  send: DoorAnswers["send"],
): DoorAnswers {
  return { function: fn, batchItem, lambda, webhook, deliver, send };
}

/**
 * The table. Segment retries RetryError, 408/423/429/5xx but 501, and discards the rest. For what
 * the queue holds Segment already has its 200: there a refused key waits to be fixed.
 */
export const DOORS: Record<OutcomeClass, DoorAnswers> = {
  done: row("resolve", 200, 200, 200, "delete", "delivered"),
  filtered: row("resolve", 200, 200, 200, "delete", "skipped"),
  invalid: row("ValidationError", 400, 400, 400, "delete", "rejected"),
  "no-contact": row("ValidationError", 400, 400, 400, "delete", "skipped"),
  unsupported: row("EventNotSupported", 400, 400, 400, "delete", "skipped"),
  "api-key": row("ValidationError", 401, 401, 400, "back-off", "halt"),
  throttled: row("RetryError", 429, "throw", 429, "back-off", "retried"),
  retry: row("RetryError", 500, "throw", 503, "back-off", "retried"),
  // A refused key in the consumer, or a broken configuration in Lambda: retryable until fixed.
  "until-fixed": row("RetryError", 500, "throw", 503, "back-off", "retried"),
};

export function classOf(outcome: Outcome): OutcomeClass {
  if (outcome.kind === "done") return outcome.via === "filtered" ? "filtered" : "done";
  if (outcome.kind === "rejected") return outcome.reason;
  if (outcome.cause) return "until-fixed";
  return outcome.status === 429 ? "throttled" : "retry";
}

/** How a door answers this outcome. */
export function answerOf(outcome: Outcome): DoorAnswers {
  return DOORS[classOf(outcome)];
}

/** The Segment error class for a failure, for the single-event handlers. */
export function toSegmentError(outcome: Failure): Error {
  const name = answerOf(outcome).function;
  return new SegmentErrors[name === "resolve" ? "ValidationError" : name](outcome.message);
}

export interface BatchItem {
  status: number;
  errormessage?: string;
}

/** One `onBatch` result. Segment retries only the items whose status calls for it. */
export function toBatchItem(outcome: Outcome): BatchItem {
  const status = answerOf(outcome).batchItem;
  return outcome.kind === "done" ? { status } : { status, errormessage: outcome.message };
}
