// The one back-off of every retry that waits (the queue consumer's visibility, `send`'s per-contact
// queues): the first wait doubling at each try, never shorter than Refiner's Retry-After, never
// longer than the most a waiter allows. Units are the caller's (seconds, milliseconds).

/** The wait after the `tries`-th try failed (tries counts from 1). */
export function backoff(tries: number, first: number, most: number, retryAfter = 0): number {
  return Math.min(most, Math.max(first * 2 ** (tries - 1), retryAfter));
}
