// `npm run generate`: rewrites what each file repeats of the declarations in lib/ (the lines between
// its BEGIN GENERATED and END GENERATED lines; generate/derived.ts says which files and what).
// `npm run generate -- --check` writes nothing: it names each stale file and what differs in it,
// and exits 1 (test/generated.test.ts runs it).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadDerived } from "./load.mjs";

const ROOT = join(import.meta.dirname, "..");
const check = process.argv.includes("--check");
const { GENERATED, regenerate, staleness } = await loadDerived();

const stale = [];
for (const file of Object.keys(GENERATED)) {
  const path = join(ROOT, file);
  const text = readFileSync(path, "utf8");
  if (check) {
    const report = staleness(file, text);
    if (report) stale.push(report);
    continue;
  }
  const generated = regenerate(file, text);
  if (generated !== text) {
    writeFileSync(path, generated);
    console.log(`${file}: written`);
  }
}
if (stale.length) {
  console.error(stale.join("\n"));
  process.exitCode = 1;
} else if (check) {
  console.log(`Up to date: ${Object.keys(GENERATED).join(", ")}.`);
}
