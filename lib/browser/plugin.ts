// `refinerPlugin(options)`: an Analytics.js 2.0 destination plugin that takes the page's own
// identify, group, track and page calls to Refiner's web client (docs/browser.md).
//
// Loading: Refiner's snippet, as Refiner writes it. `window._refiner` queues its `arguments` on
// `window._refinerQueue` until the client's script has run and replays them; every call goes through
// `window._refiner` as it is when the call is made.
//
// Tracks (and pages, when sendPageViews is on) are taken by a companion enrichment plugin, which
// Analytics.js runs before every destination, Segment's own included: there the plugin calls the
// web client and marks the event (`context.refiner.webClient`), so that the mark reaches Segment and
// the server doors skip the event. An event is marked only when the client took it:
// - loaded: the call is made at once, and the event marked;
// - still loading: the call is queued, and the event waits until the script has run (marked) or
//   failed (taken back out of the queue, unmarked), at most HOLD_MS; past that it is taken back out
//   of the queue and goes on unmarked, as do the next ones until the script has run;
// - failed (blocked, 404) or not configured: nothing is called and nothing is marked.
// So Refiner counts each track once, and none is lost when the browser fails.

import { WEB_CLIENT_MARK } from "../segment/mapping.ts";
import {
  type OptionsResult,
  type PluginOptions,
  parseOptions,
  sentToRefiner,
  signatureOf,
  webClientCall,
} from "./calls.ts";

/** How long an early track waits for the web client's script before going on unmarked. */
const HOLD_MS = 3000;

declare const PLUGIN_VERSION: string | undefined;
const VERSION = typeof PLUGIN_VERSION === "string" ? PLUGIN_VERSION : "0.0.0-dev";

/** The part of Analytics.js's Context the plugin uses. */
export interface PluginContext {
  event: Record<string, unknown>;
}

/** The part of the Analytics instance the plugin uses. */
export interface PluginHost {
  register(...plugins: AnalyticsPlugin[]): Promise<unknown>;
  on?(event: "reset", listener: () => void): unknown;
}

type Hook = (ctx: PluginContext) => Promise<PluginContext>;

export interface AnalyticsPlugin {
  name: string;
  type: "destination" | "enrichment";
  version: string;
  isLoaded(): boolean;
  load(ctx: unknown, analytics: PluginHost): Promise<void>;
  identify?: Hook;
  group?: Hook;
  track?: Hook;
  page?: Hook;
  screen?: Hook;
}

/** Never throws, whatever the options: a bad one is reported once, when Analytics.js loads it. */
export function refinerPlugin(options?: unknown): AnalyticsPlugin {
  let parsed: OptionsResult;
  try {
    parsed = parseOptions(options);
  } catch {
    parsed = { ok: false, message: "Refiner: unreadable options." };
  }
  const client: WebClient | undefined = parsed.ok
    ? { state_: "idle", loaded_: Promise.resolve(false), gaveUp_: false, options_: parsed.options }
    : undefined;
  const identifyHook: Hook = async (ctx) => {
    if (client) identify(client, ctx.event);
    return ctx;
  };
  const pass: Hook = async (ctx) => ctx;
  return {
    name: "Refiner",
    type: "destination",
    version: VERSION,
    isLoaded: () => client?.state_ === "loaded",
    async load(_ctx, analytics) {
      if (!client) {
        if (!parsed.ok) console.error(parsed.message);
        return;
      }
      try {
        start(client, analytics);
      } catch {
        // A page without a <head>, a host without register: no client, and analytics carries on.
      }
    },
    identify: identifyHook,
    group: identifyHook,
    // Taken, and marked, by the enrichment plugin that load() registers.
    track: pass,
    page: pass,
  };
}

/**
 * Refiner's web client in this page, and what the plugin remembers about it. (Fields ending in `_`
 * are the plugin's own: build.mjs lets the minifier shorten them, for the 10 KB budget.)
 */
interface WebClient {
  state_: "idle" | "loading" | "loaded" | "failed";
  /** Whether the script ran (true) or failed (false), once it did either. */
  loaded_: Promise<boolean>;
  /** The script outlasted HOLD_MS: tracks go on unmarked until it has run. */
  gaveUp_: boolean;
  /** The last identity verification signature given, and whose it is. */
  remembered_?: [userId: unknown, signature: string] | undefined;
  options_: PluginOptions;
}

/** The page's window, where Refiner's snippet keeps `_refiner` and `_refinerQueue`. */
const page = (): Record<string, unknown> => Object(globalThis);

/** `_refinerQueue` when it is the snippet's array. */
function refinerQueue(): unknown[] | undefined {
  const queue = page()._refinerQueue;
  return Array.isArray(queue) ? queue : undefined;
}

/** Registers the enrichment plugin, defines the snippet's stub, sets the project, injects the script. */
function start(client: WebClient, analytics: PluginHost): void {
  const document = Object(page().document);
  if (client.state_ !== "idle" || typeof document.createElement !== "function") return;
  // Registered before anything else, so that no track reaches Segment before it can be marked.
  const marking: Hook = (ctx) => take(client, ctx).catch(() => ctx);
  analytics
    .register({
      name: "Refiner mark",
      type: "enrichment",
      version: VERSION,
      isLoaded: () => true,
      load: async () => undefined,
      track: marking,
      page: marking,
      screen: marking,
    })
    .catch(() => undefined);
  analytics.on?.("reset", () => {
    client.remembered_ = undefined;
    call(client, "resetUser");
  });
  client.state_ = "loading";
  const globals = page();
  if (!refinerQueue()) globals._refinerQueue = [];
  if (typeof globals._refiner !== "function") {
    globals._refiner = function refinerStub() {
      // biome-ignore lint/complexity/noArguments: Refiner's client replays `arguments` objects.
      refinerQueue()?.push(arguments);
    };
  }
  const { projectId, scriptUrl } = client.options_;
  call(client, "setProject", projectId);
  const script = document.createElement("script");
  script.async = true;
  script.src = scriptUrl;
  client.loaded_ = new Promise<boolean>((resolve) => {
    script.onload = () => resolve(true);
    script.onerror = () => resolve(false);
  }).then((ran) => {
    client.state_ = ran ? "loaded" : "failed";
    if (!ran) console.warn(`Refiner: ${scriptUrl} did not load: no surveys on this page.`);
    return ran;
  });
  document.head.appendChild(script);
}

/** An identify or group, with the user's signature (its own, or the last one given for them). */
function identify(client: WebClient, event: Record<string, unknown>): void {
  try {
    const own = signatureOf(event);
    if (own) client.remembered_ = [event.userId, own];
    const [userId, signature] = client.remembered_ ?? [];
    const type = event.type === "group" ? "group" : "identify";
    const mapping = client.options_.mapping;
    const args = webClientCall(
      type,
      event,
      mapping,
      userId === event.userId ? signature : undefined,
    );
    if (args) call(client, ...args);
  } catch {
    // Nothing the plugin does may break analytics or another plugin.
  }
}

/** A track, page or screen: to the web client, marked when it took it (see the top). */
async function take(client: WebClient, ctx: PluginContext): Promise<PluginContext> {
  const { event } = ctx;
  const { type } = event;
  const args =
    (type === "track" || type === "page" || type === "screen") &&
    sentToRefiner(event) &&
    webClientCall(type, event, client.options_.mapping);
  if (!args || (client.state_ === "loading" && client.gaveUp_)) return ctx;
  const queued = call(client, ...args);
  if (
    client.state_ === "loading" &&
    !(await Promise.race([client.loaded_, new Promise((done) => setTimeout(done, HOLD_MS, false))]))
  ) {
    const queue = refinerQueue() ?? [];
    if (queued && queue.includes(queued)) queue.splice(queue.indexOf(queued), 1);
    client.gaveUp_ = client.state_ === "loading";
    return ctx;
  }
  if (client.state_ === "loaded") {
    const context = Object(event.context);
    context[WEB_CLIENT_MARK.context] = {
      ...Object(context[WEB_CLIENT_MARK.context]),
      [WEB_CLIENT_MARK.key]: true,
    };
    event.context = context;
  }
  return ctx;
}

/** `window._refiner(...args)` while the client is loading or loaded; the queue entry, if queued. */
function call(client: WebClient, ...args: unknown[]): unknown {
  const refiner = page()._refiner;
  const queue = refinerQueue();
  const before = queue?.length ?? 0;
  try {
    if (
      typeof refiner === "function" &&
      (client.state_ === "loading" || client.state_ === "loaded")
    ) {
      refiner(...args);
    }
  } catch {
    // Refiner's client failing on one call must not break analytics or the next call.
  }
  return queue && queue.length > before ? queue.at(-1) : undefined;
}
