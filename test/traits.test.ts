// Unit tests of the pure trait normalization (docs/mapping.md, "Traits"). The same rows are
// also exercised through the bundle in segment-function.*.test.ts.

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
  ])("%s → %s", (key, expected) => {
    expect(snakeCase(key)).toBe(expected);
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

  it("sends what lies below the depth limit as JSON text", () => {
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 20; i++) deep = { n: deep };
    const result = normalizeTraits(deep, snake);
    const [key, value] = Object.entries(result)[0] ?? [];
    expect(key).toBe(Array(MAX_TRAIT_DEPTH).fill("n").join("_"));
    expect(JSON.parse(value as string)).toHaveProperty("n");
  });
});
