// Loads the built dist/segment-function.js the way Segment's runtime does: a `vm` context with only
// the globals Segment documents (docs/architecture.md), the script wrapped in a function that receives the
// handler names, node-fetch v2 as `fetch`, and Segment's own error classes.

import { webcrypto } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import vm from "node:vm";
import nodeFetch, { Headers } from "node-fetch";

export const SEGMENT_FUNCTION = fileURLToPath(
  new URL("../dist/segment-function.js", import.meta.url),
);

/**
 * The handlers Segment's wrapper passes to a destination function (docs/architecture.md, "The
 * runtimes"): Segment's list, not the bundle's, so that a handler the bundle lacks shows.
 */
export const HANDLER_NAMES = [
  "onIdentify",
  "onGroup",
  "onTrack",
  "onPage",
  "onScreen",
  "onAlias",
  "onDelete",
  "onBatch",
] as const;
export type HandlerName = (typeof HANDLER_NAMES)[number];

// Segment's classes, distinct from the bundle's own look-alikes: tests assert `instanceof` these,
// which only holds when the bundle throws what the runtime gave it.
export class RetryError extends Error {
  override name = "RetryError";
}
export class ValidationError extends Error {
  override name = "ValidationError";
}
export class EventNotSupported extends Error {
  override name = "EventNotSupported";
}
export class InvalidEventPayload extends Error {
  override name = "InvalidEventPayload";
}

export type Handler = (event: unknown, settings: unknown) => Promise<unknown>;

export interface SegmentFunction {
  handlers: Record<HandlerName, Handler>;
  /** Everything the script wrote with console.*, one string per call. */
  logs: string[];
  /** Evaluates other code in the same context (for baselines in benchmarks). */
  run(code: string): unknown;
}

export interface LoadOptions {
  path?: string;
  /** Replaces node-fetch as the runtime's `fetch`, e.g. to route it through a failing resolver. */
  fetch?: (url: nodeFetch.RequestInfo, init?: nodeFetch.RequestInit) => Promise<nodeFetch.Response>;
  /** Gives the runtime a `cache` global like Segment's (`load(key, ttlMs, fn)`, `delete(key)`). */
  cache?: boolean;
}

/** Segment's `cache`: process-local values with a time-to-live, computed by `load` when missing. */
export function segmentCache() {
  const values = new Map<string, { value: unknown; until: number }>();
  return {
    async load(key: string, ttlMs: number, fn: () => Promise<unknown>): Promise<unknown> {
      const held = values.get(key);
      if (held && held.until > Date.now()) return held.value;
      const value = await fn();
      values.set(key, { value, until: Date.now() + ttlMs });
      return value;
    },
    delete(key: string): void {
      values.delete(key);
    },
    /** For tests: how many keys are held. */
    get size() {
      return values.size;
    },
  };
}

export function loadSegmentFunction({
  path = SEGMENT_FUNCTION,
  fetch = nodeFetch,
  cache = false,
}: LoadOptions = {}): SegmentFunction {
  const code = readFileSync(path, "utf8");
  const logs: string[] = [];
  const capture =
    (level: string) =>
    (...args: unknown[]) => {
      logs.push(
        `${level}: ${args.map((arg) => (typeof arg === "string" ? arg : JSON.stringify(arg))).join(" ")}`,
      );
    };

  const context = vm.createContext({
    fetch,
    Headers,
    URL,
    URLSearchParams,
    Buffer,
    console: {
      log: capture("log"),
      info: capture("info"),
      warn: capture("warn"),
      error: capture("error"),
    },
    setTimeout,
    clearTimeout,
    setInterval,
    clearInterval,
    setImmediate,
    clearImmediate,
    atob,
    btoa,
    crypto: webcrypto,
    RetryError,
    ValidationError,
    EventNotSupported,
    InvalidEventPayload,
    ...(cache ? { cache: segmentCache() } : {}),
  });

  // The handler names are parameters, so a script that redeclares one with const/let fails to load
  // here as it does in Segment.
  const wrapper = `(function (exports, ${HANDLER_NAMES.join(", ")}) {\n${code}\n;${HANDLER_NAMES.map(
    (name) => `exports.${name} = ${name};`,
  ).join("\n")}\n})`;
  const exports: Partial<Record<HandlerName, Handler>> = {};
  const load = vm.runInContext(wrapper, context, { filename: "segment-function.js" }) as (
    exports: object,
  ) => void;
  load(exports);

  for (const name of HANDLER_NAMES) {
    if (typeof exports[name] !== "function") throw new Error(`${name} is not a top-level function`);
  }
  return {
    handlers: exports as Record<HandlerName, Handler>,
    logs,
    run: (source) => vm.runInContext(source, context),
  };
}

/** What a handler's promise settled to, with the rejection's class kept for assertions. */
export async function settle(
  promise: Promise<unknown>,
): Promise<{ value?: unknown; error?: Error }> {
  try {
    return { value: await promise };
  } catch (error) {
    return { error: error as Error };
  }
}
