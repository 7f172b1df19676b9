// `send --dry-run`'s census of traits: how many distinct user and account traits an archive would
// create in Refiner once the settings have chosen and renamed them. Refiner keeps at most 1,000
// distinct traits per environment and silently creates no more, so a backfill should know first.

import type { RefinerCall } from "../lib/refiner/client.ts";

/** Refiner's limit per environment (docs/mapping.md, "Refiner's API"). */
export const REFINER_MAX_TRAITS = 1000;
const SHOWN = 10;

/** Keys of an identify body that are not traits: who the contact is, and the account. */
const NOT_TRAITS = new Set(["id", "email", "account"]);

export class TraitCensus {
  private readonly user = new Map<string, number>();
  private readonly account = new Map<string, number>();

  /** Counts the traits of one request Refiner would receive. */
  add(call: RefinerCall): void {
    if (call.call !== "identifyUser") return;
    for (const key of Object.keys(call.body)) {
      if (!NOT_TRAITS.has(key)) count(this.user, key);
    }
    const { account } = call.body;
    if (account && typeof account === "object") {
      for (const key of Object.keys(account)) if (key !== "id") count(this.account, key);
    }
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
      const frequent = [...keys]
        .sort(([a, m], [b, n]) => n - m || (a < b ? -1 : 1))
        .slice(0, SHOWN)
        .map(([key, requests]) => `${key} (${requests})`);
      lines.push(`  most frequent ${kind} traits, by requests: ${frequent.join(", ")}`);
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
