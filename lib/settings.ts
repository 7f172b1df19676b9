// The destination's settings, as Segment passes them (`settings.apiKey`, …) with every call, or as
// Lambda reads them from its environment once. Messages name each setting the way its reader
// configures it.

export const DEFAULT_API_BASE_URL = "https://api.refiner.io/v1";

export interface Settings {
  apiKey: string;
  /** No trailing slash; paths are appended to it. */
  apiBaseUrl: string;
  preserveTraitKeys: boolean;
  /** An identify or group whose body Refiner already has is not sent again for this long; 0: off. */
  skipUnchangedMinutes: number;
}

/** Segment recommends an identify on every page load; most carry nothing new. */
export const DEFAULT_SKIP_UNCHANGED_MINUTES = 60;

export type SettingsResult = { ok: true; settings: Settings } | { ok: false; message: string };

export interface SettingDeclaration {
  name: keyof Settings;
  label: string;
  /** Segment's setting types; it has no number type. */
  type: "STRING" | "BOOLEAN";
  required: boolean;
  sensitive: boolean;
  description: string;
  /** The Lambda's environment variable. */
  env: string;
}

/**
 * The destination's settings, declared once. The Segment function's banner (build.mjs), the
 * Public API settings (deploy-segment), the Lambda's environment and the README's table come
 * from here (a test keeps the README equal).
 */
export const SETTINGS = [
  {
    name: "apiKey",
    label: "API Key",
    type: "STRING",
    required: true,
    sensitive: true,
    description: "Your Refiner API key (Refiner → Integrations → Segment, or the REST API key).",
    env: "REFINER_API_KEY",
  },
  {
    name: "apiBaseUrl",
    label: "API Base URL",
    type: "STRING",
    required: false,
    sensitive: false,
    description:
      "Leave empty for https://api.refiner.io/v1. https:// only (plain http:// only to localhost).",
    env: "REFINER_API_BASE_URL",
  },
  {
    name: "preserveTraitKeys",
    label: "Preserve Trait Keys",
    type: "BOOLEAN",
    required: false,
    sensitive: false,
    description: "Send trait keys as written instead of snake_case.",
    env: "REFINER_PRESERVE_TRAIT_KEYS",
  },
  {
    name: "skipUnchangedMinutes",
    label: "Skip Unchanged Minutes",
    type: "STRING",
    required: false,
    sensitive: false,
    description:
      "Minutes an identify or group identical to one Refiner took is not sent again (default 60; 0 sends every one).",
    env: "REFINER_SKIP_UNCHANGED_MINUTES",
  },
] as const satisfies readonly SettingDeclaration[];

/** How messages name a setting, the way its reader configures it. */
export type SettingNames = (setting: keyof Settings) => string;

/** How a Segment function's settings are named in messages. */
export const SEGMENT_SETTINGS: SettingNames = (setting) => `The ${setting} setting`;

/** How the Lambda's environment variables are named. */
export const LAMBDA_ENVIRONMENT: SettingNames = (setting) =>
  SETTINGS.find(({ name }) => name === setting)?.env ?? setting;

/** The settings as the Lambda's environment gives them. */
export function settingsFromEnvironment(
  env: Record<string, string | undefined>,
): Record<string, unknown> {
  return Object.fromEntries(SETTINGS.map((setting) => [setting.name, env[setting.env]]));
}

export function parseSettings(
  raw: unknown,
  names: SettingNames = SEGMENT_SETTINGS,
): SettingsResult {
  const given = raw && typeof raw === "object" ? (raw as Record<string, unknown>) : {};
  return checkSettings(given, names);
}

function checkSettings(given: Record<string, unknown>, names: SettingNames): SettingsResult {
  const { apiBaseUrl, preserveTraitKeys, skipUnchangedMinutes } = given;
  const apiKey = typeof given.apiKey === "string" ? given.apiKey.trim() : "";
  if (!apiKey) {
    return {
      ok: false,
      message: `${names("apiKey")} is missing: set it to your Refiner API key (Refiner → Integrations → Segment, or the REST API key).`,
    };
  }

  const baseUrl = checkBaseUrl(apiBaseUrl, names("apiBaseUrl"));
  if (!baseUrl.ok) return baseUrl;

  const preserve = parseBoolean(preserveTraitKeys);
  if (preserve === undefined) {
    return { ok: false, message: `${names("preserveTraitKeys")} must be true or false.` };
  }

  const skip = parseMinutes(skipUnchangedMinutes);
  if (skip === undefined) {
    return {
      ok: false,
      message: `${names("skipUnchangedMinutes")} must be a number of minutes (0 sends every identify and group).`,
    };
  }

  return {
    ok: true,
    settings: {
      apiKey,
      apiBaseUrl: baseUrl.url,
      preserveTraitKeys: preserve,
      skipUnchangedMinutes: skip,
    },
  };
}

type BaseUrlResult = { ok: true; url: string } | { ok: false; message: string };

function checkBaseUrl(value: unknown, name: string): BaseUrlResult {
  if (value === undefined || value === null || value === "") {
    return { ok: true, url: DEFAULT_API_BASE_URL };
  }
  let url: URL | undefined;
  if (typeof value === "string") {
    try {
      url = new URL(value.trim());
    } catch {
      // reported below
    }
  }
  // The API key travels with every request: only TLS, or plain HTTP that never leaves the machine.
  const safe =
    url !== undefined &&
    !url.username &&
    !url.password &&
    !url.search &&
    !url.hash &&
    (url.protocol === "https:" || (url.protocol === "http:" && isLoopback(url.hostname)));
  if (!safe || !url) {
    // The value itself is not echoed: it could carry credentials.
    return {
      ok: false,
      message: `${name} must be an https:// URL without credentials, query or fragment (plain http:// only to 127.0.0.1, localhost or [::1]). Leave it empty for ${DEFAULT_API_BASE_URL}.`,
    };
  }
  return { ok: true, url: `${url.origin}${url.pathname.replace(/\/+$/, "")}` };
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** Segment has no number setting: minutes come as text, or as a number from elsewhere. */
function parseMinutes(value: unknown): number | undefined {
  if (value === undefined || value === null || value === "") return DEFAULT_SKIP_UNCHANGED_MINUTES;
  const minutes = typeof value === "string" ? Number(value.trim()) : value;
  return typeof minutes === "number" && Number.isFinite(minutes) && minutes >= 0
    ? minutes
    : undefined;
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
