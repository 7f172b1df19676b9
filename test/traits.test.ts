// Unit tests of the pure trait normalization (docs/mapping.md, "Traits"). The same rows are
// also exercised through the bundle in segment-function.*.test.ts.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_TRAIT_DEPTH, normalizeTraits, snakeCase } from "../lib/segment/traits.ts";

describe("snakeCase", () => {
  it.each([
    ["firstName", "first_name"],
    ["total billed", "total_billed"],
    ["HTMLTitle", "html_title"],
    ["createdAt", "created_at"],
    ["order_completed_last_30days", "order_completed_last_30days"],
    ["Plan", "plan"],
    ["userID", "user_id"],
    ["__proto__", "proto"],
    ["  spaced  out ", "spaced_out"],
    ["prénomUsuel", "prénom_usuel"],
    ["a-b.c", "a_b_c"],
    ["🙂", ""],
    ["ABCdEFGh", "ab_cd_ef_gh"],
    ["HTML5Parser", "html5_parser"],
    ["ΟΔΟΣ", "οδος"],
    ["𝐀𝐁c", "𝐀_𝐁c".toLowerCase()],
  ])("%s → %s", (key, expected) => {
    expect(snakeCase(key)).toBe(expected);
  });

  // The rules as first written (docs/mapping.md): right on every key, but a long run of capitals
  // made the second one rescan the run from each of its letters.
  const quadratic = (key: string) =>
    key
      .replace(/([\p{Ll}\p{N}])(\p{Lu})/gu, "$1_$2")
      .replace(/(\p{Lu}+)(\p{Lu}\p{Ll})/gu, "$1_$2")
      .replace(/[^\p{L}\p{N}]+/gu, "_")
      .toLowerCase()
      .replace(/^_+|_+$/g, "");

  it("gives what the first rules gave, on any key of capitals, small letters, digits and others", () => {
    // Upper and lower case Latin, Greek (its final sigma), a capital outside the BMP, a letter that
    // lower-cases to two, digits, separators, an underscore, a combining mark, a lone surrogate and
    // a modifier letter.
    const unit = fc.constantFrom(..."AbBcZz09_ -.ΣσΟδİ\u0301\ud800".split(""), "𝐀", "𝐚", "ʰ");
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 24 }), (key) => {
        expect(snakeCase(key)).toBe(quadratic(key));
      }),
      { numRuns: 2000 },
    );
  });

  it("takes time in proportion to the key: four times the capitals, about four times the CPU", () => {
    // Quadratic, four times the length is sixteen times the work (the first rules: 80 ms for 7,500
    // capitals, 1.3 s for 30,000). CPU time of this process, the two sides taking turns.
    const cpu = (key: string) => {
      const started = process.cpuUsage();
      for (let i = 0; i < 20; i++) snakeCase(key);
      const { user, system } = process.cpuUsage(started);
      return user + system;
    };
    const short = "A".repeat(7_500);
    const long = "A".repeat(30_000);
    expect(snakeCase(long)).toBe("a".repeat(30_000));
    let shortCpu = 0;
    let longCpu = 0;
    for (let round = 0; round < 5; round++) {
      shortCpu += cpu(short);
      longCpu += cpu(long);
    }
    expect(longCpu / shortCpu).toBeLessThan(8);
  });
});

const snake = { preserveKeys: false } as const;

describe("normalizeTraits", () => {
  it("passes strings, finite numbers and booleans; drops null", () => {
    expect(normalizeTraits({ a: "x", b: 1.5, c: true, d: null, e: 0 }, snake)).toStrictEqual({
      a: "x",
      b: 1.5,
      c: true,
      e: 0,
    });
  });

  it("sends integers outside int32 as strings", () => {
    expect(
      normalizeTraits(
        { small: 2147483647, big: 2147483648, negative: -2147483648, ms: 1764400000000 },
        snake,
      ),
    ).toStrictEqual({
      small: 2147483647,
      big: "2147483648",
      negative: "-2147483648",
      ms: "1764400000000",
    });
  });

  it("flattens nested objects with _", () => {
    expect(
      normalizeTraits({ address: { city: "Paris", geo: { lat: 48.8 } } }, snake),
    ).toStrictEqual({
      address_city: "Paris",
      address_geo_lat: 48.8,
    });
  });

  it("joins arrays of primitives and sends arrays holding objects as JSON", () => {
    expect(
      normalizeTraits(
        { tags: ["a", 1, true, null], items: [{ sku: "x" }], nested: [[1]], none: [] },
        snake,
      ),
    ).toStrictEqual({ tags: "a, 1, true", items: '[{"sku":"x"}]', nested: "[[1]]", none: "" });
  });

  it("drops empty keys and keys that normalize to nothing", () => {
    expect(normalizeTraits({ "": "x", "!!!": "y", ok: 1 }, snake)).toStrictEqual({ ok: 1 });
  });

  it("lets a key written in snake_case win over one that normalizes to it, in either order", () => {
    expect(normalizeTraits({ first_name: "snake", firstName: "camel" }, snake)).toStrictEqual({
      first_name: "snake",
    });
    expect(normalizeTraits({ firstName: "camel", first_name: "snake" }, snake)).toStrictEqual({
      first_name: "snake",
    });
  });

  it("keeps keys as written with preserveKeys", () => {
    expect(
      normalizeTraits({ firstName: "Ann", address: { postCode: "1" } }, { preserveKeys: true }),
    ).toStrictEqual({
      firstName: "Ann",
      address_postCode: "1",
    });
  });

  it("treats __proto__ and constructor as data", () => {
    const source = JSON.parse('{"__proto__": {"polluted": true}, "constructor": "c", "plain": 1}');
    const result = normalizeTraits(source, { preserveKeys: true });
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    expect(Object.keys(result)).toEqual(["__proto___polluted", "constructor", "plain"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("cuts a key longer than 255 characters to its first 255, before anything reads it", () => {
    const long = `${"A".repeat(30_000)}Title`;
    expect(
      normalizeTraits({ [long]: 1, [`${"b".repeat(300)}`]: { c: 2 }, plan: "pro" }, snake),
    ).toStrictEqual({ ["a".repeat(255)]: 1, [`${"b".repeat(255)}_c`]: 2, plan: "pro" });
    // As written too, and never between the halves of a character outside the BMP.
    const emoji = `${"x".repeat(254)}🙂`;
    expect(Object.keys(normalizeTraits({ [emoji]: 1 }, { preserveKeys: true }))).toEqual([
      "x".repeat(254),
    ]);
    // A mapping's new name as well.
    const rename = new Map([["plan", "p".repeat(400)]]);
    const selection = { rename, allow: undefined, deny: new Set<string>() };
    expect(normalizeTraits({ plan: "pro" }, { ...snake, selection })).toStrictEqual({
      ["p".repeat(255)]: "pro",
    });
  });

  it("finds the allow list's entries below an object, whatever sorts between them", () => {
    const allow = new Set(["a!", "a.b", "ab", "address.city", "z"]);
    const selection = { rename: new Map<string, string>(), allow, deny: new Set<string>() };
    expect(
      normalizeTraits(
        { a: { b: 1, c: 2 }, address: { city: "Paris", zip: "75001" }, ab: 3, zz: 4, z: { y: 5 } },
        { ...snake, selection },
      ),
    ).toStrictEqual({ a_b: 1, address_city: "Paris", ab: 3, z_y: 5 });
  });

  it("sends what lies below the depth limit as JSON text", () => {
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 20; i++) deep = { n: deep };
    const result = normalizeTraits(deep, snake);
    const [key, value] = Object.entries(result)[0] ?? [];
    expect(key).toBe(Array(MAX_TRAIT_DEPTH).fill("n").join("_"));
    expect(JSON.parse(value as string)).toHaveProperty("n");
  });
});
