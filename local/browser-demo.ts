// `npm start`'s demo page for the browser plugin: local/browser-server.ts on its own port, with the
// events analytics-next sends to Segment forwarded to the local webhook handler, as Segment's
// Webhooks destination would, so that one click shows both sides: the `_refiner` call on the page,
// and the server sending an identify again but skipping a track the web client took.

import { type BrowserServer, startBrowserServer } from "./browser-server.ts";

export interface DemoOptions {
  root: string;
  /** The port asked for; 0 takes any free one, as does a port already in use. */
  port: number;
  /** The local webhook handler's URL; when absent, events stop at the stand-in for Segment. */
  webhookUrl?: string;
}

export async function startBrowserDemo(options: DemoOptions): Promise<BrowserServer> {
  const forward = async ({ writeKey: _, ...event }: Record<string, unknown>) => {
    if (!options.webhookUrl) return;
    try {
      await fetch(options.webhookUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(event),
      });
    } catch (error) {
      console.error(`The demo could not forward a ${String(event.type)} to the webhook:`, error);
    }
  };
  const start = (port: number) =>
    startBrowserServer({
      root: options.root,
      port,
      onSegmentEvent: (event) => void forward(event),
    });
  const server = await start(options.port).catch(() => start(0));
  console.log(
    `Browser plugin demo (analytics-next, the plugin, a stand-in for Refiner's web client): ${server.origin}/${options.webhookUrl ? "" : " (its events are not forwarded: the webhook requires signatures)"}`,
  );
  return server;
}
