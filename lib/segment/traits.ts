// Segment traits → Refiner traits. Refiner stores flat strings, int32 integers, booleans and dates
// (keys ending in `_at` / `_date`), and shows keys in snake_case; see docs/mapping.md.

import type { TraitValue } from "../refiner/client.ts";

export type { TraitValue };
export type Traits = Record<string, TraitValue>;

const INT32_MAX = 2147483647;

/** Objects nested deeper than this are sent as their JSON text, so hostile depth cannot hurt. */
export const MAX_TRAIT_DEPTH = 8;

/**
 * The longest trait key kept as written: a longer one is cut to its first MAX_KEY_LENGTH
 * characters before anything reads it (docs/mapping.md, "Traits"). Refiner documents no limit on
 * keys; 255 is the shortest text it documents keeping. The cut bounds every key's cost too.
 */
export const MAX_KEY_LENGTH = 255;

// Where snake_case puts a `_`: before a capital that follows a lower-case letter or a digit
// (`firstName`), and before the last capital of a run when a lower-case letter follows it
// (`HTMLTitle`). Written as lookarounds, each position is tested once: linear in the key's length.
// (The earlier `(\p{Lu}+)(\p{Lu}\p{Ll})` rescanned a run of capitals from each of its letters: a
// 30,000-capital key took over a second.)
const WORD_BOUNDARY = /(?<=[\p{Ll}\p{N}])(?=\p{Lu})|(?<=\p{Lu})(?=\p{Lu}\p{Ll})/gu;
const SEPARATORS = /[^\p{L}\p{N}]+/gu;

/** `firstName` → `first_name`, `HTMLTitle` → `html_title`, `total billed` → `total_billed`. */
export function snakeCase(key: string): string {
  return key
    .replace(WORD_BOUNDARY, "_")
    .replace(SEPARATORS, "_")
    .toLowerCase()
    .replace(/^_|_$/g, ""); // after SEPARATORS, at most one `_` at either end
}

/**
 * Told of a trait key the mapping cannot send as written: `empty`, a key that normalizes to
 * nothing (`🚀`, `$`), which is left out; `collision`, a key that normalizes to the same name as
 * another key of the same traits (`First Name`, `firstName`), of which one value is sent. The key
 * is told as written, never its value.
 */
export type KeyNotice = (kind: "empty" | "collision", key: string) => void;

/** `key` cut to MAX_KEY_LENGTH characters, never after the first half of a surrogate pair. */
export function cutKey(key: string): string {
  const half = HIGH_SURROGATE.test(key.charAt(MAX_KEY_LENGTH - 1));
  return key.slice(0, half ? MAX_KEY_LENGTH - 1 : MAX_KEY_LENGTH);
}
const HIGH_SURROGATE = /[\ud800-\udbff]/;

export interface TraitOptions {
  preserveKeys: boolean;
  notice?: KeyNotice | undefined;
  /** Top-level keys, as written, that are not traits (`userId`). */
  skip?: readonly string[];
  /** Keys the body uses itself (`id`, `email`, `account`): no trait may produce them. */
  reserved?: readonly string[];
  /** The user's choice of traits (settings traitMapping, traitAllowList, traitDenyList). */
  selection?: TraitSelection;
}

/**
 * Which traits are sent, and under which names. Paths are Segment's keys as written, nested ones
 * joined with dots (`address.city`); a path covers everything nested below it.
 */
export interface TraitSelection {
  /** Path → the Refiner name, sent as written; for an object, the prefix of its flattened keys. */
  rename: ReadonlyMap<string, string>;
  /** When set, only these paths are sent. */
  allow: ReadonlySet<string> | undefined;
  deny: ReadonlySet<string>;
  /** Top-level keys that pass the allow list whatever it says (an Engage audience's own key). */
  alwaysAllow?: readonly string[];
}

/** How a path stands with an allow list: sent, not sent, or an object some of whose keys are. */
type Allowed = "yes" | "no" | "partly";

function allowedBy(selection: TraitSelection | undefined, path: string, depth: number): Allowed {
  const allow = selection?.allow;
  if (!allow || allow.has(path)) return "yes";
  if (depth === 0 && selection.alwaysAllow?.includes(path)) return "yes";
  return hasEntryBelow(allow, path) ? "partly" : "no";
}

/** Each allow list sorted once (settings are parsed per call, so per call). */
const sortedLists = new WeakMap<ReadonlySet<string>, string[]>();

/**
 * Whether an entry of `allow` lies below `path` (starts with `path.`): a binary search, since
 * entries with one prefix sort together, where the prefix itself would go. A scan of the whole
 * list for every key took 22 ms an event for 1,000 entries and 5,000 keys.
 */
function hasEntryBelow(allow: ReadonlySet<string>, path: string): boolean {
  let sorted = sortedLists.get(allow);
  if (!sorted) {
    sorted = [...allow].sort();
    sortedLists.set(allow, sorted);
  }
  const below = `${path}.`;
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((sorted[middle] ?? "") < below) low = middle + 1;
    else high = middle;
  }
  return sorted[low]?.startsWith(below) ?? false;
}

/**
 * Flattens and normalizes a traits object. Keys never touch a prototype: the result is built from
 * entries, so `__proto__` and `constructor` are ordinary keys.
 */
export function normalizeTraits(source: Record<string, unknown>, options: TraitOptions): Traits {
  const out = new Map<string, { value: TraitValue; exact: boolean }>();
  const rename = options.preserveKeys ? (key: string) => key : snakeCase;
  const { notice } = options;

  const put = (key: string, rawPath: string, value: TraitValue) => {
    if (options.reserved?.includes(key)) return;
    const exact = rawPath === key;
    const existing = out.get(key);
    if (existing) notice?.("collision", rawPath);
    // A key already written in snake_case beats one that only normalizes to it.
    if (existing?.exact && !exact) return;
    out.set(key, { value, exact });
  };

  const { selection } = options;
  /** `covered`: an enclosing path is on the allow list, so everything below it is sent. */
  const walk = (
    object: Record<string, unknown>,
    prefix: string,
    rawPrefix: string,
    dottedPrefix: string,
    depth: number,
    covered: boolean,
  ) => {
    for (const [writtenKey, value] of Object.entries(object)) {
      const rawKey = cutKey(writtenKey);
      if (depth === 0 && options.skip?.includes(rawKey)) continue;
      const dotted = dottedPrefix ? `${dottedPrefix}.${rawKey}` : rawKey;
      if (selection?.deny.has(dotted)) continue;
      const allowed = covered ? "yes" : allowedBy(selection, dotted, depth);
      if (allowed === "no" || (allowed === "partly" && !isPlainObject(value))) continue;
      // A renamed key is sent as the user wrote its new name; it counts as written in snake_case.
      const mapped = selection?.rename.get(dotted);
      const renamed = mapped && cutKey(mapped);
      const part = renamed ?? rename(rawKey);
      if (!part) {
        notice?.("empty", dotted);
        continue;
      }
      const key = renamed ?? (prefix ? `${prefix}_${part}` : part);
      const rawPath = renamed ?? (rawPrefix ? `${rawPrefix}_${rawKey}` : rawKey);

      if (isPlainObject(value)) {
        if (depth + 1 < MAX_TRAIT_DEPTH) {
          walk(value, key, rawPath, dotted, depth + 1, allowed === "yes");
        } else put(key, rawPath, jsonText(value));
        continue;
      }
      const converted = traitValue(value);
      if (converted !== undefined) put(key, rawPath, converted);
    }
  };

  walk(source, "", "", "", 0, false);
  return Object.fromEntries([...out].map(([key, { value }]) => [key, value]));
}

function traitValue(value: unknown): TraitValue | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      if (!Number.isFinite(value)) return undefined;
      // Refiner keeps integers only in int32; a larger one (an id, a timestamp in ms) stays exact
      // as text.
      return Number.isInteger(value) && Math.abs(value) > INT32_MAX ? String(value) : value;
    case "object":
      if (Array.isArray(value)) return arrayValue(value);
      return undefined; // null (plain objects are flattened by the caller)
    default:
      return undefined; // undefined, functions, symbols, bigint: not JSON data
  }
}

function arrayValue(items: unknown[]): string {
  const primitive = items.every(
    (item) =>
      item === null ||
      typeof item === "string" ||
      typeof item === "boolean" ||
      (typeof item === "number" && Number.isFinite(item)),
  );
  if (!primitive) return jsonText(items);
  return items
    .filter((item) => item !== null)
    .map(String)
    .join(", ");
}

/** Nesting kept in a trait sent as JSON text; deeper values become a marker. */
const MAX_JSON_DEPTH = 32;

/**
 * JSON text of a JSON value with its nesting cut off at MAX_JSON_DEPTH, so that no input (a
 * 5,000-level object, say) can exhaust the stack as JSON.stringify would.
 */
export function jsonText(value: unknown, depth = 0): string {
  if (typeof value !== "object" || value === null) return JSON.stringify(value) ?? "null";
  if (depth >= MAX_JSON_DEPTH) return '"[nested too deep]"';
  if (Array.isArray(value)) return `[${value.map((item) => jsonText(item, depth + 1)).join(",")}]`;
  const members = Object.entries(value)
    .filter(([, item]) => item !== undefined)
    .map(([key, item]) => `${JSON.stringify(key)}:${jsonText(item, depth + 1)}`);
  return `{${members.join(",")}}`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
