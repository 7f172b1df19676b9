// Loads the built dist/lambda/handler.js as Lambda's Node runtime would (CommonJS, global fetch),
// and builds the Function URL events the `webhook` handler receives.

import { createHmac } from "node:crypto";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  SQSEvent,
} from "aws-lambda";
import { vi } from "vitest";
import { functionUrlEvent } from "../../local/function-url.ts";

export const LAMBDA_HANDLER = fileURLToPath(
  new URL("../../dist/lambda/handler.js", import.meta.url),
);

export interface LambdaHandlers {
  segment(event: unknown): Promise<unknown>;
  webhook(event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2>;
  deliver(event: SQSEvent): Promise<{ batchItemFailures: { itemIdentifier: string }[] }>;
}

/**
 * A cold start: the bundle is loaded anew, so it reads the environment as it is now (the handler
 * reads it once, at module load) and starts with an empty memory of delivered messageIds.
 */
export function loadLambda(): LambdaHandlers {
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

/**
 * Silences console.* for the current test and returns what was written, as `[level, ...args]`.
 * Undone by `vi.restoreAllMocks()`.
 */
export function captureConsole(): unknown[][] {
  const lines: unknown[][] = [];
  for (const level of ["log", "info", "warn", "error"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      lines.push([level, ...args]);
    });
  }
  return lines;
}
