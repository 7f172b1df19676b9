// The pages of the browser plugin on 127.0.0.1: the real @segment/analytics-next (bundled by
// build.mjs into dist/dev/analytics-page.js), the built plugin (dist/browser/), the stand-in for
// Refiner's web client (local/refiner-web-client.js), and a stand-in for Segment's tracking API that
// records what analytics-next sends to Segment. Used by the browser tests, `npm start`'s demo page
// (local/browser-demo.html) and the bench; nothing here reaches the internet.

import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

/** An event analytics-next posted to Segment's tracking API (`/v1/t`, `/v1/i`, …). */
export type SentToSegment = Record<string, unknown>;

export interface BrowserServer {
  /** e.g. `http://127.0.0.1:41234` */
  origin: string;
  /** What analytics-next sent to Segment, in order. */
  segmentEvents: SentToSegment[];
  /** Every path requested, in order. */
  paths: string[];
  /** Answers the held requests for `/slow-client.js` (the stand-in client, once released). */
  releaseSlowClient(): void;
  reset(): void;
  close(): Promise<void>;
}

export interface BrowserServerOptions {
  /** The repository's root (dist/ and local/ below it). */
  root: string;
  port?: number;
  onSegmentEvent?: (event: SentToSegment) => void;
}

/** The page the tests drive: analytics-next and the plugin as a classic script, nothing loaded yet. */
const TEST_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>Refiner plugin test page</title>
<link rel="icon" href="data:,">
<script src="/analytics.js"></script>
<script src="/refiner.js"></script>
<script src="/page-setup.js"></script>
`;

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".html": "text/html; charset=utf-8",
};

export async function startBrowserServer(options: BrowserServerOptions): Promise<BrowserServer> {
  const { root } = options;
  const files: Record<string, string> = {
    "/analytics.js": join(root, "dist", "dev", "analytics-page.js"),
    "/refiner.js": join(root, "dist", "browser", "refiner.js"),
    "/refiner.mjs": join(root, "dist", "browser", "refiner.mjs"),
    "/refiner-web-client.js": join(root, "local", "refiner-web-client.js"),
    "/page-setup.js": join(root, "local", "browser-page-setup.js"),
    "/": join(root, "local", "browser-demo.html"),
  };
  const segmentEvents: SentToSegment[] = [];
  const paths: string[] = [];
  let held: ServerResponse[] = [];
  let released = false;

  const serveFile = (res: ServerResponse, file: string) => {
    const type = TYPES[file.slice(file.lastIndexOf("."))] ?? "application/octet-stream";
    res.writeHead(200, { "content-type": type, "cache-control": "no-store" });
    res.end(readFileSync(file));
  };

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    paths.push(path);
    if (req.method === "POST" && path.startsWith("/v1/")) {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const event = JSON.parse(Buffer.concat(chunks).toString("utf8")) as SentToSegment;
      segmentEvents.push(event);
      options.onSegmentEvent?.(event);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
      return;
    }
    if (path === "/test.html") {
      res.writeHead(200, { "content-type": TYPES[".html"] }).end(TEST_PAGE);
      return;
    }
    if (path === "/slow-client.js") {
      if (released) serveFile(res, join(root, "local", "refiner-web-client.js"));
      else held.push(res);
      return;
    }
    const file = files[path];
    if (file) serveFile(res, file);
    else res.writeHead(404, { "content-type": "text/plain" }).end("not found");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;

  return {
    origin: `http://127.0.0.1:${port}`,
    segmentEvents,
    paths,
    releaseSlowClient() {
      released = true;
      for (const res of held) serveFile(res, join(root, "local", "refiner-web-client.js"));
      held = [];
    },
    reset() {
      segmentEvents.length = 0;
      paths.length = 0;
      released = false;
      for (const res of held) res.destroy();
      held = [];
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of held) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
