// A call to AWS (SQS, DynamoDB, Secrets Manager) at a door must not outlast the door's deadline: an
// endpoint that accepts the connection and never answers would otherwise hold the answer to Segment
// until the function times out, and the SDK's own request timeouts only bound each attempt.

/** Thrown when a call was given up at its deadline. */
export class DeadlineError extends Error {
  override name = "TimeoutError";
}

/**
 * `call`, given up at `deadline` (epoch ms, on Date.now(), the clock the doors' deadlines use): its
 * signal aborts (the SDK then drops the request) and the result rejects with a DeadlineError
 * whether or not the call stops. A timer that fires early by that clock (a test holding it still)
 * waits again.
 */
export async function beforeDeadline<T>(
  deadline: number,
  what: string,
  call: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const ms = Math.max(0, Math.round(deadline - Date.now()));
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    const check = () => {
      const left = deadline - Date.now();
      if (left > 0) {
        timer = setTimeout(check, left);
        return;
      }
      const error = new DeadlineError(`${what} did not answer within ${ms} ms`);
      controller.abort(error);
      reject(error);
    };
    check();
  });
  try {
    return await Promise.race([call(controller.signal), late]);
  } finally {
    clearTimeout(timer);
  }
}
