// Builds the artifacts from handler.ts:
//   dist/segment-function.js  a plain script to paste into Segment's function editor
//   dist/lambda/handler.js    CommonJS for AWS Lambda (serverless.yml)
//   dist/dev/start.js         `npm start`: the webhook handler on localhost (not deployed)
//   dist/cli/refiner-destination.js  the `refiner-destination` command (send, deploy-segment)
//   dist/browser/refiner.js   the Analytics.js plugin as a classic script (window.RefinerSegment)
//   dist/browser/refiner.mjs  the same as an ES module, for bundlers and import()
//   dist/dev/analytics-page.js  analytics-next for the local pages (browser tests, demo, bench)
//   dist/dev/bench.mjs        `npm run bench` only (`node build.mjs --bench`)
// A file is rewritten only when its content changes, so a build never truncates an artifact that a
// running test or server is reading.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { build } from "esbuild";
import { loadDerived } from "./generate/load.mjs";

// The handler names and the settings are declared once, in lib/ (TypeScript); the banner follows
// from them as the generated lines of the repository's files do (generate/derived.ts).
const { SEGMENT_HANDLERS, segmentFunctionBanner } = await loadDerived();
const HANDLERS = [
  ...Object.keys(SEGMENT_HANDLERS).map((name) => [name, "event"]),
  ["onBatch", "events"],
];
const banner = segmentFunctionBanner();

// The whole bundle runs inside one function, so Segment's wrapper sees nothing but the handlers.
const prologue = `var RefinerDestination = (() => {
let handlers;
const exposeHandlers = (found) => {
  handlers = found;
};
`;

// Segment looks for top-level `async function onX` declarations; each delegates to the bundle.
const epilogue = [
  `return handlers;\n})();\n`,
  ...HANDLERS.map(
    ([name, arg]) =>
      `async function ${name}(${arg}, settings) {\n  return RefinerDestination.${name}(${arg}, settings);\n}`,
  ),
].join("\n");

const common = {
  bundle: true,
  charset: "utf8",
  legalComments: "none",
  logLevel: "warning",
  write: false,
};

/** Writes `text` to `path` unless the file already holds it. */
function keep(path, text) {
  const contents = Buffer.from(text);
  if (!existsSync(path) || !readFileSync(path).equals(contents)) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, contents);
  }
}

/** Builds, passes each file's text through `edit`, and writes what changed. */
async function emit(options, edit = (text) => text) {
  const { outputFiles } = await build({ ...common, ...options });
  return outputFiles.map((file) => {
    const text = edit(file.text);
    keep(file.path, text);
    return { path: file.path, text };
  });
}

const [pasteable] = await emit(
  {
    stdin: {
      contents: `import { segmentHandlers } from "./handler.ts";\nexposeHandlers(segmentHandlers);`,
      resolveDir: import.meta.dirname,
      sourcefile: "segment-function.ts",
      loader: "ts",
    },
    // No module syntax is emitted: the entry exports nothing and hands the handlers to the prologue.
    format: "esm",
    platform: "neutral",
    // Only the Lambda handlers use node: modules and the AWS SDK; the Segment entry does not, and
    // package.json's "sideEffects": false lets esbuild drop them. The check below proves it.
    external: ["node:*", "@aws-sdk/*"],
    target: "node18",
    minify: false,
    banner: { js: `${banner}\n${prologue}` },
    footer: { js: epilogue },
    outfile: "dist/segment-function.js",
  },
  // esbuild marks where each source file begins (`// lib/…/x.ts`) and which calls are pure; a
  // pasted script has no use for either.
  (text) =>
    text
      .replace(/^\/\/ (?:lib|handler)[\w./-]*\.ts\n/gm, "")
      .replace(/^\/\/ @__NO_SIDE_EFFECTS__\n/gm, "")
      .replace(/\/\* @__PURE__ \*\/ /g, ""),
);
if (/\brequire\s*\(/.test(pasteable.text)) {
  throw new Error("dist/segment-function.js calls require(), which Segment's editor cannot load");
}

await emit({
  entryPoints: ["handler.ts"],
  format: "cjs",
  platform: "node",
  target: "node22",
  // Lambda's Node.js runtime ships the AWS SDK v3.
  external: ["@aws-sdk/*"],
  // Minified for the cold start; the source map (NODE_OPTIONS=--enable-source-maps in
  // serverless.yml) makes a stack trace name the lib/ files and lines.
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  outfile: "dist/lambda/handler.js",
});

await emit({
  entryPoints: ["local/start.ts"],
  format: "cjs",
  platform: "node",
  target: "node20",
  // The SDK and dynalite (whose LevelDB binary sits in its own package) are loaded from
  // node_modules; fauxqs, an ES module only, is bundled.
  external: ["@aws-sdk/*", "dynalite"],
  outfile: "dist/dev/start.js",
});

await emit({
  entryPoints: ["cli/main.ts"],
  format: "cjs",
  platform: "node",
  target: "node20",
  // `secret` loads the AWS SDK from node_modules, as the repository's dev dependency.
  external: ["@aws-sdk/*"],
  sourcemap: true,
  sourcesContent: false,
  outfile: "dist/cli/main.js",
});
// The command itself turns source maps on before it loads the bundle (Node reads a file's map only
// if they are on when it loads it), so that a stack trace names the cli/ and lib/ files and lines.
keep(
  "dist/cli/refiner-destination.js",
  `#!/usr/bin/env node
// The refiner-destination command, built from cli/main.ts into ./main.js (with ./main.js.map).
process.setSourceMapsEnabled(true);
require("./main.js");
`,
);
chmodSync("dist/cli/refiner-destination.js", 0o755);

// The browser plugin: minified, with no dependency in the output (test/browser-plugin.test.ts
// holds it to 10 KB and to no imports).
const { version } = JSON.parse(readFileSync("package.json", "utf8"));
const browser = {
  platform: "browser",
  target: "es2022",
  minify: true,
  define: { PLUGIN_VERSION: JSON.stringify(version) },
  // Shortened names, for the 10 KB budget: the plugin's own state fields, which end in `_`
  // (lib/browser/plugin.ts), and the fields of the shared code's own objects (outcomes, Refiner
  // call descriptions, parse results, trait options), which never leave the bundle. Never a field
  // of a Segment event, of the plugin's options or of what goes to Refiner's web client (`account`,
  // `event`, `type`, `traits`…): those are read or written by name outside.
  mangleProps:
    /_$|^(kind|reason|via|call|query|body|who|computationKey|message|problem|value|settings|options|mapping|exact|selection|rename|allow|deny|alwaysAllow|preserveKeys|reserved|skip|notice)$/,
  // `"kind" in outcome` must follow the renamed field.
  mangleQuoted: true,
};
await emit({
  ...browser,
  format: "iife",
  globalName: "RefinerSegment",
  outfile: "dist/browser/refiner.js",
});
await emit({
  ...browser,
  entryPoints: ["lib/browser/global.ts"],
  format: "iife",
  outfile: "dist/browser/refiner.js",
});
await emit({
  ...browser,
  entryPoints: ["lib/browser/index.ts"],
  format: "esm",
  outfile: "dist/browser/refiner.mjs",
});

await emit({
  entryPoints: ["local/analytics-page.ts"],
  format: "iife",
  platform: "browser",
  target: "es2020",
  minify: true,
  outfile: "dist/dev/analytics-page.js",
});

if (process.argv.includes("--bench")) {
  await emit({
    entryPoints: ["bench/bench.ts"],
    format: "esm",
    platform: "node",
    target: "node20",
    external: ["node-fetch", "fauxqs", "@aws-sdk/*", "dynalite", "playwright-core"],
    outfile: "dist/dev/bench.mjs",
  });
}
