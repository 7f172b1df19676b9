// The destination's settings, as Segment passes them (`settings.apiKey`, …) or as Lambda reads them
// from its environment. Checked on every call: Segment passes settings per call, and the check is
// cheap next to a network round trip.

export const DEFAULT_API_BASE_URL = "https://api.refiner.io/v1";

export interface Settings {
  apiKey: string;
  /** No trailing slash; paths are appended to it. */
  apiBaseUrl: string;
  preserveTraitKeys: boolean;
}

export type SettingsResult = { ok: true; settings: Settings } | { ok: false; message: string };

export function parseSettings(raw: unknown): SettingsResult {
  const given = raw && typeof raw === "object" ? (raw as Record<string, unknown>) : {};

  const apiKey = typeof given.apiKey === "string" ? given.apiKey.trim() : "";
  if (!apiKey) {
    return {
      ok: false,
      message:
        "The apiKey setting is missing: set it to your Refiner API key (Refiner → Integrations → Segment, or the REST API key).",
    };
  }

  const baseUrl = parseBaseUrl(given.apiBaseUrl);
  if (!baseUrl.ok) return baseUrl;

  const preserve = parseBoolean(given.preserveTraitKeys);
  if (preserve === undefined) {
    return { ok: false, message: "The preserveTraitKeys setting must be true or false." };
  }

  return { ok: true, settings: { apiKey, apiBaseUrl: baseUrl.url, preserveTraitKeys: preserve } };
}

function parseBaseUrl(value: unknown): { ok: true; url: string } | { ok: false; message: string } {
  if (value === undefined || value === null || value === "") {
    return { ok: true, url: DEFAULT_API_BASE_URL };
  }
  const fix = `Leave apiBaseUrl empty for ${DEFAULT_API_BASE_URL}, or give an https:// URL (plain http:// only to 127.0.0.1, localhost or [::1]).`;
  if (typeof value !== "string")
    return { ok: false, message: `The apiBaseUrl setting must be a string. ${fix}` };

  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return { ok: false, message: `The apiBaseUrl setting is not a URL. ${fix}` };
  }
  // The URL itself is not echoed: it could carry credentials.
  if (url.username || url.password) {
    return { ok: false, message: `The apiBaseUrl setting must not contain credentials. ${fix}` };
  }
  if (url.search || url.hash) {
    return {
      ok: false,
      message: `The apiBaseUrl setting must not have a query or fragment. ${fix}`,
    };
  }
  const secure =
    url.protocol === "https:" || (url.protocol === "http:" && isLoopback(url.hostname));
  if (!secure) {
    return {
      ok: false,
      message: `The apiBaseUrl setting uses ${url.protocol}//${url.hostname}, which would send the API key unencrypted. ${fix}`,
    };
  }
  return { ok: true, url: `${url.origin}${url.pathname.replace(/\/+$/, "")}` };
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname);
}

function parseBoolean(value: unknown): boolean | undefined {
  if (value === undefined || value === null || value === "") return false;
  if (typeof value === "boolean") return value;
  if (typeof value === "string") {
    const text = value.trim().toLowerCase();
    if (text === "true") return true;
    if (text === "false") return false;
  }
  return undefined;
}
