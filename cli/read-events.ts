// Reads Segment events from a file or standard input, streaming, optionally gzipped:
// - NDJSON (Segment's archives) line by line, so a bad line costs that line only;
// - a JSON array of events (pretty-printed or on one line, of any size), or pretty-printed objects,
//   element by element: a value that is not valid JSON costs that value only.
// Each item has its position in the input (`index`, counting events and unreadable values alike),
// which the checkpoint uses to resume. A value over MAX_EVENT_BYTES is reported and skipped without
// being kept. A read error or a truncated gzip ends the file: the generator throws, after yielding
// everything read before it.

import { createReadStream } from "node:fs";
import { PassThrough, pipeline, type Readable, Transform } from "node:stream";
import { createGunzip } from "node:zlib";

export type ReadItem =
  | { index: number; event: unknown }
  | { index: number; error: string; where: string };

/** Larger values are reported and skipped: no Segment event comes near it. */
export const MAX_EVENT_BYTES = 1024 * 1024;

export interface Source {
  /** A path, or "-" for standard input. */
  name: string;
  /** Called with each chunk of the input as read (compressed, for a .gz): progress, and its hash. */
  onChunk?: (chunk: Buffer) => void;
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

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const NEWLINE = 0x0a;
const isSpace = (byte: number) => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

/**
 * A JSON array's elements, or top-level values one after another. A scanner finds where each value
 * begins and ends (brackets and braces outside strings, byte by byte: every chunk is scanned to its
 * end before the next is awaited, so nothing read is held back), and each value is parsed on its
 * own. A value that is not valid JSON costs that value only, named by its line and byte; the
 * values before it and after it are read as usual. Structural characters are ASCII, which no byte
 * of a multi-byte UTF-8 character can be, so scanning bytes is safe.
 */
async function* values(chunks: AsyncIterable<Buffer>): AsyncGenerator<ReadItem> {
  const scan = new ValueScanner();
  for await (const chunk of chunks) yield* scan.chunk(chunk);
  yield* scan.end();
}

class ValueScanner {
  private index = 0;
  /** The depth at which values are: 1 inside a top-level array, else 0. */
  private level = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** The value being read: its bytes so far, where it began, and whether it is a container. */
  private value:
    | {
        parts: Buffer[];
        size: number;
        line: number;
        byte: number;
        container: boolean;
        opener: number;
      }
    | undefined;
  private oversized = false;
  private line = 1;
  private offset = 0;

  *chunk(chunk: Buffer): Generator<ReadItem> {
    let start = 0; // where the current value's bytes begin in this chunk
    for (let at = 0; at < chunk.length; at++) {
      const byte = chunk[at] as number;
      if (byte === NEWLINE) this.line += 1;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (byte === BACKSLASH) this.escaped = true;
        else if (byte === QUOTE) this.inString = false;
        continue;
      }
      if (!this.value) {
        if (isSpace(byte) || (byte === COMMA && this.depth === this.level)) continue;
        if (byte === OPEN_BRACKET && this.depth === 0) {
          this.level = 1; // a top-level array: its elements are the values
          this.depth = 1;
          continue;
        }
        if (byte === CLOSE_BRACKET && this.level === 1 && this.depth === 1) {
          this.level = 0;
          this.depth = 0;
          continue;
        }
        this.begin(byte, this.offset + at);
        start = at;
      }
      // Inside a value (including the byte that began it).
      if (byte === QUOTE) this.inString = true;
      else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) this.depth += 1;
      else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
        if (this.depth > this.level) this.depth -= 1;
        const opener = this.value?.opener;
        if (opener === OPEN_BRACE && byte === CLOSE_BRACKET && this.depth === this.level) {
          // `{broken ]`: an object left open by the array's end; the `]` still ends the array.
          this.keep(chunk.subarray(start, at));
          yield this.finish();
          this.level = 0;
          this.depth = 0;
          continue;
        }
        if (this.value?.container && this.depth === this.level) {
          this.keep(chunk.subarray(start, at + 1));
          yield this.finish();
          continue;
        }
        if (
          !this.value?.container &&
          this.depth === this.level &&
          this.level === 1 &&
          byte === CLOSE_BRACKET
        ) {
          this.keep(chunk.subarray(start, at));
          yield this.finish();
          this.level = 0;
          this.depth = 0;
        }
      } else if (!this.value?.container && this.depth === this.level) {
        // A value that is not an object or array ends at a comma, or at a space at the top level.
        if (byte === COMMA || (this.level === 0 && isSpace(byte))) {
          this.keep(chunk.subarray(start, at));
          yield this.finish();
        }
      }
    }
    if (this.value) this.keep(chunk.subarray(start));
    this.offset += chunk.length;
  }

  *end(): Generator<ReadItem> {
    if (this.value && !this.value.container && !this.inString && this.depth === this.level) {
      yield this.finish();
    } else if (this.value) {
      const { line, byte } = this.value;
      this.value = undefined;
      yield {
        index: this.index++,
        error: "the input ends in the middle of this value",
        where: `line ${line}, byte ${byte + 1} (value ${this.index})`,
      };
    } else if (this.level === 1) {
      throw new Error(`the input ends before the array's closing ] (line ${this.line})`);
    }
  }

  private begin(opener: number, byte: number): void {
    const container = opener === OPEN_BRACE || opener === OPEN_BRACKET;
    this.value = { parts: [], size: 0, line: this.line, byte, container, opener };
    this.oversized = false;
  }

  private keep(bytes: Buffer): void {
    const value = this.value;
    if (!value || this.oversized || bytes.length === 0) return;
    value.size += bytes.length;
    // What is over the limit is let go as it comes; the rest of the value is passed over.
    if (value.size > MAX_EVENT_BYTES) {
      this.oversized = true;
      value.parts = [];
    } else value.parts.push(bytes);
  }

  private finish(): ReadItem {
    const value = this.value as NonNullable<ValueScanner["value"]>;
    this.value = undefined;
    const index = this.index++;
    const where = `line ${value.line}, byte ${value.byte + 1} (value ${index + 1})`;
    if (this.oversized) {
      return { index, error: `a value larger than ${MAX_EVENT_BYTES} bytes`, where };
    }
    const text = Buffer.concat(value.parts).toString("utf8");
    try {
      return { index, event: JSON.parse(text) };
    } catch {
      return { index, error: `not valid JSON: ${text.slice(0, 80)}`, where };
    }
  }
}

/** The input's bytes, gunzipped when it is gzip (by its name or its first two bytes). */
async function* decompressed({ name, onChunk }: Source): AsyncGenerator<Buffer> {
  const raw: Readable = name === "-" ? process.stdin : createReadStream(name);
  const gzipped = name.endsWith(".gz") || (await startsWithGzipMagic(raw));
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      onChunk?.(chunk);
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
