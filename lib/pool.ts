// A few async jobs at a time: the pipeline's Refiner requests, SQS's SendMessageBatch calls and
// DynamoDB's batch calls each go through it with their own limit. A leaf: it imports nothing.

/** Runs `work` over `items` with at most `limit` at once, in order of start. */
export async function pool<T>(
  items: readonly T[],
  work: (item: T) => Promise<void>,
  limit: number,
): Promise<void> {
  // One iterator for every worker: each takes the next item when it is free.
  const queue = items.values();
  const worker = async () => {
    for (let next = queue.next(); !next.done; next = queue.next()) await work(next.value);
  };
  const workers: Promise<void>[] = [];
  while (workers.length < limit && workers.length < items.length) workers.push(worker());
  await Promise.all(workers);
}
