// Every subcommand of `refiner-destination`: `--help` prints its usage and exits 0; an
// unknown option, a missing value or an unknown command exits 2 with one line saying what is wrong
// and the usage line, never a stack trace.

import { describe, expect, it } from "vitest";
import { CLI } from "./support/cli.ts";
import { runNode } from "./support/command.ts";

// No credentials, token or key (runNode passes PATH alone): a --help or a usage error must need
// none of them.
const run = (args: string[]) => runNode(CLI, args);

const USAGE_LINES = {
  send: "refiner-destination send FILE... [options]",
  "deploy-segment": "refiner-destination deploy-segment [--display-name NAME]",
  secret: "refiner-destination secret --stage STAGE [--rotate | --end-rotation]",
};

describe.each(Object.entries(USAGE_LINES))("refiner-destination %s", (command, usage) => {
  it.each(["--help", "-h"])("prints its usage for %s and exits 0", async (flag) => {
    const result = await run([command, flag]);
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n").slice(0, 2)).toEqual(["Usage:", `  ${usage}`]);
    expect(result.stderr).toBe("");
  });

  it("refuses an unknown option with exit 2, a line saying so and the usage line", async () => {
    const result = await run([command, "--bogus"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      `refiner-destination ${command}: Unknown option '--bogus'.\nUsage: ${usage}\n(refiner-destination ${command} --help lists every option.)\n`,
    );
  });
});

describe("refiner-destination", () => {
  it("names a missing value", async () => {
    const result = await run(["secret", "--stage"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      /^refiner-destination secret: Option '--stage <value>' argument missing/,
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it("prints every command's usage for --help, and refuses an unknown command", async () => {
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    for (const usage of Object.values(USAGE_LINES)) expect(help.stdout).toContain(`  ${usage}\n`);
    const unknown = await run(["deploy"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.split("\n")[0]).toBe("refiner-destination: unknown command 'deploy'");
  });
});
