// Builds the two artifacts from handler.ts:
//   dist/segment-function.js  a plain script to paste into Segment's function editor
//   dist/lambda/handler.js    CommonJS for AWS Lambda (added by the Lambda entry points)
import { build } from "esbuild";

const SEGMENT_HANDLERS = [
  ["onIdentify", "event"],
  ["onGroup", "event"],
  ["onTrack", "event"],
  ["onPage", "event"],
  ["onScreen", "event"],
  ["onAlias", "event"],
  ["onDelete", "event"],
  ["onBatch", "events"],
];

const banner = `// Refiner destination for Segment — built from this repository; do not edit by hand.
//
// Paste this whole file into Segment: Connections → Catalog → Functions → New Function →
// Destination, replacing the editor's contents. Then create these settings on the function:
//   apiKey            string, required, sensitive  Your Refiner API key (Refiner → Integrations → Segment)
//   apiBaseUrl        string, optional             Defaults to https://api.refiner.io/v1
//   preserveTraitKeys boolean, optional            Send trait keys as written instead of snake_case
`;

// Segment wraps the script in a function and looks for top-level `async function onX` declarations,
// so the bundle is an IIFE held in one variable and each handler delegates to it.
const footer = SEGMENT_HANDLERS.map(
  ([name, arg]) =>
    `async function ${name}(${arg}, settings) {\n  return RefinerDestination.${name}(${arg}, settings);\n}`,
).join("\n");

await build({
  stdin: {
    contents: `export { ${SEGMENT_HANDLERS.map(([name]) => name).join(", ")} } from "./handler.ts";`,
    resolveDir: import.meta.dirname,
    sourcefile: "segment-function.ts",
    loader: "ts",
  },
  bundle: true,
  format: "iife",
  globalName: "RefinerDestination",
  platform: "neutral",
  target: "node18",
  minify: false,
  legalComments: "none",
  charset: "utf8",
  banner: { js: banner },
  footer: { js: footer },
  outfile: "dist/segment-function.js",
  logLevel: "warning",
});
