// CloudWatch embedded metric format: JSON lines on standard output, which CloudWatch turns into
// metrics with no API call. Written here rather than with Powertools: its metrics and commons
// packages add about 116 KB to the Lambda bundle, whose cold start is guarded (README,
// "Performance"), for what fits in this file.
//
// Lines go to process.stdout itself, not through `console`, which Lambda's runtime patches to wrap
// what it is given, so that each reaches CloudWatch as the JSON object it is (as Powertools writes).

import type { Outcome } from "../outcome.ts";

/**
 * Every metric, in namespace RefinerDestination with one dimension, Service: the stack (its
 * functions' common name, `refiner-segment-destination-prod`). One set of metrics per stack keeps
 * alarms simple and custom metrics few; Lambda's own metrics are per function.
 */
export const METRICS = {
  Delivered: "Count",
  Queued: "Count",
  SkippedUnchanged: "Count",
  SkippedDelivered: "Count",
  Filtered: "Count",
  Rejected: "Count",
  RejectedInvalid: "Count",
  RejectedNoContact: "Count",
  RejectedUnsupported: "Count",
  RejectedApiKey: "Count",
  Retried: "Count",
  Throttled: "Count",
  ApiKeyRefused: "Count",
  Misconfigured: "Count",
  DeliveredTableUnavailable: "Count",
  TraitKeyEmpty: "Count",
  TraitKeyCollision: "Count",
  RefinerLatency: "Milliseconds",
} as const;

export type MetricName = keyof typeof METRICS;

export const NAMESPACE = "RefinerDestination";

/** CloudWatch takes at most 100 values of one metric in one line. */
const MAX_VALUES = 100;

export interface Metrics {
  count(name: MetricName, value?: number): void;
  /** One measurement (Refiner's latency); each is kept, for percentiles. */
  record(name: MetricName, value: number): void;
  /** Writes what was measured since the last flush as one line, if anything was. */
  flush(): void;
}

export function embeddedMetrics(
  service: string,
  write: (line: string) => void = (line) => process.stdout.write(line),
  now: () => number = Date.now,
): Metrics {
  let counts = new Map<MetricName, number>();
  let values = new Map<MetricName, number[]>();
  const metrics: Metrics = {
    count(name, value = 1) {
      counts.set(name, (counts.get(name) ?? 0) + value);
    },
    record(name, value) {
      const list = values.get(name) ?? [];
      list.push(value);
      values.set(name, list);
      if (list.length === MAX_VALUES) metrics.flush();
    },
    flush() {
      if (counts.size === 0 && values.size === 0) return;
      const names = [...counts.keys(), ...values.keys()];
      const line = {
        _aws: {
          Timestamp: now(),
          CloudWatchMetrics: [
            {
              Namespace: NAMESPACE,
              Dimensions: [["Service"]],
              Metrics: names.map((name) => ({ Name: name, Unit: METRICS[name] })),
            },
          ],
        },
        Service: service,
        ...Object.fromEntries(counts),
        ...Object.fromEntries(values),
      };
      counts = new Map();
      values = new Map();
      write(`${JSON.stringify(line)}\n`);
    },
  };
  return metrics;
}

/** The stack a function belongs to: its name without the function's own (serverless.yml). */
export function serviceOf(functionName: string | undefined): string {
  return functionName ? functionName.replace(/-(segment|webhook|deliver)$/, "") : "local";
}

const REJECTED: Record<Extract<Outcome, { kind: "rejected" }>["reason"], MetricName> = {
  invalid: "RejectedInvalid",
  "no-contact": "RejectedNoContact",
  unsupported: "RejectedUnsupported",
  "api-key": "RejectedApiKey",
};

type Via = NonNullable<Extract<Outcome, { kind: "done" }>["via"]>;

const DONE_VIA: Record<Via, MetricName> = {
  unchanged: "SkippedUnchanged",
  "already-delivered": "SkippedDelivered",
  queued: "Queued",
  filtered: "Filtered",
};

/** Counts what became of each event. */
export function countOutcomes(metrics: Metrics, outcomes: readonly Outcome[]): void {
  for (const outcome of outcomes) {
    if (outcome.kind === "done") {
      metrics.count(outcome.via ? DONE_VIA[outcome.via] : "Delivered");
    } else if (outcome.kind === "rejected") {
      metrics.count("Rejected");
      metrics.count(REJECTED[outcome.reason]);
      if (outcome.reason === "api-key") metrics.count("ApiKeyRefused");
    } else {
      metrics.count("Retried");
      if (outcome.status === 429) metrics.count("Throttled");
      if (outcome.cause === "api-key") metrics.count("ApiKeyRefused");
      if (outcome.cause === "configuration") metrics.count("Misconfigured");
    }
  }
}
