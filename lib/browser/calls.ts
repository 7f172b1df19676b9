// What the browser plugin asks of Refiner's web client, and its options. Pure: no DOM, no clock.
// The traits, the contact, the renames and the allow and deny lists are the server's own
// (lib/segment/mapping.ts and lib/settings.ts): the web client gets exactly what the REST API would.

import type { IdentifyBody } from "../refiner/client.ts";
import { type Fields, objectAt, validateEvent } from "../segment/event.ts";
import { isOutcome, type MappingOptions, refinerCall } from "../segment/mapping.ts";
import { isPlainObject } from "../segment/traits.ts";
import { parseSelection } from "../settings.ts";

export const DEFAULT_SCRIPT_URL = "https://js.refiner.io/v001/client.js";

export interface PluginOptions {
  projectId: string;
  scriptUrl: string;
  mapping: MappingOptions;
}

export type OptionsResult = { ok: true; options: PluginOptions } | { ok: false; message: string };

/** The Analytics.js calls the plugin takes to the web client. */
export type BrowserCall = "identify" | "group" | "track" | "page" | "screen";

/** A `_refiner(…)` call's arguments. */
export type WebClientCall =
  | ["identifyUser", IdentifyBody]
  | ["identifyUser", IdentifyBody, { signature: string }]
  | ["trackEvent", string];

/** The plugin's options, checked: a message naming the option to fix, never an exception. */
export function parseOptions(raw: unknown): OptionsResult {
  const given = isPlainObject(raw) ? raw : {};
  const projectId = typeof given.projectId === "string" ? given.projectId.trim() : "";
  if (!projectId) {
    return {
      ok: false,
      message: "Refiner: the projectId option is missing (Refiner → Settings → Web Client).",
    };
  }
  const scriptUrl = given.scriptUrl ?? DEFAULT_SCRIPT_URL;
  if (typeof scriptUrl !== "string" || !scriptUrl) {
    return { ok: false, message: "Refiner: the scriptUrl option must be a URL." };
  }
  // Refiner's client sees page views itself: the browser sends them as events only when asked.
  const selection = parseSelection(
    { ...given, sendPageViews: given.sendPageViews ?? false },
    (name) => `Refiner: the ${name} option`,
  );
  if (!selection.ok) return { ok: false, message: selection.message };
  return { ok: true, options: { projectId, scriptUrl, mapping: selection.settings } };
}

/**
 * The web client call for an Analytics.js event, or none (left out by the options, or no contact
 * to identify). `signature`: Refiner's identity verification signature for this user, if any.
 */
export function webClientCall(
  type: BrowserCall,
  event: unknown,
  options: MappingOptions,
  signature?: string,
): WebClientCall | undefined {
  // A track goes to the visitor the web client knows, identified or anonymous: no contact needed.
  const valid = validateEvent(
    type,
    event,
    type === "identify" || type === "group" ? undefined : {},
  );
  const call = isOutcome(valid) ? valid : refinerCall(valid, options);
  if (isOutcome(call) || call.call === "deleteContact") return undefined;
  if (call.call === "trackEvent") return ["trackEvent", call.body.event];
  return signature ? ["identifyUser", call.body, { signature }] : ["identifyUser", call.body];
}

/** The signature given as `{ integrations: { Refiner: { signature } } }`, if any. */
export function signatureOf(event: Fields): string | undefined {
  const { signature } = objectAt(objectAt(event, "integrations"), "Refiner");
  return typeof signature === "string" && signature ? signature : undefined;
}

/** Whether the event's `integrations` leave Refiner on, as Analytics.js decides for destinations. */
export function sentToRefiner(event: Fields): boolean {
  const integrations = objectAt(event, "integrations");
  const own = integrations.Refiner;
  return own === undefined || own === null ? integrations.All !== false : own !== false;
}
