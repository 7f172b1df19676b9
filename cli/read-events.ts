// Reads Segment events from a file or standard input, streaming, optionally gzipped:
// - NDJSON (Segment's archives) line by line, so a bad line costs that line only;
// - a JSON array of events (pretty-printed or on one line, of any size), or pretty-printed objects,
//   through stream-json's streaming parser, element by element.
// Each item has its position in the input (`index`, counting events and unreadable values alike),
// which the checkpoint uses to resume. A value over MAX_EVENT_BYTES is reported and skipped without
// being kept. A read error, a truncated gzip or broken JSON ends the file: the generator throws,
// after yielding everything read before it.

import { createReadStream } from "node:fs";
import { PassThrough, pipeline, Readable, Transform } from "node:stream";
import { createGunzip } from "node:zlib";
import { parser } from "stream-json";
import Assembler from "stream-json/assembler.js";

export type ReadItem =
  | { index: number; event: unknown }
  | { index: number; error: string; where: string };

/** Larger values are reported and skipped: no Segment event comes near it. */
export const MAX_EVENT_BYTES = 1024 * 1024;

export interface Source {
  /** A path, or "-" for standard input. */
  name: string;
  /** Called with the number of (compressed) bytes read so far, for progress. */
  onBytes?: (bytes: number) => void;
}

export async function* readEvents(source: Source): AsyncGenerator<ReadItem> {
  const chunks = decompressed(source)[Symbol.asyncIterator]();
  // The first line that is not blank decides: an array, or an object that spans lines (its first
  // line is a lone brace), goes to the streaming parser; anything else is NDJSON, line by line.
  const head: Buffer[] = [];
  let buffered = Buffer.alloc(0);
  let firstLine: string | undefined;
  while (firstLine === undefined) {
    const next = await chunks.next();
    if (!next.done) {
      head.push(next.value);
      buffered = Buffer.concat([buffered, next.value]);
    }
    const start = buffered.findIndex((byte) => byte > 0x20);
    const end = start === -1 ? -1 : buffered.indexOf(10, start);
    if (end !== -1) firstLine = buffered.subarray(start, end).toString("utf8");
    else if (next.done || buffered.length > MAX_EVENT_BYTES) firstLine = buffered.toString("utf8");
  }
  buffered = Buffer.alloc(0);
  const rest = (async function* () {
    yield* head;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
  })();
  const first = firstLine.trim();
  yield* first.startsWith("[") || first === "{" ? values(rest) : lines(rest);
}

/** NDJSON: one value a line; blank lines are passed over. */
async function* lines(chunks: AsyncIterable<Buffer>): AsyncGenerator<ReadItem> {
  let index = 0;
  let line = 0;
  let partial: Buffer[] = [];
  let partialSize = 0;
  let oversized = false;

  const finish = (bytes: Buffer): ReadItem | undefined => {
    line += 1;
    if (oversized) {
      oversized = false;
      return {
        index: index++,
        error: `a line longer than ${MAX_EVENT_BYTES} bytes`,
        where: `line ${line}`,
      };
    }
    const text = bytes.toString("utf8").trim();
    if (!text) return undefined;
    const at = index++;
    try {
      return { index: at, event: JSON.parse(text) };
    } catch {
      return { index: at, error: `not valid JSON: ${text.slice(0, 80)}`, where: `line ${line}` };
    }
  };

  for await (const chunk of chunks) {
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, newline);
      const item = finish(partial.length ? Buffer.concat([...partial, piece]) : piece);
      partial = [];
      partialSize = 0;
      if (item) yield item;
      start = newline + 1;
    }
    if (start < chunk.length && !oversized) {
      partial.push(chunk.subarray(start));
      partialSize += chunk.length - start;
      if (partialSize > MAX_EVENT_BYTES) {
        oversized = true; // the rest of this line is dropped as it comes
        partial = [];
        partialSize = 0;
      }
    }
  }
  const item = finish(Buffer.concat(partial));
  if (item) yield item;
}

type Token = { name: string; value?: unknown };

/** A JSON array's elements, or top-level values one after another, through stream-json. */
async function* values(chunks: AsyncIterable<Buffer>): AsyncGenerator<ReadItem> {
  const tokens = parser.asStream({ jsonStreaming: true, packValues: true, streamValues: false });
  pipeline(Readable.from(chunks), tokens, () => {});

  let index = 0;
  let depth = 0;
  /** The depth at which events are: 1 inside a top-level array, else 0. */
  let level = 0;
  let assembler: Assembler | undefined;
  let size = 0;
  let skipping = false;

  for await (const token of tokens as AsyncIterable<Token>) {
    const opens = token.name === "startObject" || token.name === "startArray";
    const closes = token.name === "endObject" || token.name === "endArray";
    if (depth === 0 && token.name === "startArray") {
      level = 1;
      depth = 1;
      continue;
    }
    if (depth === 1 && level === 1 && token.name === "endArray") {
      level = 0;
      depth = 0;
      continue;
    }
    if (depth === level && !assembler && !skipping) {
      assembler = new Assembler();
      size = 0;
    }
    if (opens) depth += 1;
    if (closes) depth -= 1;

    if (assembler) {
      size += typeof token.value === "string" ? token.value.length + 3 : 2;
      if (size > MAX_EVENT_BYTES) {
        assembler = undefined; // what was assembled is let go; the rest is passed over
        skipping = true;
      } else {
        assembler.consume(token as Parameters<Assembler["consume"]>[0]);
      }
    }
    if (depth === level) {
      if (skipping) {
        yield {
          index,
          error: `a value larger than ${MAX_EVENT_BYTES} bytes`,
          where: `value ${index + 1}`,
        };
      } else if (assembler) {
        yield { index, event: assembler.current };
      }
      index += 1;
      assembler = undefined;
      skipping = false;
    }
  }
  if (depth !== 0) throw new Error("the input ends in the middle of a value");
}

/** The input's bytes, gunzipped when it is gzip (by its name or its first two bytes). */
async function* decompressed({ name, onBytes }: Source): AsyncGenerator<Buffer> {
  const raw: Readable = name === "-" ? process.stdin : createReadStream(name);
  const gzipped = name.endsWith(".gz") || (await startsWithGzipMagic(raw));
  let bytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      onBytes?.(bytes);
      done(null, chunk);
    },
  });
  const output = new PassThrough();
  // pipeline() carries a read or gunzip error to `output`, whose iteration then throws it.
  pipeline(gzipped ? [raw, counted, createGunzip(), output] : [raw, counted, output], () => {});
  yield* output as AsyncIterable<Buffer>;
}

/** Peeks at the first two bytes and puts them back. */
async function startsWithGzipMagic(stream: Readable): Promise<boolean> {
  const first: Buffer | null = await new Promise((resolve, reject) => {
    const onReadable = () => {
      cleanup();
      resolve(stream.read(2) ?? stream.read());
    };
    const onEnd = () => {
      cleanup();
      resolve(null);
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const cleanup = () => {
      stream.off("readable", onReadable);
      stream.off("end", onEnd);
      stream.off("error", onError);
    };
    stream.once("readable", onReadable);
    stream.once("end", onEnd);
    stream.once("error", onError);
  });
  if (!first) return false;
  stream.unshift(first);
  return first[0] === 0x1f && first[1] === 0x8b;
}
