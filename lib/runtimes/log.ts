// The Lambda functions' log lines: one JSON object a line, with the invocation's request id, and
// the event's messageId and type where there is one. Never an event's traits or any secret: callers
// pass only those fields. Written here rather than with Powertools' logger, for the same reason as
// metrics.ts: the cold start.
//
// Lines go to standard output (standard error for errors) as they are, not through `console`,
// which Lambda's runtime patches to wrap what it is given; Powertools' logger writes the same way.
// On this machine it is the same line.

import type { KeyNotice } from "../segment/traits.ts";

export type Level = "INFO" | "WARN" | "ERROR";

interface Context {
  requestId?: string;
}

let context: Context = {};

/** Lambda runs one invocation at a time per instance: its request id goes on every line. */
export function setRequestId(requestId: string | undefined): void {
  context = requestId ? { requestId } : {};
}

export function log(level: Level, message: string, fields: Record<string, unknown> = {}): void {
  const line = JSON.stringify({
    level,
    timestamp: new Date().toISOString(),
    ...context,
    message,
    ...fields,
  });
  (level === "ERROR" ? process.stderr : process.stdout).write(`${line}\n`);
}

/** Key names said once each, this many at most (after that only counted). */
const KEYS_SAID = 1000;

/**
 * A KeyNotice (lib/segment/traits.ts) that counts every trait key the mapping drops or merges and
 * says each key name once per instance, never its value: `say` writes the line.
 */
export function keyNotices(
  say: (message: string, key: string) => void,
  count: (kind: "empty" | "collision") => void = () => {},
): KeyNotice {
  const said = new Set<string>();
  return (kind, key) => {
    count(kind);
    const name = eventText(key) ?? "";
    if (said.has(`${kind}:${name}`) || said.size >= KEYS_SAID) return;
    said.add(`${kind}:${name}`);
    say(
      kind === "empty"
        ? "A trait key has no letter or digit, so it is left out (docs/mapping.md, trait keys)"
        : "Two trait keys of one event normalize to the same name, so one value is sent (docs/mapping.md, trait keys)",
      name,
    );
  };
}

/** The most of an event's own text (its messageId, its type) a line holds; Segment's are under 60. */
export const MAX_EVENT_TEXT = 100;

/**
 * An event-supplied string for a log line, cut to MAX_EVENT_TEXT characters with its length said;
 * undefined for anything that is not a string. Anyone with a site's write key chooses these.
 */
export function eventText(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  if (value.length <= MAX_EVENT_TEXT) return value;
  return `${value.slice(0, MAX_EVENT_TEXT)}… (${value.length} characters)`;
}
