// The one table of what each outcome does at each door (lib/runtimes/doors.ts), against literal
// expectations, and docs/architecture.md's copy of it. The doors' own tests check that each door
// answers so end to end (segment-function.*, lambda.*, queue, cli.send).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FILTERED, invalid, retry, unsupported, untilFixed } from "../lib/outcome.ts";
import { classOf, DOORS, toBatchItem, toSegmentError } from "../lib/runtimes/doors.ts";

const ROOT = join(import.meta.dirname, "..");

/** The table as the docs show it and the doors answer it, one row per outcome. */
const EXPECTED = [
  ["done", "resolve", 200, 200, 200, "delete", "delivered"],
  ["filtered", "resolve", 200, 200, 200, "delete", "skipped"],
  ["invalid", "ValidationError", 400, 400, 400, "delete", "rejected"],
  ["no-contact", "ValidationError", 400, 400, 400, "delete", "skipped"],
  ["unsupported", "EventNotSupported", 400, 400, 400, "delete", "skipped"],
  ["api-key", "ValidationError", 401, 401, 400, "back-off", "halt"],
  ["throttled", "RetryError", 429, "throw", 429, "back-off", "retried"],
  ["retry", "RetryError", 500, "throw", 503, "back-off", "retried"],
  ["until-fixed", "RetryError", 500, "throw", 503, "back-off", "retried"],
] as const;

const SAMPLES = {
  done: { kind: "done" },
  filtered: FILTERED,
  invalid: invalid("bad"),
  "no-contact": { kind: "rejected", reason: "no-contact", message: "nobody" },
  unsupported: unsupported("alias"),
  "api-key": { kind: "rejected", reason: "api-key", message: "key" },
  throttled: retry("slow down", 429, 12),
  retry: retry("down"),
  "until-fixed": untilFixed("fix the key", "configuration"),
} as const;

describe("the outcome table", () => {
  it("answers every outcome at every door as written here", () => {
    expect(
      Object.entries(DOORS).map(([name, doors]) => [
        name,
        doors.function,
        doors.batchItem,
        doors.lambda,
        doors.webhook,
        doors.deliver,
        doors.send,
      ]),
    ).toEqual(EXPECTED);
  });

  it.each(EXPECTED)(
    "sorts a %s outcome into its row, and its door translations follow it",
    (name, fn, item) => {
      const outcome = SAMPLES[name];
      expect(classOf(outcome)).toBe(name);
      expect(toBatchItem(outcome).status).toBe(item);
      if (outcome.kind !== "done") expect(toSegmentError(outcome).name).toBe(fn);
    },
  );

  it("is shown in docs/architecture.md", () => {
    const doc = readFileSync(join(ROOT, "docs", "architecture.md"), "utf8");
    const rows = doc
      .slice(doc.indexOf("## Outcomes at the doors"))
      .split("\n")
      .filter((line) => /^\| `[a-z-]+` \|/.test(line));
    expect(rows).toEqual(
      EXPECTED.map((row) => `| ${row.map((cell) => `\`${cell}\``).join(" | ")} |`),
    );
  });
});
