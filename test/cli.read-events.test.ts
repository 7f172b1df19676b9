// cli/read-events.ts's JSON reader, on its own: values whose strings hold brackets, braces, escaped
// quotes, backslashes and multi-byte characters come back exactly as written, wherever the file's
// 64 KiB chunks happen to cut them, one-line or pretty-printed, gzipped or not; a broken value
// costs itself only.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { type ReadItem, readEvents } from "../cli/read-events.ts";

const dir = mkdtempSync(join(tmpdir(), "refiner-read-"));

async function readAll(path: string): Promise<ReadItem[]> {
  const items: ReadItem[] = [];
  for await (const item of readEvents({ name: path })) items.push(item);
  return items;
}

// About 1 MB in all: many chunk boundaries, each at a different place in a value.
const tricky = Array.from({ length: 3000 }, (_, i) => ({
  type: "track",
  userId: `u${i}`,
  event: `Clicked ] } [ { "quoted" \\ ${"é😀".repeat(i % 7)}`,
  messageId: `m${i}`,
  properties: { path: "C:\\dir\\", nested: { list: [1, "]", { "}": "{" }], empty: {} }, n: -1.5e3 },
}));

describe("the JSON reader", () => {
  it.each([
    ["one line", JSON.stringify(tricky)],
    ["pretty-printed", JSON.stringify(tricky, null, 2)],
    ["objects one after another", tricky.map((event) => JSON.stringify(event, null, 2)).join("\n")],
  ])("reads %s back exactly, across chunk boundaries", async (name, text) => {
    const path = join(dir, `${name}.json`);
    writeFileSync(path, text);
    const items = await readAll(path);
    expect(items).toHaveLength(3000);
    expect(items.map((item) => ("event" in item ? item.event : item))).toEqual(tricky);
    expect(items.map((item) => item.index)).toEqual(tricky.map((_, i) => i));
  });

  it("reads a gzipped array", async () => {
    const path = join(dir, "array.json.gz");
    writeFileSync(path, gzipSync(JSON.stringify(tricky, null, 2)));
    const items = await readAll(path);
    expect(items.map((item) => ("event" in item ? item.event : item))).toEqual(tricky);
  });

  it("loses only the broken value, names its line and byte, and reads on", async () => {
    const path = join(dir, "broken.json");
    writeFileSync(path, '[\n  {"a": 1},\n  {"b": 2 "c"},\n  {"d": "}"}\n]\n');
    expect(await readAll(path)).toEqual([
      { index: 0, event: { a: 1 } },
      {
        index: 1,
        error: 'not valid JSON: {"b": 2 "c"}',
        where: "line 3, byte 17 (value 2)",
      },
      { index: 2, event: { d: "}" } },
    ]);
  });

  it("names a value the input ends in the middle of, after the values before it", async () => {
    const path = join(dir, "cut.json");
    writeFileSync(path, '[{"a": 1}, {"b": "unfinished');
    expect(await readAll(path)).toEqual([
      { index: 0, event: { a: 1 } },
      {
        index: 1,
        error: "the input ends in the middle of this value",
        where: "line 1, byte 12 (value 2)",
      },
    ]);
  });
});
