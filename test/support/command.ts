// Node scripts run as a person runs them (the command, a probe beside the built CLI): what they
// print is collected as it comes, and a test waits for their end. A process a test leaves running
// (one that timed out) is killed when the test ends, so that it cannot send into the next test's
// emulator: start them inside a test.

import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { onTestFinished } from "vitest";

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Started {
  child: ChildProcessWithoutNullStreams;
  /** What it printed so far. */
  output: { stdout: string; stderr: string };
  done: Promise<Finished>;
}

export interface StartOptions {
  /** Node's own options, before the script. */
  nodeArgs?: string[];
  cwd?: string;
  /** The whole environment (default: PATH alone, so that no credential of this shell leaks in). */
  env?: NodeJS.ProcessEnv;
}

/** Starts `node [nodeArgs] script args`. */
export function startNode(
  script: string,
  args: string[],
  { nodeArgs = [], cwd, env = { PATH: process.env.PATH } }: StartOptions = {},
): Started {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], { cwd, env });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  const output = { stdout: "", stderr: "" };
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    output.stdout += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    output.stderr += chunk;
  });
  const done = new Promise<Finished>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, ...output })),
  );
  return { child, output, done };
}

/** Runs it to its end with nothing on standard input. */
export function runNode(script: string, args: string[], options?: StartOptions): Promise<Finished> {
  const { child, done } = startNode(script, args, options);
  child.stdin.end();
  return done;
}
