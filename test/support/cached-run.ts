// Work whose result depends only on files and arguments, done once per set of them: the serverless
// packagings take about 20 s of CPU, and most `npm test` runs change nothing they read. A run's
// folder and its answer are kept under node_modules/.cache/refiner-tests/; a change in any input
// makes a new key, so the work is done again. A fresh clone (as in CI) always does the work.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "..", "..");
export const CACHE = join(ROOT, "node_modules", ".cache", "refiner-tests");

/** The key of these inputs: each file's path and content, and each argument. */
export function keyOf(files: readonly string[], args: readonly string[]): string {
  const hash = createHash("sha256");
  for (const file of files) hash.update(`${file}\0`).update(readFileSync(join(ROOT, file)));
  for (const arg of args) hash.update(`\0${arg}`);
  return hash.digest("hex").slice(0, 24);
}

/**
 * `make(dir)` into a fresh folder, kept with its answer as `name-<key>`; or, when that is kept
 * already, the kept folder and answer without running `make`. A run that fails keeps nothing.
 */
export async function cachedRun<T>(
  name: string,
  key: string,
  make: (dir: string) => Promise<T>,
): Promise<{ dir: string; value: T }> {
  const dir = join(CACHE, `${name}-${key}`);
  const answer = join(dir, ".answer.json");
  if (existsSync(answer)) return { dir, value: JSON.parse(readFileSync(answer, "utf8")) as T };
  const partial = `${dir}.${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const value = await make(partial);
  writeFileSync(join(partial, ".answer.json"), JSON.stringify(value));
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  return { dir, value };
}
