// What the repository repeats of the declarations in lib/ (the settings, the Lambda variables, the
// secret ones) is generated: `npm run generate` rewrites it, and `--check` fails on a stale file,
// naming it and what differs (generate/main.mjs, generate/derived.ts).

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { regenerate, staleness } from "../generate/derived.ts";
import { parseSettings, SETTINGS } from "../lib/settings.ts";
import { API_KEY } from "./support/fixtures.ts";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

describe("npm run generate -- --check", () => {
  it("finds every generated file up to date with the declarations", async () => {
    const { stdout, stderr } = await run(
      process.execPath,
      [join(ROOT, "generate/main.mjs"), "--check"],
      { cwd: ROOT },
    ).catch((error: { stdout: string; stderr: string }) => error);
    // When a file is stale, stderr names it and its lines that differ.
    expect(stderr).toBe("");
    expect(stdout).toBe(
      "Up to date: README.md, docs/mapping.md, docs/lambda.md, serverless.yml, deploy/guard.cjs.\n",
    );
  });

  it("names a stale file, its region and the lines that differ, and regenerates them", () => {
    // The README as generated now, so that this test holds whether or not the file is stale.
    const readme = regenerate("README.md", read("README.md"));
    const row = readme.split("\n").find((line) => line.startsWith("| `apiKey` |")) ?? "no row";
    const stale = readme.replace(row, `${row} (edited)`);
    expect(staleness("README.md", stale)).toBe(
      [
        'README.md, "settings": stale, run `npm run generate`.',
        `  - ${row} (edited)`,
        `  + ${row}`,
      ].join("\n"),
    );
    expect(regenerate("README.md", stale)).toBe(readme);
    expect(staleness("README.md", readme)).toBeUndefined();
  });

  it("refuses a file whose markers are gone, naming it", () => {
    const text = read("docs/lambda.md").replace("<!-- END GENERATED: variables -->\n", "");
    expect(() => staleness("docs/lambda.md", text)).toThrow(
      'docs/lambda.md has no "BEGIN GENERATED: variables" line followed by an "END GENERATED: variables" line.',
    );
  });
});

describe("a setting's default", () => {
  it("is what a missing or empty setting is read as, and one its parser takes", () => {
    const missing = parseSettings({ apiKey: API_KEY });
    const empty = parseSettings({
      ...Object.fromEntries(SETTINGS.map((setting) => [setting.name, ""])),
      apiKey: API_KEY,
    });
    const declared = parseSettings({
      ...Object.fromEntries(SETTINGS.map((setting) => [setting.name, setting.default])),
      apiKey: API_KEY,
    });
    expect(missing.ok).toBe(true);
    expect(empty).toEqual(missing);
    expect(declared).toEqual(missing);
    expect(missing).toMatchObject({
      settings: {
        apiBaseUrl: "https://api.refiner.io/v1",
        preserveTraitKeys: false,
        skipUnchangedMinutes: 60,
        traitAllowList: undefined,
        traitDenyList: new Set(),
        sendPageViews: true,
      },
    });
  });
});
