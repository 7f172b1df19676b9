// Everything outside lib/ that follows from its declarations: the settings (lib/settings.ts), the
// Lambda variables and the secret ones (lib/runtimes/variables.ts) and the Segment handlers
// (lib/segment/event.ts). `npm run generate` (generate/main.mjs) rewrites the lines between
// `BEGIN GENERATED: <name>` and `END GENERATED: <name>` in each file of GENERATED, and build.mjs
// writes the pasted script's banner and handlers with this module. Deterministic: the same
// declarations give the same bytes.

import {
  LAMBDA_FUNCTIONS,
  LAMBDA_VARIABLES,
  type LambdaFunction,
  type LambdaVariable,
  SECRET_VARIABLES,
} from "../lib/runtimes/variables.ts";
import { SETTING_TEXTS, SETTINGS } from "../lib/settings.ts";

export { SEGMENT_HANDLERS } from "../lib/segment/event.ts";

type Setting = (typeof SETTINGS)[number];

/** How a setting is created in Segment: `string, required, sensitive`. */
const segmentType = (setting: Setting, optional = "") =>
  `${setting.type.toLowerCase()}${setting.required ? ", required" : optional}${setting.sensitive ? ", sensitive" : ""}`;

/** The pasted script's opening lines: how to paste it, and the settings to create on it. */
export function segmentFunctionBanner(): string {
  const width = Math.max(...SETTINGS.map(({ name }) => name.length));
  return `// Refiner destination for Segment — built from this repository; do not edit by hand.
//
// Paste this whole file into Segment: Connections → Catalog → Functions → New Function →
// Destination, replacing the editor's contents. Then create these settings on the function:
${SETTINGS.map(
  (setting) =>
    `//   ${setting.name.padEnd(width)}  ${segmentType(setting, ", optional")}: ${SETTING_TEXTS[setting.name].description}`,
).join("\n")}
`;
}

/** The README's settings table. */
function readmeSettings(): string[] {
  return [
    "| setting | Lambda variable | type | meaning |",
    "|---|---|---|---|",
    ...SETTINGS.map(
      (setting) =>
        `| \`${setting.name}\` | \`${setting.env}\` | ${segmentType(setting)} | ${SETTING_TEXTS[setting.name].description} |`,
    ),
  ];
}

/** What a missing setting is read as: its default, parsed. */
function shownDefault(setting: Setting): string {
  const parsed = setting.parse(setting.default);
  if (!parsed.ok) return "—";
  const { value } = parsed;
  const empty = value === undefined || (typeof value === "object" && value.size === 0);
  return empty ? "none" : `\`${String(value)}\``;
}

/** docs/mapping.md's settings table: the README's, with each default. */
function mappingSettings(): string[] {
  return [
    "| Segment setting | Lambda variable | type | default | meaning |",
    "|---|---|---|---|---|",
    ...SETTINGS.map(
      (setting) =>
        `| \`${setting.name}\` | \`${setting.env}\` | ${segmentType(setting)} | ${shownDefault(setting)} | ${SETTING_TEXTS[setting.name].description} |`,
    ),
  ];
}

const everyFunction = (variable: LambdaVariable) =>
  LAMBDA_FUNCTIONS.every((fn) => variable.functions.includes(fn));

/** Who sets a variable: you (a deploy variable, or a key of the secret), a `--param` or the stack. */
function setBy(variable: LambdaVariable): string {
  if (variable.secret || variable.from?.startsWith("env:")) return "you";
  if (variable.from?.startsWith("param:")) return `\`--param ${variable.from.slice(6)}\``;
  return "the stack";
}

/** docs/lambda.md's table of variables. */
function variablesTable(): string[] {
  return [
    "| variable | functions | default | secret | set by | meaning |",
    "|---|---|---|---|---|---|",
    ...LAMBDA_VARIABLES.map((variable) => {
      const functions = everyFunction(variable)
        ? "all"
        : variable.functions.map((fn) => `\`${fn}\``).join(", ");
      const fallback = variable.default ? `\`${variable.default}\`` : "—";
      return `| \`${variable.name}\` | ${functions} | ${fallback} | ${variable.secret ? "yes" : "—"} | ${setBy(variable)} | ${variable.meaning} |`;
    }),
  ];
}

const quoted = (text: string) => `'${text.replaceAll("'", "''")}'`;

/** A variable's value in serverless.yml: a serverless variable, or its default. */
function templateValue(variable: LambdaVariable): string {
  if (!variable.from) return quoted(variable.default);
  if (variable.from.startsWith("env:")) return `\${${variable.from}, ${quoted(variable.default)}}`;
  return `\${${variable.from}}`;
}

/**
 * serverless.yml's `custom.environment`: what every function gets, once, then each function's
 * variables (`environment: ${self:custom.environment.<function>}`). No secret: those are keys of the
 * stage's secret.
 */
function serverlessEnvironment(): string[] {
  const templated = LAMBDA_VARIABLES.filter((variable) => !variable.secret);
  const shared = templated.filter(everyFunction);
  const own = (fn: LambdaFunction) =>
    templated.filter((variable) => !everyFunction(variable) && variable.functions.includes(fn));
  return [
    "  refinerEnvironment: &refinerEnvironment",
    ...shared.map((variable) => `    ${variable.name}: ${templateValue(variable)}`),
    "  environment:",
    ...LAMBDA_FUNCTIONS.flatMap((fn) =>
      own(fn).length === 0
        ? [`    ${fn}: *refinerEnvironment`]
        : [
            `    ${fn}:`,
            "      <<: *refinerEnvironment",
            ...own(fn).map((variable) => `      ${variable.name}: ${templateValue(variable)}`),
          ],
    ),
  ];
}

/** serverless.yml's `params.default` for the variables a `--param` sets: their declared defaults. */
function serverlessParams(): string[] {
  return LAMBDA_VARIABLES.flatMap((variable) =>
    variable.from?.startsWith("param:")
      ? [
          `    ${variable.from.slice("param:".length)}: ${/^\d+$/.test(variable.default) ? variable.default : quoted(variable.default)}`,
        ]
      : [],
  );
}

/** deploy/guard.cjs's list of the secret variables, formatted as biome formats it. */
function guardSecrets(): string[] {
  const names = SECRET_VARIABLES.map((name) => JSON.stringify(name));
  const line = `const SECRET_VARIABLES = [${names.join(", ")}];`;
  return line.length <= 100
    ? [line]
    : ["const SECRET_VARIABLES = [", ...names.map((name) => `  ${name},`), "];"];
}

/** Each generated file, and what each of its regions holds, by name. */
export const GENERATED: Readonly<Record<string, Readonly<Record<string, () => string[]>>>> = {
  "README.md": { settings: readmeSettings },
  "docs/mapping.md": { settings: mappingSettings },
  "docs/lambda.md": { variables: variablesTable },
  "serverless.yml": { params: serverlessParams, environment: serverlessEnvironment },
  "deploy/guard.cjs": { "secret variables": guardSecrets },
};

/** A region's lines: from `start` (after its BEGIN line) up to `end` (its END line), not included. */
interface Region {
  start: number;
  end: number;
}

/** Where a region's marker lines are: `<!-- BEGIN GENERATED: name -->`, `# …` or `// …`. */
function findRegion(file: string, lines: string[], name: string): Region {
  const marker = (edge: "BEGIN" | "END") =>
    lines.findIndex((line) =>
      new RegExp(`^\\s*(<!--|#|//) ${edge} GENERATED: ${name}( -->)?$`).test(line),
    );
  const begin = marker("BEGIN");
  const end = marker("END");
  if (begin < 0 || end < begin) {
    throw new Error(
      `${file} has no "BEGIN GENERATED: ${name}" line followed by an "END GENERATED: ${name}" line.`,
    );
  }
  return { start: begin + 1, end };
}

/** The file's text with each of its regions as the declarations say. */
export function regenerate(file: string, text: string): string {
  const lines = text.split("\n");
  for (const [name, render] of Object.entries(GENERATED[file] ?? {})) {
    const { start, end } = findRegion(file, lines, name);
    lines.splice(start, end - start, ...render());
  }
  return lines.join("\n");
}

/**
 * What differs in a file from what the declarations say, as `npm run generate -- --check` reports
 * it: the file, the region, and its lines that are not what they should be (-) or are missing (+).
 * Undefined when nothing differs.
 */
export function staleness(file: string, text: string): string | undefined {
  const lines = text.split("\n");
  const reports: string[] = [];
  for (const [name, render] of Object.entries(GENERATED[file] ?? {})) {
    const { start, end } = findRegion(file, lines, name);
    const current = lines.slice(start, end);
    const expected = render();
    if (current.join("\n") === expected.join("\n")) continue;
    const wrong = current.filter((line) => !expected.includes(line)).map((line) => `  - ${line}`);
    const missing = expected.filter((line) => !current.includes(line)).map((line) => `  + ${line}`);
    reports.push(
      `${file}, "${name}": stale, run \`npm run generate\`.`,
      ...(wrong.length || missing.length
        ? [...wrong, ...missing]
        : ["  (its lines in another order)"]),
    );
  }
  return reports.length ? reports.join("\n") : undefined;
}
