// The AWS Lambda handlers for tests, built from lib/ as handler.ts builds them (a fresh cold start
// each time), or loaded from the built dist/lambda/handler.js as Lambda's Node runtime loads it
// (CommonJS, global fetch), for the few tests about the bundle itself; and the Function URL events
// the `webhook` handler receives.

import { createHmac } from "node:crypto";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { vi } from "vitest";
import type { Fetch } from "../../lib/refiner/client.ts";
import { type LambdaHandlers, lambdaHandlers } from "../../lib/runtimes/lambda-handlers.ts";
import { functionUrlEvent } from "../../local/function-url.ts";

export type { LambdaHandlers };

export const LAMBDA_HANDLER = fileURLToPath(
  new URL("../../dist/lambda/handler.js", import.meta.url),
);

/** The parts of Lambda's context the handlers read. */
export interface TestContext {
  awsRequestId: string;
  getRemainingTimeInMillis(): number;
}

/** Sets these variables for the current test (undone by `vi.unstubAllEnvs()`). */
export function stubEnvs(env: Record<string, string>): void {
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
}

/**
 * A cold start from source: it reads the environment as it is now and starts with empty memories
 * (of delivered messageIds, of contact states, of the secret), as handler.ts does at module load.
 */
export function loadLambda(): LambdaHandlers {
  return lambdaHandlers(process.env, globalThis.fetch as unknown as Fetch);
}

/** A cold start of the built bundle, loaded anew as Lambda loads it. */
export function loadLambdaBundle(): LambdaHandlers {
  const require = createRequire(import.meta.url);
  delete require.cache[LAMBDA_HANDLER];
  return require(LAMBDA_HANDLER) as LambdaHandlers;
}

export function sign(secret: string, body: string | Buffer): string {
  return createHmac("sha1", secret).update(body).digest("hex");
}

/** A POST from Segment's Webhooks destination, as the Function URL hands it to the function. */
export function webhookPost(
  body: string | Buffer,
  headers: Record<string, string> = {},
  { method = "POST", url = "/" }: { method?: string; url?: string } = {},
): APIGatewayProxyEventV2 {
  return functionUrlEvent({
    method,
    url,
    headers: { "content-type": "application/json", "user-agent": "Segment.io/1.0", ...headers },
    body: Buffer.from(body),
    sourceIp: "54.186.40.12",
  });
}

/** The embedded-metrics lines the handlers wrote since the last captureConsole(). */
export const metricLines: Record<string, unknown>[] = [];

/**
 * Silences console.* and the handlers' JSON lines on standard output and error for the current
 * test, and returns what was logged as `[level, fields]` (the JSON lines without their `level` and
 * `timestamp`); embedded-metrics lines go to `metricLines`. Undone by `vi.restoreAllMocks()`.
 */
export function captureConsole(): unknown[][] {
  const lines: unknown[][] = [];
  metricLines.length = 0;
  for (const level of ["log", "info", "warn", "error"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      lines.push([level, ...args]);
    });
  }
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream);
    vi.spyOn(stream, "write").mockImplementation(((chunk: unknown, ...rest: unknown[]) => {
      const text = String(chunk);
      let parsed: Record<string, unknown> | undefined;
      try {
        parsed = text.startsWith("{") ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined;
      }
      if (!parsed) return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
      if ("_aws" in parsed) metricLines.push(parsed);
      else {
        const { level, timestamp: _timestamp, ...fields } = parsed;
        lines.push([String(level).toLowerCase(), fields]);
      }
      return true;
    }) as typeof stream.write);
  }
  return lines;
}
