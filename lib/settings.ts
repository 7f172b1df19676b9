// The destination's settings, as Segment passes them (`settings.apiKey`, …) with every call, or as
// Lambda and the CLI read them from the environment. Each is declared once in SETTINGS, with how it
// is parsed and its default, and described in SETTING_TEXTS; the `Settings` type, the Public API
// settings (deploy-segment) and the Lambda variables (lib/runtimes/variables.ts) follow from them,
// and `npm run generate` writes the rest (generate/derived.ts: the Segment function's banner, the
// docs' tables, serverless.yml's environment). Messages name each setting the way its reader
// configures it.

export const DEFAULT_API_BASE_URL = "https://api.refiner.io/v1";

/** A parsed value, or what is wrong with it (a sentence that follows the setting's name). */
type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

export interface SettingDeclaration<Name extends string = string, Value = unknown> {
  name: Name;
  /** Segment's setting types; it has no number type. */
  type: "STRING" | "BOOLEAN" | "ARRAY" | "TEXT_MAP";
  required: boolean;
  sensitive: boolean;
  /** The Lambda's environment variable. */
  env: string;
  /**
   * The default, as text: what a setting that is missing or empty is read as, and what
   * serverless.yml gives the variable when the deploy's environment has none. "" for none.
   */
  default: string;
  /** Reads a given value; a missing or empty one is read as `default`. */
  parse(value: unknown): Parsed<Value>;
}

/* @__NO_SIDE_EFFECTS__ */
function setting<const Name extends string, Value>(
  declaration: SettingDeclaration<Name, Value>,
): SettingDeclaration<Name, Value> {
  return declaration;
}

/** An allow list that is not set lets everything pass; a deny list that is not set, nothing. */
const parseAllowList = (value: unknown) => parseList(value, undefined);
const parseDenyList = (value: unknown) => parseList(value, new Set<string>());

/**
 * How each setting that chooses what reaches Refiner is parsed, and its default: SETTINGS declares
 * them with these (selectionSetting), and the browser plugin parses its options of the same names
 * with them (parseSelection), without carrying the rest of the settings. They stand here rather
 * than in the declarations because a bundle that read one field of a declaration would carry all
 * of SETTINGS; `setting` and `selectionSetting` have no side effects, so that a bundle that never
 * reads SETTINGS (the browser plugin's) leaves it out.
 */
const SELECTION_PARSERS = {
  preserveTraitKeys: parseBoolean,
  traitMapping: parseTextMap,
  accountTraitMapping: parseTextMap,
  traitAllowList: parseAllowList,
  traitDenyList: parseDenyList,
  eventAllowList: parseAllowList,
  sendPageViews: parseBoolean,
};
type SelectionName = keyof typeof SELECTION_PARSERS;

/** The selection settings' defaults, as text; one left out has none (""). */
const SELECTION_DEFAULTS: { readonly [Name in SelectionName]?: string } = {
  preserveTraitKeys: "false",
  sendPageViews: "true",
};

type ParsedBy<Parse> = Parse extends (value: unknown) => Parsed<infer Value> ? Value : never;

/** A selection setting's declaration, with SELECTION_PARSERS' parser and its default. */
/* @__NO_SIDE_EFFECTS__ */
function selectionSetting<const Name extends SelectionName>(
  declaration: Omit<SettingDeclaration<Name>, "default" | "parse">,
): SettingDeclaration<Name, ParsedBy<(typeof SELECTION_PARSERS)[Name]>> {
  const { name } = declaration;
  return {
    ...declaration,
    default: SELECTION_DEFAULTS[name] ?? "",
    parse: SELECTION_PARSERS[name] as (value: unknown) => Parsed<never>,
  };
}

/** The destination's settings, declared once. */
export const SETTINGS = [
  setting({
    name: "apiKey",
    type: "STRING",
    required: true,
    sensitive: true,
    env: "REFINER_API_KEY",
    default: "",
    parse: (value) => {
      const key = typeof value === "string" ? value.trim() : "";
      return key
        ? { ok: true, value: key }
        : {
            ok: false,
            problem:
              "is missing: set it to your Refiner API key (Refiner → Integrations → Segment, or the REST API key).",
          };
    },
  }),
  setting({
    name: "apiBaseUrl",
    type: "STRING",
    required: false,
    sensitive: false,
    env: "REFINER_API_BASE_URL",
    default: "",
    parse: parseBaseUrl,
  }),
  setting({
    name: "allowAnyApiHost",
    type: "BOOLEAN",
    required: false,
    sensitive: false,
    env: "REFINER_ALLOW_ANY_API_HOST",
    default: "false",
    parse: parseBoolean,
  }),
  selectionSetting({
    name: "preserveTraitKeys",
    type: "BOOLEAN",
    required: false,
    sensitive: false,
    env: "REFINER_PRESERVE_TRAIT_KEYS",
  }),
  setting({
    name: "skipUnchangedMinutes",
    type: "STRING",
    required: false,
    sensitive: false,
    env: "REFINER_SKIP_UNCHANGED_MINUTES",
    // Segment recommends an identify on every page load; most carry nothing new.
    default: "60",
    parse: parseMinutes,
  }),
  selectionSetting({
    name: "traitMapping",
    type: "TEXT_MAP",
    required: false,
    sensitive: false,
    env: "REFINER_TRAIT_MAPPING",
  }),
  selectionSetting({
    name: "accountTraitMapping",
    type: "TEXT_MAP",
    required: false,
    sensitive: false,
    env: "REFINER_ACCOUNT_TRAIT_MAPPING",
  }),
  selectionSetting({
    name: "traitAllowList",
    type: "ARRAY",
    required: false,
    sensitive: false,
    env: "REFINER_TRAIT_ALLOW_LIST",
  }),
  selectionSetting({
    name: "traitDenyList",
    type: "ARRAY",
    required: false,
    sensitive: false,
    env: "REFINER_TRAIT_DENY_LIST",
  }),
  selectionSetting({
    name: "eventAllowList",
    type: "ARRAY",
    required: false,
    sensitive: false,
    env: "REFINER_EVENT_ALLOW_LIST",
  }),
  selectionSetting({
    name: "sendPageViews",
    type: "BOOLEAN",
    required: false,
    sensitive: false,
    env: "REFINER_SEND_PAGE_VIEWS",
  }),
] as const;

type Declared = (typeof SETTINGS)[number];
export type SettingName = Declared["name"];

/**
 * What people read of each setting: its label in Segment's editor, and what it does. Kept apart
 * from SETTINGS, which the pasted script carries to parse its settings, so that the script holds
 * these once, in its banner (build.mjs). The compiler asks for an entry for every setting.
 */
export const SETTING_TEXTS: Record<SettingName, { label: string; description: string }> = {
  apiKey: {
    label: "API Key",
    description: "Your Refiner API key (Refiner → Integrations → Segment, or the REST API key).",
  },
  apiBaseUrl: {
    label: "API Base URL",
    description:
      "Leave empty for https://api.refiner.io/v1. An https:// host under refiner.io, or plain http:// to localhost; no credentials.",
  },
  allowAnyApiHost: {
    label: "Allow Any API Host",
    description:
      "Lets API Base URL name an https:// host outside refiner.io (your own proxy): the API key goes there. Default false.",
  },
  preserveTraitKeys: {
    label: "Preserve Trait Keys",
    description: "Send trait keys as written instead of snake_case.",
  },
  skipUnchangedMinutes: {
    label: "Skip Unchanged Minutes",
    description:
      "Queued on AWS only: minutes an identify that changes nothing Refiner holds is not sent (default 60; 0 sends every one).",
  },
  traitMapping: {
    label: "Trait Mapping",
    description:
      "Renames user traits: Segment's trait as written or a dotted path (address.city) → the Refiner name, sent as written.",
  },
  accountTraitMapping: {
    label: "Account Trait Mapping",
    description: "The same for group (account) traits.",
  },
  traitAllowList: {
    label: "Trait Allow List",
    description:
      "When set, only these user and account traits are sent (keys as written or dotted paths; a key covers its nested ones).",
  },
  traitDenyList: {
    label: "Trait Deny List",
    description: "These user and account traits are never sent (keys as written or dotted paths).",
  },
  eventAllowList: {
    label: "Event Allow List",
    description:
      "When set, only events with these Refiner names are sent (a track's name, a page's Viewed Pricing Page).",
  },
  sendPageViews: {
    label: "Send Page Views",
    description: "Send page and screen calls as events (default true).",
  },
};

/** The checked settings: each declaration's parsed value, by name. */
export type Settings = {
  [S in Declared as S["name"]]: S extends SettingDeclaration<string, infer Value> ? Value : never;
};

export type SettingsResult = { ok: true; settings: Settings } | { ok: false; message: string };

/** How messages name a setting, the way its reader configures it. */
export type SettingNames = (setting: keyof Settings) => string;

/** How a Segment function's settings are named in messages. */
export const SEGMENT_SETTINGS: SettingNames = (setting) => `The ${setting} setting`;

/** How the Lambda's environment variables are named. */
export const LAMBDA_ENVIRONMENT: SettingNames = (setting) =>
  SETTINGS.find(({ name }) => name === setting)?.env ?? setting;

/** The settings as an environment gives them (Lambda, the CLI). */
export function settingsFromEnvironment(
  env: Record<string, string | undefined>,
): Record<string, unknown> {
  return Object.fromEntries(SETTINGS.map((setting) => [setting.name, env[setting.env]]));
}

/** The settings that choose what reaches Refiner and under which names (what the mapping reads). */
export type SelectionSettings = Pick<Settings, SelectionName>;

export type SelectionResult =
  | { ok: true; settings: SelectionSettings }
  | { ok: false; message: string };

/** Only the selection settings, each parsed as SETTINGS parses it (a missing one takes its default). */
export function parseSelection(
  raw: Readonly<Record<string, unknown>>,
  names: SettingNames,
): SelectionResult {
  const settings: Record<string, unknown> = {};
  const defaults: Readonly<Record<string, string | undefined>> = SELECTION_DEFAULTS;
  for (const [name, parse] of Object.entries(SELECTION_PARSERS)) {
    const given = Object.hasOwn(raw, name) ? raw[name] : undefined;
    // A selection setting without a default reads a missing value as none.
    const parsed: Parsed<unknown> = parse(isEmpty(given) ? defaults[name] : given);
    if (!parsed.ok)
      return { ok: false, message: `${names(name as SettingName)} ${parsed.problem}` };
    settings[name] = parsed.value;
  }
  return { ok: true, settings: settings as SelectionSettings };
}

export function parseSettings(
  raw: unknown,
  names: SettingNames = SEGMENT_SETTINGS,
): SettingsResult {
  const given = raw && typeof raw === "object" ? (raw as Record<string, unknown>) : {};
  const settings: Record<string, unknown> = {};
  for (const declaration of SETTINGS) {
    const value = given[declaration.name];
    const parsed: Parsed<unknown> = declaration.parse(isEmpty(value) ? declaration.default : value);
    if (!parsed.ok) return { ok: false, message: `${names(declaration.name)} ${parsed.problem}` };
    settings[declaration.name] = parsed.value;
  }
  // The API key goes to apiBaseUrl's host: Refiner's own, unless the operator says otherwise.
  if (settings.allowAnyApiHost !== true && !isRefinerHost(String(settings.apiBaseUrl))) {
    return {
      ok: false,
      message: `${names("apiBaseUrl")} must name a host under refiner.io (or 127.0.0.1, localhost or [::1]), since the API key goes to that host. ${names("allowAnyApiHost")} set to true allows another https:// host.`,
    };
  }
  return { ok: true, settings: settings as Settings };
}

function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || value === "";
}

/** Empty (its declared default) is Refiner's own API. */
function parseBaseUrl(value: unknown): Parsed<string> {
  if (isEmpty(value)) return { ok: true, value: DEFAULT_API_BASE_URL };
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
      problem: `must be an https:// URL without credentials, query or fragment (plain http:// only to 127.0.0.1, localhost or [::1]). Leave it empty for ${DEFAULT_API_BASE_URL}.`,
    };
  }
  // Only a run's first slash may start the match: `/\/+$/` rescanned a run of slashes from each of
  // them (30,000 took 0.4 s).
  return { ok: true, value: `${url.origin}${url.pathname.replace(/(?<!\/)\/+$/, "")}` };
}

/** Refiner's hosts, or this machine. The hostname is the WHATWG parser's: `\` and `@` cannot fool it. */
function isRefinerHost(baseUrl: string): boolean {
  const { hostname } = new URL(baseUrl);
  return hostname === "refiner.io" || hostname.endsWith(".refiner.io") || isLoopback(hostname);
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** Segment has no number setting: minutes come as text, or as a number from elsewhere. */
function parseMinutes(value: unknown): Parsed<number> {
  const minutes = typeof value === "string" ? Number(value.trim()) : value;
  return typeof minutes === "number" && Number.isFinite(minutes) && minutes >= 0
    ? { ok: true, value: minutes }
    : { ok: false, problem: "must be a number of minutes (0 sends every identify and group)." };
}

function parseBoolean(value: unknown): Parsed<boolean> {
  if (typeof value === "boolean") return { ok: true, value };
  if (typeof value === "string") {
    const text = value.trim().toLowerCase();
    if (text === "true") return { ok: true, value: true };
    if (text === "false") return { ok: true, value: false };
  }
  return { ok: false, problem: "must be true or false." };
}

/**
 * A TEXT_MAP: Segment gives an object of strings; an environment a JSON object. Empty means none.
 */
function parseTextMap(value: unknown): Parsed<ReadonlyMap<string, string>> {
  const problem = {
    ok: false as const,
    problem:
      'must map trait names to Refiner names, text to text (in a variable, a JSON object such as {"address.city": "city"}).',
  };
  let object = value;
  if (typeof value === "string") {
    if (value.trim() === "") return { ok: true, value: new Map() };
    try {
      object = JSON.parse(value);
    } catch {
      return problem;
    }
  }
  if (isEmpty(object)) return { ok: true, value: new Map() };
  if (typeof object !== "object" || object === null || Array.isArray(object)) return problem;
  const entries = Object.entries(object);
  if (!entries.every(([key, name]) => key.trim() && typeof name === "string" && name.trim())) {
    return problem;
  }
  return {
    ok: true,
    value: new Map(entries.map(([key, name]) => [key.trim(), (name as string).trim()])),
  };
}

/**
 * An ARRAY: Segment gives a list of strings; an environment a JSON array or a comma-separated
 * list. Empty means `none` (no list: everything passes an allow list that is not set).
 */
function parseList<None extends ReadonlySet<string> | undefined>(
  value: unknown,
  none: None,
): Parsed<ReadonlySet<string> | None> {
  const problem = {
    ok: false as const,
    problem:
      'must be a list of names (in a variable, a JSON array such as ["plan", "address.city"], or names separated by commas).',
  };
  let items = value;
  if (typeof value === "string") {
    const text = value.trim();
    if (text === "") return { ok: true, value: none };
    if (text.startsWith("[")) {
      try {
        items = JSON.parse(text);
      } catch {
        return problem;
      }
    } else {
      items = text.split(",");
    }
  }
  if (isEmpty(items)) return { ok: true, value: none };
  if (!Array.isArray(items) || !items.every((item) => typeof item === "string")) return problem;
  const names = items.map((item: string) => item.trim()).filter(Boolean);
  return { ok: true, value: names.length ? new Set(names) : none };
}
