// The README and docs/ stay true to the code: the settings table is the declared settings, and
// every link points at a file in the repository.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { LAMBDA_VARIABLES } from "../lib/runtimes/variables.ts";
import { SETTINGS } from "../lib/settings.ts";
import { variableRow } from "./support/variables-table.ts";

const ROOT = join(import.meta.dirname, "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

describe("README", () => {
  const readme = read("README.md");

  it("lists exactly the declared settings, each with its variable, type and description", () => {
    const table = readme.slice(readme.indexOf("## Settings"), readme.indexOf("## What Refiner"));
    const rows = table.split("\n").filter((line) => line.startsWith("| `"));
    expect(rows).toEqual(
      SETTINGS.map(
        (setting) =>
          `| \`${setting.name}\` | \`${setting.env}\` | ${setting.type.toLowerCase()}${setting.required ? ", required" : ""}${setting.sensitive ? ", sensitive" : ""} | ${setting.description} |`,
      ),
    );
  });

  it("is a user guide of about 10 KB", () => {
    expect(Buffer.byteLength(readme)).toBeLessThanOrEqual(10_240);
  });
});

describe("docs/lambda.md", () => {
  it("lists exactly the variables of lib/runtimes/variables.ts", () => {
    const doc = read("docs/lambda.md");
    const table = doc.slice(doc.indexOf("## The variables"), doc.indexOf("## Nothing twice"));
    const rows = table.split("\n").filter((line) => line.startsWith("| `"));
    expect(rows).toEqual(LAMBDA_VARIABLES.map(variableRow));
    expect(rows).toHaveLength(22);
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
