// The pasteable script has the shape Segment's editor can load (docs/architecture.md, "The
// runtimes").

import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { HANDLER_NAMES, loadSegmentFunction, SEGMENT_FUNCTION } from "../local/segment-runtime.ts";

const code = readFileSync(SEGMENT_FUNCTION, "utf8");

describe("dist/segment-function.js", () => {
  it("opens with how to paste it and which settings to create", () => {
    const header = code.slice(0, code.indexOf("\n\n"));
    expect(header).toMatch(/^\/\/ Refiner destination for Segment/);
    const settings = [...header.matchAll(/^\/\/ {3}(\w+) +(string|boolean|array|text_map),/gm)].map(
      (match) => match[1],
    );
    expect(settings).toEqual([
      "apiKey",
      "apiBaseUrl",
      "allowAnyApiHost",
      "preserveTraitKeys",
      "skipUnchangedMinutes",
      "traitMapping",
      "accountTraitMapping",
      "traitAllowList",
      "traitDenyList",
      "eventAllowList",
      "sendPageViews",
    ]);
  });

  it("declares exactly Segment's handlers as top-level async functions", () => {
    const declared = [...code.matchAll(/^async function (\w+)\((event|events), settings\) \{$/gm)];
    expect(declared.map((match) => match[1]).sort()).toEqual([...HANDLER_NAMES].sort());
  });

  it("uses no module syntax and no require", () => {
    expect(code).not.toMatch(/\brequire\s*\(/);
    expect(code).not.toMatch(/^\s*(import|export)\s/m);
    expect(code).not.toMatch(/module\.exports/);
  });

  it("is unminified", () => {
    const longest = Math.max(...code.split("\n").map((line) => line.length));
    expect(longest).toBeLessThan(300);
  });

  it("would fail to load in the loader if a handler were redeclared with const", () => {
    // Guards the loader itself: it must reject what Segment rejects.
    const broken = `${code}\nconst onTrack = 1;`;
    const path = `${SEGMENT_FUNCTION}.broken-test.js`;
    writeFileSync(path, broken);
    try {
      expect(() => loadSegmentFunction({ path })).toThrow(/already been declared/);
    } finally {
      rmSync(path);
    }
  });
});
