// generate/derived.ts, bundled with the declarations of lib/ it reads (they are TypeScript) and
// loaded here: `npm run generate` and build.mjs share it.
import { join } from "node:path";
import { build } from "esbuild";

export async function loadDerived() {
  const { outputFiles } = await build({
    entryPoints: [join(import.meta.dirname, "derived.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    write: false,
    logLevel: "warning",
  });
  const code = Buffer.from(outputFiles[0].contents).toString("base64");
  return import(`data:text/javascript;base64,${code}`);
}
