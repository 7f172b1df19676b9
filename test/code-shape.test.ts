// The code stays quick to read and change (CONTRIBUTING.md, "Keep the code small"): no function in
// handler.ts, lib/ or cli/ longer than 80 lines, at most 20 type assertions in lib/, and every file
// that a doc, a comment or a test names exists.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");

/** The project's own files below `folder` whose names end in one of `endings`. */
function filesIn(folder: string, endings: string[]): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      if (["node_modules", "dist", ".git", ".serverless", "coverage"].includes(name)) continue;
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (endings.some((ending) => name.endsWith(ending))) found.push(relative(ROOT, path));
    }
  };
  walk(join(ROOT, folder));
  return found.sort();
}

function parse(path: string): ts.SourceFile {
  const text = readFileSync(join(ROOT, path), "utf8");
  return ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
}

/** Every node of a file, depth first. */
function* nodes(node: ts.Node): Generator<ts.Node> {
  yield node;
  for (const child of node.getChildren()) yield* nodes(child);
}

const line = (file: ts.SourceFile, position: number) =>
  file.getLineAndCharacterOfPosition(position).line + 1;

const SHIPPED = ["handler.ts", ...filesIn("lib", [".ts"]), ...filesIn("cli", [".ts"])];

describe("functions", () => {
  it("are at most 80 lines long in handler.ts, lib/ and cli/", () => {
    const long: string[] = [];
    for (const path of SHIPPED) {
      const file = parse(path);
      for (const node of nodes(file)) {
        if (!ts.isFunctionLike(node) || !("body" in node) || !node.body) continue;
        const first = line(file, node.getStart(file));
        const lines = line(file, node.getEnd()) - first + 1;
        if (lines > 80) long.push(`${path}:${first} (${lines} lines)`);
      }
    }
    expect(long).toEqual([]);
  });

  it("are found by this test: cli/send.ts has more than ten", () => {
    const file = parse("cli/send.ts");
    const functions = [...nodes(file)].filter((node) => ts.isFunctionDeclaration(node));
    expect(functions.length).toBeGreaterThan(10);
  });
});

describe("type assertions", () => {
  /** `x as T` and `<T>x`, but `as const`; `x as unknown as T` counts once. */
  function assertions(path: string): string[] {
    const file = parse(path);
    return [...nodes(file)]
      .filter(
        (node) =>
          (ts.isAsExpression(node) && node.type.getText(file) !== "const") ||
          ts.isTypeAssertionExpression(node),
      )
      .filter((node) => !ts.isAsExpression(node.parent))
      .map((node) => `${path}:${line(file, node.getStart(file))}`);
  }

  it("number at most 20 in lib/", () => {
    const found = filesIn("lib", [".ts"]).flatMap(assertions);
    expect(found.length, found.join("\n")).toBeLessThanOrEqual(20);
    // The count is of real assertions: there are some.
    expect(found.length).toBeGreaterThan(0);
  });
});

describe("references", () => {
  /** A repository path written in prose or a comment: `lib/segment/event.ts`, `docs/mapping.md`. */
  const PATH =
    /(?<![\w./-])((?:lib|cli|test|local|docs|deploy|bench|events|generate)\/[\w./-]*\w\.[a-z]+)/g;
  const TEXT = [
    "README.md",
    "CONTRIBUTING.md",
    "serverless.yml",
    "handler.ts",
    "build.mjs",
    "vitest.config.mts",
    "vitest.volume.config.mts",
    ...filesIn("docs", [".md"]),
    ...filesIn("lib", [".ts"]),
    ...filesIn("cli", [".ts"]),
    ...filesIn("test", [".ts"]),
    ...filesIn("local", [".ts"]),
    ...filesIn("bench", [".ts"]),
    ...filesIn("deploy", [".cjs"]),
    ...filesIn("generate", [".ts", ".mjs"]),
  ];

  it("name only files that exist", () => {
    const missing: string[] = [];
    let checked = 0;
    for (const path of TEXT) {
      for (const [, named] of readFileSync(join(ROOT, path), "utf8").matchAll(PATH)) {
        checked += 1;
        try {
          statSync(join(ROOT, named as string));
        } catch {
          missing.push(`${path} names ${named}`);
        }
      }
    }
    expect(missing).toEqual([]);
    expect(checked).toBeGreaterThan(100);
  });

  it("name the contract by its place in the repository, not as the notes it came from", () => {
    const stale = TEXT.filter((path) =>
      /\b(MAPPING|RUNTIMES|DESIGN|STYLE)\.md\b/.test(readFileSync(join(ROOT, path), "utf8")),
    );
    expect(stale).toEqual([]);
  });
});

describe("the layers of lib/", () => {
  /** A file's layer: its folder under lib/ (`lib/segment/`), or the file itself at lib/'s root. */
  const layerOf = (path: string) => {
    const [, second, third] = path.split("/");
    return third === undefined ? `lib/${second}` : `lib/${second}/`;
  };
  /** Which layers each layer imports (type imports included). */
  function layerGraph(): Map<string, Set<string>> {
    const graph = new Map<string, Set<string>>();
    for (const path of filesIn("lib", [".ts"])) {
      const from = layerOf(path);
      const edges = graph.get(from) ?? new Set<string>();
      graph.set(from, edges);
      for (const node of parse(path).statements) {
        if (!ts.isImportDeclaration(node) && !ts.isExportDeclaration(node)) continue;
        const specifier = node.moduleSpecifier;
        if (!specifier || !ts.isStringLiteral(specifier) || !specifier.text.startsWith("."))
          continue;
        const target = relative(ROOT, join(ROOT, path, "..", specifier.text));
        if (target.startsWith("lib/") && layerOf(target) !== from) edges.add(layerOf(target));
      }
    }
    return graph;
  }

  it("import one another one way only: no cycle", () => {
    const graph = layerGraph();
    const cycles: string[] = [];
    const visit = (layer: string, path: string[]) => {
      if (path.includes(layer)) {
        cycles.push([...path.slice(path.indexOf(layer)), layer].join(" → "));
        return;
      }
      for (const next of graph.get(layer) ?? []) visit(next, [...path, layer]);
    };
    for (const layer of graph.keys()) visit(layer, []);
    // Tried: a type import of lib/segment/ in lib/refiner/client.ts fails here.
    expect(cycles).toEqual([]);
    // The graph is real: the pipeline imports the Segment side, which imports the outcomes.
    expect(graph.get("lib/pipeline/")).toContain("lib/segment/");
    expect(graph.get("lib/segment/")).toContain("lib/outcome.ts");
  });
});

describe("the tests", () => {
  // What marks a test file that runs what build.mjs built rather than lib/ and cli/ from source: a
  // path into dist/, or a loader of the built files (test/support/lambda.ts, local/segment-runtime.ts).
  const LOADERS = new Set(["LAMBDA_HANDLER", "loadLambdaBundle", "SEGMENT_FUNCTION"]);
  function loadsBuilt(path: string): boolean {
    const file = parse(path);
    for (const node of nodes(file)) {
      if (ts.isStringLiteralLike(node) && /^(?:.*\/)?dist(?:\/|$)/.test(node.text)) return true;
      if (ts.isIdentifier(node) && LOADERS.has(node.text)) return true;
      if (
        ts.isImportDeclaration(node) &&
        ts.isStringLiteral(node.moduleSpecifier) &&
        node.moduleSpecifier.text.endsWith("local/segment-runtime.ts") &&
        /\bloadSegmentFunction\b/.test(node.importClause?.getText() ?? "")
      )
        return true;
    }
    return false;
  }

  it("run lib/ and cli/ from source, but for the few that test what was built", () => {
    // The browser tests are left out: a page in Chromium can only load the built plugin.
    const built = filesIn("test", [".test.ts"])
      .filter((path) => !path.startsWith("test/browser/") && path !== "test/code-shape.test.ts")
      .filter(loadsBuilt);
    expect(built).toEqual([
      "test/bundle-shape.test.ts", // the pasted script's, the plugin's and the command's shapes
      "test/cli.deploy.test.ts", // the pasted script, as deploy-segment uploads it
      "test/lambda.operations.test.ts", // the Lambda bundle: its handlers and stack traces
      "test/segment-function.outcomes.test.ts", // the pasted script, loaded as Segment loads it
      "test/serverless.test.ts", // the package serverless makes
      "test/start.test.ts", // `npm start`
    ]);
  });
});
