// The bounded memory of delivered messageIds (lib/pipeline/recent-ids.ts), with an injected clock.

import { describe, expect, it } from "vitest";
import { recentIds } from "../lib/pipeline/recent-ids.ts";

describe("recentIds", () => {
  it("remembers an id until its time is up", () => {
    const memory = recentIds(10, 1000);
    memory.add("m1", 5000);
    expect(memory.has("m1", 5999)).toBe(true);
    expect(memory.has("m1", 6000)).toBe(false);
    expect(memory.has("m2", 5000)).toBe(false);
  });

  it("forgets the oldest first beyond its bound, and renews an id added again", () => {
    const memory = recentIds(4, 60_000);
    for (const [id, at] of [
      ["a", 1],
      ["b", 2],
      ["c", 3],
      ["a", 4],
      ["d", 5],
    ] as const) {
      memory.add(id, at);
    }
    expect(memory.size).toBe(3);
    expect(["a", "b", "c", "d"].filter((id) => memory.has(id, 10))).toEqual(["a", "c", "d"]);
  });

  it("holds at most its bound over a million distinct ids, and always the latest half of it", () => {
    const memory = recentIds(100_000);
    let most = 0;
    for (let i = 0; i < 1_000_000; i++) {
      memory.add(`ajs-${i}`, i);
      most = Math.max(most, memory.size);
    }
    expect(most).toBeLessThanOrEqual(100_000);
    expect(memory.has("ajs-899999", 1_000_000)).toBe(false);
    for (const i of [950_000, 975_000, 999_999])
      expect(memory.has(`ajs-${i}`, 1_000_000)).toBe(true);
  });
});
