// The `refiner-destination` command for the tests that run it, compiled from cli/ and lib/ with
// esbuild when a test file first imports this (as build.mjs compiles it), so that what they test
// is the source as it is now. It is written beside the real build, in dist/test/, because
// `deploy-segment` finds the pasted script by its place (dist/segment-function.js).
// test/bundle-shape.test.ts runs the built dist/cli/refiner-destination.js itself.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildSync } from "esbuild";

const ROOT = join(import.meta.dirname, "..", "..");

export const CLI = join(ROOT, "dist", "test", "refiner-destination.js");

const { outputFiles } = buildSync({
  entryPoints: [join(ROOT, "cli", "main.ts")],
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node20",
  external: ["@aws-sdk/*"],
  logLevel: "warning",
  write: false,
  outfile: CLI,
});
const built = outputFiles[0];
if (!built) throw new Error("esbuild wrote no CLI");
// Test files in other workers compile the same text: each writes only a change, and whole.
if (!existsSync(CLI) || !readFileSync(CLI).equals(built.contents)) {
  mkdirSync(join(ROOT, "dist", "test"), { recursive: true });
  const partial = `${CLI}.${process.pid}`;
  writeFileSync(partial, built.contents);
  renameSync(partial, CLI);
}
