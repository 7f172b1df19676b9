// The built files have the shapes their hosts load: the pasteable script Segment's editor takes
// (docs/architecture.md, "The runtimes"), the browser plugin's two files, and the command with its
// source map. The other tests run lib/ and cli/ from source; the few that run what was built are
// named in test/code-shape.test.ts.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import type { refinerPlugin } from "../lib/browser/plugin.ts";
import { SETTINGS } from "../lib/settings.ts";
import { HANDLER_NAMES, loadSegmentFunction, SEGMENT_FUNCTION } from "../local/segment-runtime.ts";
import { runNode } from "./support/command.ts";

const ROOT = join(import.meta.dirname, "..");

const code = readFileSync(SEGMENT_FUNCTION, "utf8");

describe("dist/segment-function.js", () => {
  it("opens with how to paste it and which settings to create", () => {
    const header = code.slice(0, code.indexOf("\n\n"));
    expect(header).toMatch(/^\/\/ Refiner destination for Segment/);
    const settings = [...header.matchAll(/^\/\/ {3}(\w+) +(string|boolean|array|text_map),/gm)].map(
      (match) => match[1],
    );
    expect(settings).toEqual(SETTINGS.map((setting) => setting.name));
    // Each as Segment's editor asks for it: its type, whether it is required and sensitive, and
    // what it does.
    expect(header).toMatch(
      /^\/\/ {3}apiKey +string, required, sensitive: Your Refiner API key \(Refiner → Integrations/m,
    );
    expect(header).toMatch(
      /^\/\/ {3}preserveTraitKeys +boolean, optional: Send trait keys as written/m,
    );
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

describe("dist/browser/", () => {
  const files = ["dist/browser/refiner.js", "dist/browser/refiner.mjs"];

  it("are minified, at most 10 KB each, and depend on nothing", () => {
    for (const file of files) {
      const text = readFileSync(join(ROOT, file), "utf8");
      expect(Buffer.byteLength(text), file).toBeLessThanOrEqual(10 * 1024);
      expect(gzipSync(text).length, file).toBeLessThan(5 * 1024);
      expect(text.split("\n").length, file).toBeLessThanOrEqual(2);
      expect(text, file).not.toMatch(/\brequire\s*\(|\bprocess\.env\b/);
    }
  });

  it("refiner.mjs imports nothing but files next to it, and exports refinerPlugin", () => {
    const text = readFileSync(join(ROOT, "dist/browser/refiner.mjs"), "utf8");
    const specifiers = [
      ...text.matchAll(/\b(?:import|export)\s*(?:[\w*{}\s,$]+from\s*)?["']([^"']+)["']/g),
      ...text.matchAll(/\bimport\s*\(\s*["']([^"']+)["']/g),
    ].map(([, specifier]) => specifier);
    expect(specifiers.filter((specifier) => !specifier?.startsWith("./"))).toEqual([]);
    expect(text).toMatch(/export\s*\{\s*\w+ as refinerPlugin\s*\}/);
  });

  it("refiner.js defines window.RefinerSegment = { refinerPlugin } as a classic script", () => {
    const text = readFileSync(join(ROOT, "dist/browser/refiner.js"), "utf8");
    expect(text).not.toMatch(/^\s*(import|export)\b/m);
    const window: Record<string, unknown> = {};
    new Function("globalThis", text)(window);
    expect(Object.keys(window)).toEqual(["RefinerSegment"]);
    const { refinerPlugin: built } = window.RefinerSegment as {
      refinerPlugin: typeof refinerPlugin;
    };
    expect(built({ projectId: "p" }).version).toBe(
      JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version,
    );
  });
});

describe("dist/cli/refiner-destination.js", () => {
  const CLI = join(ROOT, "dist", "cli", "refiner-destination.js");
  const run = (nodeArgs: string[], args: string[]) => runNode(CLI, args, { nodeArgs });

  it("runs as a command", async () => {
    expect(readFileSync(CLI, "utf8")).toMatch(/^#!\/usr\/bin\/env node\n/);
    const { code, stdout } = await run([], ["--help"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage:\n {2}refiner-destination send FILE\.\.\. \[options\]\n/);
  });

  it("prints a fault of its own with a stack trace that names the cli/ and lib/ files", async () => {
    // A standard output that throws is a fault no code path of the command foresees.
    const broken = join(mkdtempSync(join(tmpdir(), "refiner-cli-")), "broken-stdout.cjs");
    writeFileSync(
      broken,
      'process.stdout.write = () => { throw new Error("standard output is broken"); };\n',
    );
    try {
      const { code, stderr } = await run(["--require", broken], ["--help"]);
      expect(code).toBe(1);
      expect(stderr).toMatch(
        /^refiner-destination: unexpected error, please report it:\nError: standard output is broken\n/,
      );
      expect(stderr).toMatch(/\n {4}at main \(.*\/cli\/main\.ts:\d+:\d+\)\n/);
      expect(stderr).not.toContain("dist/cli/main.js:");
    } finally {
      rmSync(broken);
    }
  });
});
