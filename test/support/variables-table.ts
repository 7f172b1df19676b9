// docs/lambda.md's table of variables, as lib/runtimes/variables.ts declares them.

import type { LambdaVariable } from "../../lib/runtimes/variables.ts";

export function variableRow(variable: LambdaVariable): string {
  const functions =
    variable.functions.length === 3
      ? "all"
      : variable.functions.map((fn) => `\`${fn}\``).join(", ");
  const fallback = variable.default ? `\`${variable.default}\`` : "—";
  return `| \`${variable.name}\` | ${functions} | ${fallback} | ${variable.secret ? "yes" : "—"} | ${variable.setBy === "--param" ? "`--param`" : variable.setBy} | ${variable.meaning} |`;
}
