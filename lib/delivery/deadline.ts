// A call to AWS (SQS, DynamoDB, Secrets Manager) at a door must not outlast the door's deadline: an
// endpoint that accepts the connection and never answers would otherwise hold the answer to Segment
// until the function times out, and the SDK's own request timeouts only bound each attempt.

/** Thrown when a call was given up at its deadline. */
export class DeadlineError extends Error {
  override name = "TimeoutError";
}

/**
 * `call`, given up after `ms`: its signal aborts (the SDK then drops the request) and the result
 * rejects with a DeadlineError whether or not the call stops.
 */
export async function withinMs<T>(
  ms: number,
  what: string,
  call: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => {
        const error = new DeadlineError(`${what} did not answer within ${Math.round(ms)} ms`);
        controller.abort(error);
        reject(error);
      },
      Math.max(0, ms),
    );
  });
  try {
    return await Promise.race([call(controller.signal), late]);
  } finally {
    clearTimeout(timer);
  }
}
