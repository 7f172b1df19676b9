// The README and docs/ stay true to the code: the settings table is the declared settings, and
// every link points at a file in the repository.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { LAMBDA_VARIABLES } from "../lib/runtimes/variables.ts";
import { EVENT_TYPES } from "../lib/segment/event.ts";
import { SETTING_TEXTS, SETTINGS } from "../lib/settings.ts";
import { variableRow } from "./support/variables-table.ts";

const ROOT = join(import.meta.dirname, "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

describe("README", () => {
  const readme = read("README.md");

  it("lists exactly the declared settings, each with its variable, type and description", () => {
    const table = readme.slice(readme.indexOf("## Settings"), readme.indexOf("## What Refiner"));
    const rows = table.split("\n").filter((line) => line.startsWith("| `"));
    // The names themselves, written out, so that the declarations are checked too.
    expect(rows.map((row) => row.split(" | ").slice(0, 2).join(" "))).toEqual([
      "| `apiKey` `REFINER_API_KEY`",
      "| `apiBaseUrl` `REFINER_API_BASE_URL`",
      "| `allowAnyApiHost` `REFINER_ALLOW_ANY_API_HOST`",
      "| `preserveTraitKeys` `REFINER_PRESERVE_TRAIT_KEYS`",
      "| `skipUnchangedMinutes` `REFINER_SKIP_UNCHANGED_MINUTES`",
      "| `traitMapping` `REFINER_TRAIT_MAPPING`",
      "| `accountTraitMapping` `REFINER_ACCOUNT_TRAIT_MAPPING`",
      "| `traitAllowList` `REFINER_TRAIT_ALLOW_LIST`",
      "| `traitDenyList` `REFINER_TRAIT_DENY_LIST`",
      "| `eventAllowList` `REFINER_EVENT_ALLOW_LIST`",
      "| `sendPageViews` `REFINER_SEND_PAGE_VIEWS`",
    ]);
    expect(rows).toEqual(
      SETTINGS.map(
        (setting) =>
          `| \`${setting.name}\` | \`${setting.env}\` | ${setting.type.toLowerCase()}${setting.required ? ", required" : ""}${setting.sensitive ? ", sensitive" : ""} | ${SETTING_TEXTS[setting.name].description} |`,
      ),
    );
  });

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

  it("lists exactly the declared settings in its settings table", () => {
    const doc = read("docs/mapping.md");
    const table = doc.slice(doc.indexOf("## Settings"), doc.indexOf("### What reaches Refiner"));
    const rows = table.split("\n").filter((line) => line.startsWith("| `"));
    expect(rows.map((row) => row.split(" | ").slice(0, 2).join(" "))).toEqual(
      SETTINGS.map((setting) => `| \`${setting.name}\` \`${setting.env}\``),
    );
  });
});

describe("events/", () => {
  it("has a sample of every call type Refiner receives", () => {
    for (const type of EVENT_TYPES.filter((type) => type !== "alias")) {
      expect(JSON.parse(read(`events/${type}.json`)).type, type).toBe(type);
    }
  });
});

describe("docs/lambda.md", () => {
  it("lists exactly the variables of lib/runtimes/variables.ts", () => {
    const doc = read("docs/lambda.md");
    const table = doc.slice(doc.indexOf("## The variables"), doc.indexOf("## Nothing twice"));
    const rows = table.split("\n").filter((line) => line.startsWith("| `"));
    expect(rows).toEqual(LAMBDA_VARIABLES.map(variableRow));
    expect(rows.map((row) => row.split(" | ")[0])).toEqual(
      [
        "REFINER_API_KEY",
        "REFINER_API_BASE_URL",
        "REFINER_ALLOW_ANY_API_HOST",
        "REFINER_PRESERVE_TRAIT_KEYS",
        "REFINER_SKIP_UNCHANGED_MINUTES",
        "REFINER_TRAIT_MAPPING",
        "REFINER_ACCOUNT_TRAIT_MAPPING",
        "REFINER_TRAIT_ALLOW_LIST",
        "REFINER_TRAIT_DENY_LIST",
        "REFINER_EVENT_ALLOW_LIST",
        "REFINER_SEND_PAGE_VIEWS",
        "REFINER_SECRET_ID",
        "REFINER_QUEUE_URL",
        "REFINER_DELIVERED_TABLE",
        "NODE_OPTIONS",
        "REFINER_CONSUMERS",
        "REFINER_RATE_PER_MINUTE",
        "REFINER_RETRY_BACKOFF_SECONDS",
        "SEGMENT_SHARED_SECRET",
        "SEGMENT_WEBHOOK_TOKEN",
        "SEGMENT_SHARED_SECRET_PREVIOUS",
        "SEGMENT_WEBHOOK_TOKEN_PREVIOUS",
        "ALLOW_UNSIGNED_WEBHOOKS",
        "ALLOW_FIRST_EVENT_SIGNATURE",
      ].map((name) => `| \`${name}\``),
    );
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
