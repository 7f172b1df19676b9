// The README and docs/ stay true to the code: a row for every call type, and every link points at
// a file in the repository. The settings and variables tables are generated (test/generated.test.ts).

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { EVENT_TYPES } from "../lib/segment/event.ts";

const ROOT = join(import.meta.dirname, "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

describe("README", () => {
  const readme = read("README.md");

  it("says what Refiner receives for every call type", () => {
    const table = readme.slice(
      readme.indexOf("## What Refiner receives"),
      readme.indexOf("**Unchanged identifies"),
    );
    const named = table
      .split("\n")
      .filter((line) => /^\| [a-z]/.test(line))
      .flatMap((line) => (line.split(" | ")[0] ?? "").slice(2).split(", "));
    expect(named.filter((name) => name !== "other types").sort()).toEqual([...EVENT_TYPES].sort());
    expect(named).toContain("other types");
  });

  it("is a user guide of about 10 KB", () => {
    expect(Buffer.byteLength(readme)).toBeLessThanOrEqual(10_240);
  });
});

describe("docs/mapping.md", () => {
  it("has a row for every call type the destination answers", () => {
    const doc = read("docs/mapping.md");
    const table = doc.slice(doc.indexOf("## Each call"), doc.indexOf("## Identifies Refiner"));
    const calls = table
      .split("\n")
      .filter((line) => /^\| [a-z]/.test(line))
      .map((line) => line.split(" | ")[0]?.slice(2));
    expect(calls).toEqual([
      ...EVENT_TYPES.filter((type) => type !== "alias"),
      "alias",
      "any other type, or none",
    ]);
    expect(EVENT_TYPES).toEqual([
      "identify",
      "group",
      "track",
      "page",
      "screen",
      "alias",
      "delete",
    ]);
  });
});

describe("events/", () => {
  it("has a sample of every call type Refiner receives", () => {
    for (const type of EVENT_TYPES.filter((type) => type !== "alias")) {
      expect(JSON.parse(read(`events/${type}.json`)).type, type).toBe(type);
    }
  });
});

describe.each([
  "README.md",
  "CONTRIBUTING.md",
  "docs/mapping.md",
  "docs/architecture.md",
  "docs/lambda.md",
  "docs/backfill.md",
  "docs/performance.md",
])("%s", (path) => {
  it("links only to files in the repository (or to web pages)", () => {
    const links = [...read(path).matchAll(/\]\(([^)]+)\)/g)].map((match) => match[1] as string);
    const local = links.filter((link) => !/^https?:/.test(link));
    for (const link of local) {
      expect(existsSync(join(ROOT, dirname(path), link.split("#")[0] as string)), link).toBe(true);
    }
  });
});
