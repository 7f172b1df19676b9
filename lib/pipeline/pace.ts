// A token bucket: at most `perMinute` requests a minute, in bursts of at most `capacity` (a tenth of
// a second's worth unless told), so Refiner's own limit (4,000 a minute per key) is never the thing
// that stops us. With a capacity of 1 it is a plain spacer: no two starts closer than 1/rate.

export interface RateLimiter {
  /** Resolves when one more request may start. */
  take(): Promise<void>;
}

export function tokenBucket(
  perMinute: number,
  now = () => Date.now(),
  capacity = Math.max(1, perMinute / 600),
): RateLimiter {
  const perMs = perMinute / 60_000;
  let tokens = capacity;
  let last = now();
  let queue: Promise<void> = Promise.resolve();

  const refill = () => {
    const current = now();
    tokens = Math.min(capacity, tokens + (current - last) * perMs);
    last = current;
  };

  return {
    take() {
      // Callers are served in order: each waits for the one before it.
      const turn = queue.then(async () => {
        refill();
        if (tokens < 1) {
          await new Promise((resolve) => setTimeout(resolve, Math.ceil((1 - tokens) / perMs)));
          refill();
        }
        tokens -= 1;
      });
      queue = turn;
      return turn;
    },
  };
}
