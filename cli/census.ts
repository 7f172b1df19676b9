// `send --dry-run`'s census of traits: how many distinct user and account traits an archive would
// create in Refiner once the settings have chosen and renamed them. Refiner keeps at most 1,000
// distinct traits per environment and silently creates no more, so a backfill should know first.
//
// Refiner's names are snake_case and flattened (`first_name`, `address_city`), while the allow and
// deny lists take Segment's keys as written, nested ones as dotted paths (`firstName`,
// `address.city`). So each name the census shows comes with the spelling the lists take, found by
// passing each key as written through the same normalization as the mapping (lib/segment/traits.ts).

import type { RefinerCall } from "../lib/refiner/client.ts";
import { identifier, objectAt } from "../lib/segment/event.ts";
import { isPlainObject, MAX_TRAIT_DEPTH, normalizeTraits } from "../lib/segment/traits.ts";
import type { Settings } from "../lib/settings.ts";

/** Refiner's limit per environment (docs/mapping.md, "Refiner's API"). */
export const REFINER_MAX_TRAITS = 1000;
const SHOWN = 10;

/** Keys of an identify body that are not traits: who the contact is, and the account. */
const NOT_TRAITS = new Set(["id", "email", "account"]);

/** The settings that rename keys; the lists do not change a name. */
type Naming = Pick<Settings, "preserveTraitKeys" | "traitMapping" | "accountTraitMapping">;

export class TraitCensus {
  private readonly user = new Map<string, number>();
  private readonly account = new Map<string, number>();
  /** Refiner's name → the paths, as the lists take them, that became it. */
  private readonly userPaths = new Map<string, Set<string>>();
  private readonly accountPaths = new Map<string, Set<string>>();
  /** Path as written → Refiner's name (or "" for none), computed once per path. */
  private readonly named = new Map<string, string>();

  constructor(private readonly naming: Naming) {}

  /** Counts the traits of one request Refiner would receive, and how its events spelled them. */
  add(call: RefinerCall, events: readonly unknown[] = []): void {
    for (const event of events) this.spell(event);
    if (call.call !== "identifyUser") return;
    for (const key of Object.keys(call.body)) {
      if (!NOT_TRAITS.has(key)) count(this.user, key);
    }
    const { account } = call.body;
    if (account && typeof account === "object") {
      for (const key of Object.keys(account)) if (key !== "id") count(this.account, key);
    }
  }

  /** Records, for each trait of an identify or group, the path the lists take and its name. */
  private spell(event: unknown): void {
    if (!isPlainObject(event)) return;
    const traits = objectAt(event, "traits");
    if (event.type === "identify") {
      const company = objectAt(traits, "company");
      const hasAccount = identifier(company.id) !== undefined;
      this.walk(traits, [], "user", hasAccount ? ["userId", "company"] : ["userId"]);
      if (hasAccount) this.walk(company, [], "account", ["id"]);
    } else if (event.type === "group") {
      this.walk(traits, [], "account", ["id"]);
    }
  }

  private walk(
    object: Record<string, unknown>,
    above: readonly string[],
    kind: "user" | "account",
    skip: readonly string[],
  ): void {
    for (const [key, value] of Object.entries(object)) {
      if (above.length === 0 && skip.includes(key)) continue;
      const keys = [...above, key];
      if (isPlainObject(value) && keys.length < MAX_TRAIT_DEPTH) {
        this.walk(value, keys, kind, skip);
        continue;
      }
      const path = keys.join(".");
      const name = this.nameOf(kind, keys);
      if (!name) continue;
      const paths = kind === "user" ? this.userPaths : this.accountPaths;
      const known = paths.get(name);
      if (known) known.add(path);
      else paths.set(name, new Set([path]));
    }
  }

  /** The name the mapping gives a path: a trait at that path alone, normalized as the mapping does. */
  private nameOf(kind: "user" | "account", keys: readonly string[]): string {
    const path = `${kind} ${JSON.stringify(keys)}`;
    const cached = this.named.get(path);
    if (cached !== undefined) return cached;
    const single: Record<string, unknown> = {};
    let at = single;
    for (const key of keys.slice(0, -1)) {
      const inner: Record<string, unknown> = {};
      at[key] = inner;
      at = inner;
    }
    at[keys.at(-1) as string] = true; // any value the mapping keeps: the name depends on the keys
    const rename = kind === "user" ? this.naming.traitMapping : this.naming.accountTraitMapping;
    const normalized = normalizeTraits(single, {
      preserveKeys: this.naming.preserveTraitKeys,
      selection: { rename, allow: undefined, deny: new Set() },
    });
    const name = Object.keys(normalized)[0] ?? "";
    // Bounded: paths are counted once each, and an archive of unbounded keys stops being cached.
    if (this.named.size < 100_000) this.named.set(path, name);
    return name;
  }

  report(): string {
    const lines = [
      `Traits Refiner would create, after the settings: ${this.user.size} user traits, ${this.account.size} account traits.`,
    ];
    for (const [kind, keys] of [
      ["user", this.user],
      ["account", this.account],
    ] as const) {
      if (keys.size === 0) continue;
      const paths = kind === "user" ? this.userPaths : this.accountPaths;
      const frequent = [...keys]
        .sort(([a, m], [b, n]) => n - m || (a < b ? -1 : 1))
        .slice(0, SHOWN)
        .map(([key, requests]) => {
          const written = [...(paths.get(key) ?? [])].filter((path) => path !== key);
          return written.length
            ? `${key} (${requests}; in the lists: ${written.slice(0, 3).join(" or ")})`
            : `${key} (${requests})`;
        });
      lines.push(`  most frequent ${kind} traits, by requests: ${frequent.join(", ")}`);
    }
    if (this.userPaths.size + this.accountPaths.size > 0) {
      lines.push(
        '  (REFINER_TRAIT_ALLOW_LIST and REFINER_TRAIT_DENY_LIST take the keys as written in the events, dotted for nested ones, as shown after "in the lists".)',
      );
    }
    if (this.user.size + this.account.size > REFINER_MAX_TRAITS) {
      lines.push(
        `Warning: that is over the ${REFINER_MAX_TRAITS} distinct traits Refiner keeps per environment, and it silently creates no more. Choose what to send with REFINER_TRAIT_ALLOW_LIST, REFINER_TRAIT_DENY_LIST or REFINER_TRAIT_MAPPING (and the account ones), then run the dry run again.`,
      );
    }
    return `${lines.join("\n")}\n`;
  }
}

function count(keys: Map<string, number>, key: string): void {
  keys.set(key, (keys.get(key) ?? 0) + 1);
}
