// `npm start`: serves the built Lambda `webhook` handler on http://127.0.0.1:${PORT:-3000}/ through a
// small adapter from Node's HTTP server to the Function URL event. By default the path is queued, as
// deployed: the webhook puts events on an embedded SQS (fauxqs), and a poller plays Lambda's event
// source mapping against the `deliver` handler. `npm start -- --direct` sends straight to Refiner.
// Either way the delivered messageIds go to an embedded DynamoDB (dynalite), as to the stack's table.
// With no REFINER_API_KEY it forwards to an embedded Refiner emulator and prints every call
// Refiner would receive.

import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join, relative } from "node:path";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { MAX_BODY_BYTES } from "../lib/runtimes/webhook.ts";
import { startBrowserDemo } from "./browser-demo.ts";
import { localTableEnvironment, startLocalTable } from "./dynamodb-emulator.ts";
import { functionUrlEvent } from "./function-url.ts";
import { type DeliverHandler, startPoller } from "./poller.ts";
import { type RecordedRequest, type Reply, startRefinerEmulator } from "./refiner-emulator.ts";
import { type LocalQueues, localSqsEnvironment, startLocalQueues } from "./sqs-emulator.ts";

const LOCAL_API_KEY = "local-emulator-key";

async function main(): Promise<void> {
  const env = process.env;
  if (!env.REFINER_API_KEY) {
    const refiner = await startRefinerEmulator({
      apiKey: LOCAL_API_KEY,
      onRequest: (request, reply) => console.log(emulatorLine(request, reply)),
    });
    env.REFINER_API_KEY = LOCAL_API_KEY;
    env.REFINER_API_BASE_URL = refiner.url;
    console.log(
      [
        `No REFINER_API_KEY: forwarding to an embedded Refiner emulator at ${refiner.url}`,
        `  its API key: ${LOCAL_API_KEY} (a local stand-in, not a secret). A backfill against it:`,
        `  REFINER_API_KEY=${LOCAL_API_KEY} REFINER_API_BASE_URL=${refiner.url} npx refiner-destination send events/*.json`,
      ].join("\n"),
    );
  } else {
    console.log(
      `Forwarding to Refiner at ${env.REFINER_API_BASE_URL || "https://api.refiner.io/v1"}`,
    );
  }
  const signed = Boolean(env.SEGMENT_SHARED_SECRET || env.SEGMENT_WEBHOOK_TOKEN);
  if (!signed) env.ALLOW_UNSIGNED_WEBHOOKS ??= "true";

  // The table of delivered messageIds, as deployed: an embedded DynamoDB (dynalite).
  const table = await startLocalTable({ root: join(__dirname, "..", "..") });
  Object.assign(env, localTableEnvironment(table));
  console.log(`Delivered messageIds in an embedded DynamoDB at ${table.endpoint}`);

  const queued = !process.argv.includes("--direct");
  let queues: LocalQueues | undefined;
  if (queued) {
    queues = await startLocalQueues();
    Object.assign(env, localSqsEnvironment(queues.endpoint), {
      REFINER_QUEUE_URL: queues.queueUrl,
    });
    console.log(
      `Queued delivery through an embedded SQS at ${queues.endpoint} (--direct to skip it)`,
    );
  }

  // The built artifact itself, exactly as Lambda runs it.
  const { webhook, deliver } = require(join(__dirname, "..", "lambda", "handler.js")) as {
    webhook: (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;
    deliver: DeliverHandler;
  };
  if (queues) {
    startPoller({
      client: queues.client,
      queueUrl: queues.queueUrl,
      handlers: [deliver, deliver],
      onBatch: (deleted, failed) =>
        console.log(`delivered ${deleted}${failed ? `, ${failed} to retry later` : ""}`),
    });
  }

  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        // A Function URL refuses larger bodies before the function runs.
        if (size > MAX_BODY_BYTES) {
          res.writeHead(413).end();
          return;
        }
        chunks.push(chunk as Buffer);
      }
    } catch {
      // The client went away in the middle of its body: nothing to answer, keep serving.
      res.destroy();
      return;
    }
    const event = functionUrlEvent({
      method: req.method ?? "GET",
      url: req.url ?? "/",
      headers: req.headers,
      body: Buffer.concat(chunks),
      sourceIp: req.socket.remoteAddress,
    });
    const result = await webhook(event);
    const status = result.statusCode ?? 200;
    // The path only: the query may carry the webhook token.
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    console.log(`${req.method} ${path} → ${status} ${result.body ?? ""}`);
    if (queued && status === 200) console.log(`queued ${accepted(result.body)}`);
    res.writeHead(status, result.headers as Record<string, string>);
    res.end(result.body ?? "");
  });

  const port = Number(env.PORT ?? 3000);
  await new Promise<void>((resolve) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code !== "EADDRINUSE") throw error;
      console.error(
        `Port ${port} on 127.0.0.1 is in use. Stop what holds it, or choose another port: PORT=3001 npm start (PORT=0 takes any free one).`,
      );
      process.exit(1);
    });
    server.listen(port, "127.0.0.1", resolve);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const root = join(__dirname, "..", "..");
  // A line that works as printed: the signature is computed here, never the secret shown.
  const sample = readFileSync(join(root, "events", "identify.json"));
  const secret = env.SEGMENT_SHARED_SECRET;
  const signature = secret
    ? ` -H 'X-Signature: ${createHmac("sha1", secret).update(sample).digest("hex")}'`
    : env.SEGMENT_WEBHOOK_TOKEN
      ? ` -H "Authorization: Bearer $SEGMENT_WEBHOOK_TOKEN"`
      : "";
  console.log(
    [
      `Webhook handler listening on ${url} (${signed ? "signatures required" : "unsigned requests allowed"})`,
      `Pasteable Segment function: ${relative(process.cwd(), join(root, "dist", "segment-function.js")) || "dist/segment-function.js"}`,
      "Try it:",
      `  curl -sS ${url} -H 'Content-Type: application/json'${signature} --data-binary @events/identify.json`,
    ].join("\n"),
  );

  // The browser plugin's demo page, on the next port (local/browser-demo.ts).
  await startBrowserDemo({ root, port: port ? port + 1 : 0, webhookUrl: signed ? undefined : url });

  // Ctrl-C, or SIGTERM (npm passes its own on: the start script execs node), ends everything this
  // process started, the embedded services included, and frees the port. Open keep-alive
  // connections are closed rather than waited for.
  const stop = (signal: NodeJS.Signals) => {
    console.log(`${signal}: stopping.`);
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

/** What the emulator took, or refused and why: what Refiner would have done. */
function emulatorLine(request: RecordedRequest, reply: Reply): string {
  const call = `${request.method} ${request.path}`;
  const body = request.body === undefined ? "" : ` ${JSON.stringify(request.body)}`;
  if ("hang" in reply) return `  Refiner leaves ${call} unanswered`;
  if ("drop" in reply) return `  Refiner drops the connection of ${call}`;
  const status = reply.status ?? 200;
  if (status >= 200 && status < 300) return `  Refiner ← ${call}${body}`;
  const why = reply.body === undefined ? "" : ` ${JSON.stringify(reply.body)}`;
  return `  Refiner refused ${call} with ${status}${why}`;
}

/** How many events a 200 answer accepted: one, or a batch's 200 items. */
function accepted(body: string | undefined): number {
  try {
    const { results } = JSON.parse(body ?? "{}") as { results?: { status: number }[] };
    return results ? results.filter((item) => item.status === 200).length : 1;
  } catch {
    return 1;
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
