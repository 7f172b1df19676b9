// CloudWatch embedded metric format: one JSON line per invocation on standard output, which
// CloudWatch turns into metrics with no API call. Written here rather than with Powertools: its
// metrics and commons packages add about 116 KB to a bundle whose cold start is guarded (README,
// "Performance"), for what fits in this file.
//
// The line goes to process.stdout itself: Lambda's JSON log format wraps console output in its own
// object, and CloudWatch reads embedded metrics only from a line that is the object.

/** What every handler counts, by name. */
export type MetricName =
  | "Delivered"
  | "Queued"
  | "SkippedUnchanged"
  | "SkippedDelivered"
  | "Rejected"
  | "Retried"
  | "Throttled"
  | "DeliveredTableUnavailable";

export const NAMESPACE = "RefinerDestination";

export interface Metrics {
  count(name: MetricName, value?: number): void;
  /** Writes what was counted since the last flush as one line, if anything was. */
  flush(): void;
}

export function embeddedMetrics(
  functionName: string,
  write: (line: string) => void = (line) => process.stdout.write(line),
  now: () => number = Date.now,
): Metrics {
  let counts = new Map<MetricName, number>();
  return {
    count(name, value = 1) {
      counts.set(name, (counts.get(name) ?? 0) + value);
    },
    flush() {
      if (counts.size === 0) return;
      const names = [...counts.keys()];
      const line = {
        _aws: {
          Timestamp: now(),
          CloudWatchMetrics: [
            {
              Namespace: NAMESPACE,
              Dimensions: [["Function"]],
              Metrics: names.map((name) => ({ Name: name, Unit: "Count" })),
            },
          ],
        },
        Function: functionName,
        ...Object.fromEntries(counts),
      };
      counts = new Map();
      write(`${JSON.stringify(line)}\n`);
    },
  };
}
